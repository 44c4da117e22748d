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
//! - `maintain`: flushes, merges and freeing displaced pages (VACUUM's scan);
//! - `reclaim`: the list of displaced pages a later flush or merge frees;
//! - `readers`: when no reader can reach a displaced page any more;
//! - `functions`: the SQL functions to flush, merge and inspect an index.
//! - `check`: `qortex_bm25_check`, the index against its table.
//! - `plan`: the planner hook that gives a scan's output the scores it ordered by.
mod buffer;
mod build;
pub mod check;
pub mod direct;
mod functions;
mod insert;
mod maintain;
mod meta;
mod page;
pub mod plan;
mod readers;
mod reclaim;
mod scan;
mod store;
mod vacuum;

use crate::errors::{in_subtransaction, raise, sqlstate};
use pgrx::pg_sys;
use pgrx::prelude::*;
use qortex_core::bm25::Doc;
use qortex_core::hybrid::text::TsVector;

/// A row's document: its tsvector's lexemes, and its scope's term when the index has a
/// second column and the row a value in it (`None` without lexemes: not indexed).
///
/// # Safety
/// `values` and `isnull` hold one entry per column of `index` (as PostgreSQL passes them).
pub(crate) unsafe fn doc_of(
    index: pg_sys::Relation,
    values: *const pg_sys::Datum,
    isnull: *const bool,
    tid: u64,
) -> Option<Doc> {
    if *isnull {
        return None;
    }
    let doc = tsvector_doc(*values, tid)?;
    Some(if columns(index) == 2 && !*isnull.add(1) {
        doc.with_scope(scope_hash(index, *values.add(1), pg_sys::InvalidOid))
    } else {
        doc
    })
}

/// The index's columns (1, or 2 with a scope).
pub(crate) fn columns(index: pg_sys::Relation) -> usize {
    // SAFETY: an open index.
    unsafe { (*(*index).rd_index).indnatts as usize }
}

/// A scope value's 64-bit hash, by the second column's operator family (support function
/// 1 for the value's type `ty`, the column's own if invalid: the type's extended hash,
/// seed 0), under the column's collation. The integer family's hashes agree across
/// smallint, integer and bigint, so `owner = 5` finds a bigint 5 whatever 5's type.
pub(crate) fn scope_hash(index: pg_sys::Relation, value: pg_sys::Datum, ty: pg_sys::Oid) -> u64 {
    // SAFETY: the index has a second column (callers check) whose operator class defines
    // support function 1 (every scope class does; `build` refuses an index whose second
    // column is not one), and `ty` is a member type of its family (the planner only passes
    // keys of the family's operators); the function is called with a datum of that type.
    unsafe {
        let collation = *(*index).rd_indcollation.add(1);
        let zero = pg_sys::Datum::from(0i64);
        if ty == pg_sys::InvalidOid || ty == *(*index).rd_opcintype.add(1) {
            let proc = pg_sys::index_getprocinfo(index, 2, 1);
            return pg_sys::FunctionCall2Coll(proc, collation, value, zero).value() as u64;
        }
        let proc = pg_sys::get_opfamily_proc(*(*index).rd_opfamily.add(1), ty, ty, 1);
        if proc == pg_sys::InvalidOid {
            raise(
                PgSqlErrorCode::ERRCODE_UNDEFINED_FUNCTION,
                "qortex_bm25: no hash function for the scope value's type",
            );
        }
        pg_sys::OidFunctionCall2Coll(proc, collation, value, zero).value() as u64
    }
}

/// A tsvector datum's document, without a scope.
fn tsvector_doc(value: pg_sys::Datum, tid: u64) -> Option<Doc> {
    // SAFETY: the index's first column is a tsvector (`build` checks it), so the datum is a
    // varlena; from_datum detoasts it.
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
-- (SQL bodies the planner inlines: to_tsvector itself is then called, found by its OID)
CREATE FUNCTION qortex_bm25_query(config regconfig, query text) RETURNS qortex_bm25_query
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN pg_catalog.to_tsvector(config, query)::qortex_bm25_query;
CREATE FUNCTION qortex_bm25_query(query text) RETURNS qortex_bm25_query
    LANGUAGE sql STABLE STRICT PARALLEL SAFE
    RETURN pg_catalog.to_tsvector(query)::qortex_bm25_query;
"#,
    name = "qortex_bm25_query_type",
);

pgrx::extension_sql!(
    r#"
CREATE OPERATOR <@> (LEFTARG = tsvector, RIGHTARG = qortex_bm25_query, FUNCTION = qortex_bm25_distance);
CREATE ACCESS METHOD qortex_bm25 TYPE INDEX HANDLER qortex_bm25_handler;
CREATE OPERATOR CLASS bm25_tsvector_ops DEFAULT FOR TYPE tsvector USING qortex_bm25 AS
    OPERATOR 1 <@> (tsvector, qortex_bm25_query) FOR ORDER BY pg_catalog.float_ops;
-- the scope column (an index's optional second column): equality, and the type's hash
CREATE OPERATOR CLASS bm25_scope_text_ops DEFAULT FOR TYPE text USING qortex_bm25 AS
    OPERATOR 1 = (text, text), FUNCTION 1 pg_catalog.hashtextextended(text, bigint);
-- one family for the integers, so a smallint parameter finds a bigint column's rows
CREATE OPERATOR FAMILY bm25_scope_integer_ops USING qortex_bm25;
CREATE OPERATOR CLASS bm25_scope_int2_ops DEFAULT FOR TYPE smallint USING qortex_bm25
    FAMILY bm25_scope_integer_ops AS
    OPERATOR 1 = (smallint, smallint), FUNCTION 1 pg_catalog.hashint2extended(smallint, bigint);
CREATE OPERATOR CLASS bm25_scope_int4_ops DEFAULT FOR TYPE integer USING qortex_bm25
    FAMILY bm25_scope_integer_ops AS
    OPERATOR 1 = (integer, integer), FUNCTION 1 pg_catalog.hashint4extended(integer, bigint);
CREATE OPERATOR CLASS bm25_scope_int8_ops DEFAULT FOR TYPE bigint USING qortex_bm25
    FAMILY bm25_scope_integer_ops AS
    OPERATOR 1 = (bigint, bigint), FUNCTION 1 pg_catalog.hashint8extended(bigint, bigint);
ALTER OPERATOR FAMILY bm25_scope_integer_ops USING qortex_bm25 ADD
    OPERATOR 1 = (smallint, integer), OPERATOR 1 = (smallint, bigint),
    OPERATOR 1 = (integer, smallint), OPERATOR 1 = (integer, bigint),
    OPERATOR 1 = (bigint, smallint), OPERATOR 1 = (bigint, integer);
CREATE OPERATOR CLASS bm25_scope_uuid_ops DEFAULT FOR TYPE uuid USING qortex_bm25 AS
    OPERATOR 1 = (uuid, uuid), FUNCTION 1 pg_catalog.uuid_hash_extended(uuid, bigint);
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
    am.amstrategies = 1;
    am.amsupport = 1;
    am.amcanmulticol = true;
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
/// each holds (for `qortex_status()`); an index that cannot be read has an `error`
/// (`sqlstate`, `message`) in place of the figures.
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
    let found: Vec<(pg_sys::Oid, String, String)> = rows
        .map(|row| {
            let get = |n| row.get::<String>(n).ok().flatten().unwrap_or_default();
            let oid = row.get::<pg_sys::Oid>(1).ok().flatten().expect("an oid");
            (oid, get(2), get(3))
        })
        .collect();
    let mut out = Vec::new();
    for (oid, index, table) in found {
        // (one damaged index, or one of an older format, is reported, not the whole summary
        // lost: monitoring reads this)
        out.push(match in_subtransaction(|| functions::info(func, oid)) {
            Ok(i) => serde_json::json!({
                "index": index, "table": table, "segments": i.segments, "docs": i.docs,
                "dead_docs": i.dead_docs, "buffer_docs": i.buffer_docs,
                "bytes": i.pages * pg_sys::BLCKSZ as i64,
            }),
            Err((code, message)) => serde_json::json!({
                "index": index, "table": table,
                "error": {"sqlstate": sqlstate(code), "message": message},
            }),
        });
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
    root: *mut pg_sys::PlannerInfo,
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
    // a scope (WHERE scope = value) keeps the rows it admits
    let quals = pg_sys::get_quals_from_indexclauses((*path).indexclauses);
    *selectivity = if quals.is_null() {
        1.0
    } else {
        pg_sys::clauselist_selectivity(
            root,
            quals,
            (*(*info).rel).relid as i32,
            pg_sys::JoinType::JOIN_INNER,
            std::ptr::null_mut(),
        )
    };
}
