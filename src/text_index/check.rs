//! `qortex_check_text_index`: compare a collection's BM25 index with its table, as amcheck
//! compares a B-tree with its heap, and say what differs.
//!
//! From the table: every row's id, length, user and global flag, and per lexeme the count
//! and a checksum of its (docno, tf) postings. From the index: its rows, every block
//! decoded (its header must describe it; ranges in order, disjoint; df the sum of sizes),
//! delta postings added, dead rows' postings taken out; the same per-lexeme counts and
//! checksums; the stats shards against the rows. Reads everything, so it takes a while on
//! large tables; it writes nothing.
use crate::catalog::{self, IndexTables};
use crate::errors::{error, required};
use crate::owner::{as_owner, may_read};
use crate::spi::spi_failed;
use pgrx::prelude::*;
use pgrx::JsonB;
use qortex_core::hybrid::text::index::{decode, decode_heads, BlockHeader};
use qortex_core::hybrid::text::TsVector;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};

/// Per lexeme: postings and the sum of their hashes (order-free).
type Sums = HashMap<String, (u64, u64)>;

fn mix(docno: u32, tf: u16) -> u64 {
    // splitmix64 of the pair: an order-free sum of these tells equal sets apart
    let mut z = ((docno as u64) << 16 | tf as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn add(sums: &mut Sums, lexeme: &str, docno: u32, tf: u16) {
    let e = sums.entry(lexeme.to_owned()).or_insert((0, 0));
    e.0 += 1;
    e.1 = e.1.wrapping_add(mix(docno, tf));
}

/// Compare the collection's BM25 index with its table; `ok` is true when nothing differs.
#[pg_extern(stable)]
fn qortex_check_text_index(collection: Option<String>) -> JsonB {
    const F: &str = "qortex_check_text_index";
    let name = required(F, "collection", collection);
    Spi::connect(|client| {
        let t = catalog::layout(client, F, &name);
        if !may_read(t.source) {
            error(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("{F}: permission denied for table {}", t.table),
            )
            .raise();
        }
        let Some(x) = t.text_index.clone() else {
            // a collection on a qortex_bm25 index: that index against the table
            if let Some(am) = catalog::bm25_index(&t) {
                let mut report = crate::bm25am::check::check(F, am.index.oid);
                report["index"] = serde_json::json!(am.index.name);
                return JsonB(report);
            }
            error(
                PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
                format!("{F}: collection \"{name}\" has no BM25 index"),
            )
            .hint(format!(
                "SELECT qortex_refresh_text_index('{name}') builds it"
            ))
            .raise()
        };
        as_owner(|| check(client, &t, &x))
    })
}

fn check(client: &pgrx::spi::SpiClient<'_>, t: &catalog::Layout, x: &IndexTables) -> JsonB {
    const F: &str = "qortex_check_text_index";
    let mut examples: Vec<Value> = Vec::new();
    let mut note = |v: Value| {
        if examples.len() < 20 {
            examples.push(v);
        }
    };
    // the index's rows
    let mut docs: HashMap<String, (u32, Option<String>, bool, u32)> = HashMap::new();
    for r in client
        .select(
            &format!("SELECT id, docno, owner, global, dl FROM {}", x.docs),
            None,
            &[],
        )
        .unwrap_or_else(spi_failed(F))
    {
        if let (Some(id), Some(d), Some(g), Some(dl)) = (
            r.get::<String>(1).ok().flatten(),
            r.get::<i32>(2).ok().flatten(),
            r.get::<bool>(4).ok().flatten(),
            r.get::<i32>(5).ok().flatten(),
        ) {
            docs.insert(
                id,
                (d as u32, r.get::<String>(3).ok().flatten(), g, dl as u32),
            );
        }
    }
    // the table, as it is now
    let owner = t.user_id.clone().unwrap_or_else(|| "NULL::text".into());
    let global = t
        .is_global
        .as_ref()
        .map_or("false".into(), |g| format!("COALESCE({g}, false)"));
    let mut want = Sums::new();
    let (mut rows, mut missing, mut mismatched) = (0u64, 0u64, 0u64);
    let mut seen: HashSet<String> = HashSet::new();
    let mut table = client
        .select(
            &format!(
                "SELECT ({})::text, {owner}, {global}, {} FROM {} WHERE {} IS NOT NULL",
                t.id, t.tsv, t.table, t.id
            ),
            None,
            &[],
        )
        .unwrap_or_else(spi_failed(F));
    if !table.is_empty() {
        table = table.first();
        loop {
            rows += 1;
            let id = table.get::<String>(1).ok().flatten().unwrap_or_default();
            let user = table.get::<String>(2).ok().flatten();
            let is_global = table.get::<bool>(3).ok().flatten().unwrap_or(false);
            let (mut dl, mut entries) = (0u32, Vec::new());
            if let Ok(Some(d)) = table.get_datum_by_ordinal(4) {
                let bytes = unsafe {
                    let v = pg_sys::pg_detoast_datum_packed(d.cast_mut_ptr());
                    std::slice::from_raw_parts(
                        pgrx::varlena::vardata_any(v) as *const u8,
                        pgrx::varlena::varsize_any_exhdr(v),
                    )
                };
                if let Ok(v) = TsVector::new(bytes) {
                    dl = v.length() as u32;
                    entries = v
                        .entries()
                        .map(|(l, tf)| (String::from_utf8_lossy(l).into_owned(), tf))
                        .collect();
                }
            }
            match docs.get(&id) {
                None => {
                    missing += 1;
                    note(json!({"row": id, "problem": "not in the index"}));
                }
                Some((docno, o, g, l)) => {
                    if (*l, o, *g) != (dl, &user, is_global) {
                        mismatched += 1;
                        note(
                            json!({"row": id, "problem": "length, user or global flag differ",
                                    "index": [l, o, g], "table": [dl, user, is_global]}),
                        );
                    }
                    for (lexeme, tf) in entries {
                        add(&mut want, &lexeme, *docno, tf);
                    }
                }
            }
            seen.insert(id);
            if table.next().is_none() {
                break;
            }
        }
    }
    let extra: Vec<&String> = docs.keys().filter(|id| !seen.contains(*id)).collect();
    for id in extra.iter().take(5) {
        note(json!({"row": id, "problem": "in the index, not in the table"}));
    }
    // the index's postings: blocks, plus delta, minus dead
    let dead: HashSet<u32> = client
        .select(&format!("SELECT DISTINCT docno FROM {}", x.dead), None, &[])
        .unwrap_or_else(spi_failed(F))
        .filter_map(|r| r.get::<i32>(1).ok().flatten().map(|d| d as u32))
        .collect();
    let mut have = Sums::new();
    let (mut blocks, mut block_errors) = (0u64, 0u64);
    let mut heads: HashMap<String, (i32, Vec<(i32, BlockHeader)>)> = HashMap::new();
    let mut payloads: HashMap<(String, i32), Vec<u8>> = HashMap::new();
    for r in client
        .select(
            &format!("SELECT lexeme, slot, payload, df, heads FROM {}", x.blocks),
            None,
            &[],
        )
        .unwrap_or_else(spi_failed(F))
    {
        let (Some(l), Some(s), Some(p)) = (
            r.get::<String>(1).ok().flatten(),
            r.get::<i32>(2).ok().flatten(),
            r.get::<Vec<u8>>(3).ok().flatten(),
        ) else {
            continue;
        };
        blocks += 1;
        if s == 0 {
            let h = r
                .get::<Vec<u8>>(5)
                .ok()
                .flatten()
                .and_then(|h| decode_heads(&h))
                .unwrap_or_else(|| x.damaged(F, &format!("in the block headers of {l:?}")));
            heads.insert(l.clone(), (r.get::<i32>(4).ok().flatten().unwrap_or(-1), h));
        }
        payloads.insert((l, s), p);
    }
    for (l, (df, hs)) in &heads {
        let mut total = 0i64;
        let mut prev: Option<u32> = None;
        for (slot, h) in hs {
            let Some(ps) = payloads.get(&(l.clone(), *slot)).and_then(|p| decode(p)) else {
                block_errors += 1;
                note(json!({"lexeme": l, "slot": slot, "problem": "block missing or undecodable"}));
                continue;
            };
            if BlockHeader::of(&ps) != *h || prev.is_some_and(|p| h.first <= p) {
                block_errors += 1;
                note(json!({"lexeme": l, "slot": slot, "problem": "header or order wrong"}));
            }
            prev = Some(h.last);
            total += ps.len() as i64;
            for p in ps.iter().filter(|p| !dead.contains(&p.docno)) {
                add(&mut have, l, p.docno, p.tf);
            }
        }
        if total != *df as i64 {
            block_errors += 1;
            note(
                json!({"lexeme": l, "problem": "df is not the sum of the block sizes",
                        "df": df, "postings": total}),
            );
        }
    }
    let orphans = payloads
        .keys()
        .filter(|(l, _)| !heads.contains_key(l))
        .count() as u64;
    block_errors += orphans;
    for r in client
        .select(
            &format!(
                "SELECT d.lexeme, d.docno, d.tf FROM {} d JOIN {} x USING (docno)",
                x.delta, x.docs
            ),
            None,
            &[],
        )
        .unwrap_or_else(spi_failed(F))
    {
        if let (Some(l), Some(d), Some(tf)) = (
            r.get::<String>(1).ok().flatten(),
            r.get::<i32>(2).ok().flatten(),
            r.get::<i16>(3).ok().flatten(),
        ) {
            add(&mut have, &l, d as u32, tf as u16);
        }
    }
    let mut lexemes_differ = 0u64;
    for l in want.keys().chain(have.keys()).collect::<HashSet<_>>() {
        let (w, h) = (want.get(l), have.get(l));
        if w != h {
            lexemes_differ += 1;
            note(json!({"lexeme": l, "problem": "postings differ",
                        "table": w.map(|w| w.0), "index": h.map(|h| h.0)}));
        }
    }
    let stats = client
        .select(
            &format!(
                "SELECT COALESCE(pg_catalog.sum(docs), 0)::int8, COALESCE(pg_catalog.sum(length), 0)::int8,
                        (SELECT pg_catalog.count(*) FROM {docs}),
                        (SELECT COALESCE(pg_catalog.sum(dl), 0)::int8 FROM {docs}),
                        (SELECT pg_catalog.count(*) FROM {docs} WHERE NOT merged)
                   FROM {stats}",
                docs = x.docs,
                stats = x.stats
            ),
            Some(1),
            &[],
        )
        .unwrap_or_else(spi_failed(F))
        .next()
        .map(|r| {
            let n = |i| r.get::<i64>(i).ok().flatten().unwrap_or(-1);
            (n(1), n(2), n(3), n(4), n(5))
        })
        .unwrap_or_default();
    if (stats.0, stats.1) != (stats.2, stats.3) {
        note(json!({"problem": "stats differ from the rows",
                    "stats": [stats.0, stats.1], "rows": [stats.2, stats.3]}));
    }
    let ok = missing == 0
        && extra.is_empty()
        && mismatched == 0
        && lexemes_differ == 0
        && block_errors == 0
        && (stats.0, stats.1) == (stats.2, stats.3);
    JsonB(json!({
        "ok": ok,
        "rows": rows,
        "indexed": docs.len(),
        "rows_missing": missing,
        "rows_extra": extra.len(),
        "rows_differing": mismatched,
        "lexemes": want.len(),
        "lexemes_differing": lexemes_differ,
        "blocks": blocks,
        "block_errors": block_errors,
        "unmerged": stats.4,
        "dead": dead.len(),
        "problems": examples,
    }))
}
