//! The vector leg: the HNSW index, or an exact scan of the rows in scope, as
//! `qortex_core::hybrid::vector::plan` decides on the planner's estimates (not on its costs,
//! which do not price reading embeddings out of TOAST: for `LIMIT 100` it takes a
//! sequential scan of the whole table and detoasts every embedding).
//!
//! Index: `ORDER BY embedding <op> $q LIMIT pool` with, for this statement only, sequential
//! and bitmap scans and sorts switched off (so the ordered index scan is the plan),
//! `hnsw.ef_search` raised to the pool and, in scope, pgvector's iterative scan. If the
//! estimate was wrong and the index found fewer rows in scope than the page needs, the exact
//! scan runs after all, so a filtered search returns `k` rows whenever `k` rows match.
//! Exact: the distance of every row in scope, sorted.
//!
//! Reciprocal-rank fusion needs only the order, so without `min_similarity`, weighted
//! fusion or a scope the leg reads ids in the index's order and leaves the similarity NaN:
//! it is computed for the rows of the page only (`rows::details`), which saves reading an
//! embedding out of TOAST for every other candidate. A scoped (iterative) scan runs in
//! pgvector's relaxed order and reads the pool's distances to sort them
//! (`VectorPath::reads_distances`: cheaper than strict order).
use super::{estimate, Scope};
use crate::catalog::Layout;
use crate::citus;
use crate::settings::ForCall;
use crate::spi::{plan, spi_failed, INT8};
use pgrx::datum::DatumWithOid;
use pgrx::spi::SpiClient;
use qortex_core::collections::Distance;
use qortex_core::hybrid::vector::{self, VectorInputs, VectorPath};
use qortex_core::hybrid::{rank_leg, Fusion, LegHit, SearchOptions};

/// The vector leg's best `pool` rows, best first (similarity NaN where not read, see the
/// module comment), and how they were found.
#[allow(clippy::too_many_arguments)]
pub fn run(
    client: &SpiClient<'_>,
    func: &str,
    t: &Layout,
    scope: &Scope<'_>,
    embedding: &[u8],
    opts: &SearchOptions,
    pool: usize,
    page_end: usize,
) -> (Vec<LegHit>, String) {
    let est = estimate::scope(func, t, scope);
    let scoped = !scope.sql.is_empty();
    let path = vector::plan(&VectorInputs {
        table_rows: est.table_rows,
        scope_rows: scoped.then_some(est.rows),
        scope_needs_full_scan: est.full_scan,
        dims: t.dims,
        pool,
        ef_search: opts.ef_search,
        min_similarity: opts.min_similarity.is_some(),
        indexed: t.vector_index.is_some(),
    });
    let scores =
        path.reads_distances(opts.fusion == Fusion::Weighted || opts.min_similarity.is_some());
    let read = |exact: bool| {
        let sql = statement(t, scope, exact, scores);
        let p = plan(
            client,
            &sql,
            &Scope::types(pgrx::PgOid::from(t.vector_type), INT8),
            false,
        );
        let args = scope.args(
            unsafe { DatumWithOid::new(embedding, t.vector_type) },
            (pool as i64).into(),
        );
        p.select(client, None, &args)
            .unwrap_or_else(spi_failed(func))
            .filter_map(|r| {
                let id = r.get::<String>(1).ok().flatten()?;
                let score = match scores {
                    true => similarity(t.distance, r.get::<f64>(2).ok().flatten()?),
                    false => f64::NAN,
                };
                Some(LegHit { id, score })
            })
            .collect::<Vec<_>>()
    };
    let (mut hits, how) = match path {
        VectorPath::Exact => (read(true), "exact".to_string()),
        VectorPath::Ann {
            ef_search,
            iterative,
            max_scan_tuples,
        } => {
            // (an iterative scan reads distances and sorts them: `reads_distances`)
            let order = iterative.then_some("relaxed_order");
            let pairs = index_settings(ef_search, order, max_scan_tuples);
            let (found, workers) = with_settings(client, func, t, &pairs, || read(false));
            let mut how = format!(
                "index {} (ef_search {ef_search}{}{}{})",
                t.vector_index.as_deref().unwrap_or("?"),
                order.map_or(String::new(), |o| format!(", iterative {o}")),
                max_scan_tuples.map_or(String::new(), |m| format!(", max_scan_tuples {m}")),
                if workers { ", on the workers too" } else { "" }
            );
            if scoped && found.len() < page_end.min(pool) {
                how += &format!(" found {} rows in scope, then exact", found.len());
                (read(true), how)
            } else {
                (found, how)
            }
        }
    };
    if scores {
        if let Some(m) = opts.min_similarity {
            hits.retain(|h| h.score >= m);
        }
        rank_leg(&mut hits);
    }
    hits.truncate(pool);
    let how = format!(
        "{how}; ~{:.0} rows in scope of ~{:.0}{}",
        est.rows,
        est.table_rows,
        if scoped && est.full_scan {
            " (no index finds the scope)"
        } else {
            ""
        }
    );
    (hits, how)
}

/// The settings under which a statement reads the vector index: sequential and bitmap scans
/// and sorts off (so the ordered index scan is the plan), no JIT, `hnsw.ef_search`, and
/// pgvector's iterative scan in `iterative` order with its `max_scan_tuples`, if given.
pub fn index_settings(
    ef_search: i32,
    iterative: Option<&str>,
    max_scan_tuples: Option<i64>,
) -> Vec<(&'static str, String)> {
    let mut pairs: Vec<(&str, String)> = ["enable_seqscan", "enable_bitmapscan", "enable_sort"]
        .into_iter()
        .map(|off| (off, "off".to_string()))
        .collect();
    // (hybrid_search runs without JIT: on the shards too)
    pairs.push(("jit", "off".to_string()));
    pairs.push(("hnsw.ef_search", ef_search.to_string()));
    if let Some(order) = iterative {
        pairs.push(("hnsw.iterative_scan", order.to_string()));
    }
    if let Some(m) = max_scan_tuples {
        pairs.push(("hnsw.max_scan_tuples", m.to_string()));
    }
    pairs
}

/// `read` run with `pairs` set (on the workers too where the collection's table is
/// distributed: its shards plan and search with the same settings), and whether they were
/// set on the workers.
pub fn with_settings<T>(
    client: &SpiClient<'_>,
    func: &str,
    t: &Layout,
    pairs: &[(&'static str, String)],
    read: impl FnOnce() -> T,
) -> (T, bool) {
    let settings = ForCall::new();
    let workers =
        citus::is_citus_table(t.source) && citus::set_on_workers(client, func, &settings, pairs);
    if !workers {
        for (name, value) in pairs {
            settings.set(name, value);
        }
    }
    let found = read();
    if workers {
        // (the text leg reads GIN through bitmap scans and sorts its scores)
        citus::reset_on_workers(client, func, pairs, &["enable_bitmapscan", "enable_sort"]);
    }
    settings.restore();
    (found, workers)
}

/// The statement of either path: the same scope; the exact one orders by an expression no
/// index provides. With `scores`, each row's distance too.
fn statement(t: &Layout, scope: &Scope<'_>, exact: bool, scores: bool) -> String {
    let distance = distance_sql(t, "$1");
    let order = if exact {
        format!("({distance}) OPERATOR(pg_catalog.+) 0::float8")
    } else {
        distance.clone()
    };
    let columns = if scores {
        format!("{}::text, {distance}", t.id)
    } else {
        format!("{}::text", t.id)
    };
    // ties by id where the scan sorts (the index gives its own order)
    let tie = if exact {
        format!(", {}", t.id)
    } else {
        String::new()
    };
    format!(
        "SELECT {columns} FROM {table} WHERE true{scope} ORDER BY {order}{tie} LIMIT $2",
        table = t.table,
        scope = scope.sql
    )
}

/// The distance between a row's embedding and the query vector in parameter `param`.
pub fn distance_sql(t: &Layout, param: &str) -> String {
    format!(
        "{} OPERATOR({}.{}) {param}",
        t.embedding,
        t.vector_schema,
        t.distance.operator()
    )
}

/// A distance as the similarity hybrid_search reports (higher is closer).
pub fn similarity(distance: Distance, d: f64) -> f64 {
    match distance {
        Distance::Cosine => 1.0 - d,
        Distance::Ip => -d,
        Distance::L2 => 1.0 / (1.0 + d),
    }
}
