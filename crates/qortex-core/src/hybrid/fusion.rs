//! Fusing the two legs (reciprocal-rank or weighted), the interoception factors, the graph
//! boost over promoted edges, and the one total order every ranking here uses.
use super::options::{Fusion, SearchOptions};
use std::cmp::Ordering;
use std::collections::HashMap;

/// One result of one leg, best first.
#[derive(Debug, Clone, PartialEq)]
pub struct LegHit {
    pub id: String,
    pub score: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Fused {
    pub id: String,
    pub score: f64,
    pub vector_rank: Option<i32>,
    pub vector_similarity: Option<f64>,
    pub text_rank: Option<i32>,
    pub text_score: Option<f64>,
    pub factor: f64,
}

fn min_max(hits: &[LegHit]) -> impl Fn(f64) -> f64 {
    let lo = hits.iter().map(|h| h.score).fold(f64::INFINITY, f64::min);
    let hi = hits
        .iter()
        .map(|h| h.score)
        .fold(f64::NEG_INFINITY, f64::max);
    move |x| {
        if hi > lo {
            (x - lo) / (hi - lo)
        } else {
            1.0
        }
    }
}

/// Fuse the legs (each best first), multiply by the factors, and order totally: score
/// descending, then id ascending, so pages taken with `offset` never repeat or skip.
pub fn fuse(
    vector: &[LegHit],
    text: &[LegHit],
    opts: &SearchOptions,
    factors: &HashMap<String, f64>,
) -> Vec<Fused> {
    let mut order: Vec<Fused> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut slot = |id: &str, order: &mut Vec<Fused>| -> usize {
        *index.entry(id.to_owned()).or_insert_with(|| {
            order.push(Fused {
                id: id.to_owned(),
                score: 0.0,
                vector_rank: None,
                vector_similarity: None,
                text_rank: None,
                text_score: None,
                factor: 1.0,
            });
            order.len() - 1
        })
    };
    let vnorm = min_max(vector);
    let tnorm = min_max(text);
    for (r, h) in vector.iter().enumerate() {
        let i = slot(&h.id, &mut order);
        let f = &mut order[i];
        f.vector_rank = Some(r as i32 + 1);
        f.vector_similarity = Some(h.score);
        f.score += match opts.fusion {
            Fusion::Rrf => 1.0 / (opts.rrf_k + (r + 1) as f64),
            Fusion::Weighted => opts.vector_weight * vnorm(h.score),
        };
    }
    for (r, h) in text.iter().enumerate() {
        let i = slot(&h.id, &mut order);
        let f = &mut order[i];
        f.text_rank = Some(r as i32 + 1);
        f.text_score = Some(h.score);
        f.score += match opts.fusion {
            Fusion::Rrf => 1.0 / (opts.rrf_k + (r + 1) as f64),
            Fusion::Weighted => opts.text_weight * tnorm(h.score),
        };
    }
    for f in &mut order {
        if let Some(&w) = factors.get(&f.id) {
            f.factor = w;
            f.score *= w;
        }
    }
    order.sort_by(|a, b| best_first((a.score, &a.id), (b.score, &b.id)));
    order
}

/// Whether `id` can be the text of an id column of the type named `typname` (pg_type's
/// name). Graph neighbours come from a table shared by every collection; only those that
/// can be ids of this one are looked up in it. Unknown types: none (neighbours then boost
/// rows that are already results, but none joins).
pub fn castable_id(typname: &str, id: &str) -> bool {
    match typname {
        "int2" => id.parse::<i16>().is_ok(),
        "int4" => id.parse::<i32>().is_ok(),
        "int8" => id.parse::<i64>().is_ok(),
        "uuid" => {
            id.len() == 36
                && id.char_indices().all(|(i, c)| match i {
                    8 | 13 | 18 | 23 => c == '-',
                    _ => c.is_ascii_hexdigit(),
                })
        }
        "text" | "varchar" | "bpchar" | "name" => true,
        _ => false,
    }
}

/// Edges each seed passes its score along at most, its strongest: a hub with thousands of
/// edges spreads no further than any other seed.
pub const GRAPH_FANOUT: usize = 20;

/// One-hop spread over promoted edges: every fused result among the first `seeds` passes
/// `weight × its score × edge confidence` to each neighbour, which is added to the
/// neighbour's score (a neighbour that no leg returned joins with that score alone, its
/// factor applied). `edges` are `(seed, neighbour, confidence)`, at most `GRAPH_FANOUT` per
/// seed. Scores only grow, from the factor-weighted seed scores, and the order stays total.
pub fn graph_boost(
    fused: &mut Vec<Fused>,
    edges: &[(String, String, f64)],
    weight: f64,
    seeds: usize,
    factors: &HashMap<String, f64>,
) {
    let seed_scores: HashMap<String, f64> = fused
        .iter()
        .take(seeds)
        .map(|f| (f.id.clone(), f.score))
        .collect();
    let mut boost: HashMap<&str, f64> = HashMap::new();
    for (seed, neighbour, conf) in edges {
        if let Some(s) = seed_scores.get(seed) {
            *boost.entry(neighbour.as_str()).or_default() += weight * s * conf;
        }
    }
    for f in fused.iter_mut() {
        if let Some(b) = boost.remove(f.id.as_str()) {
            f.score += b;
        }
    }
    for (id, b) in boost {
        let factor = factors.get(id).copied().unwrap_or(1.0);
        fused.push(Fused {
            id: id.to_owned(),
            score: b * factor,
            vector_rank: None,
            vector_similarity: None,
            text_rank: None,
            text_score: None,
            factor,
        });
    }
    fused.sort_by(|a, b| best_first((a.score, &a.id), (b.score, &b.id)));
}

/// The order of every ranking here: score descending, then id ascending (a total order, so
/// pages never repeat or skip).
/// A score that is NaN (a NaN read from a table, say) ranks last, so the order stays total
/// whatever the data.
pub(crate) fn best_first(a: (f64, &str), b: (f64, &str)) -> Ordering {
    let key = |s: f64| {
        if s.is_nan() {
            f64::NEG_INFINITY
        } else {
            s + 0.0
        }
    };
    key(b.0).total_cmp(&key(a.0)).then_with(|| a.1.cmp(b.1))
}

/// Order one leg's hits: score descending, then id ascending.
pub fn rank_leg(hits: &mut [LegHit]) {
    hits.sort_by(|a, b| best_first((a.score, &a.id), (b.score, &b.id)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hits(v: &[(&str, f64)]) -> Vec<LegHit> {
        v.iter()
            .map(|(id, s)| LegHit {
                id: (*id).into(),
                score: *s,
            })
            .collect()
    }

    #[test]
    fn rrf_fusion_explains_and_orders_totally() {
        let v = hits(&[("a", 0.9), ("b", 0.8), ("c", 0.7)]);
        let t = hits(&[("c", 9.0), ("d", 3.0)]);
        let f = fuse(&v, &t, &SearchOptions::default(), &HashMap::new());
        let ids: Vec<_> = f.iter().map(|x| x.id.as_str()).collect();
        // c: 1/63 + 1/61; a: 1/61; b: 1/62 and d: 1/62 tie -> by id
        assert_eq!(ids, ["c", "a", "b", "d"]);
        assert!((f[0].score - (1.0 / 63.0 + 1.0 / 61.0)).abs() < 1e-15);
        assert_eq!((f[0].vector_rank, f[0].text_rank), (Some(3), Some(1)));
        assert_eq!((f[3].vector_rank, f[3].text_score), (None, Some(3.0)));
    }

    #[test]
    fn castable_ids_by_column_type() {
        assert!(castable_id("int8", "42") && castable_id("int8", "-9223372036854775808"));
        assert!(!castable_id("int8", "h01") && !castable_id("int4", "3000000000"));
        assert!(castable_id("int2", "7") && !castable_id("int2", "70000"));
        assert!(castable_id("uuid", "0e37df36-f698-11e6-8dd4-cb9ced3df976"));
        assert!(!castable_id("uuid", "0e37df36f69811e68dd4cb9ced3df976"));
        assert!(!castable_id("uuid", "0e37df36-f698-11e6-8dd4-cb9ced3df97g"));
        assert!(castable_id("text", "anything") && castable_id("varchar", ""));
        assert!(!castable_id("numeric", "1"));
    }

    #[test]
    fn graph_boost_spreads_one_hop_from_the_seeds() {
        let opts = SearchOptions::default();
        let v = hits(&[("a", 0.9), ("b", 0.8)]);
        let mut f = fuse(&v, &[], &opts, &HashMap::new());
        let (sa, sb) = (f[0].score, f[1].score);
        let edge = |a: &str, b: &str, c| (a.to_string(), b.to_string(), c);
        let edges = vec![
            edge("a", "z", 0.8),
            // the edge a-b, read from both of its seeds
            edge("b", "a", 0.5),
            edge("a", "b", 0.5),
            edge("y", "x", 1.0), // from a node that is not a seed
        ];
        let factors = HashMap::from([("z".to_string(), 2.0)]);
        graph_boost(&mut f, &edges, 0.5, 10, &factors);
        let got: HashMap<_, _> = f.iter().map(|x| (x.id.as_str(), x.score)).collect();
        assert!((got["a"] - (sa + 0.5 * sb * 0.5)).abs() < 1e-15);
        assert!((got["b"] - (sb + 0.5 * sa * 0.5)).abs() < 1e-15);
        assert!((got["z"] - 0.5 * sa * 0.8 * 2.0).abs() < 1e-15);
        assert!(!got.contains_key("x"));
        assert_eq!(f.iter().find(|x| x.id == "z").unwrap().vector_rank, None);
        let o = SearchOptions::parse(Some(&json!({"graph": true}))).unwrap();
        assert_eq!(o.graph, Some(0.5));
        assert_eq!(
            SearchOptions::parse(Some(&json!({"graph_weight": 1})))
                .unwrap_err()
                .arg,
            "options.graph_weight"
        );
    }

    #[test]
    fn weighted_fusion_normalises_each_leg_and_factors_multiply() {
        let opts = SearchOptions {
            fusion: Fusion::Weighted,
            vector_weight: 0.3,
            text_weight: 0.7,
            ..SearchOptions::default()
        };
        let v = hits(&[("a", 0.9), ("b", 0.5)]);
        let t = hits(&[("b", 10.0), ("c", 5.0)]);
        let factors = HashMap::from([("a".to_string(), 0.5)]);
        let f = fuse(&v, &t, &opts, &factors);
        let got: Vec<_> = f
            .iter()
            .map(|x| (x.id.as_str(), x.score, x.factor))
            .collect();
        assert_eq!(got, [("b", 0.7, 1.0), ("a", 0.15, 0.5), ("c", 0.0, 1.0)]);
    }

    #[test]
    fn a_nan_confidence_ranks_its_neighbour_last_without_breaking_the_order() {
        let v = hits(&[("a", 0.9), ("b", 0.8), ("c", 0.7)]);
        let mut f = fuse(&v, &[], &SearchOptions::default(), &HashMap::new());
        let edges = vec![
            ("a".to_string(), "x".to_string(), f64::NAN),
            ("b".to_string(), "c".to_string(), f64::NAN),
        ];
        graph_boost(&mut f, &edges, 0.5, 3, &HashMap::new());
        let ids: Vec<_> = f.iter().map(|x| x.id.as_str()).collect();
        // c's score became NaN, x's is NaN: both last, by id
        assert_eq!(ids, ["a", "b", "c", "x"]);
        let mut ranked = hits(&[("z", f64::NAN), ("y", 1.0), ("w", -0.0), ("v", 0.0)]);
        rank_leg(&mut ranked);
        let ids: Vec<_> = ranked.iter().map(|x| x.id.as_str()).collect();
        assert_eq!(ids, ["y", "v", "w", "z"]);
    }
}
