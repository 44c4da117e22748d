//! `hybrid_search`'s `options` argument: parsed and checked before anything runs.
use crate::ParamError;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fusion {
    Rrf,
    Weighted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextMode {
    Or,
    And,
    Websearch,
}

/// The default candidate pool per leg, chosen on SciFact's train queries (BENCHMARKS.md, "the
/// candidate pool"): for reciprocal-rank fusion `k + offset`, at least `RRF_POOL_FLOOR`
/// (ranks past the page add nothing there); for weighted fusion, whose min-max normalisation
/// is over the pool, `WEIGHTED_POOL_FACTOR × (k + offset)`, at least `WEIGHTED_POOL_FLOOR`.
pub const RRF_POOL_FLOOR: usize = 10;
pub const WEIGHTED_POOL_FACTOR: usize = 4;
pub const WEIGHTED_POOL_FLOOR: usize = 40;
pub const MAX_CANDIDATES: usize = 10_000;
/// Largest `k`, and largest `offset`: a leg reads at most `k + offset` rows, so what a call
/// may hold in memory is bounded whatever its arguments.
pub const MAX_K: usize = 10_000;
pub const MAX_OFFSET: usize = 100_000;

/// `hybrid_search`'s `k`: 1 to [`MAX_K`].
pub fn parse_k(k: Option<i32>) -> Result<usize, ParamError> {
    match k {
        Some(k) if k >= 1 && k as usize <= MAX_K => Ok(k as usize),
        Some(k) => Err(ParamError::new(
            "k",
            format!("must be between 1 and {MAX_K}, got {k}"),
        )),
        None => Err(ParamError::new("k", "must not be NULL")),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchOptions {
    pub fusion: Fusion,
    pub rrf_k: f64,
    pub vector_weight: f64,
    pub text_weight: f64,
    /// Candidates per leg the caller asked for (`None`: the default, see [`Self::pool`]).
    pub candidates: Option<usize>,
    pub offset: usize,
    pub filter: Option<Value>,
    pub user_id: Option<String>,
    pub min_similarity: Option<f64>,
    pub ef_search: Option<i32>,
    pub text_mode: TextMode,
    pub feedback: bool,
    /// Spread scores one hop over promoted edges, with this weight (None: off).
    pub graph: Option<f64>,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            fusion: Fusion::Rrf,
            rrf_k: 60.0,
            // Tuned on half of SciFact's train queries (BENCHMARKS.md).
            vector_weight: 0.4,
            text_weight: 0.6,
            candidates: None,
            offset: 0,
            filter: None,
            user_id: None,
            min_similarity: None,
            ef_search: None,
            text_mode: TextMode::Or,
            feedback: true,
            graph: None,
        }
    }
}

const KEYS: [&str; 14] = [
    "fusion",
    "rrf_k",
    "vector_weight",
    "text_weight",
    "candidates",
    "offset",
    "filter",
    "user_id",
    "min_similarity",
    "ef_search",
    "text_mode",
    "feedback",
    "graph",
    "graph_weight",
];

fn num(obj: &Map<String, Value>, key: &str, lo: f64, hi: f64) -> Result<Option<f64>, ParamError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_f64() {
            Some(x) if x.is_finite() && x >= lo && x <= hi => Ok(Some(x)),
            _ => Err(ParamError::new(
                format!("options.{key}"),
                format!("must be a number within [{lo}, {hi}], got {v}"),
            )),
        },
    }
}

fn int(obj: &Map<String, Value>, key: &str, lo: i64, hi: i64) -> Result<Option<i64>, ParamError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_i64() {
            Some(x) if (lo..=hi).contains(&x) => Ok(Some(x)),
            _ => Err(ParamError::new(
                format!("options.{key}"),
                format!("must be an integer within [{lo}, {hi}], got {v}"),
            )),
        },
    }
}

impl SearchOptions {
    pub fn parse(options: Option<&Value>) -> Result<SearchOptions, ParamError> {
        let empty = Map::new();
        let obj = match options {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(o)) => o,
            Some(v) => {
                return Err(ParamError::new(
                    "options",
                    format!("must be a JSON object, got {v}"),
                ))
            }
        };
        if let Some(k) = obj.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(ParamError::new(
                format!("options.{k}"),
                format!("unknown option (allowed: {})", KEYS.join(", ")),
            ));
        }
        let d = SearchOptions::default();
        let fusion = match obj.get("fusion") {
            None | Some(Value::Null) => d.fusion,
            Some(v) => match v.as_str() {
                Some("rrf") => Fusion::Rrf,
                Some("weighted") => Fusion::Weighted,
                _ => {
                    return Err(ParamError::new(
                        "options.fusion",
                        format!("must be 'rrf' or 'weighted', got {v}"),
                    ))
                }
            },
        };
        let text_mode = match obj.get("text_mode") {
            None | Some(Value::Null) => d.text_mode,
            Some(v) => match v.as_str() {
                Some("or") => TextMode::Or,
                Some("and") => TextMode::And,
                Some("websearch") => TextMode::Websearch,
                _ => {
                    return Err(ParamError::new(
                        "options.text_mode",
                        format!("must be 'or', 'and' or 'websearch', got {v}"),
                    ))
                }
            },
        };
        let vector_weight = num(obj, "vector_weight", 0.0, 1e6)?.unwrap_or(d.vector_weight);
        let text_weight = num(obj, "text_weight", 0.0, 1e6)?.unwrap_or(d.text_weight);
        if vector_weight == 0.0 && text_weight == 0.0 {
            return Err(ParamError::new(
                "options.vector_weight",
                "and options.text_weight must not both be 0",
            ));
        }
        let filter = match obj.get("filter") {
            None | Some(Value::Null) => None,
            Some(v @ Value::Object(_)) => Some(v.clone()),
            Some(v) => {
                return Err(ParamError::new(
                    "options.filter",
                    format!("must be a JSON object (matched with @> on metadata), got {v}"),
                ))
            }
        };
        let user_id = match obj.get("user_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(v) => {
                return Err(ParamError::new(
                    "options.user_id",
                    format!("must be text, got {v}"),
                ))
            }
        };
        let feedback = match obj.get("feedback") {
            None | Some(Value::Null) => d.feedback,
            Some(Value::Bool(b)) => *b,
            Some(v) => {
                return Err(ParamError::new(
                    "options.feedback",
                    format!("must be true or false, got {v}"),
                ))
            }
        };
        let graph = match obj.get("graph") {
            None | Some(Value::Null) | Some(Value::Bool(false)) => false,
            Some(Value::Bool(true)) => true,
            Some(v) => {
                return Err(ParamError::new(
                    "options.graph",
                    format!("must be true or false, got {v}"),
                ))
            }
        };
        let graph_weight = num(obj, "graph_weight", 0.0, 10.0)?;
        if graph_weight.is_some() && !graph {
            return Err(ParamError::new(
                "options.graph_weight",
                "needs \"graph\": true",
            ));
        }
        Ok(SearchOptions {
            graph: graph.then(|| graph_weight.unwrap_or(0.5)),
            fusion,
            rrf_k: num(obj, "rrf_k", 1e-9, 1e6)?.unwrap_or(d.rrf_k),
            vector_weight,
            text_weight,
            candidates: int(obj, "candidates", 1, MAX_CANDIDATES as i64)?.map(|c| c as usize),
            offset: int(obj, "offset", 0, MAX_OFFSET as i64)?.map_or(0, |o| o as usize),
            filter,
            user_id,
            min_similarity: num(obj, "min_similarity", -1e6, 1e6)?,
            ef_search: int(obj, "ef_search", 1, 1000)?.map(|e| e as i32),
            text_mode,
            feedback,
        })
    }

    /// Candidates each leg returns: the `candidates` option or, without it, the fusion's
    /// default (see `RRF_POOL_FLOOR`); never fewer than `k + offset`, never more than
    /// `MAX_CANDIDATES` unless the page itself needs more.
    pub fn pool(&self, k: usize) -> usize {
        let page_end = k + self.offset;
        let asked = self.candidates.unwrap_or(match self.fusion {
            Fusion::Rrf => page_end.max(RRF_POOL_FLOOR),
            Fusion::Weighted => (WEIGHTED_POOL_FACTOR * page_end).max(WEIGHTED_POOL_FLOOR),
        });
        asked.max(page_end).min(MAX_CANDIDATES.max(page_end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn k_is_bounded() {
        assert_eq!(parse_k(Some(1)), Ok(1));
        assert_eq!(parse_k(Some(10_000)), Ok(10_000));
        for bad in [Some(0), Some(-3), Some(10_001), Some(i32::MAX), None] {
            let e = parse_k(bad).unwrap_err();
            assert_eq!(e.arg, "k");
        }
        assert!(parse_k(Some(i32::MAX))
            .unwrap_err()
            .message
            .contains("between 1 and 10000"));
    }

    #[test]
    fn options() {
        let o = SearchOptions::parse(Some(&json!({}))).unwrap();
        assert_eq!(o, SearchOptions::default());
        assert_eq!(o.pool(10), 10);
        assert_eq!(o.pool(1), 10);
        assert_eq!(o.pool(25), 25);
        assert_eq!(o.pool(10_000), 10_000);
        let o = SearchOptions::parse(Some(&json!({"offset": 20}))).unwrap();
        assert_eq!(o.pool(10), 30);
        let o = SearchOptions::parse(Some(&json!({"fusion": "weighted"}))).unwrap();
        assert_eq!(o.pool(1), 40);
        assert_eq!(o.pool(10), 40);
        assert_eq!(o.pool(30), 120);
        assert_eq!(o.pool(5_000), 10_000);
        assert_eq!(o.pool(10_000), 10_000);
        let o = SearchOptions::parse(Some(&json!({"fusion": "weighted", "offset": 5}))).unwrap();
        assert_eq!(o.pool(10), 60);
        let o = SearchOptions::parse(Some(&json!({"offset": 100_000}))).unwrap();
        assert_eq!(o.pool(10), 100_010);
        let o = SearchOptions::parse(Some(&json!({"candidates": 50, "offset": 120}))).unwrap();
        assert_eq!(o.pool(10), 130);
        let o = SearchOptions::parse(Some(&json!({"candidates": 5}))).unwrap();
        assert_eq!(o.pool(3), 5);
        assert_eq!(o.pool(10), 10);
        let o = SearchOptions::parse(Some(&json!({"candidates": 10_000}))).unwrap();
        assert_eq!(o.pool(10), 10_000);
        for (bad, arg) in [
            (json!({"fusion": "max"}), "options.fusion"),
            (json!({"rrf_k": 0}), "options.rrf_k"),
            (json!({"vector_weight": -1}), "options.vector_weight"),
            (
                json!({"vector_weight": 0, "text_weight": 0}),
                "options.vector_weight",
            ),
            (json!({"candidates": 0}), "options.candidates"),
            (json!({"offset": -1}), "options.offset"),
            (json!({"offset": 100_001}), "options.offset"),
            (json!({"filter": [1]}), "options.filter"),
            (json!({"user_id": 3}), "options.user_id"),
            (json!({"ef_search": 0}), "options.ef_search"),
            (json!({"ef_search": 1001}), "options.ef_search"),
            (json!({"text_mode": "phrase"}), "options.text_mode"),
            (json!({"feedback": "no"}), "options.feedback"),
            (json!({"limit": 3}), "options.limit"),
            (json!(3), "options"),
        ] {
            assert_eq!(
                SearchOptions::parse(Some(&bad)).unwrap_err().arg,
                arg,
                "{bad}"
            );
        }
    }
}
