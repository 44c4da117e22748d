//! Folding segments into one: their live documents, back as documents, and the tiers that
//! decide which segments merge.
use super::record::Doc;
use super::segment::{is_dead, Bytes, Corrupt, Segment};
use std::collections::BTreeMap;

/// Segments of one tier that make a merge into the next.
pub const MERGE_FANOUT: usize = 8;

/// A segment's tier: 0 up to `base` documents, then one more for each factor of
/// `MERGE_FANOUT` (`base`: the documents a flush of the write buffer holds, about).
pub fn tier_of(num_docs: u64, base: u64) -> u32 {
    let mut tier = 0;
    let mut cap = base.max(1);
    while num_docs > cap {
        cap = cap.saturating_mul(MERGE_FANOUT as u64);
        tier += 1;
    }
    tier
}

/// A segment as the merge planner sees it (the metapage's entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegStat {
    pub id: u64,
    pub tier: u32,
    pub docs: u64,
    pub dead: u64,
    /// Its pages, maps and data.
    pub pages: u64,
}

impl SegStat {
    /// The pages a rewrite of its live documents takes, about.
    fn live_pages(&self) -> u64 {
        if self.docs == 0 {
            return 0;
        }
        (self.pages * (self.docs - self.dead)).div_ceil(self.docs)
    }
}

/// The next merge the tiers call for, if any, writing at most `budget` pages.
///
/// - A tier of `MERGE_FANOUT` segments or more, of at most `max_docs` documents together, is
///   due. It merges whole if it fits the budget; else its smallest segments merge while they
///   fit (at least two), so a large tier merges in parts over passes instead of writing a
///   copy of itself at once.
/// - A segment a fifth dead is rewritten alone if it fits; half dead, whether it fits or
///   not (its rewrite is at most half its pages, which it frees once no snapshot needs
///   them: deletes are always compacted, even in an index of one large segment).
///
/// Lower tiers come first. A merge's output is of a higher tier than its inputs or as large
/// as any of them, so passes that call this again after each merge run down: a part merged
/// is not the smallest any more.
pub fn next_merge(segs: &[SegStat], max_docs: u64, budget: u64) -> Option<Vec<u64>> {
    let mut tiers: BTreeMap<u32, Vec<&SegStat>> = BTreeMap::new();
    for s in segs {
        tiers.entry(s.tier).or_default().push(s);
    }
    for (_, mut es) in tiers {
        if es.len() >= MERGE_FANOUT && es.iter().map(|s| s.docs).sum::<u64>() <= max_docs {
            es.sort_by_key(|s| (s.pages, s.id));
            let (mut pages, mut n) = (0u64, 0);
            for s in &es {
                pages += s.live_pages();
                if pages > budget {
                    break;
                }
                n += 1;
            }
            if n >= 2 {
                return Some(es[..n].iter().map(|s| s.id).collect());
            }
        }
        for s in es {
            let fits = s.dead * 5 >= s.docs && s.live_pages() <= budget;
            if s.dead > 0 && s.docs <= max_docs && (fits || s.dead * 2 >= s.docs) {
                return Some(vec![s.id]);
            }
        }
    }
    None
}

/// The pages `next_merge`'s choice `ids` writes, about (for the caller's budget).
pub fn merge_pages(segs: &[SegStat], ids: &[u64]) -> u64 {
    segs.iter()
        .filter(|s| ids.contains(&s.id))
        .map(SegStat::live_pages)
        .sum()
}

/// The live documents of `segments` (each with its dead bitmap), each document whole:
/// its TID, length and lexemes (sorted), in the segments' order, then docno order.
pub fn live_docs<B: Bytes>(segments: &[(&Segment<B>, Vec<u8>)]) -> Result<Vec<Doc>, Corrupt> {
    let mut out = Vec::new();
    for (s, dead) in segments {
        let tids = s.all_tids()?;
        let base = out.len();
        let live: Vec<Option<usize>> = (0..s.num_docs())
            .scan(base, |next, d| {
                Some(if is_dead(dead, d) {
                    None
                } else {
                    *next += 1;
                    Some(*next - 1)
                })
            })
            .collect();
        for (d, slot) in live.iter().enumerate() {
            if slot.is_some() {
                out.push(Doc {
                    tid: tids[d],
                    len: 0,
                    terms: Vec::new(),
                });
            }
        }
        // the dictionary is sorted, so each document's lexemes arrive in order
        for (lex, e) in s.terms()? {
            for b in s.blocks(&e)? {
                for p in s.postings(&b)? {
                    if let Some(Some(i)) = live.get(p.docno as usize) {
                        let doc = &mut out[*i];
                        doc.len = p.dl;
                        doc.terms.push((lex.clone(), p.tf));
                    }
                }
            }
        }
        if out[base..].iter().any(|d| d.terms.is_empty()) {
            return Err(Corrupt("segment: a document without lexemes".into()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bm25::segment::encode_segment;
    use crate::bm25::segment::tests::doc;

    #[test]
    fn tiers_grow_by_the_fanout() {
        assert_eq!(tier_of(0, 500), 0);
        assert_eq!(tier_of(500, 500), 0);
        assert_eq!(tier_of(501, 500), 1);
        assert_eq!(tier_of(4000, 500), 1);
        assert_eq!(tier_of(4001, 500), 2);
        assert!(tier_of(u64::MAX, 500) < 24);
    }

    fn seg(id: u64, docs: u64, pages: u64) -> SegStat {
        SegStat {
            id,
            tier: tier_of(docs, 500),
            docs,
            dead: 0,
            pages,
        }
    }

    #[test]
    fn a_full_tier_merges_whole_when_it_fits() {
        let segs: Vec<_> = (1..=8).map(|i| seg(i, 400, 10)).collect();
        assert_eq!(
            next_merge(&segs, u64::MAX, u64::MAX),
            Some((1..=8).collect())
        );
        assert_eq!(next_merge(&segs[..7], u64::MAX, u64::MAX), None);
        // a writer's cap on documents: too many together, and the tier waits for VACUUM
        assert_eq!(next_merge(&segs, 3_200, u64::MAX), Some((1..=8).collect()));
        assert_eq!(next_merge(&segs, 3_199, u64::MAX), None);
    }

    #[test]
    fn under_a_budget_a_tier_merges_its_smallest_in_parts_and_runs_down() {
        // tier 2 (4,001..32,000 documents): eight segments, 300 to 1,000 pages
        let mut segs: Vec<_> = (1..=8u64)
            .map(|i| seg(i, 4_000 + 3_000 * i, 200 + 100 * i))
            .collect();
        assert!(segs.iter().all(|s| s.tier == 2));
        // 300 + 400 fit in 1,000; with 500 more they would not
        assert_eq!(next_merge(&segs, u64::MAX, 1_000), Some(vec![1, 2]));
        assert_eq!(merge_pages(&segs, &[1, 2]), 700);
        assert_eq!(next_merge(&segs, u64::MAX, 700), Some(vec![1, 2]));
        assert_eq!(next_merge(&segs, u64::MAX, 699), None); // one alone is no merge
                                                            // the pass: merge, pay, ask again, until nothing fits or nothing is due
        let mut budget = 2_000;
        let mut merged = 0;
        while let Some(ids) = next_merge(&segs, u64::MAX, budget) {
            budget = budget.saturating_sub(merge_pages(&segs, &ids));
            let (docs, pages) = segs
                .iter()
                .filter(|s| ids.contains(&s.id))
                .fold((0, 0), |(d, p), s| (d + s.docs, p + s.pages));
            segs.retain(|s| !ids.contains(&s.id));
            segs.push(seg(100 + merged, docs, pages));
            merged += 1;
        }
        // 1..=4 (1,800 pages) became one segment of tier 3; tier 2 is not due any more
        assert_eq!(merged, 1, "{segs:?}");
        assert_eq!(budget, 200);
        assert_eq!(segs.len(), 5);
        assert!(segs
            .iter()
            .any(|s| s.id == 100 && s.tier == 3 && s.docs == 46_000));
    }

    #[test]
    fn a_segment_a_fifth_dead_is_rewritten_alone_if_it_fits_and_half_dead_always() {
        let mut a = seg(1, 1_000, 50);
        a.dead = 200;
        let b = seg(2, 1_000, 50);
        assert_eq!(next_merge(&[a, b], u64::MAX, 40), Some(vec![1]));
        assert_eq!(merge_pages(&[a, b], &[1]), 40);
        assert_eq!(next_merge(&[a, b], u64::MAX, 39), None);
        a.dead = 199;
        assert_eq!(next_merge(&[a, b], u64::MAX, u64::MAX), None);
        // half dead: rewritten whatever the budget
        a.dead = 500;
        assert_eq!(next_merge(&[a, b], u64::MAX, 0), Some(vec![1]));
        a.dead = 499;
        assert_eq!(next_merge(&[a, b], u64::MAX, 0), None);
    }

    #[test]
    fn a_merge_keeps_the_live_documents_whole() {
        let a = vec![
            doc(10, &[("b", 2), ("a", 1)]),
            doc(11, &[("c", 1)]),
            doc(12, &[("a", 4)]),
        ];
        let b = vec![doc(20, &[("z", 1), ("a", 1)])];
        let sa = Segment::open(encode_segment(&a, 1)).unwrap();
        let sb = Segment::open(encode_segment(&b, 1)).unwrap();
        let got = live_docs(&[(&sa, vec![0b010]), (&sb, vec![0])]).unwrap();
        assert_eq!(got, vec![a[0].clone(), a[2].clone(), b[0].clone()]);
        // and the merged segment reads back the same
        let m = Segment::open(encode_segment(&got, 1)).unwrap();
        assert_eq!(live_docs(&[(&m, vec![0])]).unwrap(), got);
    }
}
