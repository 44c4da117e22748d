//! An immutable segment, as one byte string the shell lays over pages:
//!
//! ```text
//! header   magic, version, counts, Σ length, the offsets below          (HEADER_LEN bytes)
//! index    per dictionary block: its offset and length, its first lexeme
//! dict     blocks of up to DICT_BLOCK lexemes, sorted, front-coded, each with its df and
//!          then, for a lexeme of one posting block, the block itself (bounds and
//!          postings), else its first entry in the block table
//! blocks   the posting blocks of lexemes with more than one (26 bytes each): first and
//!          last docno, min length, its bytes' offset, postings, max tf, its bytes' length
//!          — a true bound of any posting's score
//! postings those blocks, bit-packed (`pack`: docno deltas, tf, length)
//! docmap   per docno, its heap TID (6 bytes)
//! dead     a bit per docno, set by VACUUM; starts at a multiple of `align` so that VACUUM
//!          changes only the pages that hold it
//! ```
//!
//! A dictionary entry (numbers as LEB128 varints):
//!
//! ```text
//! shared  suffix-length  suffix  df                  the lexeme: `shared` bytes of the one
//!                                                    before it in the block, then `suffix`
//! first  min-length  max-tf  [last-first  len  packed]   df ≤ BLOCK: its one block (the
//!                                                    bracket only when df > 1)
//! first-block                                        df > BLOCK: its blocks are the table's
//!                                                    first-block .. + ⌈df / BLOCK⌉
//! ```
//!
//! A block of one posting has no bytes: its docno, tf and length are its bounds. Most
//! lexemes of a small segment have one posting, so this entry (about 12 bytes) is most of
//! what they cost.
//!
//! Docnos are the documents' positions in the segment. Every read goes through `Bytes`, so
//! a reader loads the header and the index once and then only the parts a query needs.
use super::codec::{put, BlockHeader, Posting, BLOCK};
use super::pack;
use super::record::Doc;
use super::Tid;
use std::collections::HashMap;

pub const MAGIC: u32 = 0x5142_5347; // "QBSG"
/// 3: front-coded dictionary with one-block lexemes' blocks in it (2: 26-byte block
/// entries for every lexeme; 1: varbyte postings).
pub const VERSION: u16 = 3;
pub const HEADER_LEN: usize = 88;
/// Lexemes per dictionary block: a lookup reads the index (once) and one block.
pub const DICT_BLOCK: usize = 64;
const BLOCK_ENTRY: usize = 26;
const TID_LEN: usize = 6;

/// Bytes that are not what the segment's header says (the shell reports which index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corrupt(pub String);

impl std::fmt::Display for Corrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn corrupt(what: &str) -> Corrupt {
    Corrupt(format!("segment {what}"))
}

/// A segment's bytes, read where they are (pages).
/// A segment's bytes wherever they lie. `read` must fail (not allocate) for a range past
/// `size`, so no count read from damaged bytes can make a reader allocate more than the
/// segment holds.
pub trait Bytes {
    fn read(&self, off: u64, len: usize) -> Result<Vec<u8>, Corrupt>;
    /// Bytes there are to read.
    fn size(&self) -> u64;
}

impl Bytes for Vec<u8> {
    fn size(&self) -> u64 {
        self.len() as u64
    }

    fn read(&self, off: u64, len: usize) -> Result<Vec<u8>, Corrupt> {
        let off = usize::try_from(off).map_err(|_| corrupt("offset"))?;
        self.get(off..off.checked_add(len).ok_or_else(|| corrupt("length"))?)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| corrupt("read past its end"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    pub num_docs: u32,
    pub num_terms: u32,
    pub total_len: u64,
    pub index_off: u64,
    pub index_count: u32,
    pub dict_off: u64,
    pub blocks_off: u64,
    pub postings_off: u64,
    pub docmap_off: u64,
    pub dead_off: u64,
    pub bytes: u64,
}

/// A lexeme's entry: its document frequency and its posting blocks (its one block, or
/// where its blocks are in the block table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TermEntry {
    One { df: u32, block: BlockRef },
    Table { df: u32, first_block: u32 },
}

impl TermEntry {
    pub fn df(&self) -> u32 {
        match *self {
            TermEntry::One { df, .. } | TermEntry::Table { df, .. } => df,
        }
    }

    pub fn n_blocks(&self) -> u32 {
        self.df().div_ceil(BLOCK as u32)
    }
}

/// A posting block: its bounds and where its bytes are (from the segment's start; none
/// for a block of one posting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockRef {
    pub header: BlockHeader,
    pub off: u64,
    pub len: u32,
}

/// The varint at `*at` (moved past it), as `codec::put` writes it, if it is one of at most
/// 32 bits (codec's reader would keep the low bits of a longer one).
fn var_at(b: &[u8], at: &mut usize) -> Result<u32, Corrupt> {
    let mut v = 0u64;
    for shift in (0..35).step_by(7) {
        let byte = *b.get(*at).ok_or_else(|| corrupt("dictionary: truncated"))?;
        *at += 1;
        v |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            return u32::try_from(v).map_err(|_| corrupt("dictionary: a number past 32 bits"));
        }
    }
    Err(corrupt("dictionary: a number past 32 bits"))
}

/// The dictionary entry at `*at` (moved past it) of the block whose bytes `raw` start at
/// `start` in the segment.
fn entry_at(raw: &[u8], at: &mut usize, start: u64) -> Result<TermEntry, Corrupt> {
    let df = var_at(raw, at)?;
    if df as usize > BLOCK {
        return Ok(TermEntry::Table {
            df,
            first_block: var_at(raw, at)?,
        });
    }
    let (first, min_dl) = (var_at(raw, at)?, var_at(raw, at)?);
    let max_tf =
        u16::try_from(var_at(raw, at)?).map_err(|_| corrupt("dictionary: a tf past 16 bits"))?;
    let (last, off, len) = if df > 1 {
        let last = first.checked_add(var_at(raw, at)?);
        let len = var_at(raw, at)?;
        let off = start + *at as u64;
        *at = at
            .checked_add(len as usize)
            .filter(|&e| e <= raw.len())
            .ok_or_else(|| corrupt("dictionary: a block past its block"))?;
        let last = last.ok_or_else(|| corrupt("dictionary: a docno past u32"))?;
        (last, off, len)
    } else {
        (first, 0, 0)
    };
    let header = BlockHeader {
        first,
        last,
        n: df,
        max_tf,
        min_dl,
    };
    Ok(TermEntry::One {
        df,
        block: BlockRef { header, off, len },
    })
}

/// A lexeme's postings (docno order) as its dictionary entry's bytes after the lexeme, and
/// its blocks for the block table when it has more than one (their first entry's number
/// is `n_blocks`, the table's entries so far).
fn term_entry(ps: &[Posting], n_blocks: u32, dict: &mut Vec<u8>) -> Vec<(BlockHeader, Vec<u8>)> {
    put(dict, ps.len() as u32);
    if ps.len() > BLOCK {
        put(dict, n_blocks);
        return ps
            .chunks(BLOCK)
            .map(|c| (BlockHeader::of(c), block_bytes(c)))
            .collect();
    }
    let h = BlockHeader::of(ps);
    put(dict, h.first);
    put(dict, h.min_dl);
    put(dict, h.max_tf as u32);
    if ps.len() > 1 {
        let data = pack::encode(ps);
        put(dict, h.last - h.first);
        put(dict, data.len() as u32);
        dict.extend_from_slice(&data);
    }
    Vec::new()
}

/// A block's bytes: none for one posting (its bounds say it all), else packed.
fn block_bytes(ps: &[Posting]) -> Vec<u8> {
    if ps.len() == 1 {
        Vec::new()
    } else {
        pack::encode(ps)
    }
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, Corrupt> {
    Ok(u16::from_le_bytes(
        b.get(at..at + 2)
            .ok_or_else(|| corrupt("truncated"))?
            .try_into()
            .unwrap(),
    ))
}
fn u32_at(b: &[u8], at: usize) -> Result<u32, Corrupt> {
    Ok(u32::from_le_bytes(
        b.get(at..at + 4)
            .ok_or_else(|| corrupt("truncated"))?
            .try_into()
            .unwrap(),
    ))
}
fn u64_at(b: &[u8], at: usize) -> Result<u64, Corrupt> {
    Ok(u64::from_le_bytes(
        b.get(at..at + 8)
            .ok_or_else(|| corrupt("truncated"))?
            .try_into()
            .unwrap(),
    ))
}

/// The bytes of a segment of `docs` (docno = position), its dead bitmap (all zero) starting
/// at a multiple of `align`. Every document needs at least one lexeme.
pub fn encode_segment(docs: &[Doc], align: usize) -> Vec<u8> {
    let mut lists: HashMap<&[u8], Vec<Posting>> = HashMap::new();
    let mut total_len = 0u64;
    for (docno, d) in docs.iter().enumerate() {
        total_len += d.len as u64;
        for (lex, tf) in &d.terms {
            lists.entry(lex.as_slice()).or_default().push(Posting {
                docno: docno as u32,
                tf: *tf,
                dl: d.len,
                global: false,
            });
        }
    }
    let mut terms: Vec<(&[u8], Vec<Posting>)> = lists.into_iter().collect();
    terms.sort_unstable_by(|a, b| a.0.cmp(b.0));

    let (mut dict, mut index, mut blocks, mut postings) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut n_blocks = 0u32;
    let mut index_count = 0u32;
    for chunk in terms.chunks(DICT_BLOCK) {
        let start = dict.len();
        let mut prev: &[u8] = &[];
        for (lex, ps) in chunk {
            let shared = prev
                .iter()
                .zip(lex.iter())
                .take_while(|(a, b)| a == b)
                .count();
            put(&mut dict, shared as u32);
            put(&mut dict, (lex.len() - shared) as u32);
            dict.extend_from_slice(&lex[shared..]);
            prev = lex;
            for (h, data) in term_entry(ps, n_blocks, &mut dict) {
                blocks.extend_from_slice(&h.first.to_le_bytes());
                blocks.extend_from_slice(&h.last.to_le_bytes());
                blocks.extend_from_slice(&h.min_dl.to_le_bytes());
                blocks.extend_from_slice(&(postings.len() as u64).to_le_bytes());
                blocks.extend_from_slice(&(h.n as u16).to_le_bytes());
                blocks.extend_from_slice(&h.max_tf.to_le_bytes());
                blocks.extend_from_slice(&(data.len() as u16).to_le_bytes());
                postings.extend_from_slice(&data);
                n_blocks += 1;
            }
        }
        let first = chunk[0].0;
        index.extend_from_slice(&(start as u32).to_le_bytes());
        index.extend_from_slice(&((dict.len() - start) as u32).to_le_bytes());
        index.extend_from_slice(&(first.len() as u16).to_le_bytes());
        index.extend_from_slice(first);
        index_count += 1;
    }
    let mut docmap = Vec::with_capacity(docs.len() * TID_LEN);
    for d in docs {
        let (block, offset) = super::unpack_tid(d.tid);
        docmap.extend_from_slice(&block.to_le_bytes());
        docmap.extend_from_slice(&offset.to_le_bytes());
    }

    let index_off = HEADER_LEN as u64;
    let dict_off = index_off + index.len() as u64;
    let blocks_off = dict_off + dict.len() as u64;
    let postings_off = blocks_off + blocks.len() as u64;
    let docmap_off = postings_off + postings.len() as u64;
    let align = align.max(1) as u64;
    let dead_off = (docmap_off + docmap.len() as u64).div_ceil(align) * align;
    let bytes = dead_off + docs.len().div_ceil(8) as u64;

    let mut out = Vec::with_capacity(bytes as usize);
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(docs.len() as u32).to_le_bytes());
    out.extend_from_slice(&(terms.len() as u32).to_le_bytes());
    out.extend_from_slice(&total_len.to_le_bytes());
    out.extend_from_slice(&index_off.to_le_bytes());
    out.extend_from_slice(&index_count.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    for off in [
        dict_off,
        blocks_off,
        postings_off,
        docmap_off,
        dead_off,
        bytes,
    ] {
        out.extend_from_slice(&off.to_le_bytes());
    }
    debug_assert_eq!(out.len(), HEADER_LEN);
    out.extend_from_slice(&index);
    out.extend_from_slice(&dict);
    out.extend_from_slice(&blocks);
    out.extend_from_slice(&postings);
    out.extend_from_slice(&docmap);
    out.resize(bytes as usize, 0);
    out
}

/// The header of a segment's bytes, checked.
pub fn parse_header(b: &[u8]) -> Result<Header, Corrupt> {
    if b.len() < HEADER_LEN || u32_at(b, 0)? != MAGIC {
        return Err(corrupt("header: bad magic"));
    }
    if u16_at(b, 4)? != VERSION {
        return Err(corrupt("header: unknown version"));
    }
    let h = Header {
        num_docs: u32_at(b, 8)?,
        num_terms: u32_at(b, 12)?,
        total_len: u64_at(b, 16)?,
        index_off: u64_at(b, 24)?,
        index_count: u32_at(b, 32)?,
        dict_off: u64_at(b, 40)?,
        blocks_off: u64_at(b, 48)?,
        postings_off: u64_at(b, 56)?,
        docmap_off: u64_at(b, 64)?,
        dead_off: u64_at(b, 72)?,
        bytes: u64_at(b, 80)?,
    };
    let ordered = h.index_off == HEADER_LEN as u64
        && h.index_off <= h.dict_off
        && h.dict_off <= h.blocks_off
        && h.blocks_off <= h.postings_off
        && h.postings_off <= h.docmap_off
        && h.docmap_off + TID_LEN as u64 * h.num_docs as u64 <= h.dead_off
        && h.dead_off + (h.num_docs as u64).div_ceil(8) == h.bytes;
    if !ordered {
        return Err(corrupt("header: sections out of order"));
    }
    Ok(h)
}

/// A segment open for reading: its header and dictionary index in memory.
#[derive(Clone)]
pub struct Segment<B: Bytes> {
    pub bytes: B,
    pub header: Header,
    /// Per dictionary block: offset (from `dict_off`), length, and where its first lexeme
    /// is in `index_bytes` (start, length).
    index: Vec<(u32, u32, u32, u16)>,
    index_bytes: Vec<u8>,
}

impl<B: Bytes> Segment<B> {
    pub fn open(bytes: B) -> Result<Self, Corrupt> {
        let header = parse_header(&bytes.read(0, HEADER_LEN)?)?;
        if header.bytes > bytes.size() {
            return Err(corrupt("header: larger than its bytes"));
        }
        let raw = bytes.read(
            header.index_off,
            (header.dict_off - header.index_off) as usize,
        )?;
        let mut index = Vec::with_capacity((header.index_count as usize).min(raw.len() / 10));
        let mut at = 0;
        for _ in 0..header.index_count {
            let off = u32_at(&raw, at)?;
            let len = u32_at(&raw, at + 4)?;
            let l = u16_at(&raw, at + 8)?;
            if at + 10 + l as usize > raw.len() {
                return Err(corrupt("index"));
            }
            index.push((off, len, (at + 10) as u32, l));
            at += 10 + l as usize;
        }
        if at != raw.len() {
            return Err(corrupt("index: trailing bytes"));
        }
        Ok(Segment {
            bytes,
            header,
            index,
            index_bytes: raw,
        })
    }

    /// A dictionary block's first lexeme.
    fn first(&self, at: u32, len: u16) -> &[u8] {
        &self.index_bytes[at as usize..at as usize + len as usize]
    }

    pub fn num_docs(&self) -> u32 {
        self.header.num_docs
    }

    pub fn total_len(&self) -> u64 {
        self.header.total_len
    }

    /// Hand `each` every lexeme of dictionary block `i` with its entry, in order, while it
    /// returns true: one pass over the block, each lexeme rebuilt in one buffer from its
    /// shared prefix and suffix, none copied out.
    fn walk_block(
        &self,
        i: usize,
        mut each: impl FnMut(&[u8], TermEntry) -> bool,
    ) -> Result<(), Corrupt> {
        let (off, len, ..) = self.index[i];
        let start = self.header.dict_off + off as u64;
        let raw = self.bytes.read(start, len as usize)?;
        let mut lexeme: Vec<u8> = Vec::with_capacity(64);
        let mut at = 0;
        while at < raw.len() {
            let shared = var_at(&raw, &mut at)? as usize;
            let suffix = var_at(&raw, &mut at)? as usize;
            let end = at.checked_add(suffix).filter(|&e| e <= raw.len());
            let (Some(end), true) = (end, shared <= lexeme.len()) else {
                return Err(corrupt("dictionary: a lexeme past its block"));
            };
            lexeme.truncate(shared);
            lexeme.extend_from_slice(&raw[at..end]);
            at = end;
            let e = entry_at(&raw, &mut at, start)?;
            if !each(&lexeme, e) {
                break;
            }
        }
        Ok(())
    }

    /// The entries of `wanted` (sorted lexemes, with where each goes in `out`) that
    /// dictionary block `i` holds (a query's lookup in every segment).
    fn find_in_block(
        &self,
        i: usize,
        wanted: &[(&[u8], usize)],
        out: &mut [Option<TermEntry>],
    ) -> Result<(), Corrupt> {
        let mut w = 0;
        self.walk_block(i, |lexeme, e| {
            while w < wanted.len() && wanted[w].0 < lexeme {
                w += 1;
            }
            if w < wanted.len() && wanted[w].0 == lexeme {
                out[wanted[w].1] = Some(e);
                w += 1;
            }
            w < wanted.len()
        })
    }

    /// Each lexeme's entry (`None` where the segment does not have it), reading each
    /// dictionary block once.
    pub fn lookup(&self, lexemes: &[Vec<u8>]) -> Result<Vec<Option<TermEntry>>, Corrupt> {
        let mut out = vec![None; lexemes.len()];
        let mut by_block: HashMap<usize, Vec<usize>> = HashMap::new();
        for (q, lex) in lexemes.iter().enumerate() {
            let i = self
                .index
                .partition_point(|&(_, _, at, l)| self.first(at, l) <= lex.as_slice());
            if i > 0 {
                by_block.entry(i - 1).or_default().push(q);
            }
        }
        for (i, qs) in by_block {
            let mut wanted: Vec<(&[u8], usize)> =
                qs.into_iter().map(|q| (lexemes[q].as_slice(), q)).collect();
            wanted.sort_unstable();
            self.find_in_block(i, &wanted, &mut out)?;
        }
        Ok(out)
    }

    /// Every lexeme with its entry, in order (a merge reads them all).
    pub fn terms(&self) -> Result<Vec<(Vec<u8>, TermEntry)>, Corrupt> {
        let mut out = Vec::with_capacity(
            (self.header.num_terms as usize).min(self.header.bytes as usize / 8),
        );
        for i in 0..self.index.len() {
            self.walk_block(i, |lexeme, e| {
                out.push((lexeme.to_vec(), e));
                true
            })?;
        }
        if out.len() != self.header.num_terms as usize {
            return Err(corrupt("dictionary: wrong number of lexemes"));
        }
        Ok(out)
    }

    /// A lexeme's posting blocks (headers and where their bytes are).
    pub fn blocks(&self, e: &TermEntry) -> Result<Vec<BlockRef>, Corrupt> {
        let first_block = match *e {
            TermEntry::One { block, .. } => return Ok(vec![block]),
            TermEntry::Table { first_block, .. } => first_block,
        };
        let n_blocks = e.n_blocks();
        let raw = self.bytes.read(
            self.header.blocks_off + first_block as u64 * BLOCK_ENTRY as u64,
            n_blocks as usize * BLOCK_ENTRY,
        )?;
        let mut out = Vec::with_capacity(n_blocks as usize);
        for c in raw.chunks_exact(BLOCK_ENTRY) {
            let header = BlockHeader {
                first: u32_at(c, 0)?,
                last: u32_at(c, 4)?,
                min_dl: u32_at(c, 8)?,
                n: u16_at(c, 20)? as u32,
                max_tf: u16_at(c, 22)?,
            };
            if header.first > header.last || header.n == 0 || header.n as usize > BLOCK {
                return Err(corrupt("block table"));
            }
            out.push(BlockRef {
                header,
                off: u64_at(c, 12)?
                    .checked_add(self.header.postings_off)
                    .ok_or_else(|| corrupt("block table"))?,
                len: u16_at(c, 24)? as u32,
            });
        }
        Ok(out)
    }

    /// A block's postings, checked against its header.
    pub fn postings(&self, b: &BlockRef) -> Result<Vec<Posting>, Corrupt> {
        let h = &b.header;
        let ps = match (h.n, b.len) {
            (1, 0) if h.max_tf > 0 => vec![Posting {
                docno: h.first,
                tf: h.max_tf,
                dl: h.min_dl,
                global: false,
            }],
            (1, _) | (_, 0) => return Err(corrupt("posting block: not what its header says")),
            _ => {
                let raw = self.bytes.read(b.off, b.len as usize)?;
                pack::decode(&raw, h.first, h.n as usize).ok_or_else(|| corrupt("posting block"))?
            }
        };
        let ok = ps
            .last()
            .is_some_and(|p| p.docno == b.header.last && p.docno < self.header.num_docs);
        if !ok {
            return Err(corrupt("posting block: not what its header says"));
        }
        Ok(ps)
    }

    /// The heap TIDs of these docnos.
    pub fn tids(&self, docnos: &[u32]) -> Result<Vec<Tid>, Corrupt> {
        docnos
            .iter()
            .map(|&d| {
                if d >= self.header.num_docs {
                    return Err(corrupt("docno past the docmap"));
                }
                let raw = self
                    .bytes
                    .read(self.header.docmap_off + d as u64 * TID_LEN as u64, TID_LEN)?;
                Ok(super::pack_tid(u32_at(&raw, 0)?, u16_at(&raw, 4)?))
            })
            .collect()
    }

    /// Every docno's TID, in docno order (VACUUM and merges read them all).
    pub fn all_tids(&self) -> Result<Vec<Tid>, Corrupt> {
        let raw = self.bytes.read(
            self.header.docmap_off,
            self.header.num_docs as usize * TID_LEN,
        )?;
        raw.chunks_exact(TID_LEN)
            .map(|c| Ok(super::pack_tid(u32_at(c, 0)?, u16_at(c, 4)?)))
            .collect()
    }

    /// Where the dead bitmap is: offset and length in bytes.
    pub fn dead_range(&self) -> (u64, usize) {
        (
            self.header.dead_off,
            (self.header.num_docs as usize).div_ceil(8),
        )
    }

    /// The dead bitmap as it is now.
    pub fn dead_bits(&self) -> Result<Vec<u8>, Corrupt> {
        let (off, len) = self.dead_range();
        self.bytes.read(off, len)
    }
}

/// Whether docno `d` is set in a dead bitmap.
pub fn is_dead(bits: &[u8], d: u32) -> bool {
    bits.get(d as usize / 8)
        .is_some_and(|b| b & (1 << (d % 8)) != 0)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::bm25::pack_tid;

    pub fn doc(tid: u64, terms: &[(&str, u16)]) -> Doc {
        let mut t: Vec<(&[u8], u16)> = terms.iter().map(|(l, n)| (l.as_bytes(), *n)).collect();
        t.sort();
        t.dedup_by(|a, b| a.0 == b.0);
        Doc::from_entries(tid, t).unwrap()
    }

    #[test]
    fn a_segment_reads_back_what_was_written() {
        let mut docs = Vec::new();
        for i in 0..1000u64 {
            let mut t = vec![("all", 1)];
            if i % 3 == 0 {
                t.push(("three", (i % 5 + 1) as u16));
            }
            if i == 777 {
                t.push(("rare", 2));
            }
            docs.push(doc(pack_tid(i as u32 / 50, (i % 50) as u16 + 1), &t));
        }
        for (i, d) in docs.iter_mut().take(300).enumerate() {
            d.terms.push((format!("t{i:04}").into_bytes(), 1));
            d.terms.sort();
        }
        let bytes = encode_segment(&docs, 8144);
        let s = Segment::open(bytes).unwrap();
        assert_eq!(s.num_docs(), 1000);
        assert_eq!(s.header.num_terms, 303);
        assert_eq!(s.header.dead_off % 8144, 0);
        let q: Vec<Vec<u8>> = ["rare", "none", "all", "three", "t0150", "a", "zzz"]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect();
        let e = s.lookup(&q).unwrap();
        assert_eq!(e[0].unwrap().df(), 1);
        assert_eq!(e[1], None);
        assert_eq!(e[2].unwrap().df(), 1000);
        assert_eq!(e[2].unwrap().n_blocks(), 8);
        assert!(matches!(e[2], Some(TermEntry::Table { .. })));
        assert_eq!(e[3].unwrap().df(), 334);
        assert_eq!(e[4].unwrap().df(), 1);
        assert!(matches!(e[4], Some(TermEntry::One { .. })));
        assert_eq!((e[5], e[6]), (None, None));
        let bs = s.blocks(&e[0].unwrap()).unwrap();
        let ps = s.postings(&bs[0]).unwrap();
        assert_eq!((ps[0].docno, ps[0].tf, ps[0].dl), (777, 2, 6));
        assert_eq!(s.tids(&[777]).unwrap(), [pack_tid(15, 28)]);
        let all = s.all_tids().unwrap();
        assert_eq!(all.len(), 1000);
        assert_eq!(all[51], pack_tid(1, 2));
        assert_eq!(s.dead_bits().unwrap(), vec![0; 125]);
        let terms = s.terms().unwrap();
        assert_eq!(terms.len(), 303);
        assert!(terms.windows(2).all(|w| w[0].0 < w[1].0));
        let three = s.blocks(&e[3].unwrap()).unwrap();
        let got: Vec<(u32, u16)> = three
            .iter()
            .flat_map(|b| s.postings(b).unwrap())
            .map(|p| (p.docno, p.tf))
            .collect();
        let want: Vec<(u32, u16)> = (0..1000)
            .filter(|i| i % 3 == 0)
            .map(|i| (i, (i % 5 + 1) as u16))
            .collect();
        assert_eq!(got, want);
        assert!(three
            .iter()
            .all(|b| b.header.max_tf <= 5 && b.header.min_dl >= 2));
    }

    #[test]
    fn refuses_bytes_that_are_not_a_segment() {
        let docs = vec![doc(1, &[("a", 1)]), doc(2, &[("b", 1)])];
        let bytes = encode_segment(&docs, 1);
        let mut bad = bytes.clone();
        bad[0] ^= 1;
        assert!(Segment::open(bad).is_err());
        let mut bad = bytes.clone();
        bad[80] ^= 1; // the length
        assert!(Segment::open(bad).is_err());
        assert!(Segment::open(bytes[..40].to_vec()).is_err());
        let s = Segment::open(bytes.clone()).unwrap();
        assert!(s.tids(&[2]).is_err());
        // a one-posting entry naming a docno past the segment's: "a" is the first entry
        // (shared 0, suffix 1, "a", df 1), then its docno
        let mut bad = bytes;
        let h = parse_header(&bad).unwrap();
        assert_eq!(
            &bad[h.dict_off as usize..h.dict_off as usize + 5],
            &[0, 1, b'a', 1, 0]
        );
        bad[h.dict_off as usize + 4] = 5;
        let s = Segment::open(bad).unwrap();
        let e = s.lookup(&[b"a".to_vec()]).unwrap()[0].unwrap();
        let b = s.blocks(&e).unwrap();
        assert!(s.postings(&b[0]).is_err());
        // a lexeme longer than its block, and a df past 32 bits
        for (at, v) in [(1, 0x7f), (3, 0xff)] {
            let mut bad = bytes_of(&docs);
            bad[h.dict_off as usize + at] = v;
            let s = Segment::open(bad).unwrap();
            assert!(s.terms().is_err(), "byte {at}");
        }
        // a block table entry of the wrong length (a lexeme of two blocks)
        let docs: Vec<Doc> = (0..200).map(|i| doc(i, &[("a", 1)])).collect();
        let mut bad = bytes_of(&docs);
        let h = parse_header(&bad).unwrap();
        bad[h.blocks_off as usize + 24] ^= 0x7f;
        let s = Segment::open(bad).unwrap();
        let e = s.lookup(&[b"a".to_vec()]).unwrap()[0].unwrap();
        let b = s.blocks(&e).unwrap();
        assert!(s.postings(&b[0]).is_err());
    }

    fn bytes_of(docs: &[Doc]) -> Vec<u8> {
        encode_segment(docs, 1)
    }
}
