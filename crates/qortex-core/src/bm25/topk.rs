//! A segment's exact BM25 top-k, document at a time: MaxScore (Turtle & Flood) with
//! block-max bounds (Ding & Suel) over cursors that decode a posting block only when a
//! document in it can still enter the top k.
//!
//! Terms are ordered by their upper bound (the best score any of their postings can give).
//! With θ the k-th best score so far, the longest prefix of that order whose bounds add up
//! below θ is *non-essential*: a document holding only those terms cannot enter the top k,
//! so candidates are the documents of the other (*essential*) terms, taken in docno order.
//! A candidate's essential parts are exact; each non-essential term is then looked up, the
//! largest bound first, only while the score so far plus what the remaining terms could add
//! (the term's bound, then its block's bound, before the block is decoded) still reaches θ.
//!
//! Before that, while θ is reached, the essential terms' current blocks bound every
//! document up to the first of them to end (block-max MaxScore): below θ, the cursors jump
//! past it, and a block entered at its first posting is decoded only once a document in
//! it is looked at.
//!
//! Documents the caller does not admit (dead, outside a scope) are skipped before they are
//! scored; a scope's sorted docnos also drive the cursors past the documents between them.
//!
//! The order is by score, then docno (ascending): documents come in docno order, so one
//! tying with the k-th score cannot displace it, and a bound that only reaches θ prunes.
use super::codec::Posting;
use super::segment::{is_dead, BlockRef, Corrupt};
use crate::hybrid::text::Bm25;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// A heap entry (score, docno) ordered so that the heap's top is the worst: the lowest
/// score, then the highest docno.
#[derive(PartialEq)]
struct Entry(f64, u32);
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    fn cmp(&self, o: &Self) -> Ordering {
        o.0.total_cmp(&self.0).then(self.1.cmp(&o.1))
    }
}

/// Reads a posting block of a query term.
pub trait Blocks {
    /// The postings of block `j` of term `t`, in docno order.
    fn read(&mut self, t: usize, j: usize) -> Result<Vec<Posting>, Corrupt>;
}

/// The documents a search admits: those not dead and, with a scope, in it.
pub struct Admit<'a> {
    pub dead: &'a [u8],
    /// The scope's docnos, ascending.
    pub scope: Option<&'a [u32]>,
    pub num_docs: u32,
}

impl Admit<'_> {
    /// The first admitted docno at or after `d` (a scope's position `at` moves forward).
    fn next(&self, mut d: u32, at: &mut usize) -> Option<u32> {
        loop {
            if let Some(s) = self.scope {
                *at += s[*at..].partition_point(|&x| x < d);
                d = *s.get(*at)?;
            }
            if d >= self.num_docs {
                return None;
            }
            if !is_dead(self.dead, d) {
                return Some(d);
            }
            d += 1;
        }
    }
}

/// A term's position in its blocks.
struct Cursor<'a> {
    blocks: &'a [BlockRef],
    /// The best part of each block, and of the term.
    bound: Vec<f64>,
    upper: f64,
    /// The current block, decoded if `postings` is Some, and the position in it.
    j: usize,
    postings: Option<Vec<Posting>>,
    i: usize,
}

impl Cursor<'_> {
    /// Move to the block that may hold `d` (the first whose last docno is ≥ d), without
    /// decoding it; false past the last block.
    fn enter(&mut self, d: u32) -> bool {
        while self.j < self.blocks.len() && self.blocks[self.j].header.last < d {
            self.j += 1;
            self.postings = None;
            self.i = 0;
        }
        self.j < self.blocks.len()
    }

    /// Move to the first posting at or after `d` and say its docno (None past the end).
    /// A block entered at its first posting is left undecoded: its header has the docno.
    fn seek(&mut self, t: usize, d: u32, src: &mut impl Blocks) -> Result<Option<u32>, Corrupt> {
        if !self.enter(d) {
            return Ok(None);
        }
        // (undecoded, the cursor is on the block's first posting: `enter` set i to 0)
        if self.postings.is_none() && self.blocks[self.j].header.first >= d {
            return Ok(Some(self.blocks[self.j].header.first));
        }
        let from = self.i;
        let ps = self.decoded(t, src)?;
        // mostly the next posting or one close by
        let mut i = from;
        while i < ps.len() && i < from + 8 && ps[i].docno < d {
            i += 1;
        }
        if i < ps.len() && ps[i].docno < d {
            i += ps[i..].partition_point(|p| p.docno < d);
        }
        // the block's last docno is ≥ d (`enter`), and its postings end there
        let docno = ps
            .get(i)
            .map(|p| p.docno)
            .ok_or_else(|| Corrupt("a posting block ends before its header's last docno".into()))?;
        self.i = i;
        Ok(Some(docno))
    }

    /// The posting the cursor is on.
    fn posting(&mut self, t: usize, src: &mut impl Blocks) -> Result<Posting, Corrupt> {
        let i = self.i;
        Ok(self.decoded(t, src)?[i])
    }

    /// The current block's postings, decoded on first use.
    fn decoded(&mut self, t: usize, src: &mut impl Blocks) -> Result<&[Posting], Corrupt> {
        if self.postings.is_none() {
            let ps = src.read(t, self.j)?;
            if ps.first().map(|p| p.docno) != Some(self.blocks[self.j].header.first) {
                return Err(Corrupt(
                    "a posting block does not start where its header says".into(),
                ));
            }
            self.postings = Some(ps);
        }
        Ok(self.postings.as_deref().expect("decoded above"))
    }
}

/// Below θ by more than rounding: a bound summed in another order than the score it bounds
/// may differ from it in the last bits, so a bound this close is not trusted to prune.
fn below(bound: f64, theta: f64) -> bool {
    bound < theta - theta.abs() * 1e-12
}

/// The best `k` admitted documents of a segment by BM25 over the query terms (term `t`'s
/// blocks `blocks[t]`, idf `idfs[t]`), as (docno, score) by score then docno; every one has
/// at least one of the terms. Scores are summed in term order, as the buffer's are.
///
/// With a `floor` above 0 (the k-th best score other segments already have), documents
/// below it are pruned from the start and not returned: then fewer than k documents does
/// not mean the segment has no more.
#[allow(clippy::too_many_arguments)]
pub fn top_k(
    blocks: &[Vec<BlockRef>],
    idfs: &[f64],
    bm25: &Bm25,
    avgdl: f64,
    k: usize,
    floor: f64,
    admit: &Admit<'_>,
    src: &mut impl Blocks,
) -> Result<Vec<(u32, f64)>, Corrupt> {
    if k == 0 {
        return Ok(Vec::new());
    }
    let mut cursors: Vec<Cursor> = blocks
        .iter()
        .zip(idfs)
        .map(|(bs, &idf)| {
            let bound: Vec<f64> = bs
                .iter()
                .map(|b| bm25.part(idf, b.header.max_tf, b.header.min_dl, avgdl))
                .collect();
            Cursor {
                blocks: bs,
                upper: bound.iter().copied().fold(0.0, f64::max),
                bound,
                j: 0,
                postings: None,
                i: 0,
            }
        })
        .collect();
    // terms with postings, by upper bound ascending; prefix[i]: the bounds of order[..=i]
    let mut order: Vec<usize> = (0..cursors.len())
        .filter(|&t| !cursors[t].blocks.is_empty())
        .collect();
    order.sort_by(|&a, &b| {
        cursors[a]
            .upper
            .total_cmp(&cursors[b].upper)
            .then(a.cmp(&b))
    });
    let prefix: Vec<f64> = order
        .iter()
        .scan(0.0, |s, &t| {
            *s += cursors[t].upper;
            Some(*s)
        })
        .collect();
    let mut heap: BinaryHeap<Entry> = BinaryHeap::with_capacity(k + 1);
    let mut theta = floor.max(0.0);
    // order[..lazy] are non-essential
    let mut lazy = 0;
    while lazy < order.len() && below(prefix[lazy], theta) {
        lazy += 1;
    }
    let mut parts = vec![0.0; cursors.len()];
    let mut scope_at = 0;
    // where each essential cursor is: its current docno (None: exhausted)
    let mut at: Vec<Option<u32>> = vec![None; cursors.len()];
    for &t in &order {
        at[t] = cursors[t].seek(t, 0, src)?;
    }
    while let Some(d) = order[lazy..].iter().filter_map(|&t| at[t]).min() {
        let Some(next) = admit.next(d, &mut scope_at) else {
            break;
        };
        if next > d {
            for &t in &order[lazy..] {
                if at[t].is_some_and(|x| x < next) {
                    at[t] = cursors[t].seek(t, next, src)?;
                }
            }
            continue;
        }
        // whether θ prunes: the heap is full, or a floor stands in for it
        let full = heap.len() == k || theta > 0.0;
        if full {
            // Every document from d to the end of the first essential block to end is
            // bounded by the essential terms' current blocks and the other terms: if that
            // stays below θ, none of them is looked at (nor their blocks decoded).
            let mut bound = if lazy > 0 { prefix[lazy - 1] } else { 0.0 };
            let mut end = u32::MAX;
            for &t in &order[lazy..] {
                if at[t].is_some() {
                    let c = &cursors[t];
                    bound += c.bound[c.j];
                    end = end.min(c.blocks[c.j].header.last);
                }
            }
            if below(bound, theta) {
                let Some(past) = end.checked_add(1) else {
                    break;
                };
                for &t in &order[lazy..] {
                    if at[t].is_some_and(|x| x < past) {
                        at[t] = cursors[t].seek(t, past, src)?;
                    }
                }
                continue;
            }
        }
        // the essential terms' parts, exact; their cursors move past d
        let mut score = 0.0;
        for &t in &order[lazy..] {
            if at[t] != Some(d) {
                continue;
            }
            let c = &mut cursors[t];
            let p = c.posting(t, src)?;
            parts[t] = bm25.part(idfs[t], p.tf, p.dl, avgdl);
            score += parts[t];
            at[t] = c.seek(t, d + 1, src)?;
        }
        // the others, the largest bound first, while the document can still reach θ
        let mut pruned = false;
        for i in (0..lazy).rev() {
            let rest = prefix[i];
            if full && below(score + rest, theta) {
                pruned = true;
                break;
            }
            let t = order[i];
            let c = &mut cursors[t];
            if !c.enter(d) || c.blocks[c.j].header.first > d {
                continue;
            }
            let others = if i > 0 { prefix[i - 1] } else { 0.0 };
            if full && below(score + c.bound[c.j] + others, theta) {
                pruned = true;
                break;
            }
            if c.seek(t, d, src)? == Some(d) {
                let p = c.posting(t, src)?;
                parts[t] = bm25.part(idfs[t], p.tf, p.dl, avgdl);
                score += parts[t];
            }
        }
        if !pruned {
            // summed again in term order, as the buffer's documents are
            let exact: f64 = parts.iter().sum();
            if heap.len() < k {
                if !below(exact, theta) {
                    heap.push(Entry(exact, d));
                }
            } else if exact > theta {
                heap.pop();
                heap.push(Entry(exact, d));
            }
            if heap.len() == k {
                theta = heap.peek().map_or(0.0, |e| e.0).max(theta);
                while lazy < order.len() && below(prefix[lazy], theta) {
                    lazy += 1;
                }
            }
        }
        parts.iter_mut().for_each(|p| *p = 0.0);
    }
    let mut out: Vec<(u32, f64)> = heap.into_iter().map(|e| (e.1, e.0)).collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bm25::codec::{BlockHeader, BLOCK};
    use crate::hybrid::text::idf;

    /// Postings cut into blocks of `BLOCK` with their headers and packed bytes.
    fn cut(ps: &[Posting]) -> Vec<(BlockHeader, Vec<u8>)> {
        ps.chunks(BLOCK)
            .map(|c| (BlockHeader::of(c), crate::bm25::pack::encode(c)))
            .collect()
    }
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use std::collections::HashSet;

    /// Blocks in memory, counting reads.
    struct Memory(Vec<Vec<Vec<Posting>>>, usize);

    impl Blocks for Memory {
        fn read(&mut self, t: usize, j: usize) -> Result<Vec<Posting>, Corrupt> {
            self.1 += 1;
            Ok(self.0[t][j].clone())
        }
    }

    struct Corpus {
        refs: Vec<Vec<BlockRef>>,
        mem: Memory,
        idfs: Vec<f64>,
        avgdl: f64,
        /// per document: length and each term's tf
        docs: Vec<(u32, Vec<u16>)>,
    }

    /// `n` documents over terms of very different frequencies (the last ones in most
    /// documents, as stop-word-like terms are).
    fn corpus(n: u32, rates: &[f64], seed: u64) -> Corpus {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let docs: Vec<(u32, Vec<u16>)> = (0..n)
            .map(|_| {
                let tfs = rates
                    .iter()
                    .map(|r| {
                        if rng.gen_bool(*r) {
                            rng.gen_range(1..6)
                        } else {
                            0
                        }
                    })
                    .collect();
                (rng.gen_range(5..400), tfs)
            })
            .collect();
        let avgdl = docs.iter().map(|d| d.0 as f64).sum::<f64>() / n as f64;
        let (mut refs, mut mem, mut idfs) = (Vec::new(), Vec::new(), Vec::new());
        for t in 0..rates.len() {
            let ps: Vec<Posting> = docs
                .iter()
                .enumerate()
                .filter(|(_, d)| d.1[t] > 0)
                .map(|(i, d)| Posting {
                    docno: i as u32,
                    tf: d.1[t],
                    dl: d.0,
                    global: false,
                })
                .collect();
            idfs.push(idf(n as f64, ps.len() as f64));
            let bs = cut(&ps);
            refs.push(
                bs.iter()
                    .map(|(h, b)| BlockRef {
                        header: *h,
                        off: 0,
                        len: b.len() as u32,
                    })
                    .collect(),
            );
            mem.push(ps.chunks(BLOCK).map(|c| c.to_vec()).collect());
        }
        Corpus {
            refs,
            mem: Memory(mem, 0),
            idfs,
            avgdl,
            docs,
        }
    }

    /// Every admitted document with a term scored, best first (ties by docno).
    fn everything(c: &Corpus, admit: &dyn Fn(u32) -> bool) -> Vec<(u32, f64)> {
        let bm25 = Bm25::default();
        let mut out: Vec<(u32, f64)> = c
            .docs
            .iter()
            .enumerate()
            .filter(|(i, d)| admit(*i as u32) && d.1.iter().any(|&tf| tf > 0))
            .map(|(i, d)| {
                let s =
                    d.1.iter()
                        .enumerate()
                        .filter(|(_, &tf)| tf > 0)
                        .map(|(t, &tf)| bm25.part(c.idfs[t], tf, d.0, c.avgdl))
                        .sum();
                (i as u32, s)
            })
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out
    }

    fn search(c: &mut Corpus, k: usize, admit: &Admit) -> Vec<(u32, f64)> {
        search_above(c, k, 0.0, admit)
    }

    fn search_above(c: &mut Corpus, k: usize, floor: f64, admit: &Admit) -> Vec<(u32, f64)> {
        c.mem.1 = 0;
        top_k(
            &c.refs,
            &c.idfs,
            &Bm25::default(),
            c.avgdl,
            k,
            floor,
            admit,
            &mut c.mem,
        )
        .unwrap()
    }

    const RATES: [f64; 8] = [0.001, 0.004, 0.02, 0.05, 0.1, 0.3, 0.6, 0.9];

    #[test]
    fn equals_scoring_every_document_exactly() {
        for seed in 0..12 {
            let mut c = corpus(4_000, &RATES[..(seed as usize % 8) + 1], seed);
            let want = everything(&c, &|_| true);
            let n = c.docs.len() as u32;
            for k in [1, 10, 100, 5_000] {
                let got = search(
                    &mut c,
                    k,
                    &Admit {
                        dead: &[],
                        scope: None,
                        num_docs: n,
                    },
                );
                assert_eq!(got, want[..want.len().min(k)], "seed {seed} k {k}");
            }
        }
    }

    #[test]
    fn a_floor_prunes_what_is_below_it_and_keeps_the_rest_exact() {
        let all = Admit {
            dead: &[],
            scope: None,
            num_docs: u32::MAX,
        };
        for seed in 0..8 {
            let mut c = corpus(4_000, &RATES[..(seed as usize % 8) + 1], seed);
            let want = everything(&c, &|_| true);
            for (k, at) in [(10, 3), (10, 30), (100, 50), (5, 0)] {
                let Some(&(_, floor)) = want.get(at) else {
                    continue;
                };
                let got = search_above(&mut c, k, floor, &all);
                // the best k of those scoring at least the floor (ties with it kept)
                let above: Vec<(u32, f64)> = want
                    .iter()
                    .copied()
                    .filter(|&(_, s)| s >= floor)
                    .take(k)
                    .collect();
                assert_eq!(got, above, "seed {seed} k {k} floor at {at}");
                let decoded = c.mem.1;
                search(&mut c, k, &all);
                assert!(decoded <= c.mem.1, "a floor never decodes more");
            }
        }
    }

    #[test]
    fn ties_at_the_kth_score_go_to_the_lower_docno() {
        // 300 documents alike: the 10 lowest docnos, in order
        let ps: Vec<Posting> = (0..300)
            .map(|d| Posting {
                docno: d * 3,
                tf: 1,
                dl: 50,
                global: false,
            })
            .collect();
        let refs = vec![cut(&ps)
            .iter()
            .map(|(h, b)| BlockRef {
                header: *h,
                off: 0,
                len: b.len() as u32,
            })
            .collect()];
        let mut mem = Memory(vec![ps.chunks(128).map(|c| c.to_vec()).collect()], 0);
        let admit = Admit {
            dead: &[],
            scope: None,
            num_docs: 900,
        };
        let got = top_k(
            &refs,
            &[1.0],
            &Bm25::default(),
            50.0,
            10,
            0.0,
            &admit,
            &mut mem,
        )
        .unwrap();
        assert_eq!(
            got.iter().map(|h| h.0).collect::<Vec<_>>(),
            (0..10).map(|d| d * 3).collect::<Vec<_>>()
        );
    }

    #[test]
    fn dead_and_out_of_scope_documents_are_never_returned() {
        for seed in 0..8 {
            let mut c = corpus(5_000, &RATES, 50 + seed);
            let n = c.docs.len() as u32;
            let mut dead = vec![0u8; (n as usize).div_ceil(8)];
            let dead_set: HashSet<u32> = (0..n).filter(|d| d % 3 == seed as u32 % 3).collect();
            for &d in &dead_set {
                dead[d as usize / 8] |= 1 << (d % 8);
            }
            let scope: Vec<u32> = (0..n).filter(|d| d % 41 == 0 || d % 97 == 5).collect();
            let in_scope: HashSet<u32> = scope.iter().copied().collect();
            for (admit, f) in [
                (
                    Admit {
                        dead: &dead,
                        scope: None,
                        num_docs: n,
                    },
                    Box::new(|d| !dead_set.contains(&d)) as Box<dyn Fn(u32) -> bool>,
                ),
                (
                    Admit {
                        dead: &dead,
                        scope: Some(&scope),
                        num_docs: n,
                    },
                    Box::new(|d| !dead_set.contains(&d) && in_scope.contains(&d)),
                ),
                (
                    Admit {
                        dead: &[],
                        scope: Some(&[]),
                        num_docs: n,
                    },
                    Box::new(|_| false),
                ),
            ] {
                let want = everything(&c, &f);
                for k in [1, 10, 200] {
                    assert_eq!(search(&mut c, k, &admit), want[..want.len().min(k)]);
                }
            }
        }
    }

    #[test]
    fn common_terms_blocks_are_mostly_left_undecoded() {
        let mut c = corpus(50_000, &RATES, 9);
        let total: usize = c.refs.iter().map(Vec::len).sum();
        let want = everything(&c, &|_| true);
        let got = search(
            &mut c,
            10,
            &Admit {
                dead: &[],
                scope: None,
                num_docs: 50_000,
            },
        );
        assert_eq!(got, want[..10]);
        assert!(c.mem.1 * 2 < total, "{} of {total} blocks read", c.mem.1);
    }
}
