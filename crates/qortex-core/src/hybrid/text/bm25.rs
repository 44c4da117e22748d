//! Okapi BM25 (Lucene's non-negative idf) over tsvectors.
use super::TsVector;

/// Okapi BM25 with Lucene's non-negative idf.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bm25 {
    pub k1: f64,
    pub b: f64,
}

impl Default for Bm25 {
    fn default() -> Self {
        Bm25 { k1: 1.2, b: 0.75 }
    }
}

/// Inverse document frequency of a term in `df` of `n` rows (never negative).
pub fn idf(n: f64, df: f64) -> f64 {
    let df = df.clamp(0.0, n.max(0.0));
    (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
}

impl Bm25 {
    /// A term's part of a document's score: its idf, its count in the document and the
    /// document's length.
    pub fn part(&self, idf: f64, tf: u16, dl: u32, avgdl: f64) -> f64 {
        let norm = self.k1 * (1.0 - self.b + self.b * dl as f64 / avgdl.max(1e-9));
        let tf = tf as f64;
        idf * tf * (self.k1 + 1.0) / (tf + norm)
    }

    /// Score of one document: `terms` are (lexeme, idf) of the query; `doc` the document's
    /// lexemes with term frequencies; a lexeme without positions counts once. The
    /// document's length is its number of positions (tokens other than stop words).
    /// The reference formula; searches use `score_tsvector`.
    #[cfg(test)]
    pub fn score(&self, terms: &[(String, f64)], doc: &[(&str, u16)], avgdl: f64) -> f64 {
        let dl: f64 = doc.iter().map(|(_, n)| (*n).max(1) as f64).sum();
        let norm = self.k1 * (1.0 - self.b + self.b * dl / avgdl.max(1e-9));
        terms
            .iter()
            .filter_map(|(t, idf)| {
                let tf = doc.iter().find(|(l, _)| l == t)?.1.max(1) as f64;
                Some(idf * tf * (self.k1 + 1.0) / (tf + norm))
            })
            .sum()
    }

    /// BM25 of a tsvector in PostgreSQL's in-memory layout (see `score` for the terms).
    pub fn score_tsvector(&self, terms: &[(String, f64)], doc: &TsVector<'_>, avgdl: f64) -> f64 {
        self.score_terms(
            terms.iter().map(|(t, idf)| (t.as_bytes(), *idf)),
            doc,
            avgdl,
        )
    }

    /// `score_tsvector` for terms as (lexeme bytes, idf), in order (the same sum, term by
    /// term), without owning them.
    pub fn score_terms<'t>(
        &self,
        terms: impl IntoIterator<Item = (&'t [u8], f64)>,
        doc: &TsVector<'_>,
        avgdl: f64,
    ) -> f64 {
        let norm = self.k1 * (1.0 - self.b + self.b * doc.length() / avgdl.max(1e-9));
        terms
            .into_iter()
            .map(|(t, idf)| match doc.tf(t) {
                0 => 0.0,
                tf => idf * tf as f64 * (self.k1 + 1.0) / (tf as f64 + norm),
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tsvector::testing::memory_image;
    use super::*;

    #[test]
    fn score_tsvector_is_the_reference_formula() {
        let img = memory_image(&[
            ("a", &[3]),
            ("cat", &[1, 4, 9]),
            ("dogs", &[2]),
            ("zz", &[]),
        ]);
        let v = TsVector::new(&img).unwrap();
        let bm = Bm25::default();
        let terms = vec![("cat".to_string(), 1.3), ("dogs".to_string(), 0.4)];
        let doc = [("a", 1u16), ("cat", 3), ("dogs", 1), ("zz", 1)];
        assert!((bm.score_tsvector(&terms, &v, 5.0) - bm.score(&terms, &doc, 5.0)).abs() < 1e-12);
    }

    #[test]
    fn bm25_matches_the_formula() {
        let bm = Bm25 { k1: 1.5, b: 0.75 };
        let doc = [("cat", 2u16), ("purr", 1), ("dog", 1)]; // dl = 4
        let terms = vec![("cat".to_string(), 2.0), ("fish".to_string(), 5.0)];
        let norm = 1.5 * (1.0 - 0.75 + 0.75 * 4.0 / 8.0);
        let want = 2.0 * 2.0 * 2.5 / (2.0 + norm);
        assert!((bm.score(&terms, &doc, 8.0) - want).abs() < 1e-12);
        assert_eq!(bm.score(&[("fish".into(), 5.0)], &doc, 8.0), 0.0);
        assert!((idf(100.0, 1.0) - (1.0f64 + 99.5 / 1.5).ln()).abs() < 1e-12);
        assert!(idf(10.0, 10.0) > 0.0);
    }
}
