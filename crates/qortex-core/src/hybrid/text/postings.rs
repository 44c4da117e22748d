//! The impact-ordered text index: each lexeme's postings in blocks, scored without
//! reading the rows.
use super::idf;
use crate::hybrid::fusion::{best_first, LegHit};
use std::collections::HashMap;

/// Postings per row of the text index: a lexeme's rows in impact order are stored in
/// blocks of this many, so a search reads a term's best rows from one or two index rows.
pub const POSTING_BLOCK: usize = 128;

/// One block of a query term's postings: the term's document frequency, the position of the
/// block's first posting in the term's impact order, and the rows with their impacts (BM25
/// term weights without the idf), best first.
pub struct PostingBlock<'a> {
    pub df: f64,
    pub first: usize,
    pub ids: Vec<&'a str>,
    pub impacts: Vec<f32>,
}

/// What the index holds for a search's terms: the number of rows it was built from (for
/// the idf) and the blocks read.
pub struct Postings<'a> {
    pub documents: f64,
    pub blocks: Vec<PostingBlock<'a>>,
}

/// The text leg from impact-ordered postings: each term contributes its best `per_term`
/// rows, a row scores the sum of idf × impact over the terms that reach it; the best `pool`
/// rows, best first (ties by id).
pub fn score_blocks(postings: Postings<'_>, per_term: usize, pool: usize) -> Vec<LegHit> {
    let mut scores: HashMap<&str, f64> = HashMap::with_capacity(4 * per_term);
    for b in postings.blocks {
        let take = per_term.saturating_sub(b.first);
        let idf = idf(postings.documents, b.df);
        for (id, impact) in b.ids.into_iter().zip(b.impacts).take(take) {
            *scores.entry(id).or_insert(0.0) += idf * impact as f64;
        }
    }
    let mut best: Vec<(&str, f64)> = scores.into_iter().collect();
    let order = |a: &(&str, f64), b: &(&str, f64)| best_first((a.1, a.0), (b.1, b.0));
    if best.len() > pool && pool > 0 {
        best.select_nth_unstable_by(pool - 1, order);
    }
    best.truncate(pool);
    best.sort_unstable_by(order);
    best.into_iter()
        .map(|(id, score)| LegHit {
            id: id.to_owned(),
            score,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_blocks_sums_idf_times_impact_over_each_terms_best_rows() {
        let block = |df, first, ids: &[&'static str], impacts: &[f32]| PostingBlock {
            df,
            first,
            ids: ids.to_vec(),
            impacts: impacts.to_vec(),
        };
        let postings = |blocks| Postings {
            documents: 100.0,
            blocks,
        };
        let (rare, common) = (idf(100.0, 2.0), idf(100.0, 30.0));
        let hits = score_blocks(
            postings(vec![
                block(2.0, 0, &["a", "b"], &[1.5, 1.0]),
                // second block of the same term: positions 2 and 3, cut at per_term = 3
                block(2.0, 2, &["c", "d"], &[0.5, 0.25]),
                block(30.0, 0, &["b", "d", "e"], &[1.0, 1.0, 0.75]),
            ]),
            3,
            10,
        );
        let got: Vec<(&str, f64)> = hits.iter().map(|h| (h.id.as_str(), h.score)).collect();
        // d is the first term's 4th row (cut) and the second term's 2nd
        let want = [
            ("a", 1.5 * rare),
            ("b", rare + common),
            ("c", 0.5 * rare),
            ("d", common),
            ("e", 0.75 * common),
        ];
        assert_eq!(got.len(), want.len());
        for ((id, s), (wid, ws)) in got.iter().zip(want) {
            assert_eq!(*id, wid);
            assert!((s - ws).abs() < 1e-12, "{id}: {s} vs {ws}");
        }
        assert_eq!(score_blocks(postings(Vec::new()), 3, 10), Vec::new());
        let top = score_blocks(
            postings(vec![block(5.0, 0, &["x", "y", "z"], &[1.0, 2.0, 3.0])]),
            3,
            2,
        );
        assert_eq!(
            top.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(),
            vec!["z", "y"]
        );
    }
}
