//! API.md §4: feedback factors that `hybrid_search` multiplies scores by, and an edge
//! buffer that promotes co-retrieved, similar pairs.
use crate::catalog::{self, Layout};
use crate::counters::{self, GlobalEvent};
use crate::errors::{invalid_param, required};
use crate::settings;
use crate::spi::{plan, spi_failed, FLOAT8, INT4, TEXT, TEXT_ARRAY};
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::JsonB;
use qortex_core::interoception::{self as io, FactorRule, Outcome, EDGE_SCORES_KEPT};
use qortex_core::ParamError;
use serde_json::json;
use std::collections::HashMap;

fn rule(func: &str) -> FactorRule {
    let r = FactorRule {
        accepted: settings::FEEDBACK_ACCEPTED.get(),
        rejected: settings::FEEDBACK_REJECTED.get(),
        partial: settings::FEEDBACK_PARTIAL.get(),
        min: settings::FACTOR_MIN.get(),
        max: settings::FACTOR_MAX.get(),
    };
    if r.min > r.max {
        invalid_param(
            func,
            ParamError::new(
                "qortex.factor_min",
                format!("({}) must not exceed qortex.factor_max ({})", r.min, r.max),
            ),
        );
    }
    r
}

type UpdateRow = (String, f64, f64, bool);

/// Apply outcomes to factors: rows are created at 1.0, locked in id order (so concurrent
/// calls never deadlock and never lose an update), changed, and returned in input order.
fn apply(func: &str, pairs: Vec<(String, Outcome)>, query_id: Option<&str>) -> Vec<UpdateRow> {
    let rule = rule(func);
    let mut ids: Vec<String> = pairs.iter().map(|(i, _)| i.clone()).collect();
    ids.sort();
    ids.dedup();
    let rows = Spi::connect_mut(|client| {
        let ins = plan(
            client,
            "INSERT INTO qortex.interoception_factors (node_id)
             SELECT pg_catalog.unnest($1::text[]) ON CONFLICT (node_id) DO NOTHING",
            &[TEXT_ARRAY],
            true,
        );
        client
            .update(&**ins, None, &[ids.clone().into()])
            .unwrap_or_else(spi_failed(func));
        // One row per statement, in id order: each statement then names one node, so on a
        // Citus cluster (factors distributed by node) it goes to one shard.
        let lock = plan(
            client,
            "SELECT weight FROM qortex.interoception_factors WHERE node_id = $1 FOR UPDATE",
            &[TEXT],
            true,
        );
        let mut current: HashMap<String, f64> = HashMap::new();
        for id in &ids {
            let w = client
                .update(&**lock, Some(1), &[id.as_str().into()])
                .unwrap_or_else(spi_failed(func))
                .first()
                .get_one::<f64>()
                .ok()
                .flatten();
            if let Some(w) = w {
                current.insert(id.clone(), w);
            }
        }
        // Per query, what each node was told before (and now is).
        let mut before: HashMap<String, Outcome> = HashMap::new();
        if let Some(q) = query_id {
            // What each node was told before, locked, then the new outcomes: statements of one
            // query (on a Citus cluster, one shard of feedback distributed by query).
            let old = plan(
                client,
                "SELECT node_id, outcome FROM qortex.interoception_feedback
                  WHERE query_id = $1 AND node_id = ANY($2) FOR UPDATE",
                &[TEXT, TEXT_ARRAY],
                true,
            );
            let up = plan(
                client,
                "INSERT INTO qortex.interoception_feedback (query_id, node_id, outcome)
                 SELECT $1, n.node_id, n.outcome
                   FROM ROWS FROM (pg_catalog.unnest($2::text[]), pg_catalog.unnest($3::text[]))
                        AS n(node_id, outcome)
                 ON CONFLICT (query_id, node_id) DO UPDATE
                    SET outcome = excluded.outcome, updated_at = excluded.updated_at",
                &[TEXT, TEXT_ARRAY, TEXT_ARRAY],
                true,
            );
            // One outcome per node and query in one call: the last one given.
            let mut last: HashMap<&str, Outcome> = HashMap::new();
            for (id, o) in &pairs {
                last.insert(id.as_str(), *o);
            }
            let (nodes, outs): (Vec<String>, Vec<String>) = last
                .iter()
                .map(|(i, o)| (i.to_string(), o.name().to_string()))
                .unzip();
            for r in client
                .update(&**old, None, &[q.into(), nodes.clone().into()])
                .unwrap_or_else(spi_failed(func))
            {
                if let (Some(n), Some(o)) = (
                    r.get::<String>(1).ok().flatten(),
                    r.get::<String>(2).ok().flatten(),
                ) {
                    if let Ok(o) = Outcome::parse("outcome", &o) {
                        before.insert(n, o);
                    }
                }
            }
            client
                .update(&**up, None, &[q.into(), nodes.into(), outs.into()])
                .unwrap_or_else(spi_failed(func));
        }
        let mut out = Vec::with_capacity(pairs.len());
        for (id, o) in &pairs {
            let w = current.get(id).copied().unwrap_or(1.0);
            let u = match query_id {
                None => rule.apply(w, *o),
                Some(_) => {
                    let step = rule.step_after(before.get(id).copied(), *o);
                    before.insert(id.clone(), *o);
                    rule.apply_step(w, step)
                }
            };
            current.insert(id.clone(), u.weight);
            out.push((id.clone(), u.weight, u.delta, u.clamped));
        }
        let upd = plan(
            client,
            "UPDATE qortex.interoception_factors SET weight = $2, updated_at = pg_catalog.now()
              WHERE node_id = $1",
            &[TEXT, FLOAT8],
            true,
        );
        for id in &ids {
            client
                .update(&**upd, None, &[id.as_str().into(), current[id].into()])
                .unwrap_or_else(spi_failed(func));
        }
        out
    });
    counters::count_global(GlobalEvent::FactorUpdate, rows.len() as u64);
    rows
}

fn query_id_arg(func: &str, q: Option<String>) -> Option<String> {
    if q.as_deref() == Some("") {
        invalid_param(func, ParamError::new("query_id", "must not be empty"));
    }
    q
}

/// `{"<id>": "accepted" | "rejected" | "partial", ...}`: all valid, or nothing applied.
#[pg_extern(volatile, name = "interoception_update")]
fn interoception_update_map(
    outcomes: Option<crate::jsonb::Jsonb>,
    query_id: default!(Option<String>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(node_id, String),
        name!(weight, f64),
        name!(delta, f64),
        name!(clamped, bool),
    ),
> {
    const F: &str = "interoception_update";
    crate::errors::require_writable(F);
    let query_id = query_id_arg(F, query_id);
    let pairs = io::parse_outcome_map(&required(F, "outcomes", outcomes).0)
        .unwrap_or_else(|e| invalid_param(F, e));
    TableIterator::new(apply(F, pairs, query_id.as_deref()))
}

/// One outcome for many ids.
#[pg_extern(volatile, name = "interoception_update")]
fn interoception_update_ids(
    node_ids: Option<Vec<Option<String>>>,
    outcome: Option<String>,
    query_id: default!(Option<String>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(node_id, String),
        name!(weight, f64),
        name!(delta, f64),
        name!(clamped, bool),
    ),
> {
    const F: &str = "interoception_update";
    crate::errors::require_writable(F);
    let query_id = query_id_arg(F, query_id);
    let o = Outcome::parse("outcome", &required(F, "outcome", outcome))
        .unwrap_or_else(|e| invalid_param(F, e));
    let ids = required(F, "node_ids", node_ids);
    if ids.is_empty() {
        invalid_param(F, ParamError::new("node_ids", "must name at least one id"));
    }
    let pairs = ids
        .into_iter()
        .enumerate()
        .map(|(i, id)| match id {
            Some(id) if !id.is_empty() => (id, o),
            _ => invalid_param(
                F,
                ParamError::new("node_ids", format!("element {} is NULL or empty", i + 1)),
            ),
        })
        .collect();
    TableIterator::new(apply(F, pairs, query_id.as_deref()))
}

/// Pull every weight toward 1.0: `w ← 1 + factor·(w − 1)`; returns the rows changed.
#[pg_extern(volatile)]
fn interoception_decay(factor: Option<f64>) -> i64 {
    const F: &str = "interoception_decay";
    crate::errors::require_writable(F);
    let f = required(F, "factor", factor);
    qortex_core::check_decay_factor(f).unwrap_or_else(|e| invalid_param(F, e));
    Spi::connect_mut(|client| {
        let p = plan(
            client,
            "UPDATE qortex.interoception_factors
                SET weight = 1.0 + $1 * (weight - 1.0), updated_at = pg_catalog.now()
              WHERE weight <> 1.0",
            &[FLOAT8],
            true,
        );
        client
            .update(&**p, None, &[f.into()])
            .unwrap_or_else(spi_failed(F))
            .len() as i64
    })
}

/// Record every pair of the given nodes whose embeddings have cosine ≥ `min_similarity`:
/// once per pair as (least, greatest) id, `hit_count + 1`, the score kept (the last 32).
#[pg_extern(volatile)]
fn interoception_record_edges(
    collection: Option<String>,
    node_ids: Option<Vec<Option<String>>>,
    min_similarity: default!(Option<f64>, 0.7),
) -> i32 {
    const F: &str = "interoception_record_edges";
    crate::errors::require_writable(F);
    let name = required(F, "collection", collection);
    let threshold = required(F, "min_similarity", min_similarity);
    if !(-1.0..=1.0).contains(&threshold) {
        invalid_param(
            F,
            ParamError::new(
                "min_similarity",
                format!("must be a cosine within [-1, 1], got {threshold}"),
            ),
        );
    }
    let mut ids: Vec<String> = required(F, "node_ids", node_ids)
        .into_iter()
        .enumerate()
        .map(|(i, id)| {
            id.unwrap_or_else(|| {
                invalid_param(
                    F,
                    ParamError::new("node_ids", format!("element {} is NULL", i + 1)),
                )
            })
        })
        .collect();
    ids.sort();
    ids.dedup();
    let n = Spi::connect_mut(|client| {
        let t = catalog::layout(client, F, &name);
        check_nodes_exist(client, F, &t, &ids);
        let sql = format!(
            "WITH n AS (SELECT {id}::text COLLATE \"C\" AS id, {emb} AS e FROM {table}
                         WHERE {id} = ANY($1::text[]::{id_type}[])),
                  pairs AS (SELECT a.id AS s, b.id AS t,
                                   1 - (a.e OPERATOR({vs}.<=>) b.e) AS score
                              FROM n a JOIN n b ON a.id < b.id)
             INSERT INTO qortex.interoception_edge_buffer AS x
                    (src_id, tgt_id, hit_count, scores, last_seen)
             SELECT s, t, 1, pg_catalog.jsonb_build_array(score), pg_catalog.now()
               FROM pairs WHERE score >= $2 ORDER BY s, t
             ON CONFLICT (src_id, tgt_id) DO UPDATE
                SET hit_count = x.hit_count + 1,
                    scores = CASE WHEN pg_catalog.jsonb_array_length(x.scores) >= {kept}
                                  THEN (x.scores OPERATOR(pg_catalog.-) 0) || excluded.scores
                                  ELSE x.scores || excluded.scores END,
                    last_seen = excluded.last_seen",
            id = t.id,
            emb = t.embedding,
            table = t.table,
            id_type = t.id_type,
            vs = t.vector_schema,
            kept = EDGE_SCORES_KEPT,
        );
        let p = plan(client, &sql, &[TEXT_ARRAY, FLOAT8], true);
        client
            .update(&**p, None, &[ids.into(), threshold.into()])
            .unwrap_or_else(spi_failed(F))
            .len() as i32
    });
    counters::count_global(GlobalEvent::EdgeHit, n as u64);
    n
}

fn check_nodes_exist(client: &SpiClient<'_>, func: &str, t: &Layout, ids: &[String]) {
    let sql = format!(
        "SELECT pg_catalog.array_agg(i) FROM pg_catalog.unnest($1::text[]) i
          WHERE NOT EXISTS (SELECT 1 FROM {table} WHERE {id}::text = i)",
        table = t.table,
        id = t.id
    );
    let p = plan(client, &sql, &[TEXT_ARRAY], false);
    let missing: Option<Vec<Option<String>>> = client
        .select(&**p, Some(1), &[ids.to_vec().into()])
        .unwrap_or_else(spi_failed(func))
        .next()
        .and_then(|r| r.get(1).ok().flatten());
    if let Some(m) = missing.filter(|m| !m.is_empty()) {
        let m: Vec<String> = m.into_iter().flatten().collect();
        invalid_param(
            func,
            ParamError::new(
                "node_ids",
                format!("not in collection \"{}\": {}", t.name, m.join(", ")),
            ),
        );
    }
}

/// Move buffered pairs with enough hits and a high enough average score to
/// `qortex.interoception_edges`, in one statement.
#[pg_extern(volatile)]
fn interoception_flush(
    min_hits: default!(Option<i32>, 3),
    min_avg_score: default!(Option<f64>, 0.75),
) -> TableIterator<
    'static,
    (
        name!(src_id, String),
        name!(tgt_id, String),
        name!(hits, i32),
        name!(avg_score, f64),
    ),
> {
    const F: &str = "interoception_flush";
    crate::errors::require_writable(F);
    let min_hits = required(F, "min_hits", min_hits);
    let min_avg = required(F, "min_avg_score", min_avg_score);
    if min_hits < 1 {
        invalid_param(
            F,
            ParamError::new("min_hits", format!("must be >= 1, got {min_hits}")),
        );
    }
    if !min_avg.is_finite() {
        invalid_param(
            F,
            ParamError::new("min_avg_score", "must be a finite number"),
        );
    }
    let rows: Vec<(String, String, i32, f64)> = Spi::connect_mut(|client| {
        let p = plan(
            client,
            "WITH moved AS (
                 DELETE FROM qortex.interoception_edge_buffer b
                  WHERE b.hit_count >= $1
                    AND (SELECT pg_catalog.avg(s::float8)
                           FROM pg_catalog.jsonb_array_elements_text(b.scores) s) >= $2
                 RETURNING b.src_id, b.tgt_id, b.hit_count,
                           (SELECT pg_catalog.avg(s::float8)
                              FROM pg_catalog.jsonb_array_elements_text(b.scores) s) AS avg),
             promoted AS (
                 INSERT INTO qortex.interoception_edges AS e
                        (src_id, tgt_id, relation, confidence, hit_count)
                 SELECT src_id, tgt_id, 'SIMILAR_TO', avg, hit_count FROM moved
                 ON CONFLICT (src_id, tgt_id, relation) DO UPDATE
                    SET confidence = excluded.confidence,
                        hit_count = e.hit_count + excluded.hit_count,
                        promoted_at = pg_catalog.now())
             SELECT src_id, tgt_id, hit_count, avg FROM moved ORDER BY 1, 2",
            &[INT4, FLOAT8],
            true,
        );
        client
            .update(&**p, None, &[min_hits.into(), min_avg.into()])
            .unwrap_or_else(spi_failed(F))
            .filter_map(|r| {
                Some((
                    r.get::<String>(1).ok()??,
                    r.get::<String>(2).ok()??,
                    r.get::<i32>(3).ok()??,
                    r.get::<f64>(4).ok()??,
                ))
            })
            .collect()
    });
    counters::count_global(GlobalEvent::Promotion, rows.len() as u64);
    TableIterator::new(rows)
}

/// Factors and buffer at a glance (API.md §4).
#[pg_extern(stable)]
fn interoception_summary() -> JsonB {
    JsonB(summary("interoception_summary"))
}

pub fn summary(func: &str) -> serde_json::Value {
    Spi::connect(|client| {
        let weights: Vec<f64> = client
            .select("SELECT weight FROM qortex.interoception_factors", None, &[])
            .unwrap_or_else(spi_failed(func))
            .filter_map(|r| r.get::<f64>(1).ok().flatten())
            .collect();
        let n = weights.len();
        let mean = if n > 0 {
            weights.iter().sum::<f64>() / n as f64
        } else {
            0.0
        };
        let min = weights.iter().copied().fold(f64::INFINITY, f64::min);
        let max = weights.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let buffer = client
            .select(
                "SELECT pg_catalog.jsonb_build_object(
                     'buffered_edges', pg_catalog.count(*),
                     'total_promoted', (SELECT pg_catalog.count(*) FROM qortex.interoception_edges),
                     'max_hits', COALESCE(pg_catalog.max(hit_count), 0),
                     'avg_hits', COALESCE(pg_catalog.avg(hit_count), 0)::float8,
                     'ready_to_promote', pg_catalog.count(*) FILTER (WHERE hit_count >= 3 AND
                         (SELECT pg_catalog.avg(s::float8)
                            FROM pg_catalog.jsonb_array_elements_text(scores) s) >= 0.75))
                   FROM qortex.interoception_edge_buffer",
                Some(1),
                &[],
            )
            .unwrap_or_else(spi_failed(func))
            .next()
            .and_then(|r| r.get::<JsonB>(1).ok().flatten())
            .map(|j| j.0)
            .unwrap_or_default();
        json!({
            "factors": {
                "count": n,
                "mean": mean,
                "min": if n > 0 { json!(min) } else { json!(null) },
                "max": if n > 0 { json!(max) } else { json!(null) },
                "boosted": weights.iter().filter(|w| **w > 1.0).count(),
                "penalized": weights.iter().filter(|w| **w < 1.0).count(),
                "entropy": io::entropy(&weights),
            },
            "buffer": buffer,
        })
    })
}
