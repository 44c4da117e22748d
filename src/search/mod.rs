//! API.md §3: `hybrid_search`, a BM25 text leg and an HNSW vector leg fused in one call,
//! one file per phase: `vector_leg`, `text_leg`, then fusion (`qortex_core::hybrid`) and
//! `rows` (factors, graph neighbours, the returned rows' columns).
//!
//! Text leg: the query's lexemes (the collection's text search configuration, stop words
//! removed) are ranked by BM25 over the whole collection: the exact top-k of the
//! collection's `qortex_bm25` index (`am_leg`), or, under a filter and without one,
//! candidates from the GIN index for the rarest query terms whose document frequencies fit
//! a row budget; more common terms still count in every candidate's score but are not
//! enumerated, so the cost does not grow with the rows that merely contain a common word
//! (the plan is `qortex_core::hybrid::text::TextLeg`).
mod am_leg;
mod estimate;
mod recall;
mod rows;
mod score;
mod text_leg;
mod vector_leg;

use crate::catalog::{self, Layout};
use crate::counters;
use crate::errors::{data_error, error, invalid_param, required};
use crate::settings;
use crate::spi::{JSONB, TEXT};
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::spi::{quote_literal, SpiClient};
use pgrx::{JsonB, PgOid};
use qortex_core::collections::Distance;
use qortex_core::hybrid::{
    castable_id, fuse, graph_boost, parse_k, text, SearchOptions, SplitFilter,
};
use qortex_core::ParamError;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::time::Instant;

/// Milliseconds since `t`, for `qortex.debug_plans`.
fn ms(t: Instant) -> String {
    format!("{:.2} ms", t.elapsed().as_secs_f64() * 1000.0)
}

/// The rows a search may return, as SQL both legs and the neighbour lookup append to their
/// `WHERE`: the filter's metadata part (`$3`, jsonb), the user (`$4`, text), the filter's
/// column part (`$5`, jsonb, one `->>` per column) and the collection's partition (`$6`,
/// text cast to the column's type). Statements take two parameters of their own first.
pub struct Scope<'a> {
    /// `AND ...`, or empty without filter, user scope and partition.
    pub sql: String,
    opts: &'a SearchOptions,
    filter: SplitFilter,
    partition: Option<String>,
}

impl<'a> Scope<'a> {
    fn new(func: &str, t: &Layout, opts: &'a SearchOptions) -> Scope<'a> {
        let name = &t.name;
        let mut sql = String::new();
        let columns: Vec<&str> = t.filter_columns.iter().map(|c| c.0.as_str()).collect();
        let filter = match &opts.filter {
            Some(Value::Object(f)) => {
                SplitFilter::new(f, &columns).unwrap_or_else(|e| invalid_param(func, e))
            }
            _ => SplitFilter::default(),
        };
        if t.metadata.is_none() {
            // without metadata, a key naming a column means that column
            if let Some(key) = filter
                .metadata_keys()
                .into_iter()
                .find(|k| t.table_columns.contains(k))
            {
                refuse_column_key(func, t, &key);
            }
        }
        if filter.metadata.is_some() {
            let m = t.metadata.as_deref().unwrap_or_else(|| {
                invalid_param(
                    func,
                    ParamError::new(
                        "options.filter",
                        format!(
                            "collection \"{name}\" has no metadata column{}",
                            match columns.is_empty() {
                                true => String::new(),
                                false => format!("; its filter columns are {}", columns.join(", ")),
                            }
                        ),
                    ),
                )
            });
            sql += &format!(" AND {m} OPERATOR(pg_catalog.@>) $3");
        }
        for (key, column, column_type) in &t.filter_columns {
            if filter.columns.contains_key(key) {
                sql += &format!(
                    " AND {column} = ($5 OPERATOR(pg_catalog.->>) {})::{column_type}",
                    quote_literal(key)
                );
            }
        }
        if opts.user_id.is_some() {
            let u = t.user_id.as_deref().unwrap_or_else(|| {
                invalid_param(
                    func,
                    ParamError::new(
                        "options.user_id",
                        format!("collection \"{name}\" has no user_id column"),
                    ),
                )
            });
            sql += &match &t.is_global {
                Some(g) => format!(" AND ({u} = $4 OR {g})"),
                None => format!(" AND {u} = $4"),
            };
        }
        if let Some(p) = &t.partition {
            sql += &format!(" AND {} = $6::{}", p.column, p.column_type);
        }
        Scope {
            sql,
            opts,
            filter,
            partition: t.partition.as_ref().map(|p| p.value.clone()),
        }
    }

    /// Whether rows are limited by more than the user: a filter or a partition.
    pub fn filtered(&self) -> bool {
        self.opts.filter.is_some() || self.partition.is_some()
    }

    /// What identifies the scope within a collection: the filter and the user.
    fn key(&self) -> String {
        format!(
            "{}\u{1}{}",
            self.opts
                .filter
                .as_ref()
                .map_or(String::new(), |f| f.to_string()),
            self.opts.user_id.as_deref().unwrap_or("\u{2}")
        )
    }

    /// The parameter types of a statement with this scope, after its own two.
    pub fn types(first: PgOid, second: PgOid) -> [PgOid; 6] {
        [first, second, JSONB, TEXT, JSONB, TEXT]
    }

    /// The parameters of a statement with this scope: two of its own, then the scope's.
    pub fn args<'b>(
        &'b self,
        first: DatumWithOid<'b>,
        second: DatumWithOid<'b>,
    ) -> [DatumWithOid<'b>; 6] {
        [
            first,
            second,
            self.filter.metadata.clone().map(JsonB).into(),
            self.opts.user_id.as_deref().into(),
            (!self.filter.columns.is_empty())
                .then(|| JsonB(Value::Object(self.filter.columns.clone())))
                .into(),
            self.partition.as_deref().into(),
        ]
    }
}

/// When a filtered search finds nothing: says which of the filter's metadata keys no row
/// has (a WARNING: it may be written later), and refuses one that names a column of the
/// table instead (42703), so a filter never matches nothing silently because of its keys.
fn unknown_keys(client: &SpiClient<'_>, t: &Layout, scope: &Scope<'_>) {
    let keys = scope.filter.metadata_keys();
    let Some(m) = t.metadata.as_deref().filter(|_| !keys.is_empty()) else {
        return;
    };
    for key in rows::absent_keys(client, t, m, &keys) {
        if t.table_columns.contains(&key) {
            refuse_column_key("hybrid_search", t, &key);
        }
        error(
            PgSqlErrorCode::ERRCODE_WARNING,
            format!(
                "hybrid_search: options.filter.{key}: no row of collection \"{}\" has \
                 metadata key \"{key}\"",
                t.name
            ),
        )
        .detail("The filter matched nothing because of this key.")
        .warn();
    }
}

/// 42703 for a filter key that names a column of the table the filter cannot compare.
fn refuse_column_key(func: &str, t: &Layout, key: &str) -> ! {
    error(
        PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
        format!(
            "{func}: options.filter.{key}: \"{key}\" is a column of {}, not a metadata key of \
             collection \"{}\"",
            t.table, t.name
        ),
    )
    .detail("A filter matches metadata keys, and the columns registered as filter columns.")
    .hint(format!(
        "register the collection again with \"filters\": [\"{key}\"] among its columns \
         (qortex_register_collection(..., replace => true))"
    ))
    .raise()
}

type Row = (
    String,
    Option<String>,
    Option<String>,
    Option<crate::jsonb::JsonbText>,
    f64,
    Option<i32>,
    Option<f64>,
    Option<i32>,
    Option<f64>,
    f64,
);

/// Search a collection with a query embedding and/or query text; best first.
#[allow(clippy::type_complexity)]
#[pg_extern(
    stable,
    sql = r#"
CREATE FUNCTION hybrid_search(
    collection TEXT, query_embedding vector, query_text TEXT, k INT DEFAULT 10,
    options jsonb DEFAULT '{}'
) RETURNS TABLE (
    id TEXT, document_id TEXT, content TEXT, metadata jsonb, score double precision,
    vector_rank INT, vector_similarity double precision, text_rank INT,
    text_score double precision, factor double precision
)
STABLE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
"#
)]
fn hybrid_search(
    collection: Option<String>,
    query_embedding: Option<&[u8]>,
    query_text: Option<String>,
    k: default!(Option<i32>, 10),
    options: default!(Option<crate::jsonb::Jsonb>, "'{}'"),
) -> TableIterator<
    'static,
    (
        name!(id, String),
        name!(document_id, Option<String>),
        name!(content, Option<String>),
        name!(metadata, Option<crate::jsonb::JsonbText>),
        name!(score, f64),
        name!(vector_rank, Option<i32>),
        name!(vector_similarity, Option<f64>),
        name!(text_rank, Option<i32>),
        name!(text_score, Option<f64>),
        name!(factor, f64),
    ),
> {
    const F: &str = "hybrid_search";
    let name = required(F, "collection", collection);
    let query_text = query_text.filter(|q| !q.trim().is_empty());
    if query_embedding.is_none() && query_text.is_none() {
        invalid_param(
            F,
            ParamError::new(
                "query_embedding",
                "and query_text are both NULL (or empty); give at least one",
            ),
        );
    }
    let k = parse_k(k).unwrap_or_else(|e| invalid_param(F, e));
    let opts = SearchOptions::parse(options.as_ref().map(|j| &j.0))
        .unwrap_or_else(|e| invalid_param(F, e));
    let pool = opts.pool(k);
    // qortex's statements have the same best plan whatever their values (an estimate that
    // needs the values asks for its own): planning each call anew cost more than the rest.
    // No JIT: a plan with sequential scans switched off costs more than jit_above_cost and
    // would be compiled for ~100 ms, for statements that take well under one.
    let trace = crate::spi::Trace::start(settings::DEBUG_PLANS.get());
    let generic = settings::ForCall::new();
    generic.set("jit", "off");
    let rows: Vec<Row> = Spi::connect(|client| {
        let t = catalog::layout(client, F, &name);
        // (Citus plans a multi-shard statement only with its parameters' values)
        if !crate::citus::is_citus_table(t.source)
            && !crate::citus::is_state_table(c"interoception_factors")
        {
            generic.set("plan_cache_mode", "force_generic_plan");
        }
        let scope = Scope::new(F, &t, &opts);
        let mut explain = Vec::new();
        let vector = match query_embedding {
            None => Vec::new(),
            Some(bytes) => {
                let dims = bytes
                    .get(..2)
                    .map(|d| i16::from_ne_bytes([d[0], d[1]]) as i32)
                    .unwrap_or(-1);
                if dims != t.dims {
                    data_error(format!(
                        "{F}: query_embedding has {dims} dimensions; collection \"{name}\" has {}",
                        t.dims
                    ));
                }
                // (pgvector's header: dimensions, unused, then float4s)
                let zero = bytes[4..]
                    .chunks_exact(4)
                    .all(|f| f32::from_ne_bytes([f[0], f[1], f[2], f[3]]) == 0.0);
                if zero && t.distance == Distance::Cosine {
                    invalid_param(
                        F,
                        ParamError::new(
                            "query_embedding",
                            "is all zeros: its cosine similarity to any row is undefined",
                        ),
                    );
                }
                let started = Instant::now();
                let (hits, how) =
                    vector_leg::run(client, F, &t, &scope, bytes, &opts, pool, k + opts.offset);
                explain.push(format!("vector leg ({}): {how}", ms(started)));
                hits
            }
        };
        let need = text::rows_needed(vector.len(), k + opts.offset);
        let text = match &query_text {
            None => Vec::new(),
            Some(q) => {
                let started = Instant::now();
                let (hits, how) = text_leg::run(client, F, &t, &scope, q, &opts, pool, need);
                explain.push(format!("text leg ({}): {how}", ms(started)));
                hits
            }
        };
        let ids: Vec<String> = vector
            .iter()
            .chain(&text)
            .map(|h| h.id.as_str())
            .collect::<HashSet<_>>()
            .into_iter()
            .map(str::to_owned)
            .collect();
        // (a search before any feedback was written runs no factors statement)
        let weigh = opts.feedback && rows::may_have_factors();
        if opts.feedback && !weigh {
            explain.push("factors: none written yet, not read".into());
        }
        let factors = if weigh && !ids.is_empty() {
            rows::factors(client, F, &ids)
        } else {
            HashMap::new()
        };
        let mut fused = fuse(&vector, &text, &opts, &factors);
        if let Some(weight) = opts.graph {
            let seeds: Vec<String> = fused.iter().take(pool).map(|f| f.id.clone()).collect();
            let mut edges = rows::edges(client, F, &seeds);
            let known: HashSet<String> = fused.iter().map(|f| f.id.clone()).collect();
            // A neighbour that is not yet a result joins only if it is a row of this
            // collection that the filter and user scope admit.
            let new: Vec<String> = edges
                .iter()
                .map(|(_, neighbour, _)| neighbour)
                .filter(|n| !known.contains(*n) && castable_id(&t.id_typname, n))
                .cloned()
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            let admitted = rows::in_scope(client, &t, &scope, &new);
            edges.retain(|(_, n, _)| known.contains(n) || admitted.contains(n));
            let mut factors = factors;
            let unweighed: Vec<String> = admitted
                .into_iter()
                .filter(|n| !factors.contains_key(n))
                .collect();
            if weigh && !unweighed.is_empty() {
                factors.extend(rows::factors(client, F, &unweighed));
            }
            graph_boost(&mut fused, &edges, weight, pool, &factors);
        }
        let page: Vec<_> = fused.into_iter().skip(opts.offset).take(k).collect();
        if page.is_empty() && opts.offset == 0 {
            unknown_keys(client, &t, &scope);
        }
        // Similarities the vector leg left unread (it read ranks only) are read for the page.
        let unread = page
            .iter()
            .any(|f| f.vector_similarity.is_some_and(f64::is_nan));
        let details = rows::details(
            client,
            F,
            &t,
            &page.iter().map(|f| f.id.clone()).collect::<Vec<_>>(),
            query_embedding.filter(|_| unread),
        );
        if let Some(trace) = trace {
            let statements = trace.take();
            explain.push(format!("statements ({}):", statements.len()));
            explain.extend(statements.into_iter().map(|s| format!("  {s}")));
            error(
                PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION,
                format!("{F}: plan"),
            )
            .detail(explain.join("\n"))
            .notice();
        }
        page.into_iter()
            .map(|f| {
                let d = details.get(&f.id).cloned().unwrap_or_default();
                let similarity = f.vector_similarity.map(|s| {
                    if s.is_nan() {
                        d.similarity.unwrap_or(s)
                    } else {
                        s
                    }
                });
                (
                    f.id,
                    d.document_id,
                    d.content,
                    d.metadata,
                    f.score,
                    f.vector_rank,
                    similarity,
                    f.text_rank,
                    f.text_score,
                    f.factor,
                )
            })
            .collect()
    });
    generic.restore();
    counters::count_global(counters::GlobalEvent::Search, 1);
    TableIterator::new(rows)
}
