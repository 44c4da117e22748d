//! Segments on pages: written once (data pages, then the page map that lists them, each
//! page logged whole), read back through the map, displaced as a whole.
use super::meta::SegEntry;
use super::page::{allocate, name_of, Kind, Locked, Mode, Record, PAYLOAD};
use crate::errors::raise;
use pgrx::pg_sys;
use pgrx::PgSqlErrorCode;
use qortex_core::bm25::{Bytes, Corrupt, Segment};

/// Block numbers a page-map page holds (after its count).
const MAP_ENTRIES: usize = (PAYLOAD - 8) / 4;

/// A segment's bytes as they lie on its data pages.
pub struct PageBytes {
    rel: pg_sys::Relation,
    id: u64,
    blocks: Vec<pg_sys::BlockNumber>,
}

impl Bytes for PageBytes {
    fn size(&self) -> u64 {
        (self.blocks.len() * PAYLOAD) as u64
    }

    fn read(&self, off: u64, len: usize) -> Result<Vec<u8>, Corrupt> {
        let end = off
            .checked_add(len as u64)
            .filter(|&e| e <= self.size())
            .ok_or_else(|| Corrupt(format!("segment {}: read past its pages", self.id)))?;
        let mut out = Vec::with_capacity(len);
        let mut at = off as usize;
        let end = end as usize;
        while at < end {
            let (page, within) = (at / PAYLOAD, at % PAYLOAD);
            let blk = *self
                .blocks
                .get(page)
                .ok_or_else(|| Corrupt(format!("segment {}: read past its pages", self.id)))?;
            let n = (PAYLOAD - within).min(end - at);
            let p = Locked::read_kind(self.rel, blk, Mode::Share, Kind::Data, Some(self.id));
            out.extend_from_slice(&p.contents()[within..within + n]);
            at += n;
        }
        Ok(out)
    }
}

impl PageBytes {
    /// The data page and offset in it of byte `off`.
    pub fn locate(&self, off: u64) -> (pg_sys::BlockNumber, usize) {
        let off = off as usize;
        (self.blocks[off / PAYLOAD], off % PAYLOAD)
    }
}

/// Raise a corrupt segment as the index's corruption.
pub fn corrupt(rel: pg_sys::Relation, e: Corrupt) -> ! {
    let name = name_of(rel);
    raise(
        PgSqlErrorCode::ERRCODE_INDEX_CORRUPTED,
        format!("qortex_bm25 index \"{name}\": {e}; REINDEX it"),
    )
}

/// Write a segment's bytes as segment `id` (tier `tier`): data pages, then the map.
pub fn write(
    rel: pg_sys::Relation,
    id: u64,
    tier: u32,
    bytes: &[u8],
    docs: u64,
    total_len: u64,
) -> SegEntry {
    let mut data = Vec::with_capacity(bytes.len().div_ceil(PAYLOAD));
    for chunk in bytes.chunks(PAYLOAD) {
        let p = allocate(rel);
        let mut rec = Record::start(rel);
        let mut img = rec.register(&p, true);
        img.init(Kind::Data, id);
        img.contents_mut(PAYLOAD)[..chunk.len()].copy_from_slice(chunk);
        rec.finish();
        data.push(p.block());
    }
    let maps: Vec<Locked> = (0..data.len().div_ceil(MAP_ENTRIES).max(1))
        .map(|_| allocate(rel))
        .collect();
    for (i, p) in maps.iter().enumerate() {
        let part = data.chunks(MAP_ENTRIES).nth(i).unwrap_or(&[]);
        let mut rec = Record::start(rel);
        let mut img = rec.register(p, true);
        img.init(Kind::Map, id);
        let mut o = img.opaque();
        o.next = maps
            .get(i + 1)
            .map_or(pg_sys::InvalidBlockNumber, Locked::block);
        img.set_opaque(o);
        let c = img.contents_mut(8 + 4 * part.len());
        c[..4].copy_from_slice(&(part.len() as u32).to_le_bytes());
        for (j, b) in part.iter().enumerate() {
            c[8 + 4 * j..12 + 4 * j].copy_from_slice(&b.to_le_bytes());
        }
        rec.finish();
    }
    SegEntry {
        id,
        map: maps[0].block(),
        tier,
        docs,
        dead: 0,
        total_len,
        bytes: bytes.len() as u64,
        pages: (maps.len() + data.len()) as u32,
        _pad: 0,
    }
}

/// A segment's map pages and data pages.
pub fn pages(
    rel: pg_sys::Relation,
    e: &SegEntry,
) -> (Vec<pg_sys::BlockNumber>, Vec<pg_sys::BlockNumber>) {
    let (mut maps, mut data) = (Vec::new(), Vec::new());
    let mut blk = e.map;
    while blk != pg_sys::InvalidBlockNumber {
        let p = Locked::read_kind(rel, blk, Mode::Share, Kind::Map, Some(e.id));
        let c = p.contents();
        let n = u32::from_le_bytes(c[..4].try_into().unwrap()) as usize;
        if n > MAP_ENTRIES || maps.len() > e.pages as usize {
            corrupt(
                rel,
                Corrupt(format!("segment {}: a page map is too long", e.id)),
            );
        }
        data.extend(
            (0..n).map(|j| u32::from_le_bytes(c[8 + 4 * j..12 + 4 * j].try_into().unwrap())),
        );
        maps.push(blk);
        blk = p.check(Kind::Map, Some(e.id)).next;
    }
    if (data.len() * PAYLOAD) < e.bytes as usize || maps.len() + data.len() != e.pages as usize {
        corrupt(
            rel,
            Corrupt(format!(
                "segment {}: its map does not cover its bytes",
                e.id
            )),
        );
    }
    (maps, data)
}

/// A segment open for reading.
pub fn open(rel: pg_sys::Relation, e: &SegEntry) -> Segment<PageBytes> {
    let (_, blocks) = pages(rel, e);
    let seg = Segment::open(PageBytes {
        rel,
        id: e.id,
        blocks,
    })
    .unwrap_or_else(|err| corrupt(rel, err));
    if seg.num_docs() as u64 != e.docs || seg.header.bytes != e.bytes {
        corrupt(
            rel,
            Corrupt(format!("segment {}: not what the metapage says", e.id)),
        );
    }
    seg
}

/// Mark pages displaced with `stamp` (they are freed once no reader can still reach them),
/// four to a WAL record.
pub fn displace(
    rel: pg_sys::Relation,
    blocks: &[pg_sys::BlockNumber],
    kind: Kind,
    owner: Option<u64>,
    stamp: u64,
) {
    for chunk in blocks.chunks(4) {
        let pages: Vec<Locked> = chunk
            .iter()
            .map(|&b| Locked::read_kind(rel, b, Mode::Exclusive, kind, owner))
            .collect();
        let mut rec = Record::start(rel);
        for p in &pages {
            rec.register(p, false).displace(stamp);
        }
        rec.finish();
    }
}
