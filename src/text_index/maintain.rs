//! Keeping the BM25 index current, in the writer's transaction.
//!
//! Statement triggers with transition tables on the collection's table (so a COPY or a
//! multi-row INSERT costs one statement per table, not one per row) run as the extension's
//! owner (SECURITY DEFINER):
//! - INSERT: each row gets a docno; its `docs` row and its postings go into `delta`.
//! - DELETE: its `docs` row goes; unmerged, its delta postings go too; merged, `dead` rows
//!   (lexeme, docno) record its postings so the next merge takes them out of their blocks.
//! - UPDATE: rows whose id, tsvector (or content), user or global flag changed are deleted
//!   and inserted again; other updates touch nothing.
//! - TRUNCATE: the index is emptied.
//!
//! Row count and total length are added to a shard of `stats` chosen by the backend.
//!
//! When the unmerged rows and dead rows reach `qortex.text_index_merge_rows`, the writer
//! that gets the collection's advisory lock (others do not wait) merges: their postings go
//! into blocks (`qortex_core::hybrid::text::index::merge`), reading and writing only the
//! blocks they touch. Rows a concurrent transaction holds locked are left for the next
//! merge. Searches never wait for a merge: they read the last committed blocks and delta.
use crate::catalog::{self, IndexTables, Layout};
use crate::settings;
use crate::spi::{plan, spi_failed, INT4, INT4_ARRAY, TEXT_ARRAY};
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use qortex_core::hybrid::text::index::{apply, decode_heads, encode_heads, slots_to_read, Posting};
use std::collections::{HashMap, HashSet};

const F: &str = "qortex_text_index_maintain";
/// Rows one merge round takes at most (each round reads their postings into memory).
const ROUND: i64 = 20_000;
/// Shards of the stats table (writers add to the one of their backend).
pub const SHARDS: i32 = 16;

/// The statement trigger on a collection's table (argument: the collection's name).
#[pg_trigger(sql = r#"
CREATE FUNCTION qortex.text_index_maintain() RETURNS trigger
LANGUAGE c SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'text_index_maintain_wrapper';
"#)]
fn text_index_maintain<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, PgTriggerError> {
    let name = trigger.extra_args()?.into_iter().next().unwrap_or_default();
    let op = trigger.op()?;
    let data = trigger.trigger_data() as *const pg_sys::TriggerData as *mut pg_sys::TriggerData;
    // the index's statements find rows by key (the trigger's own scans are of the
    // transition tables, which have no indexes)
    let by_key = settings::ForCall::new();
    by_key.set("enable_seqscan", "off");
    by_key.set("jit", "off"); // (plans with sequential scans off look costly enough for JIT)
    Spi::connect_mut(|client| {
        // the transition tables, by the names CREATE TRIGGER gave them
        unsafe { pg_sys::SPI_register_trigger_data(data) };
        let t = catalog::layout(client, F, &name);
        let Some(x) = t.text_index.clone() else {
            return;
        };
        match op {
            PgTriggerOperation::Insert => insert(client, &t, &x, "qortex_new"),
            PgTriggerOperation::Delete => delete(client, &t, &x, "qortex_old"),
            PgTriggerOperation::Update => {
                delete(client, &t, &x, &changed(&t, "qortex_old", "qortex_new"));
                insert(client, &t, &x, &changed(&t, "qortex_new", "qortex_old"));
            }
            PgTriggerOperation::Truncate => {
                let sql = format!(
                    "TRUNCATE {}, {}, {}, {}, {}",
                    x.docs, x.delta, x.blocks, x.dead, x.stats
                );
                client.update(&sql, None, &[]).unwrap_or_else(spi_failed(F));
                return;
            }
        }
        if pending(client, &x) >= settings::TEXT_INDEX_MERGE_ROWS.get() as i64
            && try_lock(client, &x)
        {
            merge(client, F, &x);
        }
    });
    Ok(None)
}

/// Rows of `rows` (a transition table) whose indexed columns differ from every row of
/// `other` with the same id: what an UPDATE changed for the index.
fn changed(t: &Layout, rows: &str, other: &str) -> String {
    let id = &t.id;
    let same: Vec<String> = t
        .watch
        .iter()
        .map(|c| format!("o.{c} IS NOT DISTINCT FROM r.{c}"))
        .collect();
    format!(
        "(SELECT r.* FROM {rows} r WHERE NOT EXISTS (
            SELECT 1 FROM {other} o WHERE o.{id} = r.{id} AND {}))",
        same.join(" AND ")
    )
}

fn shard() -> i32 {
    unsafe { pg_sys::MyProcPid }.rem_euclid(SHARDS)
}

/// The row's user (text) and global flag, as SQL over the row.
fn scope_exprs(t: &Layout) -> (String, String) {
    (
        t.user_id.clone().unwrap_or_else(|| "NULL::text".into()),
        t.is_global
            .as_ref()
            .map_or("false".into(), |g| format!("COALESCE({g}, false)")),
    )
}

/// Index the rows of `rows` (a relation expression over the collection's columns).
fn insert(client: &mut SpiClient<'_>, t: &Layout, x: &IndexTables, rows: &str) {
    let (owner, global) = scope_exprs(t);
    let sql = format!(
        "WITH r AS MATERIALIZED (
             SELECT pg_catalog.nextval('{seq}')::int4 AS docno, ({id})::text AS id,
                    {owner} AS owner, {global} AS global, {tsv} AS tsv
               FROM {rows} AS r0),
         d AS (INSERT INTO {docs} (docno, id, owner, global, dl)
               SELECT docno, id, owner, global,
                      COALESCE((SELECT pg_catalog.sum(COALESCE(pg_catalog.array_length(l.positions, 1), 1))
                                  FROM pg_catalog.unnest(tsv) l), 0)::int4
                 FROM r RETURNING dl),
         p AS (INSERT INTO {delta} (lexeme, docno, tf)
               SELECT l.lexeme, r.docno, COALESCE(pg_catalog.array_length(l.positions, 1), 1)::int2
                 FROM r, pg_catalog.unnest(r.tsv) l)
         INSERT INTO {stats} AS s (shard, docs, length)
         SELECT $1, pg_catalog.count(*), COALESCE(pg_catalog.sum(dl), 0) FROM d
         ON CONFLICT (shard) DO UPDATE
            SET docs = s.docs + excluded.docs, length = s.length + excluded.length",
        seq = x.docno.replace('\'', "''"),
        id = t.id,
        tsv = t.tsv,
        docs = x.docs,
        delta = x.delta,
        stats = x.stats,
    );
    let p = plan(client, &sql, &[INT4], true);
    client
        .update(&**p, None, &[shard().into()])
        .unwrap_or_else(spi_failed(F));
}

/// Take the rows of `rows` out of the index.
fn delete(client: &mut SpiClient<'_>, t: &Layout, x: &IndexTables, rows: &str) {
    let sql = format!(
        "WITH r AS (SELECT ({id})::text AS id, {tsv} AS tsv FROM {rows} AS r0),
         d AS (DELETE FROM {docs} x USING r WHERE x.id = r.id
               RETURNING x.docno, x.merged, x.dl, r.tsv),
         p AS (DELETE FROM {delta} y USING d WHERE y.docno = d.docno AND NOT d.merged),
         g AS (INSERT INTO {dead} (lexeme, docno)
               SELECT l.lexeme, d.docno FROM d, pg_catalog.unnest(d.tsv) l WHERE d.merged)
         INSERT INTO {stats} AS s (shard, docs, length)
         SELECT $1, -pg_catalog.count(*), -COALESCE(pg_catalog.sum(dl), 0) FROM d
         ON CONFLICT (shard) DO UPDATE
            SET docs = s.docs + excluded.docs, length = s.length + excluded.length",
        id = t.id,
        tsv = t.tsv,
        docs = x.docs,
        delta = x.delta,
        dead = x.dead,
        stats = x.stats,
    );
    let p = plan(client, &sql, &[INT4], true);
    client
        .update(&**p, None, &[shard().into()])
        .unwrap_or_else(spi_failed(F));
}

/// Rows waiting for a merge: unmerged rows and deleted ones (counted up to the threshold).
fn pending(client: &SpiClient<'_>, x: &IndexTables) -> i64 {
    let sql = format!(
        "SELECT (SELECT pg_catalog.count(*) FROM (SELECT 1 FROM {} WHERE NOT merged LIMIT $1) a)
              + (SELECT pg_catalog.count(*) FROM (SELECT DISTINCT docno FROM {} LIMIT $1) b)",
        x.docs, x.dead
    );
    let p = plan(client, &sql, &[crate::spi::INT8], false);
    client
        .select(
            &**p,
            Some(1),
            &[(settings::TEXT_INDEX_MERGE_ROWS.get() as i64).into()],
        )
        .unwrap_or_else(spi_failed(F))
        .next()
        .and_then(|r| r.get::<i64>(1).ok().flatten())
        .unwrap_or(0)
}

/// The collection's merge lock, if no other transaction holds it (nobody waits for it).
fn try_lock(client: &SpiClient<'_>, x: &IndexTables) -> bool {
    let p = plan(
        client,
        "SELECT pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtext($1)::int8)",
        &[crate::spi::TEXT],
        false,
    );
    client
        .select(&**p, Some(1), &[x.docs.as_str().into()])
        .unwrap_or_else(spi_failed(F))
        .next()
        .and_then(|r| r.get::<bool>(1).ok().flatten())
        .unwrap_or(false)
}

/// What a merge did.
#[derive(Default, Debug)]
pub struct Merged {
    pub rows: usize,
    pub dead: usize,
    pub lexemes: usize,
    pub blocks_written: usize,
}

/// Merge every unmerged and dead row this transaction can lock into the blocks.
pub fn merge(client: &mut SpiClient<'_>, func: &str, x: &IndexTables) -> Merged {
    let mut total = Merged::default();
    loop {
        let docs: Vec<(i32, i32, bool)> = {
            let p = plan(
                client,
                &format!(
                    "SELECT docno, dl, global FROM {} WHERE NOT merged ORDER BY docno
                      LIMIT $1 FOR UPDATE SKIP LOCKED",
                    x.docs
                ),
                &[crate::spi::INT8],
                true,
            );
            client
                .update(&**p, None, &[ROUND.into()])
                .unwrap_or_else(spi_failed(func))
                .filter_map(|r| Some((r.get(1).ok()??, r.get(2).ok()??, r.get(3).ok()??)))
                .collect()
        };
        // deleted rows' postings: a round takes whole rows (a row has ~100 of them)
        let dead: Vec<(i32, String)> = {
            let p = plan(
                client,
                &format!(
                    "SELECT docno, lexeme FROM {dead}
                      WHERE docno IN (SELECT DISTINCT docno FROM {dead} ORDER BY docno LIMIT $1)
                      FOR UPDATE SKIP LOCKED",
                    dead = x.dead
                ),
                &[crate::spi::INT8],
                true,
            );
            client
                .update(&**p, None, &[(ROUND / 100).max(1).into()])
                .unwrap_or_else(spi_failed(func))
                .filter_map(|r| Some((r.get(1).ok()??, r.get(2).ok()??)))
                .collect()
        };
        if docs.is_empty() && dead.is_empty() {
            break;
        }
        let docnos: Vec<i32> = docs.iter().map(|d| d.0).collect();
        let info: HashMap<i32, (i32, bool)> = docs.iter().map(|d| (d.0, (d.1, d.2))).collect();
        let mut adds: HashMap<String, Vec<Posting>> = HashMap::new();
        {
            let p = plan(
                client,
                &format!(
                    "SELECT lexeme, docno, tf FROM {} WHERE docno = ANY($1)",
                    x.delta
                ),
                &[INT4_ARRAY],
                false,
            );
            for r in client
                .select(&**p, None, &[docnos.clone().into()])
                .unwrap_or_else(spi_failed(func))
            {
                let (Some(l), Some(d), Some(tf)) = (
                    r.get::<String>(1).ok().flatten(),
                    r.get::<i32>(2).ok().flatten(),
                    r.get::<i16>(3).ok().flatten(),
                ) else {
                    continue;
                };
                let (dl, global) = info.get(&d).copied().unwrap_or((0, false));
                adds.entry(l).or_default().push(Posting {
                    docno: d as u32,
                    tf: tf.max(1) as u16,
                    dl: dl.max(0) as u32,
                    global,
                });
            }
        }
        let mut removes: HashMap<String, HashSet<u32>> = HashMap::new();
        for (d, l) in &dead {
            removes.entry(l.clone()).or_default().insert(*d as u32);
        }
        let written = fold(client, func, x, adds, removes);
        let p = plan(
            client,
            &format!("UPDATE {} SET merged = true WHERE docno = ANY($1)", x.docs),
            &[INT4_ARRAY],
            true,
        );
        client
            .update(&**p, None, &[docnos.clone().into()])
            .unwrap_or_else(spi_failed(func));
        let p = plan(
            client,
            &format!("DELETE FROM {} WHERE docno = ANY($1)", x.delta),
            &[INT4_ARRAY],
            true,
        );
        client
            .update(&**p, None, &[docnos.into()])
            .unwrap_or_else(spi_failed(func));
        let (dead_l, dead_d): (Vec<String>, Vec<i32>) =
            dead.iter().map(|(d, l)| (l.clone(), *d)).unzip();
        let p = plan(
            client,
            &format!(
                "DELETE FROM {} g
                  USING ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::int4[])) r(l, d)
                  WHERE g.lexeme = r.l AND g.docno = r.d",
                x.dead
            ),
            &[TEXT_ARRAY, INT4_ARRAY],
            true,
        );
        client
            .update(&**p, None, &[dead_l.into(), dead_d.into()])
            .unwrap_or_else(spi_failed(func));
        let dead_rows: HashSet<i32> = dead.iter().map(|d| d.0).collect();
        total.rows += docs.len();
        total.dead += dead_rows.len();
        total.lexemes += written.0;
        total.blocks_written += written.1;
        if (docs.len() as i64) < ROUND && (dead_rows.len() as i64) < (ROUND / 100).max(1) {
            break;
        }
    }
    total
}

/// Fold postings in (`adds`, by lexeme) and out (`removes`: docnos by lexeme) of the
/// blocks, reading and writing only the blocks they touch. Returns (lexemes, blocks
/// written).
pub fn fold(
    client: &mut SpiClient<'_>,
    func: &str,
    x: &IndexTables,
    adds: HashMap<String, Vec<Posting>>,
    removes: HashMap<String, HashSet<u32>>,
) -> (usize, usize) {
    let mut lexemes: Vec<String> = adds.keys().chain(removes.keys()).cloned().collect();
    lexemes.sort_unstable();
    lexemes.dedup();
    if lexemes.is_empty() {
        return (0, 0);
    }
    // each lexeme's heads and first free slot
    let mut heads = HashMap::new();
    {
        let p = plan(
            client,
            &format!(
                "SELECT b.lexeme, b.heads,
                        (SELECT pg_catalog.max(m.slot) FROM {blocks} m WHERE m.lexeme = b.lexeme)
                   FROM {blocks} b WHERE b.lexeme = ANY($1) AND b.slot = 0",
                blocks = x.blocks
            ),
            &[TEXT_ARRAY],
            false,
        );
        for r in client
            .select(&**p, None, &[lexemes.clone().into()])
            .unwrap_or_else(spi_failed(func))
        {
            let (Some(l), Some(h)) = (
                r.get::<String>(1).ok().flatten(),
                r.get::<Vec<u8>>(2).ok().flatten(),
            ) else {
                continue;
            };
            let next = r.get::<i32>(3).ok().flatten().unwrap_or(0) + 1;
            let h = decode_heads(&h)
                .unwrap_or_else(|| x.damaged(func, &format!("in the block headers of {l:?}")));
            heads.insert(l, (h, next));
        }
    }
    // the blocks the changes touch
    let mut want_l = Vec::new();
    let mut want_s = Vec::new();
    let none = Vec::new();
    let no_removes = HashSet::new();
    for l in &lexemes {
        if let Some((h, _)) = heads.get(l) {
            let r: Vec<u32> = removes
                .get(l)
                .unwrap_or(&no_removes)
                .iter()
                .copied()
                .collect();
            for s in slots_to_read(h, adds.get(l).unwrap_or(&none), &r) {
                want_l.push(l.clone());
                want_s.push(s);
            }
        }
    }
    let mut read: HashMap<String, HashMap<i32, Vec<u8>>> = HashMap::new();
    if !want_l.is_empty() {
        let p = plan(
            client,
            &format!(
                "SELECT b.lexeme, b.slot, b.payload
                   FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::int4[])) w(l, s)
                   JOIN {} b ON b.lexeme = w.l AND b.slot = w.s",
                x.blocks
            ),
            &[TEXT_ARRAY, INT4_ARRAY],
            false,
        );
        for r in client
            .select(&**p, None, &[want_l.into(), want_s.into()])
            .unwrap_or_else(spi_failed(func))
        {
            if let (Some(l), Some(s), Some(b)) = (
                r.get::<String>(1).ok().flatten(),
                r.get::<i32>(2).ok().flatten(),
                r.get::<Vec<u8>>(3).ok().flatten(),
            ) {
                read.entry(l).or_default().insert(s, b);
            }
        }
    }
    // apply, then write in three statements
    let (mut store_l, mut store_s, mut store_b) = (Vec::new(), Vec::new(), Vec::new());
    let (mut head_l, mut head_df, mut head_b) = (Vec::new(), Vec::new(), Vec::new());
    let (mut del_l, mut del_s) = (Vec::new(), Vec::new());
    let empty = HashMap::new();
    let no_heads = (Vec::new(), 1);
    for l in &lexemes {
        let (h, next) = heads.get(l).unwrap_or(&no_heads);
        let w = apply(
            h,
            read.get(l).unwrap_or(&empty),
            adds.get(l).unwrap_or(&none),
            removes.get(l).unwrap_or(&no_removes),
            *next,
        )
        .unwrap_or_else(|e| x.damaged(func, &format!("at {l:?}: {e}")));
        for (s, b) in w.store {
            store_l.push(l.clone());
            store_s.push(s);
            store_b.push(b);
        }
        for s in w.delete {
            del_l.push(l.clone());
            del_s.push(s);
        }
        if !w.heads.is_empty() {
            head_l.push(l.clone());
            head_df.push(w.df as i32);
            head_b.push(encode_heads(&w.heads));
        }
    }
    let blocks_written = store_l.len();
    let writes = [
        (
            format!(
                "INSERT INTO {} AS b (lexeme, slot, payload)
                 SELECT * FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::int4[]),
                                          pg_catalog.unnest($3::bytea[]))
                 ON CONFLICT (lexeme, slot) DO UPDATE SET payload = excluded.payload",
                x.blocks
            ),
            vec![store_l.into(), store_s.into(), store_b.into()],
        ),
        (
            format!(
                "UPDATE {} b SET df = u.df, heads = u.heads
                   FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::int4[]),
                                   pg_catalog.unnest($3::bytea[])) u(l, df, heads)
                  WHERE b.lexeme = u.l AND b.slot = 0",
                x.blocks
            ),
            vec![head_l.into(), head_df.into(), head_b.into()],
        ),
        (
            format!(
                "DELETE FROM {} b
                  USING ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::int4[])) d(l, s)
                  WHERE b.lexeme = d.l AND b.slot = d.s",
                x.blocks
            ),
            vec![del_l.into(), del_s.into()],
        ),
    ];
    for (sql, args) in writes {
        let types: Vec<pgrx::PgOid> = args
            .iter()
            .map(|a: &pgrx::datum::DatumWithOid| pgrx::PgOid::from(a.oid()))
            .collect();
        let p = plan(client, &sql, &types, true);
        client
            .update(&**p, None, &args)
            .unwrap_or_else(spi_failed(func));
    }
    (lexemes.len(), blocks_written)
}
