//! The text leg from the collection's BM25 index (`text_index`): the exact top k by BM25
//! with the index's current statistics (`qortex_core::hybrid::text::index::top_k`), reading
//! as the extension's owner after checking that the caller may read the collection's table.
//!
//! - Statistics: rows and total length from the stats shards; each term's document
//!   frequency from its merged blocks, plus unmerged rows, minus deleted ones: exact.
//! - User scope: rows of the user (their docnos, from the index's rows) and global rows.
//! - Row-level security on the table: the best rows are checked against the table as the
//!   caller (rows a policy hides drop out), and more are taken until the leg has `k` or
//!   there are no more.
//! - A metadata filter: not asked (`TextLeg::filtered`); should it be, its best rows are
//!   checked against the filter the same way.
use super::{rows, Scope};
use crate::catalog::{IndexTables, Layout};
use crate::errors::error;
use crate::owner::{as_owner, may_read};
use crate::settings::{self, ForCall};
use crate::spi::{plan, spi_failed, INT4_ARRAY, TEXT, TEXT_ARRAY};
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use qortex_core::hybrid::text::index::{
    decode, decode_heads, top_k, BlockHeader, BlockSource, Posting, Query, TermList,
};
use qortex_core::hybrid::text::Bm25;
use qortex_core::hybrid::{rank_leg, LegHit, SearchOptions};
use std::collections::{HashMap, HashSet};

/// Postings the first phase reads at most, from the rarest terms.
const BOOTSTRAP: usize = 1_000;
/// Postings of all query terms at or below which every block is read at once (measured on
/// SciFact: below this, pruning costs more than it saves).
const EXHAUSTIVE: usize = 8_000;

/// The best `k` rows for `lexemes` from the index, or `None` if the collection has none or
/// it is switched off; with a line for `qortex.debug_plans`.
pub fn search(
    client: &SpiClient<'_>,
    func: &str,
    t: &Layout,
    scope: &Scope<'_>,
    opts: &SearchOptions,
    lexemes: &[String],
    k: usize,
) -> Option<(Vec<LegHit>, String)> {
    let x = t.text_index.as_ref()?;
    if !settings::USE_TEXT_INDEX.get() {
        return None;
    }
    if !may_read(t.source) {
        error(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("{func}: permission denied for table {}", t.table),
        )
        .raise();
    }
    let rls = unsafe { pg_sys::check_enable_rls(t.source, pg_sys::InvalidOid, false) }
        == pg_sys::CheckEnableRlsResult::RLS_ENABLED as i32;
    let verify = rls || opts.filter.is_some();
    // every statement here finds rows by key: plans made once, when the delta table was
    // empty, must not scan it once it holds a merge's worth of postings
    let by_key = ForCall::new();
    by_key.set("enable_seqscan", "off");
    let (index, user) = as_owner(|| {
        let index = read(client, func, x, lexemes);
        let user: Option<HashSet<u32>> = opts.user_id.as_ref().map(|u| {
            let p = plan(
                client,
                &format!("SELECT docno FROM {} WHERE owner = $1", x.docs),
                &[TEXT],
                false,
            );
            p.select(client, None, &[u.as_str().into()])
                .unwrap_or_else(spi_failed(func))
                .filter_map(|r| r.get::<i32>(1).ok().flatten().map(|d| d as u32))
                .collect()
        });
        (index, user)
    });
    let allowed =
        |docno: u32, global: bool| user.as_ref().is_none_or(|u| global || u.contains(&docno));
    let bm25 = Bm25 {
        k1: settings::BM25_K1.get(),
        b: settings::BM25_B.get(),
    };
    let mut want = k;
    let mut reads = (0, 0, 0);
    loop {
        let q = Query {
            n: index.n,
            avgdl: index.avgdl,
            bm25,
            k: want,
            allowed: &allowed,
            dead: &index.dead,
            bootstrap: BOOTSTRAP,
            exhaustive: EXHAUSTIVE,
        };
        let mut src = Blocks {
            client,
            func,
            x,
            lexemes,
            heads: &index.heads,
            first: &index.first,
        };
        let (top, work) = top_k(&index.terms, &q, &mut src);
        reads = (
            reads.0 + work.blocks_read,
            work.blocks_total,
            reads.2 + work.scored,
        );
        let ids = as_owner(|| ids_of(client, func, x, &top));
        let mut hits: Vec<LegHit> = top
            .iter()
            .filter_map(|(d, s)| {
                Some(LegHit {
                    id: ids.get(d)?.clone(),
                    score: *s,
                })
            })
            .collect();
        // ties at the k-th score came back too: the leg's order (score, then id) picks
        rank_leg(&mut hits);
        if verify {
            let found: Vec<String> = hits.iter().map(|h| h.id.clone()).collect();
            let visible = rows::in_scope(client, t, scope, &found);
            hits.retain(|h| visible.contains(&h.id));
        }
        let exhausted = top.len() < want;
        if !verify || hits.len() >= k || exhausted {
            by_key.restore();
            hits.truncate(k);
            let how = format!(
                "BM25 index: {} of {} blocks read, {} rows scored, {} unmerged, {} deleted{}",
                reads.0,
                reads.1,
                reads.2,
                index.unmerged,
                index.dead.len(),
                match verify {
                    true => format!(", {} of the best {want} in scope", hits.len()),
                    false => String::new(),
                }
            );
            return Some((hits, how));
        }
        want = want.saturating_mul(4);
    }
}

/// What a search reads of the index before its blocks.
struct Index {
    n: f64,
    avgdl: f64,
    terms: Vec<TermList>,
    /// Each term's block slots, in the order of its `TermList::blocks`.
    heads: Vec<Vec<i32>>,
    /// Slot 0's postings of each term (read with its headers).
    first: Vec<Option<Vec<Posting>>>,
    dead: HashSet<u32>,
    unmerged: usize,
}

fn read(client: &SpiClient<'_>, func: &str, x: &IndexTables, lexemes: &[String]) -> Index {
    let (docs, length) = {
        let p = plan(
            client,
            &format!(
                "SELECT COALESCE(pg_catalog.sum(docs), 0)::float8,
                        COALESCE(pg_catalog.sum(length), 0)::float8 FROM {}",
                x.stats
            ),
            &[],
            false,
        );
        p.select(client, Some(1), &[])
            .unwrap_or_else(spi_failed(func))
            .next()
            .map(|r| {
                (
                    r.get::<f64>(1).ok().flatten().unwrap_or(0.0),
                    r.get::<f64>(2).ok().flatten().unwrap_or(0.0),
                )
            })
            .unwrap_or((0.0, 0.0))
    };
    let mut terms = vec![TermList::default(); lexemes.len()];
    let mut heads = vec![Vec::new(); lexemes.len()];
    let mut first = vec![None; lexemes.len()];
    let at: HashMap<&str, usize> = lexemes
        .iter()
        .enumerate()
        .map(|(i, l)| (l.as_str(), i))
        .collect();
    let p = plan(
        client,
        &format!(
            "SELECT q.l, b.df, b.heads, b.payload,
                    (SELECT pg_catalog.count(*) FROM {delta} d WHERE d.lexeme = q.l),
                    (SELECT pg_catalog.count(*) FROM {dead} g WHERE g.lexeme = q.l)
               FROM pg_catalog.unnest($1::text[]) q(l)
               LEFT JOIN {blocks} b ON b.lexeme = q.l AND b.slot = 0",
            delta = x.delta,
            dead = x.dead,
            blocks = x.blocks
        ),
        &[TEXT_ARRAY],
        false,
    );
    for r in p
        .select(client, None, &[lexemes.to_vec().into()])
        .unwrap_or_else(spi_failed(func))
    {
        let Some(i) = r
            .get::<String>(1)
            .ok()
            .flatten()
            .and_then(|l| at.get(l.as_str()).copied())
        else {
            continue;
        };
        let merged = r.get::<i32>(2).ok().flatten().unwrap_or(0) as f64;
        let unmerged = r.get::<i64>(5).ok().flatten().unwrap_or(0) as f64;
        let deleted = r.get::<i64>(6).ok().flatten().unwrap_or(0) as f64;
        terms[i].df = (merged + unmerged - deleted).max(0.0);
        if let Some(h) = r.get::<Vec<u8>>(3).ok().flatten() {
            let h = decode_heads(&h).unwrap_or_else(|| {
                x.damaged(func, &format!("in the block headers of {:?}", lexemes[i]))
            });
            terms[i].blocks = h.iter().map(|(_, b)| *b).collect::<Vec<BlockHeader>>();
            heads[i] = h.iter().map(|(s, _)| *s).collect();
            first[i] = r.get::<Vec<u8>>(4).ok().flatten().and_then(|b| decode(&b));
        }
    }
    // postings of unmerged rows (deleted ones are gone with their rows)
    let p = plan(
        client,
        &format!(
            "SELECT d.lexeme, d.docno, d.tf, x.dl, x.global
               FROM {} d JOIN {} x ON x.docno = d.docno WHERE d.lexeme = ANY($1)",
            x.delta, x.docs
        ),
        &[TEXT_ARRAY],
        false,
    );
    let mut unmerged = HashSet::new();
    for r in p
        .select(client, None, &[lexemes.to_vec().into()])
        .unwrap_or_else(spi_failed(func))
    {
        let (Some(i), Some(d), Some(tf), Some(dl), Some(g)) = (
            r.get::<String>(1)
                .ok()
                .flatten()
                .and_then(|l| at.get(l.as_str()).copied()),
            r.get::<i32>(2).ok().flatten(),
            r.get::<i16>(3).ok().flatten(),
            r.get::<i32>(4).ok().flatten(),
            r.get::<bool>(5).ok().flatten(),
        ) else {
            continue;
        };
        unmerged.insert(d);
        terms[i].delta.push(Posting {
            docno: d as u32,
            tf: tf.max(1) as u16,
            dl: dl.max(0) as u32,
            global: g,
        });
    }
    // deleted rows matter only where they hold a query term
    let p = plan(
        client,
        &format!(
            "SELECT DISTINCT docno FROM {} WHERE lexeme = ANY($1)",
            x.dead
        ),
        &[TEXT_ARRAY],
        false,
    );
    let dead = p
        .select(client, None, &[lexemes.to_vec().into()])
        .unwrap_or_else(spi_failed(func))
        .filter_map(|r| r.get::<i32>(1).ok().flatten().map(|d| d as u32))
        .collect();
    Index {
        n: docs,
        avgdl: if docs > 0.0 { length / docs } else { 1.0 },
        terms,
        heads,
        first,
        dead,
        unmerged: unmerged.len(),
    }
}

/// Reads blocks by (term, block) as (lexeme, slot), in one statement a batch.
struct Blocks<'a, 'c> {
    client: &'a SpiClient<'c>,
    func: &'a str,
    x: &'a IndexTables,
    lexemes: &'a [String],
    heads: &'a [Vec<i32>],
    first: &'a [Option<Vec<Posting>>],
}

impl BlockSource for Blocks<'_, '_> {
    fn fetch(&mut self, wanted: &[(usize, usize)]) -> Vec<Vec<Posting>> {
        let mut out: Vec<Option<Vec<Posting>>> = vec![None; wanted.len()];
        let (mut ls, mut ss, mut at) = (Vec::new(), Vec::new(), HashMap::new());
        for (i, &(t, j)) in wanted.iter().enumerate() {
            let slot = self.heads[t][j];
            match (&self.first[t], slot) {
                (Some(ps), 0) => out[i] = Some(ps.clone()),
                _ => {
                    at.insert((self.lexemes[t].clone(), slot), i);
                    ls.push(self.lexemes[t].clone());
                    ss.push(slot);
                }
            }
        }
        if !ls.is_empty() {
            as_owner(|| {
                let p = plan(
                    self.client,
                    &format!(
                        "SELECT b.lexeme, b.slot, b.payload
                           FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::int4[])) w(l, s)
                           JOIN {} b ON b.lexeme = w.l AND b.slot = w.s",
                        self.x.blocks
                    ),
                    &[TEXT_ARRAY, INT4_ARRAY],
                    false,
                );
                for r in p
                    .select(self.client, None, &[ls.into(), ss.into()])
                    .unwrap_or_else(spi_failed(self.func))
                {
                    let (Some(l), Some(s), Some(b)) = (
                        r.get::<String>(1).ok().flatten(),
                        r.get::<i32>(2).ok().flatten(),
                        r.get::<Vec<u8>>(3).ok().flatten(),
                    ) else {
                        continue;
                    };
                    if let Some(&i) = at.get(&(l.clone(), s)) {
                        out[i] = Some(decode(&b).unwrap_or_else(|| {
                            self.x.damaged(self.func, &format!("in block {s} of {l:?}"))
                        }));
                    }
                }
            });
        }
        out.into_iter()
            .map(|o| {
                o.unwrap_or_else(|| {
                    self.x
                        .damaged(self.func, "(a block its headers name is missing)")
                })
            })
            .collect()
    }
}

/// The ids of docnos (rows deleted since are not among them).
fn ids_of(
    client: &SpiClient<'_>,
    func: &str,
    x: &IndexTables,
    top: &[(u32, f64)],
) -> HashMap<u32, String> {
    if top.is_empty() {
        return HashMap::new();
    }
    let docnos: Vec<i32> = top.iter().map(|(d, _)| *d as i32).collect();
    let p = plan(
        client,
        &format!("SELECT docno, id FROM {} WHERE docno = ANY($1)", x.docs),
        &[INT4_ARRAY],
        false,
    );
    p.select(client, None, &[docnos.into()])
        .unwrap_or_else(spi_failed(func))
        .filter_map(|r| Some((r.get::<i32>(1).ok()?? as u32, r.get::<String>(2).ok()??)))
        .collect()
}
