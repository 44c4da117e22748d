//! `qortex_bm25`: a BM25 index access method. `CREATE INDEX … USING qortex_bm25 (tsv)` on a
//! tsvector column or expression; `ORDER BY tsv <@> qortex_bm25_query('english', 'words') LIMIT k`
//! reads it: the exact BM25 top-k, without SPI.
//!
//! The index is a write buffer (documents appended one WAL record each) and immutable
//! segments (sorted dictionary, posting blocks with true block bounds, a document → TID map
//! and a dead bitmap), listed by the metapage. Algorithms are `qortex_core::bm25`'s; this
//! module reads and writes pages, one file per phase:
//!
//! - `page`: the special area every page carries, buffer guards, generic WAL, allocation;
//! - `meta`: the metapage; `store`: segments on pages; `buffer`: the write buffer;
//! - `build`, `insert`, `scan`, `vacuum`: the access method's phases;
//! - `maintain`: flushes, merges and freeing displaced pages;
//! - `functions`: the SQL functions to flush, merge and inspect an index.
//! - `check`: `qortex_bm25_check`, the index against its table.
mod buffer;
mod build;
mod check;
mod functions;
mod insert;
mod maintain;
mod meta;
mod page;
mod scan;
mod store;
mod vacuum;

use crate::errors::raise;
use pgrx::pg_sys;
use pgrx::prelude::*;
use qortex_core::bm25::Doc;
use qortex_core::hybrid::text::TsVector;

/// A tsvector datum's document (`None` without lexemes: not indexed).
pub(crate) fn doc_of(value: pg_sys::Datum, tid: u64) -> Option<Doc> {
    // SAFETY: the index's only column is a tsvector (its operator class says so), so the
    // datum is a varlena; from_datum detoasts it.
    let bytes = unsafe { <&[u8]>::from_datum(value, false) }.expect("a non-null tsvector");
    let tsv = TsVector::new(bytes).unwrap_or_else(|e| {
        raise(
            PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
            format!("qortex_bm25: a value that is not a tsvector: {e}"),
        )
    });
    Doc::from_entries(tid, tsv.entries())
}

/// VACUUM's cost-based delay, between pages.
pub(crate) fn vacuum_delay() {
    // SAFETY: a plain call; it may sleep and check for interrupts.
    unsafe {
        #[cfg(feature = "pg15")]
        pg_sys::vacuum_delay_point();
        #[cfg(feature = "pg18")]
        pg_sys::vacuum_delay_point(false);
    }
}

pgrx::extension_sql!(
    r#"
-- qortex_bm25_query: a BM25 query's lexemes (a tsvector underneath: the same text form).
CREATE TYPE qortex_bm25_query;
CREATE FUNCTION qortex_bm25_query_in(cstring) RETURNS qortex_bm25_query
    AS 'tsvectorin' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION qortex_bm25_query_out(qortex_bm25_query) RETURNS cstring
    AS 'tsvectorout' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION qortex_bm25_query_recv(internal) RETURNS qortex_bm25_query
    AS 'tsvectorrecv' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION qortex_bm25_query_send(qortex_bm25_query) RETURNS bytea
    AS 'tsvectorsend' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE;
CREATE TYPE qortex_bm25_query (
    INPUT = qortex_bm25_query_in, OUTPUT = qortex_bm25_query_out,
    RECEIVE = qortex_bm25_query_recv, SEND = qortex_bm25_query_send, LIKE = pg_catalog.tsvector
);
CREATE CAST (tsvector AS qortex_bm25_query) WITHOUT FUNCTION;
-- the query's lexemes as to_tsvector makes them (stop words removed, stemmed)
CREATE FUNCTION qortex_bm25_query(config regconfig, query text) RETURNS qortex_bm25_query
    AS 'to_tsvector_byid' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION qortex_bm25_query(query text) RETURNS qortex_bm25_query
    AS 'to_tsvector' LANGUAGE internal STABLE STRICT PARALLEL SAFE;
"#,
    name = "qortex_bm25_query_type",
);

pgrx::extension_sql!(
    r#"
CREATE OPERATOR <@> (LEFTARG = tsvector, RIGHTARG = qortex_bm25_query, FUNCTION = qortex_bm25_distance);
CREATE ACCESS METHOD qortex_bm25 TYPE INDEX HANDLER qortex_bm25_handler;
CREATE OPERATOR CLASS bm25_tsvector_ops DEFAULT FOR TYPE tsvector USING qortex_bm25 AS
    OPERATOR 1 <@> (tsvector, qortex_bm25_query) FOR ORDER BY pg_catalog.float_ops;
"#,
    name = "bm25_access_method",
    requires = [scan::qortex_bm25_distance, qortex_bm25_handler],
);

#[pg_extern(sql = r#"
CREATE FUNCTION qortex_bm25_handler(internal) RETURNS index_am_handler
STRICT LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
"#)]
fn qortex_bm25_handler(_fcinfo: pg_sys::FunctionCallInfo) -> PgBox<pg_sys::IndexAmRoutine> {
    // SAFETY: a zeroed node of the right tag, filled and handed to PostgreSQL.
    let mut am =
        unsafe { PgBox::<pg_sys::IndexAmRoutine>::alloc_node(pg_sys::NodeTag::T_IndexAmRoutine) };
    am.amstrategies = 0;
    am.amsupport = 0;
    am.amcanorderbyop = true;
    am.amoptionalkey = true;
    am.amkeytype = pg_sys::InvalidOid;
    am.ambuild = Some(build::ambuild);
    am.ambuildempty = Some(build::ambuildempty);
    am.aminsert = Some(insert::aminsert);
    am.ambulkdelete = Some(vacuum::ambulkdelete);
    am.amvacuumcleanup = Some(vacuum::amvacuumcleanup);
    am.amcostestimate = Some(amcostestimate);
    am.amoptions = Some(amoptions);
    am.amvalidate = Some(amvalidate);
    am.ambeginscan = Some(scan::ambeginscan);
    am.amrescan = Some(scan::amrescan);
    am.amgettuple = Some(scan::amgettuple);
    am.amendscan = Some(scan::amendscan);
    am.into_pg_boxed()
}

/// The qortex_bm25 indexes of this database whose tables the caller may read, with what
/// each holds (for `qortex_status()`).
pub fn summary(client: &pgrx::spi::SpiClient<'_>, func: &str) -> serde_json::Value {
    let rows = client
        .select(
            "SELECT c.oid, c.oid::pg_catalog.regclass::text, i.indrelid::pg_catalog.regclass::text
               FROM pg_catalog.pg_class c
               JOIN pg_catalog.pg_am a ON a.oid = c.relam AND a.amname = 'qortex_bm25'
               JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid AND i.indisvalid
              WHERE pg_catalog.has_table_privilege(i.indrelid, 'SELECT')
              ORDER BY 2",
            None,
            &[],
        )
        .unwrap_or_else(crate::spi::spi_failed(func));
    let mut out = Vec::new();
    for row in rows {
        let get = |n| row.get::<String>(n).ok().flatten().unwrap_or_default();
        let oid = row.get::<pg_sys::Oid>(1).ok().flatten().expect("an oid");
        let i = functions::info(func, oid);
        out.push(serde_json::json!({
            "index": get(2), "table": get(3), "segments": i.segments, "docs": i.docs,
            "dead_docs": i.dead_docs, "buffer_docs": i.buffer_docs,
            "bytes": i.pages * pg_sys::BLCKSZ as i64,
        }));
    }
    serde_json::Value::Array(out)
}

/// Whether `rel` is a qortex_bm25 index.
pub(crate) fn is_ours(rel: pg_sys::Relation) -> bool {
    // SAFETY: an open relation; get_am_oid looks the access method up by name.
    unsafe {
        (*(*rel).rd_rel).relkind == pg_sys::RELKIND_INDEX as std::ffi::c_char
            && (*(*rel).rd_rel).relam == pg_sys::get_am_oid(c"qortex_bm25".as_ptr(), true)
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn amvalidate(_opclassoid: pg_sys::Oid) -> bool {
    true
}

#[pg_guard]
unsafe extern "C-unwind" fn amoptions(
    reloptions: pg_sys::Datum,
    validate: bool,
) -> *mut pg_sys::bytea {
    if validate && reloptions.value() != 0 {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "qortex_bm25 indexes take no options (WITH …)",
        );
    }
    std::ptr::null_mut()
}

/// Only ORDER BY `<@>` reads the index: without it the path costs as if disabled. With
/// it, the first rows cost a few page reads and each further one an index tuple's CPU.
#[allow(clippy::too_many_arguments)]
#[pg_guard]
unsafe extern "C-unwind" fn amcostestimate(
    _root: *mut pg_sys::PlannerInfo,
    path: *mut pg_sys::IndexPath,
    _loop_count: f64,
    startup: *mut pg_sys::Cost,
    total: *mut pg_sys::Cost,
    selectivity: *mut pg_sys::Selectivity,
    correlation: *mut f64,
    pages: *mut f64,
) {
    // SAFETY: the planner passes a path and its out parameters.
    let info = (*path).indexinfo;
    *correlation = 0.0;
    *pages = (*info).pages as f64;
    if (*path).indexorderbys.is_null() {
        *startup = 1.0e10;
        *total = 1.0e10;
        *selectivity = 0.0;
        return;
    }
    let tuples = (*info).tuples.max(1.0);
    *startup = 4.0 * pg_sys::random_page_cost;
    *total = *startup + tuples * pg_sys::cpu_index_tuple_cost;
    *selectivity = 1.0;
}
