//! The plan of the text leg: which query terms to read rows for, in how many passes, and
//! when a page is full. It is generic over where rows come from (`TextSource`, which the
//! extension implements over SPI), so it is proven here without a server.
use super::{idf, Bm25, TsVector};
use crate::hybrid::fusion::{rank_leg, LegHit};
use crate::hybrid::options::TextMode;
use std::collections::HashSet;

/// One read of matching rows.
#[derive(Debug, Clone, PartialEq)]
pub enum Pass {
    /// Rows holding any of these lexemes.
    AnyOf(Vec<String>),
    /// Rows matching the query text as the text mode parses it (`and`, `websearch`).
    Parsed,
}

/// Where the text leg's statistics and rows come from: a collection's table and indexes,
/// within one search's filter and user scope.
pub trait TextSource {
    /// The number of rows and their average length (in positions).
    fn corpus(&mut self) -> (f64, f64);
    /// Document frequencies of the lexemes, in their order.
    fn doc_freqs(&mut self, lexemes: &[String]) -> Vec<f64>;
    /// Visit at most `limit` rows matching `pass`, each as its id and the bytes of its
    /// tsvector.
    fn matches(&mut self, pass: &Pass, limit: usize, visit: &mut dyn FnMut(String, &[u8]));
    /// The best `k` rows holding any of the lexemes, by BM25, from the collection's index
    /// (exact), best first; `None` where no index may serve this search. `share`: the part
    /// of the index's rows the search's filter is expected to admit (1 without one), so the
    /// index is asked for about `k / share` rows at first.
    fn indexed(&mut self, lexemes: &[String], k: usize, share: f64) -> Option<Vec<LegHit>>;
    /// The best `k` rows matching `pass`, scored by `bm25` with `terms` (lexeme, idf) and
    /// `avgdl` where the rows are stored (a distributed table's shards, each returning only
    /// its best `k` ids and scores), best first; `None` where rows are scored here.
    fn ranked(
        &mut self,
        pass: &Pass,
        terms: &[(String, f64)],
        bm25: &Bm25,
        avgdl: f64,
        k: usize,
    ) -> Option<Vec<LegHit>>;
}

/// One search's text leg.
#[derive(Debug, Clone)]
pub struct TextLeg {
    pub mode: TextMode,
    pub bm25: Bm25,
    /// Rows one pass reads at most to find candidates (raised to `pool` if smaller).
    pub budget: usize,
    /// Hits the leg returns at most.
    pub pool: usize,
    /// Hits the page needs from this leg (see `rows_needed`): a second pass is read only
    /// when the first found fewer.
    pub need: usize,
    /// The share of the collection's rows the search's filter (or partition) admits, as
    /// the planner estimates it; `None` without one.
    pub filter_share: Option<f64>,
    /// The smallest `filter_share` at which the collection's BM25 index is read under a
    /// filter (`index_share`).
    pub index_min_share: f64,
}

/// Whether, and with what expected share of admitted rows, the text leg reads the
/// collection's BM25 index: always without a filter; under one only when it admits at least
/// `min_share` of the rows. The index ranks the whole collection, so under a filter it
/// reads the best rows of everyone and checks each against the table until enough pass:
/// about `pool / share` rows, where GIN reads the rows matching the query within the
/// filter (BENCHMARKS.md measures where the two cross).
pub fn index_share(filter_share: Option<f64>, min_share: f64) -> Option<f64> {
    match filter_share {
        None => Some(1.0),
        Some(s) if s.is_finite() && s > 0.0 && s >= min_share => Some(s.min(1.0)),
        Some(_) => None,
    }
}

/// Hits the text leg must find where it can for a page ending at `page_end` (`k + offset`):
/// none if the vector leg already returned that many, else all of them.
pub fn rows_needed(vector_hits: usize, page_end: usize) -> usize {
    if vector_hits >= page_end {
        0
    } else {
        page_end
    }
}

/// Which of the query terms, sorted rarest first, to read rows for: rarer terms first while
/// their document frequencies fit in `budget` rows. Terms left out are too common to
/// enumerate; they still count in every candidate's score. At least the rarest term is used.
pub fn essential_terms(dfs: &[f64], budget: f64) -> usize {
    let mut used = 0.0;
    let mut n = 0;
    for &df in dfs {
        if n > 0 && used + df > budget {
            break;
        }
        used += df;
        n += 1;
    }
    n
}

impl TextLeg {
    /// The reads, in order, for terms `(lexeme, df)` sorted rarest first. OR: the rarest
    /// terms whose matches fit the budget together, then the other terms (read only if the
    /// first pass left the page short). AND and websearch: the parsed query, once.
    pub fn passes(&self, terms: &[(String, f64)]) -> Vec<Pass> {
        match self.mode {
            TextMode::Or => {
                let dfs: Vec<f64> = terms.iter().map(|t| t.1).collect();
                let n = essential_terms(&dfs, self.budget as f64);
                let (rare, common) = terms.split_at(n);
                [rare, common]
                    .into_iter()
                    .filter(|t| !t.is_empty())
                    .map(|t| Pass::AnyOf(t.iter().map(|(l, _)| l.clone()).collect()))
                    .collect()
            }
            TextMode::And | TextMode::Websearch => vec![Pass::Parsed],
        }
    }

    /// Run the leg for the query's distinct lexemes: the best `pool` rows by BM25, best
    /// first (ties by id).
    pub fn run<S: TextSource>(&self, src: &mut S, lexemes: &[String]) -> Vec<LegHit> {
        if lexemes.is_empty() {
            return Vec::new();
        }
        let share = index_share(self.filter_share, self.index_min_share);
        if let (TextMode::Or, Some(share)) = (self.mode, share) {
            if let Some(hits) = src.indexed(lexemes, self.pool, share) {
                return hits;
            }
        }
        let (n, avgdl) = src.corpus();
        let dfs = src.doc_freqs(lexemes);
        let mut terms: Vec<(String, f64)> = lexemes.iter().cloned().zip(dfs).collect();
        terms.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        let scored: Vec<(String, f64)> =
            terms.iter().map(|(l, d)| (l.clone(), idf(n, *d))).collect();
        // Where rows are scored where they are stored, every matching row is scored there
        // (exact, no budget): only the best rows of each place come back, not their text.
        let every = match self.mode {
            TextMode::Or => Pass::AnyOf(terms.iter().map(|(l, _)| l.clone()).collect()),
            TextMode::And | TextMode::Websearch => Pass::Parsed,
        };
        if let Some(mut hits) = src.ranked(&every, &scored, &self.bm25, avgdl, self.pool) {
            rank_leg(&mut hits);
            hits.truncate(self.pool);
            return hits;
        }
        let budget = self.budget.max(self.pool);
        let mut hits = Vec::new();
        let mut seen = HashSet::new();
        for (i, pass) in self.passes(&terms).iter().enumerate() {
            if i > 0 && hits.len() >= self.need {
                break;
            }
            // rows an earlier pass found may come again: room for them besides `budget` new
            src.matches(pass, budget + hits.len(), &mut |id, bytes| {
                if let Ok(v) = TsVector::new(bytes) {
                    if seen.insert(id.clone()) {
                        let score = self.bm25.score_tsvector(&scored, &v, avgdl);
                        hits.push(LegHit { id, score });
                    }
                }
            });
        }
        rank_leg(&mut hits);
        hits.truncate(self.pool);
        hits
    }
}

#[cfg(test)]
mod tests {
    use super::super::tsvector::testing::memory_image;
    use super::*;

    /// Rows as (id, tsvector, lexemes); the reads made; an index's answer, if one may serve.
    struct Rows {
        rows: Vec<(String, Vec<u8>, Vec<String>)>,
        reads: Vec<(Pass, usize)>,
        index: Option<Vec<LegHit>>,
        /// The shares the index was asked with.
        shares: Vec<f64>,
        /// Scores rows where they are (as a distributed table's shards do).
        remote: bool,
    }

    impl Rows {
        fn new(rows: &[(&str, &[(&str, u16)])]) -> Rows {
            let rows = rows
                .iter()
                .map(|(id, lex)| {
                    let positions: Vec<Vec<u16>> =
                        lex.iter().map(|(_, tf)| (1..=*tf).collect()).collect();
                    let entries: Vec<(&str, &[u16])> = lex
                        .iter()
                        .zip(&positions)
                        .map(|((l, _), p)| (*l, p.as_slice()))
                        .collect();
                    let words = lex.iter().map(|(l, _)| l.to_string()).collect();
                    (id.to_string(), memory_image(&entries), words)
                })
                .collect();
            Rows {
                rows,
                reads: Vec::new(),
                index: None,
                shares: Vec::new(),
                remote: false,
            }
        }
    }

    impl TextSource for Rows {
        fn corpus(&mut self) -> (f64, f64) {
            (100.0, 3.0)
        }
        fn doc_freqs(&mut self, lexemes: &[String]) -> Vec<f64> {
            lexemes
                .iter()
                .map(|l| self.rows.iter().filter(|r| r.2.contains(l)).count() as f64)
                .collect()
        }
        fn matches(&mut self, pass: &Pass, limit: usize, visit: &mut dyn FnMut(String, &[u8])) {
            self.reads.push((pass.clone(), limit));
            let Pass::AnyOf(terms) = pass else {
                return; // (rows here are not parsed queries)
            };
            for (id, bytes, _) in self
                .rows
                .iter()
                .filter(|r| r.2.iter().any(|w| terms.contains(w)))
                .take(limit)
            {
                visit(id.clone(), bytes);
            }
        }
        fn indexed(&mut self, _lexemes: &[String], k: usize, share: f64) -> Option<Vec<LegHit>> {
            self.shares.push(share);
            self.index
                .as_ref()
                .map(|hits| hits.iter().take(k).cloned().collect())
        }
        fn ranked(
            &mut self,
            pass: &Pass,
            terms: &[(String, f64)],
            bm25: &Bm25,
            avgdl: f64,
            k: usize,
        ) -> Option<Vec<LegHit>> {
            if !self.remote {
                return None;
            }
            let mut hits = Vec::new();
            self.matches(pass, usize::MAX, &mut |id, bytes| {
                let score = bm25.score_tsvector(terms, &TsVector::new(bytes).unwrap(), avgdl);
                hits.push(LegHit { id, score });
            });
            // each "shard" returns its best k in any order; the leg orders them
            hits.sort_by(|a, b| b.score.total_cmp(&a.score));
            hits.truncate(k);
            hits.reverse();
            Some(hits)
        }
    }

    fn leg(need: usize) -> TextLeg {
        TextLeg {
            mode: TextMode::Or,
            bm25: Bm25::default(),
            budget: 2,
            pool: 3,
            need,
            filter_share: None,
            index_min_share: 0.2,
        }
    }

    fn lexemes(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn essential_terms_fit_the_budget_but_keep_the_rarest() {
        assert_eq!(essential_terms(&[3.0, 10.0, 500.0, 4000.0], 1000.0), 3);
        assert_eq!(essential_terms(&[3000.0, 4000.0], 1000.0), 1);
        assert_eq!(essential_terms(&[], 1000.0), 0);
    }

    #[test]
    fn rows_needed_fills_the_page_unless_the_vector_leg_did() {
        assert_eq!(rows_needed(100, 10), 0);
        assert_eq!(rows_needed(4, 10), 10);
        assert_eq!(rows_needed(0, 1), 1);
    }

    #[test]
    fn or_reads_the_rare_terms_first_and_the_common_ones_only_for_a_short_page() {
        // "rare" in 1 row, "common" in 4: the rare term fits the budget of 3 rows (pool 3)
        let mut src = Rows::new(&[
            ("a", &[("common", 1)]),
            ("b", &[("common", 2), ("rare", 1)]),
            ("c", &[("common", 1)]),
            ("d", &[("common", 1)]),
        ]);
        let hits = leg(1).run(&mut src, &lexemes(&["common", "rare"]));
        assert_eq!(src.reads, vec![(Pass::AnyOf(lexemes(&["rare"])), 3)]);
        assert_eq!(
            hits.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(),
            ["b"]
        );

        // the page needs 3: the common term is read too, with room for the row seen before
        let mut src = Rows::new(&[
            ("a", &[("common", 1)]),
            ("b", &[("common", 2), ("rare", 1)]),
            ("c", &[("common", 1)]),
            ("d", &[("common", 1)]),
        ]);
        let hits = leg(3).run(&mut src, &lexemes(&["rare", "common"]));
        assert_eq!(
            src.reads,
            vec![
                (Pass::AnyOf(lexemes(&["rare"])), 3),
                (Pass::AnyOf(lexemes(&["common"])), 4)
            ]
        );
        // b holds both terms; a, c, d tie on the common one and are cut at the pool by id
        let ids: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(ids, ["b", "a", "c"]);
        assert!(hits[0].score > hits[1].score && hits[1].score == hits[2].score);
    }

    #[test]
    fn an_index_that_may_serve_the_search_answers_without_reading_rows() {
        let mut src = Rows::new(&[("a", &[("x", 1)])]);
        let hit = |id: &str, score| LegHit {
            id: id.into(),
            score,
        };
        src.index = Some(vec![
            hit("z", 2.0),
            hit("y", 1.0),
            hit("w", 0.5),
            hit("v", 0.1),
        ]);
        let hits = leg(3).run(&mut src, &lexemes(&["x"]));
        assert!(src.reads.is_empty());
        assert_eq!(
            hits.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(),
            ["z", "y", "w"]
        );
        // AND never reads the index
        let and = TextLeg {
            mode: TextMode::And,
            ..leg(3)
        };
        assert_eq!(and.passes(&[("x".into(), 1.0)]), vec![Pass::Parsed]);
    }

    #[test]
    fn a_narrow_filter_reads_rows_within_it_a_wide_one_reads_the_index() {
        let index = vec![LegHit {
            id: "z".into(),
            score: 2.0,
        }];
        // admits 5% of the rows, below the 20% the index needs: GIN within the filter
        let mut src = Rows::new(&[("a", &[("x", 1)])]);
        src.index = Some(index.clone());
        let narrow = TextLeg {
            filter_share: Some(0.05),
            ..leg(3)
        };
        let hits = narrow.run(&mut src, &lexemes(&["x"]));
        assert_eq!(src.reads, vec![(Pass::AnyOf(lexemes(&["x"])), 3)]);
        assert!(src.shares.is_empty());
        assert_eq!(
            hits.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(),
            ["a"]
        );
        // admits half: the index, told to expect half its rows to pass
        let mut src = Rows::new(&[("a", &[("x", 1)])]);
        src.index = Some(index);
        let wide = TextLeg {
            filter_share: Some(0.5),
            ..leg(3)
        };
        let hits = wide.run(&mut src, &lexemes(&["x"]));
        assert!(src.reads.is_empty());
        assert_eq!(src.shares, vec![0.5]);
        assert_eq!(hits[0].id, "z");
    }

    #[test]
    fn the_index_share_rule() {
        assert_eq!(index_share(None, 0.2), Some(1.0));
        assert_eq!(index_share(Some(0.2), 0.2), Some(0.2));
        assert_eq!(index_share(Some(1.7), 0.2), Some(1.0));
        assert_eq!(index_share(Some(0.19), 0.2), None);
        assert_eq!(index_share(Some(0.0), 0.0), None);
        assert_eq!(index_share(Some(f64::NAN), 0.0), None);
        // a minimum above 1: never under a filter
        assert_eq!(index_share(Some(1.0), 1.5), None);
    }

    #[test]
    fn rows_scored_where_they_are_stored_are_read_once_with_every_term() {
        // the budget (2 rows) would read only the rare term; scored where the rows are,
        // every matching row is scored and the same best rows come back as from reading all
        let rows: [(&str, &[(&str, u16)]); 4] = [
            ("a", &[("common", 1)]),
            ("b", &[("common", 2), ("rare", 1)]),
            ("c", &[("common", 3)]),
            ("d", &[("common", 1)]),
        ];
        let mut remote = Rows::new(&rows);
        remote.remote = true;
        let hits = leg(1).run(&mut remote, &lexemes(&["common", "rare"]));
        assert_eq!(
            remote.reads,
            vec![(Pass::AnyOf(lexemes(&["rare", "common"])), usize::MAX)]
        );
        let everything = TextLeg {
            budget: 100,
            need: 3,
            ..leg(3)
        }
        .run(&mut Rows::new(&rows), &lexemes(&["common", "rare"]));
        assert_eq!(hits, everything);
        assert_eq!(
            hits.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(),
            ["b", "c", "a"]
        );
        // AND and websearch: the parsed query
        let mut remote = Rows::new(&[]);
        remote.remote = true;
        let and = TextLeg {
            mode: TextMode::And,
            ..leg(3)
        };
        assert!(and.run(&mut remote, &lexemes(&["x"])).is_empty());
        assert_eq!(remote.reads, vec![(Pass::Parsed, usize::MAX)]);
    }

    #[test]
    fn no_lexemes_no_reads() {
        let mut src = Rows::new(&[("a", &[("x", 1)])]);
        assert!(leg(3).run(&mut src, &[]).is_empty());
        assert!(src.reads.is_empty());
    }
}
