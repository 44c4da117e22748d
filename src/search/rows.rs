//! What a search reads besides its two legs: interoception factors, promoted edges, which
//! graph neighbours the scope admits, and the returned rows' document id, content and
//! metadata. One query each, by id.
use super::vector_leg::{distance_sql, similarity};
use super::Scope;
use crate::catalog::Layout;
use crate::jsonb::JsonbText;
use crate::spi::{plan, spi_failed, INT8, TEXT, TEXT_ARRAY};
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::spi::SpiClient;
use qortex_core::hybrid::GRAPH_FANOUT;
use std::collections::{HashMap, HashSet};

/// Each seed's strongest promoted edges, at most `GRAPH_FANOUT` of them: `(seed,
/// neighbour, confidence)`. An edge stored one way round serves both of its ends.
pub fn edges(client: &SpiClient<'_>, func: &str, seeds: &[String]) -> Vec<(String, String, f64)> {
    if seeds.is_empty() {
        return Vec::new();
    }
    let p = plan(
        client,
        "SELECT s.id, e.other, e.confidence
           FROM pg_catalog.unnest($1::text[]) AS s(id)
          CROSS JOIN LATERAL (
                SELECT other, confidence FROM (
                    SELECT tgt_id AS other, confidence FROM qortex.interoception_edges
                     WHERE src_id = s.id AND relation = 'SIMILAR_TO'
                    UNION ALL
                    SELECT src_id, confidence FROM qortex.interoception_edges
                     WHERE tgt_id = s.id AND relation = 'SIMILAR_TO') n
                 ORDER BY confidence DESC, other LIMIT $2) e",
        &[TEXT_ARRAY, INT8],
        false,
    );
    p.select(
        client,
        None,
        &[seeds.to_vec().into(), (GRAPH_FANOUT as i64).into()],
    )
    .unwrap_or_else(spi_failed(func))
    .filter_map(|r| {
        Some((
            r.get::<String>(1).ok()??,
            r.get::<String>(2).ok()??,
            r.get::<f64>(3).ok()??,
        ))
    })
    .collect()
}

/// Which of `ids` are rows of the collection within the search's filter and user scope.
pub fn in_scope(
    client: &SpiClient<'_>,
    t: &Layout,
    scope: &Scope<'_>,
    ids: &[String],
) -> HashSet<String> {
    if ids.is_empty() {
        return HashSet::new();
    }
    let sql = format!(
        "SELECT {id}::text FROM {table} WHERE {id} = ANY($1::text[]::{id_type}[]){scope}",
        id = t.id,
        table = t.table,
        id_type = t.id_type,
        scope = scope.sql
    );
    let p = plan(client, &sql, &Scope::types(TEXT_ARRAY, INT8), false);
    // $2 is unused here
    p.select(client, None, &scope.args(ids.to_vec().into(), 0i64.into()))
        .unwrap_or_else(spi_failed("hybrid_search"))
        .filter_map(|r| r.get::<String>(1).ok().flatten())
        .collect()
}

/// The rows at `tids` ("(block,offset)") the caller may see within the scope, as (ctid, id):
/// a TID scan under the statement's snapshot, as the caller (row-level security applies);
/// rows deleted, not yet committed or out of scope are not returned.
pub fn at_tids(
    client: &SpiClient<'_>,
    t: &Layout,
    scope: &Scope<'_>,
    tids: &[String],
) -> Vec<(String, String)> {
    if tids.is_empty() {
        return Vec::new();
    }
    let sql = format!(
        "SELECT ctid::text, {id}::text FROM {table} WHERE ctid = ANY($1::text[]::tid[]){scope}",
        id = t.id,
        table = t.table,
        scope = scope.sql
    );
    let p = plan(client, &sql, &Scope::types(TEXT_ARRAY, INT8), false);
    // $2 is unused here
    p.select(client, None, &scope.args(tids.to_vec().into(), 0i64.into()))
        .unwrap_or_else(spi_failed("hybrid_search"))
        .filter_map(|r| Some((r.get::<String>(1).ok()??, r.get::<String>(2).ok()??)))
        .collect()
}

/// Whether `qortex.interoception_factors` may hold a row, from its size alone (no statement):
/// a factor is written into a page of the table before its transaction commits, so a table
/// of no pages holds none that any snapshot can see; a standby replays the table's growth
/// before the row. Deleted rows leave pages behind until VACUUM truncates them, and then the
/// factors are read and found empty. On Citus the factors live in shards: always read.
pub fn may_have_factors() -> bool {
    if crate::citus::is_state_table(c"interoception_factors") {
        return true;
    }
    // SAFETY: the relation is opened by OID under AccessShareLock (the lock a SELECT of it
    // takes), kept until the transaction ends as a statement's would be, and only its size
    // is read before it is closed.
    unsafe {
        let nsp = pg_sys::get_namespace_oid(c"qortex".as_ptr(), true);
        let rel = pg_sys::get_relname_relid(c"interoception_factors".as_ptr(), nsp);
        if rel == pg_sys::InvalidOid {
            return true; // (the factors statement then says what is wrong)
        }
        let r = pg_sys::relation_open(rel, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        let blocks = pg_sys::RelationGetNumberOfBlocksInFork(r, pg_sys::ForkNumber::MAIN_FORKNUM);
        pg_sys::relation_close(r, pg_sys::NoLock as pg_sys::LOCKMODE);
        blocks > 0
    }
}

/// The factors of `ids` that have one (callers ask `may_have_factors` first).
pub fn factors(client: &SpiClient<'_>, func: &str, ids: &[String]) -> HashMap<String, f64> {
    let p = plan(
        client,
        "SELECT node_id, weight FROM qortex.interoception_factors WHERE node_id = ANY($1)",
        &[TEXT_ARRAY],
        false,
    );
    p.select(client, None, &[ids.to_vec().into()])
        .unwrap_or_else(spi_failed(func))
        .filter_map(|r| {
            Some((
                r.get::<String>(1).ok().flatten()?,
                r.get::<f64>(2).ok().flatten()?,
            ))
        })
        .collect()
}

/// Which of `keys` no row of the collection's table has in its metadata `m` (of the rows the
/// caller can read).
/// (One statement per key: Citus plans no correlated subquery beside a set-returning
/// function, and this runs only when a filtered search found nothing.)
pub fn absent_keys(client: &SpiClient<'_>, t: &Layout, m: &str, keys: &[String]) -> Vec<String> {
    let sql = format!(
        "SELECT EXISTS (SELECT 1 FROM {table} WHERE {m} OPERATOR(pg_catalog.?) $1)",
        table = t.table
    );
    let p = plan(client, &sql, &[TEXT], false);
    keys.iter()
        .filter(|k| {
            p.select(client, Some(1), &[k.as_str().into()])
                .unwrap_or_else(spi_failed("hybrid_search"))
                .first()
                .get_one::<bool>()
                .ok()
                .flatten()
                == Some(false)
        })
        .cloned()
        .collect()
}

/// What a search returns of a row besides its scores.
#[derive(Clone, Default)]
pub struct Details {
    pub document_id: Option<String>,
    pub content: Option<String>,
    pub metadata: Option<JsonbText>,
    /// The row's similarity to the query vector, where it was asked for.
    pub similarity: Option<f64>,
}

/// The rows of a page by id: their document id, content, metadata and, given the query
/// vector, their similarity to it (one embedding read per row of the page).
pub fn details(
    client: &SpiClient<'_>,
    func: &str,
    t: &Layout,
    ids: &[String],
    embedding: Option<&[u8]>,
) -> HashMap<String, Details> {
    if ids.is_empty() {
        return HashMap::new();
    }
    let distance = match embedding {
        Some(_) => format!(", {}", distance_sql(t, "$2")),
        None => String::new(),
    };
    let sql = format!(
        "SELECT {id}::text, {doc}, {content}, {meta}{distance} FROM {table}
          WHERE {id} = ANY($1::text[]::{id_type}[])",
        id = t.id,
        doc = t
            .document_id
            .as_ref()
            .map_or("NULL::text".into(), |d| format!("{d}::text")),
        content = t
            .content
            .as_ref()
            .map_or("NULL::text".into(), |c| format!("{c}::text")),
        meta = t.metadata.as_deref().unwrap_or("NULL::jsonb"),
        table = t.table,
        id_type = t.id_type
    );
    let mut args = vec![ids.to_vec().into()];
    let mut types = vec![TEXT_ARRAY];
    if let Some(e) = embedding {
        args.push(unsafe { DatumWithOid::new(e, t.vector_type) });
        types.push(pgrx::PgOid::from(t.vector_type));
    }
    let p = plan(client, &sql, &types, false);
    p.select(client, None, &args)
        .unwrap_or_else(spi_failed(func))
        .filter_map(|r| {
            Some((
                r.get::<String>(1).ok().flatten()?,
                Details {
                    document_id: r.get::<String>(2).ok().flatten(),
                    content: r.get::<String>(3).ok().flatten(),
                    metadata: r.get::<JsonbText>(4).ok().flatten(),
                    similarity: embedding
                        .and_then(|_| r.get::<f64>(5).ok().flatten())
                        .map(|d| similarity(t.distance, d)),
                },
            ))
        })
        .collect()
}
