//! API.md §1: Thompson-sampling learners whose posteriors live in
//! `qortex.learning_arm_states`. The math is `qortex_core::bandit`; this module reads and
//! writes the state with cached plans and turns bad input into 22023 before anything is
//! written.
use crate::arm_store;
use crate::cache::Cache;
use crate::citus;
use crate::counters::{self, Event};
use crate::errors::{data_error, internal, invalid_param, required};
use crate::spi::{
    plan, spi_failed, BOOL, FLOAT8, FLOAT8_ARRAY, INT4_ARRAY, JSONB, TEXT, TEXT_ARRAY,
};
use pgrx::prelude::*;
use pgrx::spi::{SpiClient, SpiHeapTupleData};
use pgrx::JsonB;
use qortex_core::bandit::{
    self, ArmState, Candidate, DecayToward, LearnerConfig, SelectRequest, DECAY_FLOOR,
};
use qortex_core::context::context_hash;
use qortex_core::ParamError;
use serde_json::Value;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

thread_local! {
    /// The config of each learner this backend has used (see `cache`).
    static CONFIGS: RefCell<Cache<LearnerConfig>> = RefCell::new(Cache::new(CONFIG_CACHE_MAX));
    static BACKEND_RNG: RefCell<bandit::SelectRng> = RefCell::new(bandit::rng_for(None));
}

/// Learners whose config one backend keeps at most; past that the cache starts over.
const CONFIG_CACHE_MAX: usize = 1024;

const CONFIG_SQL: &str = "SELECT (SELECT config FROM qortex.learners WHERE learner_name = $1),
                                 'qortex.learners'::regclass::oid";

/// The learner's config, connecting to SPI only when this backend has no valid copy.
fn config_outside_spi(func: &str, learner: &str) -> LearnerConfig {
    CONFIGS
        .with(|c| c.borrow_mut().get(learner))
        .unwrap_or_else(|| Spi::connect(|client| load_config(client, func, learner)))
}

fn load_config(client: &SpiClient<'_>, func: &str, learner: &str) -> LearnerConfig {
    // a Citus table's writes do not fire the trigger that keeps the cache fresh
    if citus::is_state_table(c"learners") {
        return read_config(client, func, learner).0;
    }
    CONFIGS.with(|c| {
        let mut cache = c.borrow_mut();
        if let Some(config) = cache.get(learner) {
            return config;
        }
        cache.fill(learner, || read_config(client, func, learner))
    })
}

/// A learner's configuration and the table it was read from.
fn read_config(
    client: &SpiClient<'_>,
    func: &str,
    learner: &str,
) -> (LearnerConfig, Vec<pg_sys::Oid>) {
    let p = plan(client, CONFIG_SQL, &[TEXT], false);
    let row = client
        .select(&**p, Some(1), &[learner.into()])
        .unwrap_or_else(spi_failed(func))
        .next()
        .unwrap_or_else(|| internal(func, "the learner config query returned no row"));
    let config = match row.get::<JsonB>(1).ok().flatten() {
        None => LearnerConfig::default(),
        Some(JsonB(v)) => LearnerConfig::default().merged(&v).unwrap_or_else(|e| {
            data_error(format!(
                "{func}: the stored config of learner \"{learner}\" is invalid: {e}"
            ))
        }),
    };
    let rel = row.get::<pg_sys::Oid>(2).ok().flatten();
    (config, rel.into_iter().collect())
}

/// `(alpha, beta, pulls)` of each arm through SQL (where `arm_store` cannot read the heap).
fn stored_by_sql(
    func: &str,
    learner: &str,
    ctx: &str,
    arms: &[String],
) -> Vec<Option<(f64, f64, i32)>> {
    let found: HashMap<String, (f64, f64, i32)> = Spi::connect(|client| {
        let p = plan(
            client,
            "SELECT arm_id, alpha, beta, pulls FROM qortex.learning_arm_states
              WHERE learner_name = $1 AND context_hash = $2 AND arm_id = ANY($3)",
            &[TEXT, TEXT, TEXT_ARRAY],
            false,
        );
        client
            .select(
                &**p,
                None,
                &[learner.into(), ctx.into(), arms.to_vec().into()],
            )
            .unwrap_or_else(spi_failed(func))
            .filter_map(|r| {
                Some((
                    r.get::<String>(1).ok()??,
                    (
                        r.get::<f64>(2).ok()??,
                        r.get::<f64>(3).ok()??,
                        r.get::<i32>(4).ok()??,
                    ),
                ))
            })
            .collect()
    });
    arms.iter().map(|a| found.get(a).copied()).collect()
}

/// The context hash of a context argument; it must be a JSON object (or NULL).
fn hash_arg(func: &str, arg: &str, ctx: Option<&Value>) -> String {
    match ctx {
        None | Some(Value::Null) | Some(Value::Object(_)) => context_hash(ctx),
        Some(other) => invalid_param(
            func,
            ParamError::new(arg, format!("must be a JSON object, got {other}")),
        ),
    }
}

/// A text[] argument's elements; a NULL element is 22023 naming its position.
fn text_elements(func: &str, arg: &str, v: Vec<Option<String>>) -> Vec<String> {
    v.into_iter()
        .enumerate()
        .map(|(i, a)| {
            a.unwrap_or_else(|| {
                invalid_param(
                    func,
                    ParamError::new(arg, format!("element {} is NULL", i + 1)),
                )
            })
        })
        .collect()
}

fn learner_arg(func: &str, learner: Option<String>) -> String {
    let l = required(func, "learner", learner);
    if l.is_empty() {
        invalid_param(func, ParamError::new("learner", "must not be empty"));
    }
    l
}

/// An `(alpha, beta, pulls, total_reward)` result row.
fn arm_state(row: &SpiHeapTupleData<'_>) -> ArmState {
    ArmState {
        alpha: row.get::<f64>(1).ok().flatten().unwrap_or_default(),
        beta: row.get::<f64>(2).ok().flatten().unwrap_or_default(),
        pulls: row.get::<i32>(3).ok().flatten().unwrap_or_default(),
        total_reward: row.get::<f64>(4).ok().flatten().unwrap_or_default(),
    }
}

fn state_row(s: ArmState) -> (f64, f64, i32, f64, f64) {
    (s.alpha, s.beta, s.pulls, s.total_reward, s.mean())
}

/// Set (merge) a learner's configuration and return the effective one.
#[pg_extern(volatile)]
fn qortex_learner_configure(learner: Option<String>, config: Option<crate::jsonb::Jsonb>) -> JsonB {
    const F: &str = "qortex_learner_configure";
    crate::errors::require_writable(F);
    let learner = learner_arg(F, learner);
    let patch = config.map(|j| j.0).unwrap_or(Value::Null);
    Spi::connect_mut(|client| {
        let current = load_config(client, F, &learner);
        let merged = current
            .merged(&patch)
            .unwrap_or_else(|e| invalid_param(F, e));
        let json = merged.to_json();
        let p = plan(
            client,
            "INSERT INTO qortex.learners (learner_name, config) VALUES ($1, $2)
             ON CONFLICT (learner_name) DO UPDATE
                SET config = excluded.config, updated_at = excluded.updated_at",
            &[TEXT, JSONB],
            true,
        );
        client
            .update(
                &**p,
                None,
                &[learner.as_str().into(), JsonB(json.clone()).into()],
            )
            .unwrap_or_else(spi_failed(F));
        JsonB(json)
    })
}

/// The stored `context_hash` of a context: `'default'` for NULL or `{}`.
#[pg_extern(immutable, parallel_safe)]
fn qortex_context_hash(context: Option<crate::jsonb::Jsonb>) -> String {
    hash_arg(
        "qortex_context_hash",
        "context",
        context.as_ref().map(|j| &j.0),
    )
}

/// Thompson sampling over the candidate arms, best first. Writes nothing.
#[allow(clippy::type_complexity)]
#[pg_extern(
    requires = ["learning_result_types"],
    sql = r#"
CREATE FUNCTION qortex_select_arms(
    learner TEXT, arms TEXT[], context jsonb DEFAULT NULL, k INT DEFAULT 1,
    token_costs INT[] DEFAULT NULL, token_budget INT DEFAULT NULL, seed bigint DEFAULT NULL
) RETURNS SETOF qortex.arm_pick
VOLATILE PARALLEL SAFE ROWS 10
LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
"#
)]
fn qortex_select_arms(
    learner: Option<String>,
    arms: Option<Vec<Option<String>>>,
    context: default!(Option<crate::jsonb::Jsonb>, "NULL"),
    k: default!(Option<i32>, 1),
    token_costs: default!(Option<Vec<Option<i32>>>, "NULL"),
    token_budget: default!(Option<i32>, "NULL"),
    seed: default!(Option<i64>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(arm_id, String),
        name!(rank, i32),
        name!(score, f64),
        name!(explored, bool),
        name!(alpha, f64),
        name!(beta, f64),
        name!(pulls, i32),
    ),
> {
    const F: &str = "qortex_select_arms";
    let learner = learner_arg(F, learner);
    let arms = text_elements(F, "arms", required(F, "arms", arms));
    let mut seen = HashMap::with_capacity(arms.len());
    for (i, a) in arms.iter().enumerate() {
        if let Some(j) = seen.insert(a.as_str(), i) {
            invalid_param(
                F,
                ParamError::new(
                    "arms",
                    format!(
                        "duplicate arm id \"{a}\" at positions {} and {}",
                        j + 1,
                        i + 1
                    ),
                ),
            );
        }
    }
    let k = match k {
        None | Some(0) => None,
        Some(n) if n < 0 => invalid_param(
            F,
            ParamError::new("k", format!("must be >= 0 (0 or NULL: all), got {n}")),
        ),
        Some(n) => Some(n as usize),
    };
    let costs: Vec<i64> = match token_costs {
        None => vec![0; arms.len()],
        Some(c) => {
            if c.len() != arms.len() {
                invalid_param(
                    F,
                    ParamError::new(
                        "token_costs",
                        format!("has {} elements but arms has {}", c.len(), arms.len()),
                    ),
                );
            }
            c.into_iter()
                .enumerate()
                .map(|(i, c)| match c {
                    Some(c) if c >= 0 => c as i64,
                    other => invalid_param(
                        F,
                        ParamError::new(
                            "token_costs",
                            format!("element {} must be >= 0, got {other:?}", i + 1),
                        ),
                    ),
                })
                .collect()
        }
    };
    if let Some(b) = token_budget {
        if b < 0 {
            invalid_param(
                F,
                ParamError::new("token_budget", format!("must be >= 0, got {b}")),
            );
        }
    }
    let ctx = hash_arg(F, "context", context.as_ref().map(|j| &j.0));

    let config = config_outside_spi(F, &learner);
    let stored = arm_store::stored_states(&learner, &ctx, &arms)
        .unwrap_or_else(|| stored_by_sql(F, &learner, &ctx, &arms));

    let candidates: Vec<Candidate> = arms
        .iter()
        .zip(&costs)
        .zip(stored)
        .map(|((a, &token_cost), stored)| {
            let (alpha, beta, pulls) = stored.unwrap_or_else(|| {
                let s = config.initial_state(a, &ctx);
                (s.alpha, s.beta, s.pulls)
            });
            Candidate {
                alpha,
                beta,
                pulls,
                token_cost,
            }
        })
        .collect();
    let req = SelectRequest {
        k,
        token_budget: token_budget.map(i64::from),
        baseline_rate: config.baseline_rate,
        min_pulls: config.min_pulls,
    };
    let picks = match seed {
        Some(_) => bandit::select(&candidates, &req, &mut bandit::rng_for(seed)),
        // Unseeded calls share one generator per backend, seeded from the OS on first use.
        None => BACKEND_RNG.with(|r| bandit::select(&candidates, &req, &mut *r.borrow_mut())),
    }
    .unwrap_or_else(|bad| {
        data_error(format!(
            "{F}: learner \"{learner}\" has an arm with an invalid posterior ({bad})"
        ))
    });
    counters::count(&learner, Event::Selection, 1);
    let rows: Vec<_> = picks
        .into_iter()
        .enumerate()
        .map(|(rank, p)| {
            let c = candidates[p.index];
            (
                arms[p.index].clone(),
                rank as i32 + 1,
                p.score,
                p.explored,
                c.alpha,
                c.beta,
                c.pulls,
            )
        })
        .collect();
    TableIterator::new(rows)
}

// (`excluded.last_updated`, not `now()` again: the same instant, and Citus takes no
// non-immutable function in DO UPDATE on a distributed table)
const OBSERVE_SQL: &str = "
INSERT INTO qortex.learning_arm_states AS s
       (learner_name, context_hash, arm_id, alpha, beta, pulls, total_reward, last_updated)
VALUES ($1, $2, $3, $4 + $6, $5 + (1 - $6), 1, $6, pg_catalog.now())
ON CONFLICT (learner_name, context_hash, arm_id) DO UPDATE
   SET alpha = s.alpha + $6, beta = s.beta + (1 - $6), pulls = s.pulls + 1,
       total_reward = s.total_reward + $6, last_updated = excluded.last_updated
RETURNING alpha, beta, pulls, total_reward";

/// Record one outcome, atomically in the database.
#[pg_extern(
    requires = ["learning_result_types"],
    sql = r#"
CREATE FUNCTION qortex_observe(
    learner TEXT, arm_id TEXT, outcome TEXT DEFAULT NULL,
    reward double precision DEFAULT NULL, context jsonb DEFAULT NULL
) RETURNS SETOF qortex.arm_posterior
VOLATILE ROWS 1
LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
"#
)]
fn qortex_observe(
    learner: Option<String>,
    arm_id: Option<String>,
    outcome: default!(Option<String>, "NULL"),
    reward: default!(Option<f64>, "NULL"),
    context: default!(Option<crate::jsonb::Jsonb>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(alpha, f64),
        name!(beta, f64),
        name!(pulls, i32),
        name!(total_reward, f64),
        name!(mean, f64),
    ),
> {
    const F: &str = "qortex_observe";
    crate::errors::require_writable(F);
    let learner = learner_arg(F, learner);
    let arm_id = required(F, "arm_id", arm_id);
    let ctx = hash_arg(F, "context", context.as_ref().map(|j| &j.0));
    let config = config_outside_spi(F, &learner);
    let r = config
        .reward(outcome.as_deref(), reward)
        .unwrap_or_else(|e| invalid_param(F, e));
    // An arm with a row is updated in place; a first outcome (or a case the direct path
    // leaves to SQL) goes through the upsert.
    let direct = arm_store::update_in_place(&learner, &ctx, &arm_id, r).map(
        |(alpha, beta, pulls, total_reward)| ArmState {
            alpha,
            beta,
            pulls,
            total_reward,
        },
    );
    let state = direct.unwrap_or_else(|| {
        Spi::connect_mut(|client| {
            let init = config.initial_state(&arm_id, &ctx);
            let p = plan(
                client,
                OBSERVE_SQL,
                &[TEXT, TEXT, TEXT, FLOAT8, FLOAT8, FLOAT8],
                true,
            );
            client
                .update(
                    &**p,
                    Some(1),
                    &[
                        learner.as_str().into(),
                        ctx.as_str().into(),
                        arm_id.as_str().into(),
                        init.alpha.into(),
                        init.beta.into(),
                        r.into(),
                    ],
                )
                .unwrap_or_else(spi_failed(F))
                .map(|row| arm_state(&row))
                .next()
                .unwrap_or_else(|| internal(F, "the upsert returned no row"))
        })
    });
    counters::count(&learner, Event::Observation, 1);
    TableIterator::once(state_row(state))
}

const OBSERVE_BATCH_SQL: &str = "
INSERT INTO qortex.learning_arm_states AS s
       (learner_name, context_hash, arm_id, alpha, beta, pulls, total_reward, last_updated)
SELECT $1, u.h, u.a, u.pa + u.r, u.pb + (u.n - u.r), u.n, u.r, pg_catalog.now()
  FROM ROWS FROM (pg_catalog.unnest($2::text[]), pg_catalog.unnest($3::text[]),
                  pg_catalog.unnest($4::float8[]), pg_catalog.unnest($5::int4[]),
                  pg_catalog.unnest($6::float8[]), pg_catalog.unnest($7::float8[]))
       AS u(h, a, r, n, pa, pb)
 ORDER BY u.h COLLATE \"C\", u.a COLLATE \"C\"
ON CONFLICT (learner_name, context_hash, arm_id) DO UPDATE
   SET alpha = s.alpha + excluded.total_reward,
       beta = s.beta + (excluded.pulls - excluded.total_reward),
       pulls = s.pulls + excluded.pulls,
       total_reward = s.total_reward + excluded.total_reward,
       last_updated = excluded.last_updated";

/// Apply many outcomes in one statement: all of them or, if one is invalid, none.
/// Rows are locked in (context_hash, arm_id) order, so concurrent batches never deadlock.
#[pg_extern(volatile)]
fn qortex_observe_batch(learner: Option<String>, outcomes: Option<crate::jsonb::Jsonb>) -> i32 {
    const F: &str = "qortex_observe_batch";
    crate::errors::require_writable(F);
    let learner = learner_arg(F, learner);
    let items = match required(F, "outcomes", outcomes).0 {
        Value::Array(a) => a,
        other => invalid_param(
            F,
            ParamError::new(
                "outcomes",
                format!("must be a JSON array of objects, got {other}"),
            ),
        ),
    };
    Spi::connect_mut(|client| {
        let config = load_config(client, F, &learner);
        // (context_hash, arm_id) -> (reward sum, count); BTreeMap gives the lock order too.
        let mut sums: BTreeMap<(String, String), (f64, i32)> = BTreeMap::new();
        for (i, item) in items.iter().enumerate() {
            fn at(i: usize, e: ParamError) -> ! {
                invalid_param(
                    F,
                    ParamError::new(format!("outcomes[{i}].{}", e.arg), e.message),
                )
            }
            let obj = item.as_object().unwrap_or_else(|| {
                invalid_param(
                    F,
                    ParamError::new(format!("outcomes[{i}]"), "must be an object"),
                )
            });
            for key in obj.keys() {
                if !["arm_id", "outcome", "reward", "context"].contains(&key.as_str()) {
                    at(
                        i,
                        ParamError::new(
                            key.clone(),
                            "unknown key (allowed: arm_id, outcome, reward, context)",
                        ),
                    );
                }
            }
            let arm = match obj.get("arm_id") {
                Some(Value::String(s)) => s.clone(),
                other => at(
                    i,
                    ParamError::new("arm_id", format!("must be text, got {other:?}")),
                ),
            };
            let outcome = match obj.get("outcome") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.as_str()),
                Some(other) => at(
                    i,
                    ParamError::new("outcome", format!("must be text, got {other}")),
                ),
            };
            let reward = match obj.get("reward") {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.as_f64().unwrap_or_else(|| {
                    at(
                        i,
                        ParamError::new("reward", format!("must be a number, got {v}")),
                    )
                })),
            };
            let r = config.reward(outcome, reward).unwrap_or_else(|e| at(i, e));
            let ctx = hash_arg(F, &format!("outcomes[{i}].context"), obj.get("context"));
            let e = sums.entry((ctx, arm)).or_insert((0.0, 0));
            e.0 += r;
            e.1 += 1;
        }
        if sums.is_empty() {
            return 0;
        }
        let n = sums.len();
        let (mut hs, mut arms, mut rs, mut ns, mut pas, mut pbs) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for ((h, a), (r, c)) in sums {
            let init = config.initial_state(&a, &h);
            hs.push(h);
            arms.push(a);
            rs.push(r);
            ns.push(c);
            pas.push(init.alpha);
            pbs.push(init.beta);
        }
        let p = plan(
            client,
            OBSERVE_BATCH_SQL,
            &[
                TEXT,
                TEXT_ARRAY,
                TEXT_ARRAY,
                FLOAT8_ARRAY,
                INT4_ARRAY,
                FLOAT8_ARRAY,
                FLOAT8_ARRAY,
            ],
            true,
        );
        client
            .update(
                &**p,
                None,
                &[
                    learner.as_str().into(),
                    hs.into(),
                    arms.into(),
                    rs.into(),
                    ns.into(),
                    pas.into(),
                    pbs.into(),
                ],
            )
            .unwrap_or_else(spi_failed(F));
        counters::count(&learner, Event::Observation, items.len() as u64);
        items.len() as i32
    })
}

/// `(arm_id, alpha, beta, pulls, total_reward, mean, last_updated)`.
type PosteriorRow = (
    String,
    f64,
    f64,
    i32,
    f64,
    f64,
    Option<pgrx::datum::TimestampWithTimeZone>,
);

/// Posterior rows of a learner in one context (NULL: the default context).
fn posteriors(func: &str, learner: &str, ctx: &str) -> Vec<PosteriorRow> {
    Spi::connect(|client| {
        let p = plan(
            client,
            "SELECT arm_id, alpha, beta, pulls, total_reward, alpha / (alpha + beta), last_updated
               FROM qortex.learning_arm_states
              WHERE learner_name = $1 AND context_hash = $2
              ORDER BY alpha / (alpha + beta) DESC, arm_id",
            &[TEXT, TEXT],
            false,
        );
        client
            .select(&**p, None, &[learner.into(), ctx.into()])
            .unwrap_or_else(spi_failed(func))
            .map(|row| {
                (
                    row.get::<String>(1).ok().flatten().unwrap_or_default(),
                    row.get::<f64>(2).ok().flatten().unwrap_or_default(),
                    row.get::<f64>(3).ok().flatten().unwrap_or_default(),
                    row.get::<i32>(4).ok().flatten().unwrap_or_default(),
                    row.get::<f64>(5).ok().flatten().unwrap_or_default(),
                    row.get::<f64>(6).ok().flatten().unwrap_or_default(),
                    row.get::<pgrx::datum::TimestampWithTimeZone>(7)
                        .ok()
                        .flatten(),
                )
            })
            .collect()
    })
}

/// The arms with the highest posterior mean.
#[allow(clippy::type_complexity)]
#[pg_extern(stable, parallel_safe)]
fn qortex_top_arms(
    learner: Option<String>,
    k: default!(Option<i32>, 10),
    context: default!(Option<crate::jsonb::Jsonb>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(arm_id, String),
        name!(mean, f64),
        name!(alpha, f64),
        name!(beta, f64),
        name!(pulls, i32),
        name!(total_reward, f64),
    ),
> {
    const F: &str = "qortex_top_arms";
    let learner = learner_arg(F, learner);
    let k = match k {
        None => usize::MAX,
        Some(n) if n < 0 => {
            invalid_param(F, ParamError::new("k", format!("must be >= 0, got {n}")))
        }
        Some(n) => n as usize,
    };
    let ctx = hash_arg(F, "context", context.as_ref().map(|j| &j.0));
    TableIterator::new(
        posteriors(F, &learner, &ctx)
            .into_iter()
            .take(k)
            .map(|(id, a, b, p, t, m, _)| (id, m, a, b, p, t)),
    )
}

/// Every arm's posterior in one context, best mean first.
#[allow(clippy::type_complexity)]
#[pg_extern(stable, parallel_safe)]
fn qortex_posteriors(
    learner: Option<String>,
    context: default!(Option<crate::jsonb::Jsonb>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(arm_id, String),
        name!(alpha, f64),
        name!(beta, f64),
        name!(pulls, i32),
        name!(total_reward, f64),
        name!(mean, f64),
        name!(last_updated, Option<pgrx::datum::TimestampWithTimeZone>),
    ),
> {
    const F: &str = "qortex_posteriors";
    let learner = learner_arg(F, learner);
    let ctx = hash_arg(F, "context", context.as_ref().map(|j| &j.0));
    TableIterator::new(posteriors(F, &learner, &ctx))
}

/// Totals of a learner over all its contexts, and its effective config.
#[pg_extern(stable, parallel_safe)]
fn qortex_metrics(learner: Option<String>) -> JsonB {
    const F: &str = "qortex_metrics";
    let learner = learner_arg(F, learner);
    Spi::connect(|client| {
        let config = load_config(client, F, &learner);
        let p = plan(
            client,
            "SELECT pg_catalog.jsonb_build_object(
                      'total_pulls', COALESCE(pg_catalog.sum(pulls), 0),
                      'total_reward', COALESCE(pg_catalog.sum(total_reward), 0),
                      'arm_count', pg_catalog.count(DISTINCT arm_id),
                      'contexts', pg_catalog.count(DISTINCT context_hash),
                      'rows', pg_catalog.count(*),
                      'last_updated', pg_catalog.max(last_updated))
               FROM qortex.learning_arm_states WHERE learner_name = $1",
            &[TEXT],
            false,
        );
        let JsonB(mut m) = client
            .select(&**p, Some(1), &[learner.as_str().into()])
            .and_then(|t| t.first().get_one::<JsonB>())
            .unwrap_or_else(spi_failed(F))
            .unwrap_or_else(|| internal(F, "the metrics query returned no row"));
        let pulls = m["total_pulls"].as_f64().unwrap_or(0.0);
        let reward = m["total_reward"].as_f64().unwrap_or(0.0);
        let obj = m
            .as_object_mut()
            .expect("jsonb_build_object returns an object");
        obj.insert("learner".into(), Value::String(learner.clone()));
        obj.insert(
            "accuracy".into(),
            if pulls > 0.0 {
                serde_json::json!(reward / pulls)
            } else {
                Value::Null
            },
        );
        obj.insert("config".into(), config.to_json());
        // Calls counted in shared memory since the server started (NULL without the
        // preload); they include calls whose transaction later rolled back.
        let counts = counters::learner(&learner);
        obj.insert(
            "selections".into(),
            counts.map_or(Value::Null, |c| c.selections.into()),
        );
        obj.insert(
            "observations".into(),
            counts.map_or(Value::Null, |c| c.observations.into()),
        );
        JsonB(m)
    })
}

const DECAY_SQL: &str = "
UPDATE qortex.learning_arm_states s
   SET alpha = CASE WHEN $9 THEN GREATEST($4 * s.alpha, $10)
                    ELSE p.a + $4 * (s.alpha - p.a) END,
       beta = CASE WHEN $9 THEN GREATEST($4 * s.beta, $10)
                   ELSE $6 + $4 * (s.beta - $6) END,
       total_reward = $4 * s.total_reward,
       last_updated = pg_catalog.now()
  FROM (SELECT l.learner_name, l.context_hash, l.arm_id,
               CASE WHEN l.context_hash = 'default' AND l.arm_id = ANY($7)
                    THEN $8::float8 ELSE $5::float8 END AS a
          FROM qortex.learning_arm_states l
         WHERE l.learner_name = $1
           AND ($2::text IS NULL OR l.context_hash = $2)
           AND ($3::text IS NULL OR l.arm_id = $3)) AS p
 WHERE s.learner_name = p.learner_name AND s.context_hash = p.context_hash
   AND s.arm_id = p.arm_id
RETURNING s.alpha, s.beta, s.pulls, s.total_reward";

/// Decay the matching rows as `ArmState::decay` (toward each arm's starting point, or
/// toward zero); returns the new states.
fn decay(
    func: &str,
    learner: &str,
    ctx: Option<&str>,
    arm: Option<&str>,
    f: f64,
    toward: Option<String>,
) -> Vec<ArmState> {
    qortex_core::check_decay_factor(f).unwrap_or_else(|e| invalid_param(func, e));
    let toward = DecayToward::parse(&required(func, "toward", toward))
        .unwrap_or_else(|e| invalid_param(func, e));
    Spi::connect_mut(|client| {
        let c = load_config(client, func, learner);
        let p = plan(
            client,
            DECAY_SQL,
            &[
                TEXT, TEXT, TEXT, FLOAT8, FLOAT8, FLOAT8, TEXT_ARRAY, FLOAT8, BOOL, FLOAT8,
            ],
            true,
        );
        client
            .update(
                &**p,
                None,
                &[
                    learner.into(),
                    ctx.into(),
                    arm.into(),
                    f.into(),
                    c.prior_alpha.into(),
                    c.prior_beta.into(),
                    c.seed_arms.clone().into(),
                    c.seed_boost.into(),
                    (toward == DecayToward::Zero).into(),
                    DECAY_FLOOR.into(),
                ],
            )
            .unwrap_or_else(spi_failed(func))
            .map(|row| arm_state(&row))
            .collect()
    })
}

/// Shrink one arm's evidence toward its prior (or, `toward => 'zero'`, scale it as the
/// Python package does); no row if the arm has no stored state.
#[pg_extern(volatile)]
fn qortex_decay_arm(
    learner: Option<String>,
    arm_id: Option<String>,
    factor: default!(Option<f64>, 0.9),
    context: default!(Option<crate::jsonb::Jsonb>, "NULL"),
    toward: default!(Option<String>, "'prior'"),
) -> TableIterator<
    'static,
    (
        name!(alpha, f64),
        name!(beta, f64),
        name!(pulls, i32),
        name!(total_reward, f64),
        name!(mean, f64),
    ),
> {
    const F: &str = "qortex_decay_arm";
    crate::errors::require_writable(F);
    let learner = learner_arg(F, learner);
    let arm_id = required(F, "arm_id", arm_id);
    let factor = required(F, "factor", factor);
    let ctx = hash_arg(F, "context", context.as_ref().map(|j| &j.0));
    TableIterator::new(
        decay(F, &learner, Some(&ctx), Some(&arm_id), factor, toward)
            .into_iter()
            .map(state_row),
    )
}

/// Decay every arm of a learner (NULL context: in all contexts); returns the rows changed.
#[pg_extern(volatile)]
fn qortex_decay_learner(
    learner: Option<String>,
    factor: Option<f64>,
    context: default!(Option<crate::jsonb::Jsonb>, "NULL"),
    toward: default!(Option<String>, "'prior'"),
) -> i32 {
    const F: &str = "qortex_decay_learner";
    crate::errors::require_writable(F);
    let learner = learner_arg(F, learner);
    let factor = required(F, "factor", factor);
    let ctx = context.as_ref().map(|j| hash_arg(F, "context", Some(&j.0)));
    decay(F, &learner, ctx.as_deref(), None, factor, toward).len() as i32
}

/// Delete stored state, as the Python store's `delete`: no arms and no context: the whole
/// learner; a context only: that context; arms: those arms in the context (NULL: default).
#[pg_extern(volatile)]
fn qortex_reset(
    learner: Option<String>,
    arm_ids: default!(Option<Vec<Option<String>>>, "NULL"),
    context: default!(Option<crate::jsonb::Jsonb>, "NULL"),
) -> i32 {
    const F: &str = "qortex_reset";
    crate::errors::require_writable(F);
    let learner = learner_arg(F, learner);
    let arms = arm_ids.map(|v| text_elements(F, "arm_ids", v));
    let ctx: Option<String> = match (&arms, &context) {
        (None, None) => None,
        _ => Some(hash_arg(F, "context", context.as_ref().map(|j| &j.0))),
    };
    Spi::connect_mut(|client| {
        let p = plan(
            client,
            "DELETE FROM qortex.learning_arm_states
              WHERE learner_name = $1
                AND ($2::text IS NULL OR context_hash = $2)
                AND ($3::text[] IS NULL OR arm_id = ANY($3))",
            &[TEXT, TEXT, TEXT_ARRAY],
            true,
        );
        client
            .update(
                &**p,
                None,
                &[learner.as_str().into(), ctx.into(), arms.into()],
            )
            .unwrap_or_else(spi_failed(F))
            .len() as i32
    })
}
