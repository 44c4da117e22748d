//! Folding segments into one: their live documents, back as documents, and the tiers that
//! decide which segments merge.
use super::record::Doc;
use super::segment::{is_dead, Bytes, Corrupt, Segment};

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
