//! The byte layout of a block of postings: up to `BLOCK` postings of one lexeme in docno
//! order, each `(docno, tf, dl, global)`, as three varbyte columns: docno deltas (the first
//! absolute), term frequencies, and `dl << 1 | global`. About 4 bytes a posting.

/// Postings a block holds at most; a merge splits a block that grows past twice this.
pub const BLOCK: usize = 128;

/// One row's occurrence of a lexeme: which document, how often, the document's length (its
/// number of positions) and whether it is global (seen by every user scope).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Posting {
    pub docno: u32,
    pub tf: u16,
    pub dl: u32,
    pub global: bool,
}

/// Append `v` as a LEB128 varint (also the segment dictionary's numbers).
pub(crate) fn put(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get(data: &[u8], at: &mut usize) -> Option<u32> {
    let mut v: u32 = 0;
    for shift in (0..35).step_by(7) {
        let b = *data.get(*at)?;
        *at += 1;
        v |= ((b & 0x7f) as u32) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Encode postings sorted by docno (strictly increasing).
pub fn encode(postings: &[Posting]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 * postings.len() + 4);
    put(&mut out, postings.len() as u32);
    let mut prev = 0;
    for (i, p) in postings.iter().enumerate() {
        debug_assert!(i == 0 || p.docno > prev, "postings must be in docno order");
        put(&mut out, if i == 0 { p.docno } else { p.docno - prev });
        prev = p.docno;
    }
    for p in postings {
        put(&mut out, p.tf as u32);
    }
    for p in postings {
        put(&mut out, (p.dl << 1) | p.global as u32);
    }
    out
}

/// Decode a block; `None` if the bytes are not a block.
pub fn decode(data: &[u8]) -> Option<Vec<Posting>> {
    let mut at = 0;
    let n = get(data, &mut at)? as usize;
    if n > data.len() {
        return None;
    }
    let mut out = Vec::with_capacity(n);
    let mut docno = 0u32;
    for i in 0..n {
        let d = get(data, &mut at)?;
        docno = if i == 0 { d } else { docno.checked_add(d)? };
        out.push(Posting {
            docno,
            tf: 0,
            dl: 0,
            global: false,
        });
    }
    for p in out.iter_mut() {
        p.tf = u16::try_from(get(data, &mut at)?).ok()?;
    }
    for p in out.iter_mut() {
        let v = get(data, &mut at)?;
        p.dl = v >> 1;
        p.global = v & 1 == 1;
    }
    (at == data.len()).then_some(out)
}

/// What a block's header says about it: its docno range, size and the largest term
/// frequency and smallest length in it (which bound any of its postings' scores).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockHeader {
    pub first: u32,
    pub last: u32,
    pub n: u32,
    pub max_tf: u16,
    pub min_dl: u32,
}

impl BlockHeader {
    pub fn of(postings: &[Posting]) -> BlockHeader {
        BlockHeader {
            first: postings.first().map_or(0, |p| p.docno),
            last: postings.last().map_or(0, |p| p.docno),
            n: postings.len() as u32,
            max_tf: postings.iter().map(|p| p.tf).max().unwrap_or(0),
            min_dl: postings.iter().map(|p| p.dl).min().unwrap_or(0),
        }
    }
}

/// Cut postings in docno order into blocks of `BLOCK`.
pub fn blocks(postings: &[Posting]) -> Vec<(BlockHeader, Vec<u8>)> {
    postings
        .chunks(BLOCK)
        .map(|c| (BlockHeader::of(c), encode(c)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(docno: u32, tf: u16, dl: u32, global: bool) -> Posting {
        Posting {
            docno,
            tf,
            dl,
            global,
        }
    }

    #[test]
    fn round_trips_and_is_small() {
        let ps: Vec<Posting> = (0..BLOCK as u32)
            .map(|i| p(1000 + 7 * i, (i % 5 + 1) as u16, 80 + i, i % 3 == 0))
            .collect();
        let bytes = encode(&ps);
        assert_eq!(decode(&bytes).unwrap(), ps);
        assert!(bytes.len() <= 4 * ps.len() + 4, "{} bytes", bytes.len());
        let big = vec![p(u32::MAX >> 1, u16::MAX, (u32::MAX >> 1) - 1, true)];
        assert_eq!(decode(&encode(&big)).unwrap(), big);
        assert_eq!(decode(&encode(&[])).unwrap(), vec![]);
    }

    #[test]
    fn refuses_what_is_not_a_block() {
        let bytes = encode(&[p(1, 1, 10, false), p(5, 2, 12, true)]);
        assert!(decode(&bytes[..bytes.len() - 1]).is_none());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer).is_none());
        assert!(decode(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01]).is_none());
    }

    #[test]
    fn blocks_cut_at_the_block_size_with_their_bounds() {
        let ps: Vec<Posting> = (0..300)
            .map(|i| p(i * 2, (i % 7) as u16 + 1, 50 + i % 11, false))
            .collect();
        let bs = blocks(&ps);
        assert_eq!(bs.iter().map(|b| b.0.n).collect::<Vec<_>>(), [128, 128, 44]);
        assert_eq!((bs[1].0.first, bs[1].0.last), (256, 510));
        assert_eq!((bs[0].0.max_tf, bs[0].0.min_dl), (7, 50));
    }
}
