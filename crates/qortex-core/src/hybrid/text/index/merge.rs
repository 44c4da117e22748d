//! Folding changes into a lexeme's blocks: postings of newly merged documents go into the
//! block whose docno range takes them, postings of deleted documents come out, a block that
//! grows past twice `BLOCK` is split, an emptied one removed. Only the blocks a change
//! touches are read and written.
//!
//! A lexeme's blocks are stored in slots (block ids); slot 0 also carries the lexeme's
//! document frequency and the headers of all its blocks in docno order (`Heads`), so a
//! search reads one row per term to plan, and most terms have only that one block.
use super::codec::{decode, encode, BlockHeader, Posting, BLOCK};
use std::collections::{BTreeMap, HashMap, HashSet};

/// A lexeme's blocks: slot and header, in docno order.
pub type Heads = Vec<(i32, BlockHeader)>;

const HEAD_BYTES: usize = 22;

/// The heads as bytes (per block: slot, first, last, n, max_tf, min_dl, little-endian).
pub fn encode_heads(heads: &Heads) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEAD_BYTES * heads.len());
    for (slot, h) in heads {
        out.extend_from_slice(&slot.to_le_bytes());
        out.extend_from_slice(&h.first.to_le_bytes());
        out.extend_from_slice(&h.last.to_le_bytes());
        out.extend_from_slice(&h.n.to_le_bytes());
        out.extend_from_slice(&h.max_tf.to_le_bytes());
        out.extend_from_slice(&h.min_dl.to_le_bytes());
    }
    out
}

pub fn decode_heads(data: &[u8]) -> Option<Heads> {
    if !data.len().is_multiple_of(HEAD_BYTES) {
        return None;
    }
    let u32_at = |c: &[u8], i: usize| u32::from_le_bytes(c[i..i + 4].try_into().unwrap());
    Some(
        data.chunks(HEAD_BYTES)
            .map(|c| {
                (
                    i32::from_le_bytes(c[0..4].try_into().unwrap()),
                    BlockHeader {
                        first: u32_at(c, 4),
                        last: u32_at(c, 8),
                        n: u32_at(c, 12),
                        max_tf: u16::from_le_bytes(c[16..18].try_into().unwrap()),
                        min_dl: u32_at(c, 18),
                    },
                )
            })
            .collect(),
    )
}

/// The block (index into `heads`) a posting of `docno` belongs in: the one whose range
/// holds it, else the one before the gap it falls in (the first if it precedes all).
fn target(heads: &Heads, docno: u32) -> usize {
    let j = heads.partition_point(|(_, h)| h.last < docno);
    if j < heads.len() && heads[j].1.first <= docno {
        j
    } else {
        j.saturating_sub(1).min(heads.len().saturating_sub(1))
    }
}

/// The slots to read to apply these changes.
pub fn slots_to_read(heads: &Heads, adds: &[Posting], removes: &[u32]) -> Vec<i32> {
    if heads.is_empty() {
        return Vec::new();
    }
    let mut slots: Vec<i32> = adds
        .iter()
        .map(|p| p.docno)
        .chain(removes.iter().copied())
        .map(|d| heads[target(heads, d)].0)
        .collect();
    slots.sort_unstable();
    slots.dedup();
    slots
}

/// What applying changes to a lexeme wrote: its new heads and document frequency, the
/// blocks to store (slot, payload) and the slots to delete.
#[derive(Debug, Default, PartialEq)]
pub struct Written {
    pub heads: Heads,
    pub df: u32,
    pub store: Vec<(i32, Vec<u8>)>,
    pub delete: Vec<i32>,
}

/// Apply adds (postings of documents merged now) and removes (docnos of deleted documents)
/// to a lexeme whose blocks are `heads`, given the blocks `read` (by slot; all of
/// `slots_to_read`). `next_slot` is the first unused slot.
pub fn apply(
    heads: &Heads,
    read: &HashMap<i32, Vec<u8>>,
    adds: &[Posting],
    removes: &HashSet<u32>,
    next_slot: i32,
) -> Result<Written, String> {
    let mut next_slot = next_slot.max(1); // slot 0 is given out below, never here
                                          // postings of each touched block (by position in heads), changed
    let mut touched: BTreeMap<usize, Vec<Posting>> = BTreeMap::new();
    let load = |j: usize, touched: &mut BTreeMap<usize, Vec<Posting>>| -> Result<(), String> {
        if let std::collections::btree_map::Entry::Vacant(e) = touched.entry(j) {
            let slot = heads[j].0;
            let bytes = read
                .get(&slot)
                .ok_or(format!("block {slot} was not read"))?;
            e.insert(decode(bytes).ok_or(format!("block {slot} is corrupt"))?);
        }
        Ok(())
    };
    let mut fresh = Vec::new();
    for p in adds {
        if heads.is_empty() {
            fresh.push(*p);
            continue;
        }
        let j = target(heads, p.docno);
        load(j, &mut touched)?;
        touched.get_mut(&j).unwrap().push(*p);
    }
    for &d in removes {
        if heads.is_empty() {
            continue;
        }
        let j = target(heads, d);
        if heads[j].1.first <= d && d <= heads[j].1.last {
            load(j, &mut touched)?;
        }
    }
    let mut out = Written::default();
    // new blocks in docno order: untouched ones as they are, touched ones rebuilt
    let mut blocks: Vec<(Option<i32>, BlockHeader, Option<Vec<Posting>>)> = Vec::new();
    for (j, (slot, h)) in heads.iter().enumerate() {
        match touched.remove(&j) {
            None => blocks.push((Some(*slot), *h, None)),
            Some(mut ps) => {
                ps.retain(|p| !removes.contains(&p.docno));
                ps.sort_by_key(|p| p.docno);
                ps.dedup_by_key(|p| p.docno);
                if ps.is_empty() {
                    out.delete.push(*slot);
                    continue;
                }
                let chunks: Vec<Vec<Posting>> = if ps.len() > 2 * BLOCK {
                    ps.chunks(BLOCK).map(<[Posting]>::to_vec).collect()
                } else {
                    vec![ps]
                };
                for (i, c) in chunks.into_iter().enumerate() {
                    let s = (i == 0).then_some(*slot);
                    blocks.push((s, BlockHeader::of(&c), Some(c)));
                }
            }
        }
    }
    if !fresh.is_empty() {
        fresh.retain(|p| !removes.contains(&p.docno));
        fresh.sort_by_key(|p| p.docno);
        fresh.dedup_by_key(|p| p.docno);
        for c in fresh.chunks(BLOCK) {
            blocks.push((None, BlockHeader::of(c), Some(c.to_vec())));
        }
    }
    // slot 0 holds the heads: it must hold a block while any exists
    if !blocks.is_empty() && !blocks.iter().any(|b| b.0 == Some(0)) {
        let i = blocks.iter().position(|b| b.2.is_some()).unwrap_or(0);
        if let Some(old) = blocks[i].0.take() {
            out.delete.push(old);
            // its postings move with it; it must be rewritten in slot 0
            if blocks[i].2.is_none() {
                let bytes = read.get(&old).ok_or(format!("block {old} was not read"))?;
                blocks[i].2 = Some(decode(bytes).ok_or(format!("block {old} is corrupt"))?);
            }
        }
        blocks[i].0 = Some(0);
        out.delete.retain(|&s| s != 0);
    }
    for (slot, h, ps) in blocks {
        let slot = slot.unwrap_or_else(|| {
            next_slot += 1;
            next_slot - 1
        });
        if let Some(ps) = ps {
            out.store.push((slot, encode(&ps)));
        }
        out.df += h.n;
        out.heads.push((slot, h));
    }
    out.delete.sort_unstable();
    out.delete.dedup();
    out.delete
        .retain(|s| !out.store.iter().any(|(t, _)| t == s));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn p(docno: u32) -> Posting {
        Posting {
            docno,
            tf: (docno % 4 + 1) as u16,
            dl: 100 + docno % 50,
            global: docno.is_multiple_of(10),
        }
    }

    /// A lexeme in storage: slots → payload, and its heads.
    #[derive(Default)]
    struct Stored {
        slots: HashMap<i32, Vec<u8>>,
        heads: Heads,
    }

    impl Stored {
        fn change(&mut self, adds: &[Posting], removes: &[u32]) -> Written {
            let want = slots_to_read(&self.heads, adds, removes);
            let read: HashMap<i32, Vec<u8>> =
                want.iter().map(|s| (*s, self.slots[s].clone())).collect();
            let next = self.slots.keys().max().map_or(0, |m| m + 1);
            let removes: HashSet<u32> = removes.iter().copied().collect();
            let w = apply(&self.heads, &read, adds, &removes, next).unwrap();
            for s in &w.delete {
                self.slots.remove(s);
            }
            for (s, b) in &w.store {
                self.slots.insert(*s, b.clone());
            }
            self.heads = w.heads.clone();
            w
        }

        fn all(&self) -> Vec<Posting> {
            let mut out = Vec::new();
            for (slot, h) in &self.heads {
                let ps = decode(&self.slots[slot]).unwrap();
                assert_eq!(BlockHeader::of(&ps), *h);
                out.extend(ps);
            }
            out
        }
    }

    #[test]
    fn heads_round_trip() {
        let heads = vec![
            (0, BlockHeader::of(&[p(3), p(9)])),
            (7, BlockHeader::of(&[p(12)])),
        ];
        assert_eq!(decode_heads(&encode_heads(&heads)).unwrap(), heads);
        assert!(decode_heads(&[1, 2, 3]).is_none());
    }

    #[test]
    fn changes_touch_only_their_blocks_and_keep_everything_in_order() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut s = Stored::default();
        let mut want: std::collections::BTreeSet<u32> = Default::default();
        for round in 0..60 {
            // mostly new docnos at the end, some anywhere; deletes of existing ones
            let adds: Vec<Posting> = (0..rng.gen_range(0..300))
                .map(|_| {
                    if rng.gen::<f64>() < 0.8 {
                        round * 1000 + rng.gen_range(0..1000)
                    } else {
                        rng.gen_range(0..(round + 1) * 1000)
                    }
                })
                .filter(|d| !want.contains(d))
                .map(p)
                .collect();
            let present: Vec<u32> = want.iter().copied().collect();
            let removes: Vec<u32> = if present.is_empty() {
                Vec::new()
            } else {
                (0..rng.gen_range(0..40))
                    .map(|_| present[rng.gen_range(0..present.len())])
                    .collect()
            };
            let w = s.change(&adds, &removes);
            for a in &adds {
                want.insert(a.docno);
            }
            for r in &removes {
                want.remove(r);
            }
            let all = s.all();
            assert_eq!(
                all.iter().map(|p| p.docno).collect::<Vec<_>>(),
                want.iter().copied().collect::<Vec<_>>()
            );
            assert!(all.iter().all(|x| *x == p(x.docno)));
            assert_eq!(w.df as usize, want.len());
            assert!(s
                .heads
                .iter()
                .all(|(_, h)| h.n as usize <= 2 * BLOCK && h.n > 0));
            if !want.is_empty() {
                assert!(s.slots.contains_key(&0), "slot 0 holds the heads");
            }
            // untouched blocks are not rewritten
            let rewritten = w.store.len();
            assert!(rewritten <= adds.len() + removes.len() + 3, "{rewritten}");
        }
        // removing everything leaves nothing
        let all: Vec<u32> = want.iter().copied().collect();
        let w = s.change(&[], &all);
        assert!(w.heads.is_empty() && s.slots.is_empty() && w.df == 0);
    }

    #[test]
    fn a_big_first_merge_is_cut_into_blocks() {
        let mut s = Stored::default();
        let adds: Vec<Posting> = (0..1000).map(p).collect();
        let w = s.change(&adds, &[]);
        assert_eq!(
            w.heads.iter().map(|h| h.1.n).collect::<Vec<_>>(),
            [128, 128, 128, 128, 128, 128, 128, 104]
        );
        assert_eq!(w.heads[0].0, 0);
        assert_eq!(s.all().len(), 1000);
    }
}
