//! Beta-Bernoulli Thompson sampling with the semantics of the Python `qortex-learning`
//! package: learner configuration, reward mapping, posterior updates, decay and selection.
use crate::ParamError;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Beta, Distribution};
use serde_json::{json, Map, Value};

/// The context hash under which seed arms start boosted.
pub const DEFAULT_CONTEXT: &str = "default";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RewardModel {
    /// accepted 1, partial 0.5, rejected 0
    Ternary,
    /// accepted 1, anything else 0
    Binary,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LearnerConfig {
    pub reward_model: RewardModel,
    pub baseline_rate: f64,
    pub min_pulls: i32,
    pub prior_alpha: f64,
    pub prior_beta: f64,
    pub seed_arms: Vec<String>,
    pub seed_boost: f64,
}

impl Default for LearnerConfig {
    fn default() -> Self {
        LearnerConfig {
            reward_model: RewardModel::Ternary,
            baseline_rate: 0.1,
            min_pulls: 0,
            prior_alpha: 1.0,
            prior_beta: 1.0,
            seed_arms: Vec::new(),
            seed_boost: 2.0,
        }
    }
}

pub const CONFIG_KEYS: [&str; 7] = [
    "reward_model",
    "baseline_rate",
    "min_pulls",
    "prior_alpha",
    "prior_beta",
    "seed_arms",
    "seed_boost",
];

fn finite_number(key: &str, v: &Value) -> Result<f64, ParamError> {
    v.as_f64().filter(|f| f.is_finite()).ok_or_else(|| {
        ParamError::new(
            format!("config.{key}"),
            format!("must be a finite number, got {v}"),
        )
    })
}

impl LearnerConfig {
    /// This config with the keys of `patch` applied. Unknown keys and out-of-range values
    /// are errors; the result is validated as a whole.
    pub fn merged(&self, patch: &Value) -> Result<LearnerConfig, ParamError> {
        let obj = match patch {
            Value::Null => return Ok(self.clone()),
            Value::Object(o) => o,
            other => {
                return Err(ParamError::new(
                    "config",
                    format!("must be a JSON object, got {other}"),
                ))
            }
        };
        let mut c = self.clone();
        for (key, v) in obj {
            match key.as_str() {
                "reward_model" => {
                    c.reward_model = match v.as_str() {
                        Some("ternary") => RewardModel::Ternary,
                        Some("binary") => RewardModel::Binary,
                        _ => {
                            return Err(ParamError::new(
                                "config.reward_model",
                                format!("must be 'ternary' or 'binary', got {v}"),
                            ))
                        }
                    }
                }
                "baseline_rate" => {
                    let f = finite_number(key, v)?;
                    if !(0.0..=1.0).contains(&f) {
                        return Err(ParamError::new(
                            "config.baseline_rate",
                            format!("must be within [0, 1], got {f}"),
                        ));
                    }
                    c.baseline_rate = f;
                }
                "min_pulls" => {
                    c.min_pulls = v
                        .as_i64()
                        .filter(|n| (0..=i32::MAX as i64).contains(n))
                        .ok_or_else(|| {
                            ParamError::new(
                                "config.min_pulls",
                                format!("must be an integer >= 0, got {v}"),
                            )
                        })? as i32
                }
                "prior_alpha" | "prior_beta" | "seed_boost" => {
                    let f = finite_number(key, v)?;
                    if f <= 0.0 {
                        return Err(ParamError::new(
                            format!("config.{key}"),
                            format!("must be > 0, got {f}"),
                        ));
                    }
                    match key.as_str() {
                        "prior_alpha" => c.prior_alpha = f,
                        "prior_beta" => c.prior_beta = f,
                        _ => c.seed_boost = f,
                    }
                }
                "seed_arms" => {
                    let arr = v.as_array().ok_or_else(|| {
                        ParamError::new(
                            "config.seed_arms",
                            format!("must be an array of text, got {v}"),
                        )
                    })?;
                    c.seed_arms = arr
                        .iter()
                        .map(|s| {
                            s.as_str().map(str::to_string).ok_or_else(|| {
                                ParamError::new(
                                    "config.seed_arms",
                                    format!("must be an array of text, found {s}"),
                                )
                            })
                        })
                        .collect::<Result<_, _>>()?;
                }
                other => {
                    return Err(ParamError::new(
                        "config",
                        format!(
                            "unknown key \"{other}\" (allowed: {})",
                            CONFIG_KEYS.join(", ")
                        ),
                    ))
                }
            }
        }
        Ok(c)
    }

    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert(
            "reward_model".into(),
            json!(match self.reward_model {
                RewardModel::Ternary => "ternary",
                RewardModel::Binary => "binary",
            }),
        );
        m.insert("baseline_rate".into(), json!(self.baseline_rate));
        m.insert("min_pulls".into(), json!(self.min_pulls));
        m.insert("prior_alpha".into(), json!(self.prior_alpha));
        m.insert("prior_beta".into(), json!(self.prior_beta));
        m.insert("seed_arms".into(), json!(self.seed_arms));
        m.insert("seed_boost".into(), json!(self.seed_boost));
        Value::Object(m)
    }

    /// The state an arm starts from: the prior, or `alpha = seed_boost` for a seed arm in
    /// the default context.
    pub fn initial_state(&self, arm_id: &str, context_hash: &str) -> ArmState {
        let alpha = if context_hash == DEFAULT_CONTEXT && self.seed_arms.iter().any(|s| s == arm_id)
        {
            self.seed_boost
        } else {
            self.prior_alpha
        };
        ArmState {
            alpha,
            beta: self.prior_beta,
            pulls: 0,
            total_reward: 0.0,
        }
    }

    /// The reward of one observation: an explicit `reward` wins, else the reward model maps
    /// `outcome`. Rewards must be finite and within [0, 1].
    pub fn reward(&self, outcome: Option<&str>, reward: Option<f64>) -> Result<f64, ParamError> {
        if let Some(r) = reward {
            if !r.is_finite() || !(0.0..=1.0).contains(&r) {
                return Err(ParamError::new(
                    "reward",
                    format!("must be a finite number within [0, 1], got {r}"),
                ));
            }
        }
        let mapped = match outcome {
            None => None,
            Some(o) => Some(match (o, self.reward_model) {
                ("accepted", _) => 1.0,
                ("partial", RewardModel::Ternary) => 0.5,
                ("partial", RewardModel::Binary) | ("rejected", _) => 0.0,
                _ => {
                    return Err(ParamError::new(
                        "outcome",
                        format!("must be one of accepted, partial, rejected, got \"{o}\""),
                    ))
                }
            }),
        };
        reward
            .or(mapped)
            .ok_or_else(|| ParamError::new("outcome", "an outcome or a reward is required"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArmState {
    pub alpha: f64,
    pub beta: f64,
    pub pulls: i32,
    pub total_reward: f64,
}

impl ArmState {
    pub fn mean(&self) -> f64 {
        self.alpha / (self.alpha + self.beta)
    }

    pub fn observe(&self, r: f64) -> ArmState {
        ArmState {
            alpha: self.alpha + r,
            beta: self.beta + (1.0 - r),
            pulls: self.pulls + 1,
            total_reward: self.total_reward + r,
        }
    }

    /// Decay by `f`, `total_reward <- f total_reward`, pulls unchanged. Toward the prior:
    /// `alpha <- prior.alpha + f (alpha - prior.alpha)`, the same for beta. Toward zero (the
    /// Python package's `decay_arm`): `alpha <- max(f alpha, 0.01)`, the same for beta.
    pub fn decay(&self, f: f64, toward: DecayToward, prior: &ArmState) -> ArmState {
        let shrink = |x: f64, start: f64| match toward {
            DecayToward::Prior => start + f * (x - start),
            DecayToward::Zero => (f * x).max(DECAY_FLOOR),
        };
        ArmState {
            alpha: shrink(self.alpha, prior.alpha),
            beta: shrink(self.beta, prior.beta),
            pulls: self.pulls,
            total_reward: f * self.total_reward,
        }
    }
}

/// What a decay shrinks the evidence toward.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DecayToward {
    /// The arm's starting point (its prior, or the seed boost): forgets evidence, keeps the
    /// prior. qortex's default.
    Prior,
    /// Zero, floored at `DECAY_FLOOR`: the mean stays, confidence goes (qortex-learning's
    /// `Learner.decay_arm`).
    Zero,
}

/// The smallest alpha or beta a decay toward zero leaves (as qortex-learning).
pub const DECAY_FLOOR: f64 = 0.01;

impl DecayToward {
    pub fn parse(s: &str) -> Result<DecayToward, ParamError> {
        match s {
            "prior" => Ok(DecayToward::Prior),
            "zero" => Ok(DecayToward::Zero),
            _ => Err(ParamError::new(
                "toward",
                format!("must be 'prior' or 'zero', got {s:?}"),
            )),
        }
    }
}

/// The generator selection uses.
pub type SelectRng = ChaCha8Rng;

/// The random source of one selection: seeded (reproducible) or from the OS.
pub fn rng_for(seed: Option<i64>) -> SelectRng {
    match seed {
        Some(s) => ChaCha8Rng::seed_from_u64(s as u64),
        None => ChaCha8Rng::from_entropy(),
    }
}

/// One candidate arm as selection sees it.
#[derive(Debug, Clone, Copy)]
pub struct Candidate {
    pub alpha: f64,
    pub beta: f64,
    pub pulls: i32,
    pub token_cost: i64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pick {
    /// Index into the candidates.
    pub index: usize,
    /// The Beta draw, or 0.5 for a uniform exploration round.
    pub score: f64,
    pub explored: bool,
}

#[derive(Debug, Clone)]
pub struct SelectRequest {
    /// How many to pick; `None` = every arm that fits.
    pub k: Option<usize>,
    /// Tokens available; `None` = no budget.
    pub token_budget: Option<i64>,
    pub baseline_rate: f64,
    pub min_pulls: i32,
}

/// Thompson selection, best first. With probability `baseline_rate` the round explores:
/// the order is uniform at random and every score is 0.5. Otherwise every arm draws from
/// Beta(alpha, beta) and arms go in descending draw, ties broken at random. Arms with
/// `pulls < min_pulls` are always included, ahead of the rest, and count against `k`.
/// With a budget, arms are taken greedily in that order, skipping those that do not fit.
pub fn select<R: Rng>(
    candidates: &[Candidate],
    req: &SelectRequest,
    rng: &mut R,
) -> Result<Vec<Pick>, String> {
    let explore = req.baseline_rate > 0.0 && rng.gen::<f64>() < req.baseline_rate;
    // (forced first, score descending, random tie-break), then picks in that order.
    let mut ranked: Vec<(bool, f64, u64, usize)> = Vec::with_capacity(candidates.len());
    for (i, c) in candidates.iter().enumerate() {
        let score = if explore {
            0.5
        } else {
            Beta::new(c.alpha, c.beta)
                .map_err(|_| format!("alpha={} beta={}", c.alpha, c.beta))?
                .sample(rng)
        };
        ranked.push((c.pulls < req.min_pulls, score, rng.next_u64(), i));
    }
    let order = |a: &(bool, f64, u64, usize), b: &(bool, f64, u64, usize)| {
        b.0.cmp(&a.0).then(b.1.total_cmp(&a.1)).then(a.2.cmp(&b.2))
    };
    let forced_count = ranked.iter().filter(|r| r.0).count();
    // Without a budget the picks are exactly the first max(k, forced) in order: partition
    // those to the front and sort only them (top-5 of 1,000 need not sort 1,000).
    match req.k.map(|k| k.max(forced_count)) {
        Some(m) if req.token_budget.is_none() && m > 0 && m < ranked.len() => {
            ranked.select_nth_unstable_by(m - 1, order);
            ranked.truncate(m);
            ranked.sort_unstable_by(order);
        }
        _ => ranked.sort_unstable_by(order),
    }
    let mut picks = Vec::new();
    let mut unforced_taken = 0usize;
    let unforced_room = req.k.map(|k| k.saturating_sub(forced_count));
    let mut used: i64 = 0;
    for (forced, score, _, i) in ranked {
        let cost = candidates[i].token_cost;
        if !forced {
            if unforced_room.is_some_and(|room| unforced_taken >= room) {
                break;
            }
            if req.token_budget.is_some_and(|b| used + cost > b) {
                continue;
            }
            unforced_taken += 1;
        }
        used += cost;
        picks.push(Pick {
            index: i,
            score,
            explored: explore,
        });
    }
    Ok(picks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arm(alpha: f64, beta: f64) -> Candidate {
        Candidate {
            alpha,
            beta,
            pulls: 0,
            token_cost: 0,
        }
    }

    fn req(k: Option<usize>) -> SelectRequest {
        SelectRequest {
            k,
            token_budget: None,
            baseline_rate: 0.0,
            min_pulls: 0,
        }
    }

    #[test]
    fn pinned_updates() {
        let c = LearnerConfig::default();
        let fresh = c.initial_state("a", "default");
        let partial = fresh.observe(c.reward(Some("partial"), None).unwrap());
        assert_eq!((partial.alpha, partial.beta), (1.5, 1.5));

        let mut s = fresh;
        for o in ["accepted", "accepted", "rejected"] {
            s = s.observe(c.reward(Some(o), None).unwrap());
        }
        assert_eq!(
            (s.alpha, s.beta, s.pulls, s.total_reward),
            (3.0, 2.0, 3, 2.0)
        );

        let binary = c.merged(&json!({"reward_model": "binary"})).unwrap();
        let b = fresh.observe(binary.reward(Some("partial"), None).unwrap());
        assert_eq!((b.alpha, b.beta), (1.0, 2.0));

        let s = ArmState {
            alpha: 6.0,
            beta: 1.0,
            pulls: 5,
            total_reward: 5.0,
        };
        let d = s.decay(0.5, DecayToward::Prior, &fresh);
        assert_eq!(
            (d.alpha, d.beta, d.pulls, d.total_reward),
            (3.5, 1.0, 5, 2.5)
        );
        // as qortex-learning: multiplied, the mean kept, floored
        let z = s.decay(0.5, DecayToward::Zero, &fresh);
        assert_eq!(
            (z.alpha, z.beta, z.pulls, z.total_reward),
            (3.0, 0.5, 5, 2.5)
        );
        assert_eq!(z.alpha / (z.alpha + z.beta), s.alpha / (s.alpha + s.beta));
        let tiny = ArmState {
            alpha: 0.015,
            beta: 0.015,
            pulls: 0,
            total_reward: 0.0,
        };
        let t = tiny.decay(0.5, DecayToward::Zero, &fresh);
        assert_eq!((t.alpha, t.beta), (DECAY_FLOOR, DECAY_FLOOR));
        assert_eq!(DecayToward::parse("zero").unwrap(), DecayToward::Zero);
        assert_eq!(DecayToward::parse("prior").unwrap(), DecayToward::Prior);
        assert_eq!(DecayToward::parse("half").unwrap_err().arg, "toward");
    }

    #[test]
    fn explicit_reward_wins_and_bad_ones_are_refused() {
        let c = LearnerConfig::default();
        assert_eq!(c.reward(Some("rejected"), Some(0.75)).unwrap(), 0.75);
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.1, 1.5] {
            assert_eq!(c.reward(None, Some(bad)).unwrap_err().arg, "reward");
        }
        assert_eq!(c.reward(Some("great"), None).unwrap_err().arg, "outcome");
        assert_eq!(c.reward(None, None).unwrap_err().arg, "outcome");
    }

    #[test]
    fn seed_arms_start_boosted_in_the_default_context_only() {
        let c = LearnerConfig::default()
            .merged(&json!({"seed_arms": ["s"], "seed_boost": 3.0}))
            .unwrap();
        assert_eq!(c.initial_state("s", "default").alpha, 3.0);
        assert_eq!(c.initial_state("s", "0123456789abcdef").alpha, 1.0);
        assert_eq!(c.initial_state("t", "default").alpha, 1.0);
    }

    #[test]
    fn config_rejects_unknown_keys_and_out_of_range_values() {
        let c = LearnerConfig::default();
        for (patch, arg) in [
            (json!({"nope": 1}), "config"),
            (json!({"baseline_rate": 1.5}), "config.baseline_rate"),
            (json!({"baseline_rate": "x"}), "config.baseline_rate"),
            (json!({"min_pulls": -1}), "config.min_pulls"),
            (json!({"min_pulls": 1.5}), "config.min_pulls"),
            (json!({"prior_alpha": 0}), "config.prior_alpha"),
            (json!({"prior_beta": -1}), "config.prior_beta"),
            (json!({"seed_boost": 0}), "config.seed_boost"),
            (json!({"seed_arms": [1]}), "config.seed_arms"),
            (json!({"reward_model": "quaternary"}), "config.reward_model"),
            (json!([1]), "config"),
        ] {
            assert_eq!(c.merged(&patch).unwrap_err().arg, arg, "{patch}");
        }
        let m = c
            .merged(&json!({"baseline_rate": 0, "min_pulls": 2}))
            .unwrap();
        assert_eq!((m.baseline_rate, m.min_pulls, m.prior_alpha), (0.0, 2, 1.0));
        assert_eq!(LearnerConfig::default().merged(&m.to_json()).unwrap(), m);
    }

    #[test]
    fn same_seed_same_picks_other_seed_differs() {
        let arms: Vec<_> = (0..20).map(|i| arm(1.0 + i as f64, 3.0)).collect();
        let a = select(&arms, &req(Some(5)), &mut rng_for(Some(7))).unwrap();
        let b = select(&arms, &req(Some(5)), &mut rng_for(Some(7))).unwrap();
        let c = select(&arms, &req(Some(5)), &mut rng_for(Some(8))).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn top_k_without_replacement_in_descending_score() {
        let arms: Vec<_> = (0..10).map(|_| arm(2.0, 2.0)).collect();
        let mut rng = rng_for(Some(1));
        for _ in 0..200 {
            let picks = select(&arms, &req(Some(4)), &mut rng).unwrap();
            assert_eq!(picks.len(), 4);
            let mut idx: Vec<_> = picks.iter().map(|p| p.index).collect();
            idx.sort();
            idx.dedup();
            assert_eq!(idx.len(), 4, "no arm twice");
            assert!(picks.windows(2).all(|w| w[0].score >= w[1].score));
        }
        assert_eq!(select(&arms, &req(None), &mut rng).unwrap().len(), 10);
    }

    #[test]
    fn ties_are_broken_at_random() {
        // Beta(1e-300, 1) draws underflow to exactly 0 for all arms: a full tie.
        let arms: Vec<_> = (0..4).map(|_| arm(1e-300, 1.0)).collect();
        let mut firsts = [0u32; 4];
        let mut rng = rng_for(Some(3));
        for _ in 0..4000 {
            let p = select(&arms, &req(Some(1)), &mut rng).unwrap();
            assert_eq!(p[0].score, 0.0);
            firsts[p[0].index] += 1;
        }
        assert!(
            firsts.iter().all(|&n| (800..1200).contains(&n)),
            "{firsts:?}"
        );
    }

    #[test]
    fn budget_skips_what_does_not_fit_and_keeps_going() {
        // Means make the order near-certain: 0, 1, 2, 3.
        let arms = vec![
            Candidate {
                alpha: 1e6,
                beta: 1.0,
                pulls: 0,
                token_cost: 60,
            },
            Candidate {
                alpha: 1e5,
                beta: 1e5,
                pulls: 0,
                token_cost: 50,
            },
            Candidate {
                alpha: 1.0,
                beta: 1e5,
                pulls: 0,
                token_cost: 30,
            },
            Candidate {
                alpha: 1.0,
                beta: 1e6,
                pulls: 0,
                token_cost: 10,
            },
        ];
        let r = SelectRequest {
            token_budget: Some(100),
            ..req(None)
        };
        let picks = select(&arms, &r, &mut rng_for(Some(1))).unwrap();
        let idx: Vec<_> = picks.iter().map(|p| p.index).collect();
        assert_eq!(
            idx,
            vec![0, 2, 3],
            "arm 1 does not fit after arm 0; 2 and 3 still do"
        );
    }

    #[test]
    fn min_pulls_forces_cold_arms_in_first() {
        let mut arms: Vec<_> = (0..6)
            .map(|_| Candidate {
                pulls: 10,
                ..arm(1e6, 1.0)
            })
            .collect();
        arms[4] = Candidate {
            alpha: 1.0,
            beta: 1e6,
            pulls: 1,
            token_cost: 0,
        };
        let r = SelectRequest {
            min_pulls: 2,
            ..req(Some(2))
        };
        for seed in 0..50 {
            let picks = select(&arms, &r, &mut rng_for(Some(seed))).unwrap();
            assert_eq!(picks.len(), 2);
            assert_eq!(
                picks[0].index, 4,
                "the cold arm comes first despite its low draw"
            );
        }
    }

    #[test]
    fn exploration_rate_and_uniformity() {
        let arms = vec![arm(1e6, 1.0), arm(1.0, 1e6), arm(1.0, 1e6)];
        let r = SelectRequest {
            baseline_rate: 0.25,
            ..req(Some(1))
        };
        let mut rng = rng_for(Some(11));
        let n = 20_000;
        let mut explored = 0;
        let mut explored_first = [0u32; 3];
        for _ in 0..n {
            let p = select(&arms, &r, &mut rng).unwrap();
            if p[0].explored {
                assert_eq!(p[0].score, 0.5);
                explored += 1;
                explored_first[p[0].index] += 1;
            } else {
                assert_eq!(p[0].index, 0);
            }
        }
        // Binomial(20000, 0.25): sd ~61; 5 sd bounds.
        assert!((4695..=5305).contains(&explored), "{explored}");
        let third = explored as f64 / 3.0;
        assert!(explored_first
            .iter()
            .all(|&c| (c as f64 - third).abs() < 5.0 * (third * 2.0 / 3.0).sqrt()));
    }

    #[test]
    fn invalid_posterior_is_reported() {
        assert!(select(&[arm(0.0, 1.0)], &req(None), &mut rng_for(Some(1))).is_err());
    }
}
