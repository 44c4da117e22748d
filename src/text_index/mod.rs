//! The BM25 index qortex keeps for every collection, always current: one file per phase,
//! as pgvector's index code.
//!
//! - `build`: create its tables and triggers and fill it from the table
//!   (`qortex_refresh_text_index` rebuilds it).
//! - `maintain`: the triggers that keep it in the writer's transaction (INSERT, UPDATE,
//!   DELETE, COPY, TRUNCATE), and the merge that folds new rows into posting blocks.
//! - `check`: compare it with the table (`qortex_check_text_index`).
//!
//! The search reads it in `search::bm25`; what both agree on (table names, the block
//! layout) lives in `catalog` and `qortex_core::hybrid::text::index`.
//!
//! Its tables are ordinary tables in schema `qortex_internal`, owned by the extension's
//! owner and read and written only as that owner (`owner::as_owner`): MVCC, WAL, crash
//! recovery and streaming replicas come with them.
//!
//! - `docs`: one row per indexed row of the collection: a docno (from a sequence), the
//!   row's id as text, its user and global flag (for user scopes), its length in positions,
//!   and whether its postings are merged into blocks.
//! - `delta`: the postings (lexeme, docno, tf) of rows not merged yet.
//! - `blocks`: each lexeme's merged postings in docno order, in blocks of up to 128 (256
//!   before a split) keyed by (lexeme, slot); slot 0 also holds the lexeme's document
//!   frequency and every block's header (range, size, largest tf, smallest length).
//! - `dead`: the postings (lexeme, docno) of merged rows deleted since: they come out of
//!   their blocks at the next merge; searches skip them, and leave them out of each term's
//!   document frequency, meanwhile.
//! - `stats`: row count and total length in shards, so concurrent writers rarely wait for
//!   each other.
mod build;
mod check;
mod maintain;

pub use build::{create, drop_index, CITUS_REASON, PARTITION_REASON};

use crate::catalog::{Collection, IndexTables, TEXT_INDEX_VERSION};
use crate::owner::as_owner;
use crate::spi::spi_failed;
use pgrx::spi::{quote_literal, SpiClient};
use serde_json::{json, Value};

/// What `qortex_collections()` says of a collection's BM25 index.
pub fn describe(client: &SpiClient<'_>, func: &str, c: &Collection) -> Value {
    let rebuild = format!(
        "SELECT qortex_refresh_text_index({}) builds it",
        quote_literal(&c.name)
    );
    if c.columns.contains_key("partition") {
        return json!({"built": false, "hint": PARTITION_REASON});
    }
    if crate::citus::is_citus_table(c.source) {
        return json!({"built": false, "hint": CITUS_REASON});
    }
    let Some((_, built)) = &c.text_index else {
        return json!({"built": false, "hint": format!(
            "the text leg reads the GIN index (a BM25 index needs a unique index on the id \
             column); {rebuild}")});
    };
    if built["version"].as_i64() != Some(TEXT_INDEX_VERSION) {
        return json!({"built": false, "hint": format!(
            "built by an earlier qortex in another layout and not used; {rebuild}")});
    }
    let x = IndexTables::of(&c.name);
    if x.present(client, func).is_none() {
        return json!({"built": false, "hint": format!(
            "some of its tables in qortex_internal are missing (dropped by hand?): searches \
             read the GIN index and writes do not maintain it; {rebuild}")});
    }
    as_owner(|| {
        client
            .select(
                &format!(
                    "SELECT pg_catalog.jsonb_build_object(
                         'built', true, 'version', {TEXT_INDEX_VERSION},
                         'rows', (SELECT COALESCE(pg_catalog.sum(docs), 0) FROM {stats}),
                         'unmerged', (SELECT pg_catalog.count(*) FROM {docs} WHERE NOT merged),
                         'deleted', (SELECT pg_catalog.count(DISTINCT docno) FROM {dead}),
                         'size_bytes', (SELECT pg_catalog.sum(pg_catalog.pg_total_relation_size(r))
                                          FROM pg_catalog.unnest(ARRAY[{d}::regclass, {l}::regclass,
                                               {b}::regclass, {g}::regclass, {s}::regclass]) r))",
                    stats = x.stats,
                    docs = x.docs,
                    dead = x.dead,
                    d = quote_literal(&x.docs),
                    l = quote_literal(&x.delta),
                    b = quote_literal(&x.blocks),
                    g = quote_literal(&x.dead),
                    s = quote_literal(&x.stats),
                ),
                Some(1),
                &[],
            )
            .unwrap_or_else(spi_failed(func))
            .next()
            .and_then(|r| r.get::<pgrx::JsonB>(1).ok().flatten())
            .map_or(json!({"built": false}), |j| j.0)
    })
}
