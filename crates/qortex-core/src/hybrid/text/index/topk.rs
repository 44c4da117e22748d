//! Exact top-k BM25 over doc-ordered posting blocks, reading blocks only where they can
//! matter: MaxScore with block-max bounds (Turtle & Flood's MaxScore; Ding & Suel's
//! block-max bounds), over a `BlockSource` the extension implements over SPI.
//!
//! 1. Unmerged documents (the delta) are scored exactly: all their postings are at hand.
//! 2. Bootstrap: the rarest terms' blocks (at most `bootstrap` postings) give candidates;
//!    each is scored exactly, reading the block of every other term that covers its docno,
//!    unless its upper bound already falls below the k-th best lower bound.
//! 3. A document not scored yet holds none of the bootstrap terms (all their documents
//!    were), so only the other terms bound it. With θ the k-th best score so far, those
//!    whose bounds add up to less than θ are non-essential: a document found only in them
//!    cannot enter the top k. Every block of the essential terms whose bound, with the
//!    other remaining terms' bounds, reaches θ is read, and its documents are scored as
//!    in 2.
//!
//! Every document that can score above the final θ contains an essential term in a block
//! that was read, so the result equals scoring every document (up to ties at θ).
use super::codec::{BlockHeader, Posting};
use crate::hybrid::text::{idf, Bm25};
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// A hasher for docnos (already well spread): one multiplication, not SipHash.
#[derive(Default)]
pub struct DocnoHasher(u64);

impl Hasher for DocnoHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(5) ^ *b as u64).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// A set of docnos.
pub type Docnos = HashSet<u32, BuildHasherDefault<DocnoHasher>>;

/// A query term's postings: its merged blocks (headers; the source reads their postings)
/// and the postings of unmerged documents, with the term's document frequency.
#[derive(Debug, Clone, Default)]
pub struct TermList {
    pub df: f64,
    /// Merged blocks in docno order, their ranges disjoint.
    pub blocks: Vec<BlockHeader>,
    /// Postings of documents not merged yet, in any order (a document is merged whole).
    pub delta: Vec<Posting>,
}

/// Reads blocks' postings.
pub trait BlockSource {
    /// The postings of each wanted (term, block), in the order asked.
    fn fetch(&mut self, wanted: &[(usize, usize)]) -> Vec<Vec<Posting>>;
}

/// What a search asks of the index.
pub struct Query<'a> {
    /// Documents in the collection and their average length.
    pub n: f64,
    pub avgdl: f64,
    pub bm25: Bm25,
    /// Documents wanted.
    pub k: usize,
    /// Whether a document is in the search's scope (its docno, its global flag).
    pub allowed: &'a dyn Fn(u32, bool) -> bool,
    /// Merged documents deleted since the last merge.
    pub dead: &'a HashSet<u32>,
    /// Postings the bootstrap reads at most from the rarest terms (at least one term).
    pub bootstrap: usize,
    /// Postings of all query terms together at or below which every block is read at once
    /// and every document scored (cheaper than pruning on a small collection).
    pub exhaustive: usize,
}

/// What a search read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Work {
    pub blocks_read: usize,
    pub blocks_total: usize,
    pub scored: usize,
}

/// A heap entry (score, docno) ordered so that the heap's top is the worst: the lowest
/// score, then the highest docno.
#[derive(PartialEq)]
pub(crate) struct Entry(pub f64, pub u32);
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

/// A document to score: docno, global flag, a part of its score known for sure, and a
/// bound of its score.
type Candidate = (u32, bool, f64, f64);

struct Search<'q, 's, S: BlockSource> {
    terms: &'q [TermList],
    q: &'q Query<'q>,
    src: &'s mut S,
    idf: Vec<f64>,
    /// Bound of each term's blocks, and of the term (over blocks and delta).
    bounds: Vec<Vec<f64>>,
    upper: Vec<f64>,
    /// Blocks read, by term and block.
    fetched: Vec<Vec<Option<Vec<Posting>>>>,
    scored: Docnos,
    heap: BinaryHeap<Entry>,
    /// Every document scored, for the ties at the k-th score.
    all: Vec<(u32, f64)>,
    work: Work,
}

impl<S: BlockSource> Search<'_, '_, S> {
    fn part(&self, t: usize, tf: u16, dl: u32) -> f64 {
        self.q.bm25.part(self.idf[t], tf, dl, self.q.avgdl)
    }

    fn theta(&self) -> f64 {
        if self.heap.len() < self.q.k {
            0.0
        } else {
            self.heap.peek().map_or(0.0, |e| e.0)
        }
    }

    fn offer(&mut self, docno: u32, score: f64) {
        if self.q.k == 0 {
            return;
        }
        self.all.push((docno, score));
        if self.heap.len() < self.q.k {
            self.heap.push(Entry(score, docno));
        } else if let Some(worst) = self.heap.peek() {
            if Entry(score, docno) < *worst {
                self.heap.pop();
                self.heap.push(Entry(score, docno));
            }
        }
    }

    /// The block of term `t` whose range holds `docno`.
    fn covering(&self, t: usize, docno: u32) -> Option<usize> {
        let bs = &self.terms[t].blocks;
        let j = bs.partition_point(|b| b.last < docno);
        (j < bs.len() && bs[j].first <= docno).then_some(j)
    }

    fn fetch(&mut self, mut wanted: Vec<(usize, usize)>) {
        wanted.retain(|&(t, j)| self.fetched[t][j].is_none());
        wanted.sort_unstable();
        wanted.dedup();
        if wanted.is_empty() {
            return;
        }
        let got = self.src.fetch(&wanted);
        self.work.blocks_read += wanted.len();
        for ((t, j), ps) in wanted.into_iter().zip(got) {
            self.fetched[t][j] = Some(ps);
        }
    }

    /// A candidate's known part (from blocks read) and the bound of the rest, with the
    /// blocks that would tell it.
    fn assess(&self, d: u32) -> (f64, f64, Vec<(usize, usize)>) {
        let (mut known, mut unknown, mut need) = (0.0, 0.0, Vec::new());
        for t in 0..self.terms.len() {
            let Some(j) = self.covering(t, d) else {
                continue;
            };
            match &self.fetched[t][j] {
                Some(ps) => {
                    if let Ok(i) = ps.binary_search_by_key(&d, |p| p.docno) {
                        known += self.part(t, ps[i].tf, ps[i].dl);
                    }
                }
                None => {
                    unknown += self.bounds[t][j];
                    need.push((t, j));
                }
            }
        }
        (known, unknown, need)
    }

    /// `assess` for many documents at once: per document (docno, global), the part known
    /// from blocks read and its bound. One walk per term over the docnos in order, not a
    /// search per document and term (phase 3 can have tens of thousands of candidates).
    fn assess_all(&self, mut docs: Vec<(u32, bool)>) -> Vec<Candidate> {
        docs.sort_unstable_by_key(|d| d.0);
        let mut known = vec![0.0; docs.len()];
        let mut unknown = vec![0.0; docs.len()];
        for t in 0..self.terms.len() {
            let blocks = &self.terms[t].blocks;
            let (mut j, mut i) = (0, 0);
            for (n, &(d, _)) in docs.iter().enumerate() {
                while j < blocks.len() && blocks[j].last < d {
                    j += 1;
                    i = 0;
                }
                if j == blocks.len() {
                    break;
                }
                if blocks[j].first > d {
                    continue;
                }
                match &self.fetched[t][j] {
                    Some(ps) => {
                        while i < ps.len() && ps[i].docno < d {
                            i += 1;
                        }
                        if i < ps.len() && ps[i].docno == d {
                            known[n] += self.part(t, ps[i].tf, ps[i].dl);
                        }
                    }
                    None => unknown[n] += self.bounds[t][j],
                }
            }
        }
        docs.into_iter()
            .enumerate()
            .map(|(n, (d, global))| (d, global, known[n], known[n] + unknown[n]))
            .collect()
    }

    /// Score candidates exactly where they can still enter the top k: the most promising
    /// first, in batches that grow, so that the k-th best score rises and prunes the rest
    /// before their blocks are read. Candidates are ordered once, by the bound they had
    /// then (a bound only falls as blocks are read): once the next one's falls below the
    /// k-th best score, so do all after it.
    fn resolve(&mut self, candidates: Vec<Candidate>) {
        let mut pending: Vec<Candidate> = Vec::new();
        for c in candidates {
            if !self.scored.insert(c.0) || self.q.dead.contains(&c.0) || !(self.q.allowed)(c.0, c.1)
            {
                continue;
            }
            pending.push(c);
        }
        // a floor before anything is read: the k-th best of what is known for sure
        let mut floor = self.theta();
        if self.q.k > 0 {
            let mut lows: Vec<f64> = pending.iter().map(|p| p.2).collect();
            lows.extend(self.heap.iter().map(|e| e.0));
            if lows.len() >= self.q.k {
                let i = self.q.k - 1;
                lows.select_nth_unstable_by(i, |a, b| b.total_cmp(a));
                floor = floor.max(lows[i]);
            }
        }
        pending.retain(|p| p.3 >= floor);
        pending.sort_by(|a, b| b.3.total_cmp(&a.3).then(a.0.cmp(&b.0)));
        let mut batch = self.q.k.max(16);
        let mut next = 0;
        while next < pending.len() {
            floor = floor.max(self.theta());
            if pending[next].3 < floor {
                break; // and every later one, ordered by a bound at least as high as now
            }
            let end = (next + batch).min(pending.len());
            let mut round = Vec::with_capacity(end - next);
            for p in &pending[next..end] {
                // what blocks read since tell of it: known now, the rest still bounded
                let (known, unknown, need) = self.assess(p.0);
                if known + unknown >= floor {
                    round.push((p.0, known, need));
                }
            }
            next = end;
            let wanted: Vec<(usize, usize)> =
                round.iter().flat_map(|p| p.2.iter().copied()).collect();
            self.fetch(wanted);
            for (d, mut score, need) in round {
                for (t, j) in need {
                    let ps = self.fetched[t][j].as_ref().expect("a block just read");
                    if let Ok(i) = ps.binary_search_by_key(&d, |p| p.docno) {
                        score += self.part(t, ps[i].tf, ps[i].dl);
                    }
                }
                self.work.scored += 1;
                self.offer(d, score);
            }
            batch *= 2;
        }
    }

    /// The summed part of each document in these (read) blocks, its global flag and which
    /// terms it was seen in (a bit per term; `None` past 64 terms).
    fn accumulate(
        &self,
        blocks: &[(usize, usize)],
    ) -> HashMap<u32, (f64, bool, Option<u64>), BuildHasherDefault<DocnoHasher>> {
        let postings = blocks
            .iter()
            .filter_map(|&(t, j)| self.fetched[t][j].as_ref())
            .map(Vec::len)
            .sum();
        let mut out: HashMap<u32, (f64, bool, Option<u64>), BuildHasherDefault<DocnoHasher>> =
            HashMap::with_capacity_and_hasher(postings, Default::default());
        let wide = self.terms.len() > 64;
        for &(t, j) in blocks {
            let Some(ps) = &self.fetched[t][j] else {
                continue;
            };
            for p in ps {
                let e = out.entry(p.docno).or_insert((
                    0.0,
                    p.global,
                    if wide { None } else { Some(0) },
                ));
                e.0 += self.part(t, p.tf, p.dl);
                if let Some(m) = e.2.as_mut() {
                    *m |= 1u64 << t;
                }
            }
        }
        out
    }

    /// The k best, and every other document with the k-th score: the caller breaks ties by
    /// what it orders on (the row's id), which a docno does not know.
    fn finish(self) -> (Vec<(u32, f64)>, Work) {
        let theta = self.theta();
        let full = self.heap.len() >= self.q.k;
        let mut out: Vec<(u32, f64)> = self
            .all
            .into_iter()
            .filter(|d| !full || d.1 >= theta)
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        (out, self.work)
    }

    fn docs_of(&self, blocks: &[(usize, usize)]) -> Vec<(u32, bool)> {
        blocks
            .iter()
            .filter_map(|&(t, j)| self.fetched[t][j].as_ref())
            .flat_map(|ps| ps.iter().map(|p| (p.docno, p.global)))
            .collect()
    }
}

/// The exact top `k` documents by BM25 over `terms` (docno, score), best first (ties by
/// docno), followed by any other document with the same score as the k-th (so a caller
/// ordering ties otherwise can pick among them); and what was read.
pub fn top_k(
    terms: &[TermList],
    q: &Query<'_>,
    src: &mut impl BlockSource,
) -> (Vec<(u32, f64)>, Work) {
    let idf: Vec<f64> = terms.iter().map(|t| idf(q.n, t.df)).collect();
    let mut s = Search {
        terms,
        q,
        src,
        idf,
        bounds: Vec::new(),
        upper: Vec::new(),
        fetched: terms.iter().map(|t| vec![None; t.blocks.len()]).collect(),
        scored: Docnos::default(),
        heap: BinaryHeap::new(),
        all: Vec::new(),
        work: Work {
            blocks_total: terms.iter().map(|t| t.blocks.len()).sum(),
            ..Work::default()
        },
    };
    s.bounds = (0..terms.len())
        .map(|t| {
            terms[t]
                .blocks
                .iter()
                .map(|b| s.part(t, b.max_tf, b.min_dl))
                .collect()
        })
        .collect();
    s.upper = (0..terms.len())
        .map(|t| {
            let blocks = s.bounds[t].iter().copied().fold(0.0, f64::max);
            terms[t]
                .delta
                .iter()
                .map(|p| s.part(t, p.tf, p.dl))
                .fold(blocks, f64::max)
        })
        .collect();

    // 1. the delta, exactly
    let mut delta: HashMap<u32, (f64, bool)> = HashMap::new();
    for (t, term) in terms.iter().enumerate() {
        for p in &term.delta {
            let e = delta.entry(p.docno).or_insert((0.0, p.global));
            e.0 += s.part(t, p.tf, p.dl);
        }
    }
    for (d, (score, global)) in delta {
        if (q.allowed)(d, global) && s.scored.insert(d) {
            s.work.scored += 1;
            s.offer(d, score);
        }
    }

    // small: read everything at once, score every document
    let postings: usize = terms
        .iter()
        .flat_map(|t| &t.blocks)
        .map(|b| b.n as usize)
        .sum();
    if postings <= q.exhaustive {
        let all: Vec<(usize, usize)> = (0..terms.len())
            .flat_map(|t| (0..terms[t].blocks.len()).map(move |j| (t, j)))
            .collect();
        s.fetch(all.clone());
        let partial = s.accumulate(&all);
        s.work.scored += partial.len();
        // delta documents were offered above; every other document is here exactly once
        s.all.extend(
            partial
                .into_iter()
                .filter(|(d, (_, global, _))| !q.dead.contains(d) && (q.allowed)(*d, *global))
                .map(|(d, (score, ..))| (d, score)),
        );
        let mut out = std::mem::take(&mut s.all);
        let order = |a: &(u32, f64), b: &(u32, f64)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if q.k == 0 {
            return (Vec::new(), s.work);
        }
        if out.len() > q.k {
            out.select_nth_unstable_by(q.k - 1, order);
            let theta = out[q.k - 1].1;
            // the k best, and every other document with the k-th score (see `finish`)
            out.retain(|d| d.1 >= theta);
        }
        out.sort_by(order);
        return (out, s.work);
    }

    // 2. bootstrap from the rarest terms
    let mut order: Vec<usize> = (0..terms.len())
        .filter(|&t| !terms[t].blocks.is_empty())
        .collect();
    order.sort_by_key(|&t| terms[t].blocks.iter().map(|b| b.n as usize).sum::<usize>());
    let mut budget = 0;
    let mut first = Vec::new();
    for &t in &order {
        let size: usize = terms[t].blocks.iter().map(|b| b.n as usize).sum();
        if !first.is_empty() && budget + size > q.bootstrap {
            break;
        }
        budget += size;
        first.extend((0..terms[t].blocks.len()).map(|j| (t, j)));
    }
    s.fetch(first.clone());
    let candidates = s.assess_all(s.docs_of(&first));
    s.resolve(candidates);
    // Every document of the bootstrap terms has now been scored (or shown unable to reach
    // θ): a document not scored yet holds none of them, so they drop out of its bound.
    let mut complete = vec![false; terms.len()];
    for &(t, _) in &first {
        complete[t] = true;
    }
    let upper: Vec<f64> = (0..terms.len())
        .map(|t| if complete[t] { 0.0 } else { s.upper[t] })
        .collect();

    // 3. the essential terms' blocks that can still matter
    let theta = s.theta();
    let mut by_bound: Vec<usize> = (0..terms.len()).filter(|&t| !complete[t]).collect();
    by_bound.sort_by(|&a, &b| upper[a].total_cmp(&upper[b]));
    let mut non_essential = 0.0;
    let mut essential = Vec::new();
    for &t in &by_bound {
        if non_essential + upper[t] < theta {
            non_essential += upper[t];
        } else {
            essential.push(t);
        }
    }
    let total: f64 = upper.iter().sum();
    // (blocks read earlier to score a candidate hold other documents: they count too)
    let mut wanted = Vec::new();
    for &t in &essential {
        for j in 0..terms[t].blocks.len() {
            if s.bounds[t][j] + total - upper[t] >= theta {
                wanted.push((t, j));
            }
        }
    }
    s.fetch(wanted.clone());
    // a document's part in the blocks read, with every other term at its bound, must
    // still reach θ before it is scored exactly
    let partial = s.accumulate(&wanted);
    let candidates: Vec<(u32, bool)> = partial
        .into_iter()
        .filter(|(d, (known, _, seen))| {
            let rest: f64 = match seen {
                Some(mask) => (0..terms.len())
                    .filter(|t| mask & (1u64 << t) == 0)
                    .map(|t| upper[t])
                    .sum(),
                None => total,
            };
            !s.scored.contains(d) && known + rest >= theta
        })
        .map(|(d, (_, global, _))| (d, global))
        .collect();
    let candidates = s.assess_all(candidates);
    s.resolve(candidates);
    s.finish()
}

#[cfg(test)]
mod tests {
    use super::super::codec::{blocks, BLOCK};
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    struct Memory(Vec<Vec<Vec<Posting>>>, usize);

    impl BlockSource for Memory {
        fn fetch(&mut self, wanted: &[(usize, usize)]) -> Vec<Vec<Posting>> {
            self.1 += 1;
            wanted.iter().map(|&(t, j)| self.0[t][j].clone()).collect()
        }
    }

    /// A corpus: per document its length, global flag and term frequencies of 6 terms with
    /// very different document frequencies.
    fn corpus(docs: u32, seed: u64) -> Vec<(u32, bool, [u16; 6])> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let rates = [0.002, 0.01, 0.05, 0.2, 0.5, 0.9];
        (0..docs)
            .map(|_| {
                let mut tfs = [0u16; 6];
                for (t, r) in rates.iter().enumerate() {
                    if rng.gen::<f64>() < *r {
                        tfs[t] = rng.gen_range(1..6);
                    }
                }
                (rng.gen_range(20..400), rng.gen::<f64>() < 0.1, tfs)
            })
            .collect()
    }

    /// (docno, score), best first.
    type Ranked = Vec<(u32, f64)>;

    /// Split into merged (docno < merged) and delta postings, and score by brute force.
    fn run(
        docs: &[(u32, bool, [u16; 6])],
        merged: usize,
        k: usize,
        allowed: &dyn Fn(u32, bool) -> bool,
        dead: &HashSet<u32>,
    ) -> (Ranked, Ranked, Work) {
        run_with(docs, merged, k, allowed, dead, 0)
    }

    fn run_with(
        docs: &[(u32, bool, [u16; 6])],
        merged: usize,
        k: usize,
        allowed: &dyn Fn(u32, bool) -> bool,
        dead: &HashSet<u32>,
        exhaustive: usize,
    ) -> (Ranked, Ranked, Work) {
        let n = docs.len() as f64;
        let avgdl = docs.iter().map(|d| d.0 as f64).sum::<f64>() / n;
        let mut terms = vec![TermList::default(); 6];
        let mut lists: Vec<Vec<Vec<Posting>>> = vec![Vec::new(); 6];
        for t in 0..6 {
            let ps: Vec<Posting> = docs
                .iter()
                .enumerate()
                .filter(|(_, d)| d.2[t] > 0)
                .map(|(i, d)| Posting {
                    docno: i as u32 * 3 + 1,
                    tf: d.2[t],
                    dl: d.0,
                    global: d.1,
                })
                .collect();
            terms[t].df = ps.len() as f64;
            let (m, delta): (Vec<Posting>, Vec<Posting>) = ps
                .into_iter()
                .partition(|p| (p.docno as usize) < merged * 3);
            for (h, bytes) in blocks(&m) {
                terms[t].blocks.push(h);
                lists[t].push(super::super::codec::decode(&bytes).unwrap());
            }
            terms[t].delta = delta;
        }
        let q = Query {
            n,
            avgdl,
            bm25: Bm25::default(),
            k,
            allowed,
            dead,
            bootstrap: 200,
            exhaustive,
        };
        let mut src = Memory(lists, 0);
        let (mut got, work) = top_k(&terms, &q, &mut src);
        got.truncate(k);
        // brute force
        let mut all: Vec<(u32, f64)> = docs
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let docno = i as u32 * 3 + 1;
                let score = (0..6)
                    .filter(|&t| d.2[t] > 0)
                    .map(|t| {
                        let tf = d.2[t] as f64;
                        let norm = 1.2 * (0.25 + 0.75 * d.0 as f64 / avgdl);
                        idf(n, terms[t].df) * tf * 2.2 / (tf + norm)
                    })
                    .sum::<f64>();
                (docno, score, d.1)
            })
            .filter(|(docno, s, g)| *s > 0.0 && allowed(*docno, *g) && !dead.contains(docno))
            .map(|(d, s, _)| (d, s))
            .collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        all.truncate(k);
        (got, all, work)
    }

    fn same(got: &[(u32, f64)], want: &[(u32, f64)]) {
        let g: Vec<_> = got.iter().take(12).collect();
        let w: Vec<_> = want.iter().take(12).collect();
        assert_eq!(got.len(), want.len(), "\n{g:?}\n{w:?}");
        for (g, w) in got.iter().zip(want) {
            assert_eq!(g.0, w.0, "{got:?}\n{want:?}");
            assert!((g.1 - w.1).abs() < 1e-9);
        }
    }

    #[test]
    fn equals_scoring_every_document() {
        for seed in 0..20 {
            let docs = corpus(3000, seed);
            for (merged, k) in [(3000, 10), (3000, 100), (2500, 100), (0, 10), (3000, 1)] {
                let (got, want, work) = run(&docs, merged, k, &|_, _| true, &HashSet::new());
                same(&got, &want);
                if merged == 3000 && k == 10 {
                    // the common terms' blocks are mostly left unread
                    assert!(work.blocks_read < work.blocks_total, "{work:?}");
                }
            }
        }
    }

    #[test]
    fn reading_everything_gives_the_same_answer() {
        for seed in 0..5 {
            let docs = corpus(1500, 300 + seed);
            let dead: HashSet<u32> = (0..1200u32)
                .filter(|i| i % 7 == 0)
                .map(|i| i * 3 + 1)
                .collect();
            let (got, want, work) =
                run_with(&docs, 1200, 50, &|d, g| g || d % 2 == 1, &dead, 1_000_000);
            same(&got, &want);
            assert_eq!(work.blocks_read, work.blocks_total);
        }
    }

    #[test]
    fn scopes_and_deleted_documents_are_honoured_exactly() {
        for seed in 0..10 {
            let docs = corpus(2000, 100 + seed);
            let mine: HashSet<u32> = (0..2000u32)
                .filter(|i| i % 97 == 0)
                .map(|i| i * 3 + 1)
                .collect();
            let user = |d: u32, global: bool| global || mine.contains(&d);
            let (got, want, _) = run(&docs, 1800, 50, &user, &HashSet::new());
            same(&got, &want);
            let dead: HashSet<u32> = (0..2000u32)
                .filter(|i| i % 5 == 0)
                .map(|i| i * 3 + 1)
                .collect();
            let (got, want, _) = run(&docs, 2000, 30, &|_, _| true, &dead);
            same(&got, &want);
            // fewer allowed documents than k: all of them
            let none = |d: u32, _: bool| d == 4;
            let (got, want, _) = run(&docs, 2000, 10, &none, &HashSet::new());
            same(&got, &want);
        }
    }

    #[test]
    fn every_tie_at_the_kth_score_comes_back() {
        // 50 documents alike, 10 wanted: which 10 is the caller's call (it orders by id)
        let same = Posting {
            docno: 0,
            tf: 1,
            dl: 100,
            global: false,
        };
        let ps: Vec<Posting> = (1..=50)
            .map(|d| Posting {
                docno: d * 2,
                ..same
            })
            .collect();
        let mut term = TermList {
            df: 50.0,
            ..TermList::default()
        };
        let mut lists = Vec::new();
        for (h, bytes) in blocks(&ps) {
            term.blocks.push(h);
            lists.push(super::super::codec::decode(&bytes).unwrap());
        }
        let q = Query {
            n: 1000.0,
            avgdl: 100.0,
            bm25: Bm25::default(),
            k: 10,
            allowed: &|_, _| true,
            dead: &HashSet::new(),
            bootstrap: 10,
            exhaustive: 0,
        };
        let (got, _) = top_k(&[term], &q, &mut Memory(vec![lists], 0));
        assert_eq!(got.len(), 50);
        assert!(got.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn reads_little_when_the_rare_terms_decide() {
        let docs = corpus(20_000, 7);
        let (got, want, work) = run(&docs, 20_000, 10, &|_, _| true, &HashSet::new());
        same(&got, &want);
        assert!(work.blocks_read * 2 < work.blocks_total, "{work:?}");
        assert_eq!(BLOCK, 128);
    }
}
