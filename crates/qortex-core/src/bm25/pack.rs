//! A segment's posting block, bit-packed: the block's postings as three columns of fixed
//! width each, the width the column's largest value needs.
//!
//! ```text
//! widths   3 bytes: bits of (docno delta - 1), of (tf - 1), of length
//! columns  n - 1 deltas (the first docno is the block table's), n tfs, n lengths,
//!          packed least significant bit first, padded to a byte
//! ```
//!
//! The block's size (n) and first docno are in its block table entry, so the block holds
//! only what they do not say. About 2–3 bytes a posting where varbytes took 4–5.
use super::codec::Posting;

fn width(v: u32) -> u8 {
    (32 - v.leading_zeros()) as u8
}

struct Writer {
    out: Vec<u8>,
    acc: u64,
    bits: u32,
}

impl Writer {
    fn put(&mut self, v: u32, w: u8) {
        self.acc |= (v as u64) << self.bits;
        self.bits += w as u32;
        while self.bits >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.bits -= 8;
        }
    }
}

/// Reads values of up to 32 bits from a bit offset: one (unaligned) 8-byte load each, from
/// the bytes padded with zeros past their end.
struct Reader<'a> {
    data: &'a [u8],
    bit: usize,
}

impl Reader<'_> {
    /// The `w`-bit value at the current offset (the bytes' length was checked against all
    /// the values read, so a read past it only meets the padding).
    fn get(&mut self, w: u8) -> u32 {
        let at = self.bit / 8;
        let word = match self.data.get(at..at + 8) {
            Some(b) => u64::from_le_bytes(b.try_into().expect("8 bytes")),
            None => {
                let mut b = [0u8; 8];
                let rest = self.data.get(at..).unwrap_or(&[]);
                b[..rest.len()].copy_from_slice(rest);
                u64::from_le_bytes(b)
            }
        };
        let v = (word >> (self.bit % 8)) & ((1u64 << w) - 1);
        self.bit += w as usize;
        v as u32
    }
}

/// Encode postings in docno order (strictly increasing, tf ≥ 1; at least one).
pub fn encode(ps: &[Posting]) -> Vec<u8> {
    debug_assert!(!ps.is_empty() && ps.windows(2).all(|w| w[0].docno < w[1].docno));
    let deltas = ps.windows(2).map(|w| w[1].docno - w[0].docno - 1);
    let wd = deltas.clone().map(width).max().unwrap_or(0);
    let wt = ps
        .iter()
        .map(|p| width(p.tf.max(1) as u32 - 1))
        .max()
        .unwrap_or(0);
    let wl = ps.iter().map(|p| width(p.dl)).max().unwrap_or(0);
    let bits = (ps.len() - 1) * wd as usize + ps.len() * (wt as usize + wl as usize);
    let mut w = Writer {
        out: Vec::with_capacity(3 + bits.div_ceil(8)),
        acc: 0,
        bits: 0,
    };
    w.out.extend_from_slice(&[wd, wt, wl]);
    for d in deltas {
        w.put(d, wd);
    }
    for p in ps {
        w.put(p.tf.max(1) as u32 - 1, wt);
    }
    for p in ps {
        w.put(p.dl, wl);
    }
    if w.bits > 0 {
        w.out.push(w.acc as u8);
    }
    w.out
}

/// Decode a block of `n` postings whose first docno is `first`; `None` if the bytes are
/// not such a block (a width past 32, a size that does not match, a docno past u32).
pub fn decode(data: &[u8], first: u32, n: usize) -> Option<Vec<Posting>> {
    let (&[wd, wt, wl], rest) = data.split_first_chunk::<3>()?;
    if n == 0 || wd > 32 || wt > 16 || wl > 32 {
        return None;
    }
    let bits = (n - 1) * wd as usize + n * (wt as usize + wl as usize);
    if rest.len() != bits.div_ceil(8) {
        return None;
    }
    let mut r = Reader { data: rest, bit: 0 };
    let mut out = Vec::with_capacity(n);
    let mut docno = first;
    out.push(Posting {
        docno,
        tf: 0,
        dl: 0,
        global: false,
    });
    for _ in 1..n {
        docno = docno.checked_add(r.get(wd))?.checked_add(1)?;
        out.push(Posting {
            docno,
            tf: 0,
            dl: 0,
            global: false,
        });
    }
    for p in out.iter_mut() {
        // at most 16 bits wide: +1 overflows u16 only at 65,536
        p.tf = u16::try_from(r.get(wt) + 1).ok()?;
    }
    for p in out.iter_mut() {
        p.dl = r.get(wl);
    }
    // the padding is zero, so no bit of the block goes unread
    let pad = rest.len() * 8 - bits;
    (pad == 0 || rest[rest.len() - 1] >> (8 - pad) == 0).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn round_trips_and_is_small() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for n in [1usize, 2, 7, 128, 256] {
            for gap in [1u32, 3, 1000, 1 << 30] {
                let mut docno = rng.gen_range(0..gap);
                let ps: Vec<Posting> = (0..n)
                    .map(|i| {
                        if i > 0 {
                            docno += rng.gen_range(1..=gap.min(1 << 20));
                        }
                        Posting {
                            docno,
                            tf: if i == 3 {
                                u16::MAX
                            } else {
                                rng.gen_range(1..4)
                            },
                            dl: if i == 5 {
                                u32::MAX
                            } else {
                                rng.gen_range(1..500)
                            },
                            global: false,
                        }
                    })
                    .collect();
                let b = encode(&ps);
                assert_eq!(decode(&b, ps[0].docno, n).as_deref(), Some(&ps[..]));
                // the wrong size or damaged widths are refused, never misread
                assert_eq!(decode(&b, ps[0].docno, n + 1), None);
                let mut bad = b.clone();
                bad[0] = 40;
                assert_eq!(decode(&bad, ps[0].docno, n), None);
                assert_eq!(decode(&b[..b.len() - 1], ps[0].docno, n), None);
                // so is any bit flipped in the padding
                let used = (n - 1) * b[0] as usize + n * (b[1] as usize + b[2] as usize);
                if !used.is_multiple_of(8) {
                    let mut pad = b.clone();
                    *pad.last_mut().unwrap() ^= 0x80;
                    assert_eq!(decode(&pad, ps[0].docno, n), None);
                }
            }
        }
        // a common term's block: dense docnos, small tfs, lengths under 512
        let ps: Vec<Posting> = (0..128)
            .map(|i| Posting {
                docno: 10 + i * 3,
                tf: 1 + (i % 3) as u16,
                dl: 100 + i * 3,
                global: false,
            })
            .collect();
        assert!(
            encode(&ps).len() <= 3 + 128 * 13 / 8,
            "{}",
            encode(&ps).len()
        );
        // a docno past u32 is refused
        let b = encode(&ps[..2]);
        assert_eq!(decode(&b, u32::MAX - 1, 2), None);
    }
}
