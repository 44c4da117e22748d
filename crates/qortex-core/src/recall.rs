//! Recall of a vector index without a server: the arguments of a check, the recall@k of one
//! query (the index's top-k against the exact top-k), and the spread over a sample.
use crate::ParamError;

/// Queries one check runs at most: each reads every row of the collection once (the exact
/// top-k), so the cost of a check is `sample` scans of the table.
pub const MAX_SAMPLE: i32 = 1_000;
/// The largest `k` a check takes (pgvector's `hnsw.ef_search` goes up to 1,000).
pub const MAX_K: i32 = 1_000;

/// A check's arguments: `sample` queries of `k` neighbours, and the `ef_search` asked for.
pub fn check_args(sample: i32, k: i32, ef_search: Option<i32>) -> Result<(), ParamError> {
    let range = |arg: &str, v: i32, hi: i32| {
        if (1..=hi).contains(&v) {
            Ok(())
        } else {
            Err(ParamError::new(
                arg,
                format!("must be within 1 and {hi}, got {v}"),
            ))
        }
    };
    range("sample", sample, MAX_SAMPLE)?;
    range("k", k, MAX_K)?;
    if let Some(e) = ef_search {
        range("ef_search", e, 1_000)?;
    }
    Ok(())
}

/// Recall@k of one query: the share of the exact top-k (`exact`, ids and distances, nearest
/// first) the index found (`found`, ids and distances). A row the index found at a distance
/// no greater than the k-th exact one counts too, so ties at the k-th place are not counted
/// as misses whichever of the tied rows either side returned. `None` when there is nothing
/// to find (`exact` is empty). Of fewer than `k` rows, recall is over those there are.
pub fn query_recall(exact: &[(String, f64)], found: &[(String, f64)], k: usize) -> Option<f64> {
    let exact = &exact[..exact.len().min(k)];
    let threshold = exact.last()?.1;
    let hits = found
        .iter()
        .take(k)
        .filter(|(id, d)| *d <= threshold || exact.iter().any(|(e, _)| e == id))
        .count()
        .min(exact.len());
    Some(hits as f64 / exact.len() as f64)
}

/// Recall over a sample of queries: the mean and its spread.
#[derive(Debug, Clone, PartialEq)]
pub struct RecallSummary {
    pub queries: usize,
    pub mean: f64,
    /// Standard deviation of the queries' recall (0 for one query).
    pub stddev: f64,
    /// Half the width of the mean's 95% confidence interval (normal approximation).
    pub ci95: f64,
    pub min: f64,
    /// The 10th percentile (nearest rank): a tenth of the queries found no more than this.
    pub p10: f64,
}

impl RecallSummary {
    /// The summary of the queries' recall values; `None` for no queries.
    pub fn of(values: &[f64]) -> Option<RecallSummary> {
        let n = values.len();
        if n == 0 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let stddev = if n > 1 {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        } else {
            0.0
        };
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let rank = ((0.1 * n as f64).ceil() as usize).max(1);
        Some(RecallSummary {
            queries: n,
            mean,
            stddev,
            ci95: 1.96 * stddev / (n as f64).sqrt(),
            min: sorted[0],
            p10: sorted[rank - 1],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(v: &[(&str, f64)]) -> Vec<(String, f64)> {
        v.iter().map(|(i, d)| (i.to_string(), *d)).collect()
    }

    #[test]
    fn arguments_are_bounded() {
        assert!(check_args(1, 1, None).is_ok());
        assert!(check_args(MAX_SAMPLE, MAX_K, Some(1000)).is_ok());
        for (s, k, e, arg) in [
            (0, 10, None, "sample"),
            (MAX_SAMPLE + 1, 10, None, "sample"),
            (10, 0, None, "k"),
            (10, MAX_K + 1, None, "k"),
            (10, 10, Some(0), "ef_search"),
            (10, 10, Some(1001), "ef_search"),
        ] {
            assert_eq!(check_args(s, k, e).unwrap_err().arg, arg);
        }
    }

    #[test]
    fn recall_is_the_share_of_the_exact_top_k_found() {
        let exact = rows(&[("a", 0.0), ("b", 0.1), ("c", 0.2), ("d", 0.3)]);
        assert_eq!(query_recall(&exact, &exact, 4), Some(1.0));
        let found = rows(&[("a", 0.0), ("c", 0.2), ("x", 0.5), ("y", 0.6)]);
        assert_eq!(query_recall(&exact, &found, 4), Some(0.5));
        assert_eq!(query_recall(&exact, &[], 4), Some(0.0));
        // only the first k of each count
        assert_eq!(query_recall(&exact, &found, 2), Some(0.5));
    }

    #[test]
    fn a_tie_at_the_kth_place_is_not_a_miss() {
        // b and b2 are equally near: either is a correct second neighbour
        let exact = rows(&[("a", 0.0), ("b", 0.1)]);
        let found = rows(&[("a", 0.0), ("b2", 0.1)]);
        assert_eq!(query_recall(&exact, &found, 2), Some(1.0));
        let farther = rows(&[("a", 0.0), ("z", 0.1000001)]);
        assert_eq!(query_recall(&exact, &farther, 2), Some(0.5));
    }

    #[test]
    fn fewer_rows_than_k_are_all_there_is_to_find() {
        let exact = rows(&[("a", 0.0), ("b", 0.1)]);
        assert_eq!(query_recall(&exact, &rows(&[("a", 0.0)]), 10), Some(0.5));
        assert_eq!(query_recall(&exact, &exact, 10), Some(1.0));
        assert_eq!(query_recall(&[], &[], 10), None);
    }

    #[test]
    fn the_summary_gives_the_spread() {
        assert_eq!(RecallSummary::of(&[]), None);
        let one = RecallSummary::of(&[0.7]).unwrap();
        assert_eq!(
            (one.mean, one.stddev, one.ci95, one.min, one.p10),
            (0.7, 0.0, 0.0, 0.7, 0.7)
        );
        let v: Vec<f64> = (0..20).map(|i| if i < 3 { 0.5 } else { 1.0 }).collect();
        let s = RecallSummary::of(&v).unwrap();
        assert_eq!(s.queries, 20);
        assert!((s.mean - 0.925).abs() < 1e-12);
        assert_eq!(s.min, 0.5);
        // the 2nd lowest of 20
        assert_eq!(s.p10, 0.5);
        let sd = ((3.0 * 0.425f64.powi(2) + 17.0 * 0.075f64.powi(2)) / 19.0).sqrt();
        assert!((s.stddev - sd).abs() < 1e-12);
        assert!((s.ci95 - 1.96 * sd / 20f64.sqrt()).abs() < 1e-12);
    }
}
