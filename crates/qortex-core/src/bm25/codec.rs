//! Postings and block headers: a segment's posting lists are cut into blocks of up to
//! `BLOCK` postings of one lexeme in docno order (`pack` lays out their bytes), each with a
//! header of its bounds.

/// Postings a block holds at most.
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

/// Append `v` as a LEB128 varint (the segment dictionary's numbers).
pub(crate) fn put(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
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
