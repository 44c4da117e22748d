//! The write buffer: a chain of pages of one line item per document. An insert appends to
//! the tail page (one WAL record); a full tail gets a new page in the same record. A flush
//! freezes the chain (inserts move to a fresh tail) and turns it into a segment.
use super::meta::Meta;
use super::page::{allocate, Kind, Locked, Mode, Record, FROZEN, META_BLOCK};
use crate::errors::raise;
use pgrx::pg_sys;
use pgrx::PgSqlErrorCode;
use qortex_core::bm25::record::header;
use qortex_core::bm25::{Doc, Matched, QueryTerms, RecordError};

/// Append a document's record to the buffer's tail. Returns the buffer's pages after it.
pub fn append(rel: pg_sys::Relation, record: &[u8]) -> u32 {
    loop {
        // pinned until the tail is locked: a tail frozen meanwhile is not freed under it
        let (meta, pin) = Meta::pinned(rel);
        let tail = Locked::read(rel, meta.buffer_tail, Mode::Exclusive);
        drop(pin);
        let o = tail.check(Kind::Buffer, None);
        if o.flags & FROZEN != 0 || o.next != pg_sys::InvalidBlockNumber {
            continue; // a flush or another insert moved the tail since the metapage was read
        }
        if tail.fits(record.len()) {
            let mut rec = Record::start(rel);
            let added = rec.register(&tail, false).add_item(record);
            assert!(added, "space was checked");
            rec.finish();
            return meta.buffer_pages;
        }
        // a new tail: the old one points to it, the metapage names it, in one record
        let new = allocate(rel);
        let m = Locked::read(rel, META_BLOCK, Mode::Exclusive);
        let mut meta = Meta::of(&m);
        if meta.buffer_tail != tail.block() {
            continue; // cannot happen while the old tail is locked, but never trust it
        }
        let serial = meta.serial();
        let mut rec = Record::start(rel);
        let mut old = rec.register(&tail, false);
        let mut img = rec.register(&new, true);
        img.init(Kind::Buffer, serial);
        if !img.add_item(record) {
            raise(
                PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                format!(
                    "qortex_bm25: a record of {} bytes does not fit a page",
                    record.len()
                ),
            );
        }
        let mut oo = old.opaque();
        oo.next = new.block();
        oo.next_owner = serial;
        old.set_opaque(oo);
        meta.buffer_tail = new.block();
        meta.buffer_pages += 1;
        meta.write(&mut rec.register(&m, false));
        rec.finish();
        return meta.buffer_pages;
    }
}

/// The documents of the chain from the metapage's head up to (and with) `last`, or to its
/// end; with whether each is dead, and the blocks read.
pub fn read_chain(
    rel: pg_sys::Relation,
    meta: &Meta,
    last: Option<pg_sys::BlockNumber>,
) -> (Vec<(Doc, bool)>, Vec<pg_sys::BlockNumber>) {
    let mut docs = Vec::new();
    let blocks = walk_chain(rel, meta, last, |record| {
        Doc::decode(record).map(|d| docs.push(d))
    });
    (docs, blocks)
}

/// Each record of the whole chain as `query` reads it (a scan's read: no lexeme copied).
pub fn read_matched(rel: pg_sys::Relation, meta: &Meta, query: &QueryTerms<'_>) -> Vec<Matched> {
    let mut docs = Vec::new();
    walk_chain(rel, meta, None, |record| {
        query.read(record).map(|d| docs.push(d))
    });
    docs
}

/// Hand `each` every record of the chain from the metapage's head up to (and with) `last`,
/// or to its end, while its page is share-locked; the blocks read.
fn walk_chain(
    rel: pg_sys::Relation,
    meta: &Meta,
    last: Option<pg_sys::BlockNumber>,
    mut each: impl FnMut(&[u8]) -> Result<(), RecordError>,
) -> Vec<pg_sys::BlockNumber> {
    let mut blocks = Vec::new();
    let (mut blk, mut owner) = (meta.buffer_head, meta.buffer_head_owner);
    while blk != pg_sys::InvalidBlockNumber {
        let p = Locked::read_kind(rel, blk, Mode::Share, Kind::Buffer, Some(owner));
        for item in p.items() {
            if each(item).is_err() {
                raise(
                    PgSqlErrorCode::ERRCODE_INDEX_CORRUPTED,
                    format!("qortex_bm25: block {blk} holds a record that is not one; REINDEX the index"),
                );
            }
        }
        blocks.push(blk);
        if Some(blk) == last {
            break;
        }
        let o = p.check(Kind::Buffer, Some(owner));
        (blk, owner) = (o.next, o.next_owner);
        if blocks.len() > u32::MAX as usize / 2 {
            raise(
                PgSqlErrorCode::ERRCODE_INDEX_CORRUPTED,
                "qortex_bm25: the write buffer's chain loops; REINDEX the index",
            );
        }
    }
    blocks
}

/// Mark dead every record of the chain whose TID `dead` says is gone. Returns (marked,
/// live records left).
pub fn mark_dead(
    rel: pg_sys::Relation,
    meta: &Meta,
    dead: &mut dyn FnMut(u64) -> bool,
) -> (u64, u64) {
    let (mut marked, mut live) = (0, 0);
    let (mut blk, mut owner) = (meta.buffer_head, meta.buffer_head_owner);
    while blk != pg_sys::InvalidBlockNumber {
        let p = Locked::read_kind(rel, blk, Mode::Exclusive, Kind::Buffer, Some(owner));
        let mut hits = Vec::new();
        for (i, item) in p.items().iter().enumerate() {
            let (flags, tid) = header(item).unwrap_or_else(|_| {
                raise(PgSqlErrorCode::ERRCODE_INDEX_CORRUPTED, format!("qortex_bm25: block {blk} holds a record that is not one; REINDEX the index"))
            });
            if flags & qortex_core::bm25::record::DEAD != 0 {
                continue;
            }
            if dead(tid) {
                hits.push(i);
            } else {
                live += 1;
            }
        }
        if !hits.is_empty() {
            let mut rec = Record::start(rel);
            let mut img = rec.register(&p, false);
            for &i in &hits {
                img.item_mut(i)[0] |= qortex_core::bm25::record::DEAD;
            }
            rec.finish();
            marked += hits.len() as u64;
        }
        let o = p.check(Kind::Buffer, Some(owner));
        (blk, owner) = (o.next, o.next_owner);
    }
    (marked, live)
}
