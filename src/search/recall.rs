//! `qortex_check_recall`: how much of the exact top-k a collection's vector index finds, on
//! a sample of the collection's own embeddings as queries; the latest result of each
//! collection is kept in `qortex.recall_checks` (shown by `qortex_collections()`,
//! `qortex_status()` and the postgres_exporter queries).
use super::vector_leg::{distance_sql, index_settings, with_settings};
use crate::catalog::{self, Layout};
use crate::errors::{error, invalid_param, require_writable, required};
use crate::settings::ForCall;
use crate::spi::{plan, spi_failed, FLOAT8, INT4, INT8, TEXT};
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use qortex_core::hybrid::vector::ef_search_for;
use qortex_core::recall::{check_args, query_recall, RecallSummary};
use std::time::Instant;

type Neighbours = Vec<(String, f64)>;

/// Recall@k of the collection's vector index: `sample` of its rows' embeddings (chosen at
/// random) are searched through the index, at the `hnsw.ef_search` hybrid_search's vector
/// leg would use for `k` rows (`ef_search`: as its option of that name), and exactly; the
/// result replaces the collection's previous one in `qortex.recall_checks`.
#[allow(clippy::type_complexity)]
#[pg_extern(volatile)]
fn qortex_check_recall(
    collection: Option<String>,
    sample: default!(Option<i32>, 100),
    k: default!(Option<i32>, 10),
    ef_search: default!(Option<i32>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(collection, String),
        name!(index_name, String),
        name!(k, i32),
        name!(ef_search, i32),
        name!(queries, i32),
        name!(recall, f64),
        name!(recall_stddev, f64),
        name!(recall_ci95, f64),
        name!(recall_min, f64),
        name!(recall_p10, f64),
        name!(table_rows, i64),
        name!(elapsed_ms, f64),
        name!(checked_at, pgrx::datum::TimestampWithTimeZone),
    ),
> {
    const F: &str = "qortex_check_recall";
    require_writable(F);
    let name = required(F, "collection", collection);
    let sample = required(F, "sample", sample);
    let k = required(F, "k", k);
    check_args(sample, k, ef_search).unwrap_or_else(|e| invalid_param(F, e));
    let started = Instant::now();
    let ef = ef_search_for(ef_search, k as usize);
    // (exact scans cost more than jit_above_cost, and are not worth compiling)
    let call = ForCall::new();
    call.set("jit", "off");
    let row = Spi::connect_mut(|client| {
        let t = catalog::layout(client, F, &name);
        let Some(index) = t.vector_index.clone() else {
            error(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("{F}: collection \"{name}\" has no vector index on its embedding"),
            )
            .detail("its vector leg reads every row exactly: there is no recall to check")
            .hint(format!(
                "CREATE INDEX ON {} USING hnsw ({} {})",
                t.table,
                t.embedding,
                t.distance.opclass()
            ))
            .raise();
        };
        let statements = Statements::new(client, F, &t);
        let (rows, queries) = statements.sample(client, F, sample);
        if queries.is_empty() {
            error(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("{F}: collection \"{name}\" has no row with an embedding"),
            )
            .hint("check its recall once it holds rows")
            .raise();
        }
        let iterative = t.partition.is_some().then_some("strict_order");
        let pairs = index_settings(ef, iterative, None);
        let recalls: Vec<f64> = queries
            .iter()
            .filter_map(|q| {
                let exact = statements.neighbours(client, F, q, k, true);
                let (found, _) = with_settings(client, F, &t, &pairs, || {
                    statements.neighbours(client, F, q, k, false)
                });
                query_recall(&exact, &found, k as usize)
            })
            .collect();
        let s = RecallSummary::of(&recalls)
            .unwrap_or_else(|| crate::errors::internal(F, "no query had a neighbour"));
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        let p = plan(
            client,
            "INSERT INTO qortex.recall_checks AS c (collection, checked_at, index_name, k,
                 ef_search, sample, queries, recall, recall_stddev, recall_ci95, recall_min,
                 recall_p10, table_rows, elapsed_ms)
             VALUES ($1, pg_catalog.now(), $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             ON CONFLICT (collection) DO UPDATE SET
                 checked_at = excluded.checked_at, index_name = excluded.index_name,
                 k = excluded.k, ef_search = excluded.ef_search, sample = excluded.sample,
                 queries = excluded.queries, recall = excluded.recall,
                 recall_stddev = excluded.recall_stddev, recall_ci95 = excluded.recall_ci95,
                 recall_min = excluded.recall_min, recall_p10 = excluded.recall_p10,
                 table_rows = excluded.table_rows, elapsed_ms = excluded.elapsed_ms
             RETURNING checked_at",
            &[
                TEXT, TEXT, INT4, INT4, INT4, INT4, FLOAT8, FLOAT8, FLOAT8, FLOAT8, FLOAT8, INT8,
                FLOAT8,
            ],
            true,
        );
        let checked_at = client
            .update(
                &**p,
                Some(1),
                &[
                    name.as_str().into(),
                    index.as_str().into(),
                    k.into(),
                    ef.into(),
                    sample.into(),
                    (s.queries as i32).into(),
                    s.mean.into(),
                    s.stddev.into(),
                    s.ci95.into(),
                    s.min.into(),
                    s.p10.into(),
                    rows.into(),
                    elapsed_ms.into(),
                ],
            )
            .unwrap_or_else(spi_failed(F))
            .next()
            .and_then(|r| {
                r.get::<pgrx::datum::TimestampWithTimeZone>(1)
                    .ok()
                    .flatten()
            })
            .unwrap_or_else(|| crate::errors::internal(F, "the upsert returned no row"));
        (
            name.clone(),
            index,
            k,
            ef,
            s.queries as i32,
            s.mean,
            s.stddev,
            s.ci95,
            s.min,
            s.p10,
            rows,
            elapsed_ms,
            checked_at,
        )
    });
    call.restore();
    TableIterator::once(row)
}

/// The statements of one check, for a collection: its rows with an embedding (in its
/// partition) counted and sampled, and a query's neighbours, through the index or exactly.
struct Statements {
    count: String,
    sample: String,
    index: String,
    exact: String,
    partition: Option<String>,
}

impl Statements {
    fn new(client: &SpiClient<'_>, func: &str, t: &Layout) -> Statements {
        // the query embedding comes as text, in $1, cast to the column's type
        let p = plan(
            client,
            "SELECT pg_catalog.format_type($1, NULL)",
            &[crate::spi::OID],
            false,
        );
        let vector_type = client
            .select(&**p, Some(1), &[t.vector_type.into()])
            .unwrap_or_else(spi_failed(func))
            .next()
            .and_then(|r| r.get::<String>(1).ok().flatten())
            .unwrap_or_else(|| crate::errors::internal(func, "the vector type has no name"));
        let distance = distance_sql(t, &format!("CAST($1 AS {vector_type})"));
        let scope = match &t.partition {
            Some(p) => format!(" AND {} = $3::{}", p.column, p.column_type),
            None => String::new(),
        };
        let rows = format!("{} WHERE {} IS NOT NULL{scope}", t.table, t.embedding);
        // (the query's own row is among its neighbours, at distance 0, either way)
        Statements {
            count: format!("SELECT pg_catalog.count(*) FROM {rows}"),
            sample: format!(
                "SELECT {}::text FROM {rows} ORDER BY pg_catalog.random() LIMIT $2",
                t.embedding
            ),
            index: format!(
                "SELECT {id}::text, {distance} FROM {rows} ORDER BY {distance} LIMIT $2",
                id = t.id
            ),
            exact: format!(
                "SELECT {id}::text, {distance} FROM {rows}
                  ORDER BY ({distance}) OPERATOR(pg_catalog.+) 0::float8, {id} LIMIT $2",
                id = t.id
            ),
            partition: t.partition.as_ref().map(|p| p.value.clone()),
        }
    }

    /// (`$1`, `$2`, `$3`): a query embedding as text, a limit, the partition's value.
    fn run<'c>(
        &self,
        client: &SpiClient<'c>,
        func: &str,
        sql: &str,
        query: Option<&str>,
        limit: i64,
    ) -> pgrx::spi::SpiTupleTable<'c> {
        let p = plan(client, sql, &[TEXT, INT8, TEXT], false);
        client
            .select(
                &**p,
                None,
                &[query.into(), limit.into(), self.partition.as_deref().into()],
            )
            .unwrap_or_else(spi_failed(func))
    }

    /// The rows with an embedding, and the embeddings of `n` of them chosen at random.
    fn sample(&self, client: &SpiClient<'_>, func: &str, n: i32) -> (i64, Vec<String>) {
        let rows = self
            .run(client, func, &self.count, None, 0)
            .next()
            .and_then(|r| r.get::<i64>(1).ok().flatten())
            .unwrap_or(0);
        let queries = self
            .run(client, func, &self.sample, None, n as i64)
            .filter_map(|r| r.get::<String>(1).ok().flatten())
            .collect();
        (rows, queries)
    }

    /// The `k` rows nearest `query`, nearest first: exactly, or through the index.
    fn neighbours(
        &self,
        client: &SpiClient<'_>,
        func: &str,
        query: &str,
        k: i32,
        exact: bool,
    ) -> Neighbours {
        let sql = if exact { &self.exact } else { &self.index };
        self.run(client, func, sql, Some(query), k as i64)
            .filter_map(|r| Some((r.get::<String>(1).ok()??, r.get::<f64>(2).ok()??)))
            .collect()
    }
}
