//! Creating a collection's BM25 index: its tables (as the extension's owner), the triggers
//! that maintain it (as the caller, who must be allowed to put triggers on the table), and
//! its contents, built from the table in one pass.
//!
//! The build locks the table against writes (SHARE mode, as CREATE INDEX does) so nothing
//! changes between what it reads and the triggers that take over; it reads the rows as the
//! caller (row-level security does not hide rows from the index: searches check each
//! result against the table instead), in chunks, and folds each chunk's postings into the
//! blocks as a merge does. It reports progress as NOTICEs on large tables.
use super::maintain::fold;
use crate::catalog::{self, IndexTables, Layout, TEXT_INDEX_VERSION};
use crate::errors::{error, required};
use crate::owner::{as_owner, may_read};
use crate::spi::{plan, run, spi_failed, JSONB, TEXT};
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, quote_literal, SpiClient};
use pgrx::JsonB;
use qortex_core::hybrid::text::index::Posting;
use qortex_core::hybrid::text::TsVector;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::time::Instant;

/// Rows read and folded at a time.
const CHUNK: i64 = 20_000;

/// Why a collection that is one partition of its table has no BM25 index.
pub const PARTITION_REASON: &str = "the collection is one partition of its table: the text \
    leg reads the GIN index within the partition, as under a filter";

/// Why a Citus table has no BM25 index.
pub const CITUS_REASON: &str = "a Citus table (its rows are in shards, which the index's \
    triggers do not reach): the text leg reads the GIN index";

/// Create (or re-create) the collection's index and fill it; the collection's row then
/// names it. Returns what was built, or why not (a note, no error: the text leg then reads
/// the GIN index).
pub fn create(client: &mut SpiClient<'_>, func: &str, t: &Layout) -> Value {
    if !t.unique_id {
        return json!({"built": false, "reason": "no unique index covers the id column alone"});
    }
    if t.partition.is_some() {
        return json!({"built": false, "reason": PARTITION_REASON});
    }
    if crate::citus::is_citus_table(t.source) {
        return json!({"built": false, "reason": CITUS_REASON});
    }
    // Run from ALTER EXTENSION qortex UPDATE (which builds the indexes of existing
    // collections), the tables would otherwise become members of the extension, which
    // pg_dump leaves out: they are the collection's, as when built at any other time.
    let creating = unsafe { pg_sys::creating_extension };
    unsafe { pg_sys::creating_extension = false };
    let built = create_outside_extension(client, func, t);
    unsafe { pg_sys::creating_extension = creating };
    built
}

fn create_outside_extension(client: &mut SpiClient<'_>, func: &str, t: &Layout) -> Value {
    let x = IndexTables::of(&t.name);
    drop_index(client, func, &t.name, Some((&t.table, t.source)));
    as_owner(|| create_tables(client, func, &x));
    for (name, event, transition) in IndexTables::triggers(&t.name) {
        run(
            client,
            func,
            &format!(
                "CREATE TRIGGER {name} AFTER {event} ON {table} {transition}
                   FOR EACH STATEMENT EXECUTE FUNCTION qortex.text_index_maintain({})",
                quote_literal(&t.name),
                table = t.table
            ),
        );
    }
    let built = fill(client, func, t, &x);
    let p = plan(
        client,
        "UPDATE qortex.collections SET text_index = $2::regclass, text_index_stats = $3
          WHERE name = $1",
        &[TEXT, TEXT, JSONB],
        true,
    );
    client
        .update(
            &**p,
            None,
            &[
                t.name.as_str().into(),
                x.docs.as_str().into(),
                JsonB(built.clone()).into(),
            ],
        )
        .unwrap_or_else(spi_failed(func));
    built
}

fn create_tables(client: &mut SpiClient<'_>, func: &str, x: &IndexTables) {
    let ddl = [
        format!(
            "CREATE TABLE {} (docno int4 PRIMARY KEY, id text NOT NULL, owner text,
                              global boolean NOT NULL, dl int4 NOT NULL,
                              merged boolean NOT NULL DEFAULT false)",
            x.docs
        ),
        format!("CREATE UNIQUE INDEX ON {} (id)", x.docs),
        format!("CREATE INDEX ON {} (owner) WHERE owner IS NOT NULL", x.docs),
        format!("CREATE INDEX ON {} (docno) WHERE NOT merged", x.docs),
        format!(
            "CREATE TABLE {} (lexeme text NOT NULL, docno int4 NOT NULL, tf int2 NOT NULL)",
            x.delta
        ),
        // by lexeme only: a writer adds ~100 postings a row, each a heap and an index entry;
        // the statements by docno (a merge, deleting an unmerged row) scan the small table
        format!("CREATE INDEX ON {} (lexeme)", x.delta),
        format!(
            "CREATE TABLE {} (lexeme text NOT NULL, slot int4 NOT NULL, payload bytea NOT NULL,
                              df int4, heads bytea, PRIMARY KEY (lexeme, slot))
               WITH (toast_tuple_target = 8160)",
            x.blocks
        ),
        // blocks are varbyte-packed: compressing them gains little and costs every read
        format!(
            "ALTER TABLE {} ALTER payload SET STORAGE EXTERNAL, ALTER heads SET STORAGE EXTERNAL",
            x.blocks
        ),
        format!(
            "CREATE TABLE {} (lexeme text NOT NULL, docno int4 NOT NULL,
                              PRIMARY KEY (lexeme, docno))",
            x.dead
        ),
        format!("CREATE INDEX ON {} (docno)", x.dead),
        format!(
            "CREATE TABLE {} (shard int4 PRIMARY KEY, docs int8 NOT NULL, length int8 NOT NULL)",
            x.stats
        ),
        format!("CREATE SEQUENCE {} AS int4", x.docno),
    ];
    for sql in &ddl {
        run(client, func, sql);
    }
}

/// Drop the index's triggers (from `table`, its name and OID, if it still exists) and its
/// tables.
pub fn drop_index(
    client: &mut SpiClient<'_>,
    func: &str,
    name: &str,
    table: Option<(&str, pg_sys::Oid)>,
) {
    // (no NOTICE that a table or trigger to drop "does not exist": the first build has none)
    let quiet = crate::settings::ForCall::new();
    quiet.set("client_min_messages", "warning");
    // (a Citus table has none, and Citus refuses even DROP TRIGGER IF EXISTS on it)
    if let Some((table, _)) = table.filter(|(_, oid)| !crate::citus::is_citus_table(*oid)) {
        for (trigger, ..) in IndexTables::triggers(name) {
            run(
                client,
                func,
                &format!("DROP TRIGGER IF EXISTS {trigger} ON {table}"),
            );
        }
    }
    let x = IndexTables::of(name);
    as_owner(|| {
        run(
            client,
            func,
            &format!(
                "DROP TABLE IF EXISTS {}, {}, {}, {}, {}",
                x.docs, x.delta, x.blocks, x.dead, x.stats
            ),
        );
        run(
            client,
            func,
            &format!("DROP SEQUENCE IF EXISTS {}", x.docno),
        );
    });
    quiet.restore();
}

/// Fill empty index tables from the collection's table.
fn fill(client: &mut SpiClient<'_>, func: &str, t: &Layout, x: &IndexTables) -> Value {
    let started = Instant::now();
    run(
        client,
        func,
        &format!("LOCK TABLE {} IN SHARE MODE", t.table),
    );
    let owner = t.user_id.clone().unwrap_or_else(|| "NULL::text".into());
    let global = t
        .is_global
        .as_ref()
        .map_or("false".into(), |g| format!("COALESCE({g}, false)"));
    let estimate = client
        .select(
            "SELECT GREATEST(reltuples, 0)::int8 FROM pg_catalog.pg_class WHERE oid = $1",
            Some(1),
            &[t.source.into()],
        )
        .unwrap_or_else(spi_failed(func))
        .next()
        .and_then(|r| r.get::<i64>(1).ok().flatten())
        .unwrap_or(0);
    let mut cursor = client.open_cursor(
        &format!(
            "SELECT ({})::text, {owner}, {global}, {} FROM {}",
            t.id, t.tsv, t.table
        ),
        &[],
    );
    let (mut docs, mut length, mut postings) = (0i64, 0i64, 0i64);
    let mut next_report = 100_000;
    loop {
        let table = cursor.fetch(CHUNK).unwrap_or_else(spi_failed(func));
        let mut rows = Vec::new();
        let mut adds: HashMap<String, Vec<Posting>> = HashMap::new();
        if !table.is_empty() {
            let mut table = table.first();
            loop {
                let docno = (docs + rows.len() as i64 + 1) as i32;
                // a row without an id cannot be returned: it is not indexed
                let Some(id) = table.get::<String>(1).ok().flatten() else {
                    if table.next().is_none() {
                        break;
                    }
                    continue;
                };
                let user = table.get::<String>(2).ok().flatten();
                let is_global = table.get::<bool>(3).ok().flatten().unwrap_or(false);
                let mut dl = 0u32;
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
                        for (lexeme, tf) in v.entries() {
                            adds.entry(String::from_utf8_lossy(lexeme).into_owned())
                                .or_default()
                                .push(Posting {
                                    docno: docno as u32,
                                    tf,
                                    dl: 0,
                                    global: is_global,
                                });
                        }
                    }
                }
                rows.push((docno, id, user, is_global, dl as i32));
                if table.next().is_none() {
                    break;
                }
            }
        }
        if rows.is_empty() {
            break;
        }
        // each posting carries its document's length
        let lengths: HashMap<u32, u32> = rows.iter().map(|r| (r.0 as u32, r.4 as u32)).collect();
        for ps in adds.values_mut() {
            for p in ps.iter_mut() {
                p.dl = lengths.get(&p.docno).copied().unwrap_or(0);
            }
        }
        postings += adds.values().map(|v| v.len() as i64).sum::<i64>();
        length += rows.iter().map(|r| r.4 as i64).sum::<i64>();
        docs = rows.last().map_or(docs, |r| r.0 as i64);
        as_owner(|| {
            let p = plan(
                client,
                &format!(
                    "INSERT INTO {} (docno, id, owner, global, dl, merged)
                     SELECT d, i, o, g, l, true
                       FROM ROWS FROM (pg_catalog.unnest($1::int4[]), pg_catalog.unnest($2::text[]),
                                       pg_catalog.unnest($3::text[]), pg_catalog.unnest($4::bool[]),
                                       pg_catalog.unnest($5::int4[])) AS r(d, i, o, g, l)",
                    x.docs
                ),
                &[
                    crate::spi::INT4_ARRAY,
                    crate::spi::TEXT_ARRAY,
                    crate::spi::TEXT_ARRAY,
                    crate::spi::BOOL_ARRAY,
                    crate::spi::INT4_ARRAY,
                ],
                true,
            );
            let d: Vec<i32> = rows.iter().map(|r| r.0).collect();
            let g: Vec<bool> = rows.iter().map(|r| r.3).collect();
            let l: Vec<i32> = rows.iter().map(|r| r.4).collect();
            let (i, o): (Vec<String>, Vec<Option<String>>) =
                rows.into_iter().map(|r| (r.1, r.2)).unzip();
            client
                .update(
                    &**p,
                    None,
                    &[d.into(), i.into(), o.into(), g.into(), l.into()],
                )
                .unwrap_or_else(spi_failed(func));
            fold(
                client,
                func,
                x,
                adds,
                HashMap::<String, HashSet<u32>>::new(),
            );
        });
        if docs >= next_report {
            error(
                PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION,
                format!(
                    "{func}: BM25 index of collection \"{}\": {docs} of ~{estimate} rows",
                    t.name
                ),
            )
            .notice();
            next_report += 100_000;
        }
    }
    as_owner(|| {
        let p = plan(
            client,
            &format!(
                "INSERT INTO {} (shard, docs, length) VALUES (0, $1, $2)",
                x.stats
            ),
            &[crate::spi::INT8, crate::spi::INT8],
            true,
        );
        client
            .update(&**p, None, &[docs.into(), length.into()])
            .unwrap_or_else(spi_failed(func));
        if docs > 0 {
            run(
                client,
                func,
                &format!(
                    "SELECT pg_catalog.setval({}, {docs})",
                    quote_literal(&x.docno)
                ),
            );
        }
        // The build folds the table in chunks, so a lexeme's row is rewritten once per
        // chunk it occurs in: on 100,000 SciFact chunks, pages held 6 rows of 17 (141 MB
        // for 53 MB of rows). In this transaction those dead versions are still "ours",
        // so neither VACUUM nor CLUSTER may drop them; copy the live rows out and back,
        // in key order, which is also the order a search reads a lexeme's blocks in.
        for sql in [
            format!(
                "CREATE TEMP TABLE pg_temp.qortex_live_blocks ON COMMIT DROP AS SELECT * FROM {}",
                x.blocks
            ),
            format!("TRUNCATE {}", x.blocks),
            format!(
                "INSERT INTO {} SELECT * FROM pg_temp.qortex_live_blocks ORDER BY lexeme, slot",
                x.blocks
            ),
            "DROP TABLE pg_temp.qortex_live_blocks".to_string(),
        ] {
            run(client, func, &sql);
        }
    });
    json!({
        "built": true,
        "version": TEXT_INDEX_VERSION,
        "rows": docs,
        "postings": postings,
        "seconds": (started.elapsed().as_secs_f64() * 100.0).round() / 100.0,
    })
}

/// Build (or rebuild, which also compacts) a collection's BM25 index from its table. The
/// index is kept current by triggers; this is for a first build, a rebuild after
/// `ALTER TEXT SEARCH CONFIGURATION`, or compaction.
#[pg_extern(volatile)]
fn qortex_refresh_text_index(collection: Option<String>) -> JsonB {
    const F: &str = "qortex_refresh_text_index";
    crate::errors::require_writable(F);
    let name = required(F, "collection", collection);
    Spi::connect_mut(|client| {
        let t = catalog::layout(client, F, &name);
        if !may_read(t.source) {
            error(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("{F}: permission denied for table {}", t.table),
            )
            .raise();
        }
        // a collection on a qortex_bm25 index: that index rebuilt, no tables index made
        if let Some(am) = catalog::bm25_index(&t).filter(|a| {
            t.text_index.is_none() && a.serves_every_search(&t) && t.tsv_column.is_some()
        }) {
            let schema = t
                .tsv_column
                .as_ref()
                .map(|c| c.0.as_str())
                .unwrap_or_default();
            let started = Instant::now();
            run(
                client,
                F,
                &format!(
                    "REINDEX INDEX {}.{}",
                    quote_identifier(schema),
                    quote_identifier(&am.index.name)
                ),
            );
            return JsonB(
                json!({"built": true, "index": am.index.name, "method": "qortex_bm25",
                                "seconds": started.elapsed().as_secs_f64()}),
            );
        }
        let built = create(client, F, &t);
        if built["built"] == json!(false) {
            error(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!(
                    "{F}: collection \"{name}\" cannot have a BM25 index: {}",
                    built["reason"].as_str().unwrap_or("")
                ),
            )
            .hint(format!(
                "add a unique index on the id column: CREATE UNIQUE INDEX ON {} ({})",
                t.table, t.id
            ))
            .raise();
        }
        JsonB(built)
    })
}
