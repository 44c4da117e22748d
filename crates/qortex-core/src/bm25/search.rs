//! The exact BM25 top-k of a query over a write buffer and segments, as one index.
//!
//! Statistics are the index's as a whole: N and Σ length over every document the buffer
//! and the segments hold (dead ones too, until a merge drops them: so df ≤ N always), a
//! lexeme's df summed over all of them. The buffer is scored exhaustively (it is small);
//! each segment document at a time by MaxScore with block-max bounds (`topk`), skipping
//! its dead documents. The results are ordered by score, then by where they are (the
//! segments in the order given, the buffer last) and docno: a total order, so asking again
//! for more rows returns the same first rows.
//!
//! A scope (a value of the index's second column, as `scope_lexeme` makes it a term every
//! document of that value holds) bounds the top-k to its documents inside the loop: each
//! segment's top-k admits only the docnos of the scope's postings, the buffer only the
//! documents that hold it. The statistics stay the whole index's.
use super::codec::Posting;
use super::record::Matched;
use super::segment::{BlockRef, Bytes, Corrupt, Segment};
use super::topk::{self, Admit, Blocks};
use super::Tid;
use crate::hybrid::text::{idf, Bm25};

/// A row of the result: its score (> 0: it has a query lexeme) and heap TID.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub score: f64,
    pub tid: Tid,
}

/// What a query needs of each segment, read once: the query's entries and the blocks of
/// those present, and the dead bitmap.
struct SegmentTerms {
    blocks: Vec<Vec<BlockRef>>,
    dead: Vec<u8>,
    /// With a scope: its documents (docnos, ascending).
    scope: Option<Vec<u32>>,
    /// Hits found so far (docno, score), best first, and whether they are all of them.
    found: Vec<(u32, f64)>,
    complete: bool,
    /// The floor and the k they were found with (floor 0: none; see `topk::top_k`).
    floor: f64,
    k: usize,
}

/// A query's statistics and the parts of the index it reads: everything but the top-k.
pub struct Prepared {
    pub lexemes: Vec<Vec<u8>>,
    pub n: f64,
    pub avgdl: f64,
    pub df: Vec<f64>,
    bm25: Bm25,
    segments: Vec<SegmentTerms>,
    /// Live buffered documents with a query lexeme: (position, score, TID), best first.
    buffer: Vec<(u32, f64, Tid)>,
}

/// A query over a snapshot of the index (segments and buffered documents as the caller
/// read them): statistics first, then the top k for any k.
pub struct Searcher<B: Bytes> {
    pub segments: Vec<Segment<B>>,
    pub prepared: Prepared,
}

struct Source<'a, B: Bytes> {
    segment: &'a Segment<B>,
    blocks: &'a [Vec<BlockRef>],
}

impl<B: Bytes> Blocks for Source<'_, B> {
    fn read(&mut self, t: usize, j: usize) -> Result<Vec<Posting>, Corrupt> {
        self.segment.postings(&self.blocks[t][j])
    }
}

/// A buffered document's BM25, its terms' parts summed in the query's order (as `topk`
/// sums a segment document's).
fn score_matched(bm25: &Bm25, doc: &Matched, idfs: &[f64], avgdl: f64) -> f64 {
    doc.tfs
        .iter()
        .zip(idfs)
        .filter(|(&tf, _)| tf > 0)
        .map(|(&tf, &idf)| bm25.part(idf, tf, doc.len, avgdl))
        .sum()
}

/// The k-th best score of `hits` (0 with fewer than k).
fn kth_best(hits: &[(f64, usize, u32, Option<Tid>)], k: usize) -> f64 {
    if hits.len() < k || k == 0 {
        return 0.0;
    }
    let mut scores: Vec<f64> = hits.iter().map(|h| h.0).collect();
    scores.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
    scores[k - 1]
}

impl<B: Bytes> Searcher<B> {
    /// Statistics and the query's entries, over `segments` and `buffer` (the buffered
    /// documents as `record::QueryTerms` of these `lexemes` and `scope` read them).
    /// `lexemes` distinct (the order is kept: it orders the sum); `scope` (a
    /// `scope_lexeme`) bounds the rows to the documents that hold it.
    pub fn new(
        segments: Vec<Segment<B>>,
        buffer: &[Matched],
        lexemes: Vec<Vec<u8>>,
        bm25: Bm25,
        scope: Option<Vec<u8>>,
    ) -> Result<Self, Corrupt> {
        let mut n = buffer.len() as f64;
        let mut total: f64 = buffer.iter().map(|d| d.len as f64).sum();
        let mut df = vec![0.0; lexemes.len()];
        for d in buffer {
            for (t, &tf) in d.tfs.iter().enumerate() {
                if tf > 0 {
                    df[t] += 1.0;
                }
            }
        }
        let mut segs = Vec::with_capacity(segments.len());
        for s in &segments {
            n += s.num_docs() as f64;
            total += s.total_len() as f64;
            let entries = s.lookup(&lexemes)?;
            let mut blocks = Vec::with_capacity(entries.len());
            for (t, e) in entries.iter().enumerate() {
                match e {
                    Some(e) => {
                        df[t] += e.df() as f64;
                        blocks.push(s.blocks(e)?);
                    }
                    None => blocks.push(Vec::new()),
                }
            }
            let scoped = match &scope {
                None => None,
                Some(l) => Some(match s.lookup(std::slice::from_ref(l))?[0] {
                    None => Vec::new(),
                    Some(e) => {
                        let mut docnos = Vec::with_capacity(e.df() as usize);
                        for b in s.blocks(&e)? {
                            docnos.extend(s.postings(&b)?.iter().map(|p| p.docno));
                        }
                        docnos
                    }
                }),
            };
            let any = entries.iter().any(Option::is_some)
                && scoped.as_ref().is_none_or(|d| !d.is_empty());
            segs.push(SegmentTerms {
                blocks,
                dead: if any { s.dead_bits()? } else { Vec::new() },
                scope: scoped,
                found: Vec::new(),
                complete: !any,
                floor: 0.0,
                k: 0,
            });
        }
        let avgdl = if n > 0.0 { total / n } else { 1.0 };
        let idfs: Vec<f64> = df.iter().map(|&d| idf(n, d)).collect();
        let mut hits: Vec<(u32, f64, Tid)> = buffer
            .iter()
            .enumerate()
            .filter(|(_, d)| !d.dead && d.in_scope)
            .map(|(i, d)| (i as u32, score_matched(&bm25, d, &idfs, avgdl), d.tid))
            .filter(|h| h.1 > 0.0)
            .collect();
        hits.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok(Searcher {
            segments,
            prepared: Prepared {
                lexemes,
                n,
                avgdl,
                df,
                bm25,
                segments: segs,
                buffer: hits,
            },
        })
    }

    /// The idf of each query lexeme.
    pub fn idfs(&self) -> Vec<f64> {
        let p = &self.prepared;
        p.df.iter().map(|&d| idf(p.n, d)).collect()
    }

    /// A segment's best `k` of those not below `floor`, kept for a later larger k.
    fn segment_top(&mut self, s: usize, k: usize, floor: f64) -> Result<(), Corrupt> {
        let idfs = self.idfs();
        let p = &self.prepared;
        let st = &p.segments[s];
        // fewer than asked above a floor: every document not below it (so not below a
        // higher one)
        let all_above = st.floor > 0.0 && st.found.len() < st.k && st.floor <= floor;
        if st.complete || st.found.len() >= k || all_above {
            return Ok(());
        }
        let segment = &self.segments[s];
        let admit = Admit {
            dead: &st.dead,
            scope: st.scope.as_deref(),
            num_docs: segment.num_docs(),
        };
        let mut src = Source {
            segment,
            blocks: &st.blocks,
        };
        let found = topk::top_k(
            &st.blocks, &idfs, &p.bm25, p.avgdl, k, floor, &admit, &mut src,
        )?;
        let st = &mut self.prepared.segments[s];
        st.complete = found.len() < k && floor <= 0.0;
        st.floor = floor;
        st.k = k;
        st.found = found;
        Ok(())
    }

    /// The best `k` rows, best first (a total order: see the module's comment). The
    /// buffer's and the largest segments' hits come first: the k-th best score among them
    /// is a floor the next segments' searches prune below.
    pub fn top(&mut self, k: usize) -> Result<Vec<Hit>, Corrupt> {
        // (score, source, docno or position, TID if known)
        let buffer_src = self.segments.len();
        let mut all: Vec<(f64, usize, u32, Option<Tid>)> = self
            .prepared
            .buffer
            .iter()
            .take(k)
            .map(|&(i, sc, tid)| (sc, buffer_src, i, Some(tid)))
            .collect();
        let mut by_size: Vec<usize> = (0..self.segments.len()).collect();
        by_size.sort_by_key(|&s| std::cmp::Reverse(self.segments[s].num_docs()));
        for s in by_size {
            let floor = kth_best(&all, k);
            self.segment_top(s, k, floor)?;
            all.extend(
                self.prepared.segments[s]
                    .found
                    .iter()
                    .map(|&(d, sc)| (sc, s, d, None)),
            );
        }
        all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        all.truncate(k);
        let mut out = Vec::with_capacity(all.len());
        for (score, s, d, tid) in all {
            let tid = match tid {
                Some(t) => t,
                None => self.segments[s].tids(&[d])?[0],
            };
            out.push(Hit { score, tid });
        }
        Ok(out)
    }

    /// Whether `top(k)` returned every row with a query lexeme (asking for more finds none).
    pub fn exhausted(&self, k: usize) -> bool {
        let p = &self.prepared;
        let total: usize = p.segments.iter().map(|s| s.found.len()).sum::<usize>() + p.buffer.len();
        p.segments.iter().all(|s| s.complete) && total <= k
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bm25::record::{Doc, QueryTerms, DEAD};
    use crate::bm25::scope_lexeme;
    use crate::bm25::segment::encode_segment;
    use crate::bm25::segment::tests::doc;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use std::collections::HashSet;

    /// The reference: every document scored by the formula, N and df over all of them;
    /// only those holding `scope` returned.
    fn reference(
        docs: &[(Doc, bool)],
        q: &[Vec<u8>],
        bm25: Bm25,
        scope: &Option<Vec<u8>>,
    ) -> Vec<(f64, Tid)> {
        let n = docs.len() as f64;
        let avgdl = docs.iter().map(|d| d.0.len as f64).sum::<f64>() / n;
        let idfs: Vec<f64> = q
            .iter()
            .map(|l| {
                let df = docs
                    .iter()
                    .filter(|d| d.0.terms.iter().any(|(t, _)| t == l))
                    .count();
                idf(n, df as f64)
            })
            .collect();
        let mut out: Vec<(f64, Tid)> = docs
            .iter()
            .filter(|d| !d.1 && scope.as_ref().is_none_or(|l| d.0.holds(l)))
            .map(|d| (score_doc(&bm25, &d.0, q, &idfs, avgdl), d.0.tid))
            .filter(|h| h.0 > 0.0)
            .collect();
        out.sort_by(|a, b| b.0.total_cmp(&a.0));
        out
    }

    /// The reference's BM25 of a document for lexemes, with their idf.
    fn score_doc(bm25: &Bm25, doc: &Doc, lexemes: &[Vec<u8>], idfs: &[f64], avgdl: f64) -> f64 {
        lexemes
            .iter()
            .zip(idfs)
            .filter_map(|(l, &idf)| {
                let i = doc
                    .terms
                    .binary_search_by(|(t, _)| t.as_slice().cmp(l))
                    .ok()?;
                Some(bm25.part(idf, doc.terms[i].1, doc.len, avgdl))
            })
            .sum()
    }

    /// Buffered documents (with their dead flags) as a scan reads their records.
    fn read(buffer: &[(Doc, bool)], lexemes: &[Vec<u8>], scope: &Option<Vec<u8>>) -> Vec<Matched> {
        let q = QueryTerms::new(lexemes, scope.as_deref());
        buffer
            .iter()
            .map(|(d, dead)| {
                let mut record = d.encode().unwrap();
                if *dead {
                    record[0] |= DEAD;
                }
                q.read(&record).unwrap()
            })
            .collect()
    }

    fn corpus(rng: &mut ChaCha8Rng, n: usize, tid0: u64) -> Vec<Doc> {
        (0..n)
            .map(|i| {
                let len = if rng.gen_bool(0.05) {
                    300
                } else {
                    rng.gen_range(1..40)
                };
                let mut t: Vec<(String, u16)> = Vec::new();
                for _ in 0..len {
                    // Zipf-ish: small ids much more often
                    let w = (rng.gen::<f64>().powi(3) * 500.0) as u32;
                    t.push((format!("w{w}"), 1));
                }
                let mut m: std::collections::BTreeMap<String, u16> = Default::default();
                for (w, _) in t {
                    *m.entry(w).or_default() += 1;
                }
                let t: Vec<(&str, u16)> = m.iter().map(|(w, n)| (w.as_str(), *n)).collect();
                // every document in one of 5 scopes (the index's second column)
                doc(tid0 + i as u64, &t).with_scope(i as u64 * 7919 % 5)
            })
            .collect()
    }

    #[test]
    fn top_k_over_segments_and_buffer_equals_scoring_everything() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let bm25 = Bm25::default();
        for round in 0..12 {
            let parts: Vec<Vec<Doc>> = (0..(round % 4 + 1))
                .map(|p| {
                    let n = rng.gen_range(1..700);
                    corpus(&mut rng, n, (p as u64 + 1) << 32)
                })
                .collect();
            let segs: Vec<Segment<Vec<u8>>> = parts
                .iter()
                .map(|d| Segment::open(encode_segment(d, 64)).unwrap())
                .collect();
            let nb = rng.gen_range(0..60);
            let buffer: Vec<(Doc, bool)> = corpus(&mut rng, nb, 1)
                .into_iter()
                .map(|d| (d, rng.gen_bool(0.1)))
                .collect();
            let mut all: Vec<(Doc, bool)> =
                parts.iter().flatten().map(|d| (d.clone(), false)).collect();
            all.extend(buffer.iter().cloned());
            let queries = [
                vec!["w0"],
                vec!["w1", "w30", "w499"],
                vec!["w3", "nope"],
                vec!["w200", "w7", "w45", "w2", "w90", "w0"],
            ];
            let scopes = [
                None,
                Some(scope_lexeme(2)),
                Some(scope_lexeme(0)),
                Some(scope_lexeme(99)),
            ];
            for (q, scope) in queries
                .iter()
                .flat_map(|q| scopes.iter().map(move |s| (q, s)))
            {
                let lex: Vec<Vec<u8>> = q.iter().map(|s| s.as_bytes().to_vec()).collect();
                let want = reference(&all, &lex, bm25, scope);
                if scope == &Some(scope_lexeme(99)) {
                    assert!(want.is_empty());
                }
                let mut s = Searcher::new(
                    segs.clone(),
                    &read(&buffer, &lex, scope),
                    lex.clone(),
                    bm25,
                    scope.clone(),
                )
                .unwrap();
                for k in [1, 10, 100, 5000] {
                    let got = s.top(k).unwrap();
                    assert_eq!(got.len(), want.len().min(k), "round {round} {q:?} k {k}");
                    for (g, w) in got.iter().zip(&want) {
                        assert!((g.score - w.0).abs() < 1e-9 * w.0.max(1.0), "{g:?} {w:?}");
                    }
                    // the TIDs: equal where the reference has no tie
                    let ws: std::collections::HashMap<Tid, f64> =
                        want.iter().map(|w| (w.1, w.0)).collect();
                    for g in &got {
                        assert!((ws[&g.tid] - g.score).abs() < 1e-9 * g.score.max(1.0));
                    }
                    let distinct: HashSet<Tid> = got.iter().map(|h| h.tid).collect();
                    assert_eq!(distinct.len(), got.len());
                    if k >= want.len() {
                        assert!(s.exhausted(k));
                    }
                }
                // a larger k starts with the same rows
                let a = s.top(10).unwrap();
                let b = s.top(40).unwrap();
                assert_eq!(a[..], b[..a.len()]);
            }
        }
    }

    #[test]
    fn batches_over_ties_with_a_floor_return_each_row_once() {
        // every document scores alike: the floors of later segments equal earlier ones'
        let alike = |tid0: u64| -> Vec<Doc> {
            (0..30)
                .map(|i| doc(tid0 + i, &[("fox", 1), ("x", 1)]))
                .collect()
        };
        let segs: Vec<_> = [1000, 2000, 3000]
            .iter()
            .map(|&t| Segment::open(encode_segment(&alike(t), 1)).unwrap())
            .collect();
        let buffer: Vec<(Doc, bool)> = alike(0).into_iter().map(|d| (d, false)).collect();
        let fox = vec![b"fox".to_vec()];
        let mut s = Searcher::new(
            segs,
            &read(&buffer, &fox, &None),
            fox,
            Bm25::default(),
            None,
        )
        .unwrap();
        let mut prev: Vec<Hit> = Vec::new();
        for k in [10, 20, 40, 80, 160] {
            let got = s.top(k).unwrap();
            assert_eq!(got.len(), k.min(120), "k {k}");
            assert_eq!(
                got[..prev.len()],
                prev[..],
                "k {k} starts with the smaller k's rows"
            );
            let distinct: HashSet<Tid> = got.iter().map(|h| h.tid).collect();
            assert_eq!(distinct.len(), got.len(), "k {k}");
            prev = got;
        }
        assert!(s.exhausted(160));
    }

    #[test]
    fn dead_documents_of_a_segment_are_skipped_but_still_counted() {
        let docs = vec![
            doc(1, &[("fox", 3)]),
            doc(2, &[("fox", 1), ("dog", 1)]),
            doc(3, &[("dog", 1)]),
        ];
        let mut bytes = encode_segment(&docs, 1);
        let (off, _) = Segment::open(bytes.clone()).unwrap().dead_range();
        bytes[off as usize] |= 1; // docno 0 dead
        let seg = Segment::open(bytes).unwrap();
        let mut s =
            Searcher::new(vec![seg], &[], vec![b"fox".to_vec()], Bm25::default(), None).unwrap();
        assert_eq!(s.prepared.n, 3.0);
        assert_eq!(s.prepared.df, vec![2.0]);
        let got = s.top(10).unwrap();
        assert_eq!(got.iter().map(|h| h.tid).collect::<Vec<_>>(), [2]);
    }
}
