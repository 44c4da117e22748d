//! Flushes (the write buffer into a segment), merges (segments into one, dropping the dead)
//! and freeing displaced pages. Each runs under the maintenance lock; none makes a reader
//! wait: a reader works from the metapage it copied, whose pages stay until no reader can
//! still reach them (`readers`).
//!
//! Order, so a crash leaks pages but never loses or corrupts: the new segment's pages are
//! written first; one record on the metapage then publishes it (and drops what it
//! replaces); only then are the replaced pages stamped displaced.
use super::buffer::read_chain;
use super::meta::{Meta, SegEntry, MAX_SEGMENTS};
use super::page::{allocate, Kind, Locked, Maint, Mode, Record, DISPLACED, FROZEN, META_BLOCK};
use super::readers::{stamp_now, Unreachable};
use super::reclaim::{reclaim, remember};
use super::store;
use pgrx::pg_sys;
use qortex_core::bm25::segment::encode_segment;
use qortex_core::bm25::{live_docs, merge_pages, next_merge, tier_of, Doc, SegStat};

/// Pages of write buffer at which an insert flushes it (if no flush or VACUUM is running).
pub const FLUSH_PAGES: u32 = 16;
/// Documents a tier-0 segment holds at most (about a flush's).
pub const TIER_BASE: u64 = 512;
/// Documents at or below which a writer merges a full tier itself; larger merges are
/// VACUUM's (or `qortex_bm25_merge`'s).
pub const WRITER_MERGE_DOCS: u64 = 40_000;

fn segment_of(rel: pg_sys::Relation, meta: &mut Meta, mut docs: Vec<Doc>) -> SegEntry {
    docs.sort_by_key(|d| d.tid);
    let id = meta.next_segment;
    meta.next_segment += 1;
    let total: u64 = docs.iter().map(|d| d.len as u64).sum();
    let bytes = encode_segment(&docs, super::page::PAYLOAD);
    store::write(
        rel,
        id,
        tier_of(docs.len() as u64, TIER_BASE),
        &bytes,
        docs.len() as u64,
        total,
    )
}

/// Turn the write buffer into a segment. Returns the documents flushed (0: nothing to do).
pub fn flush(rel: pg_sys::Relation, maint: &Maint) -> u64 {
    // 1. freeze the chain: a fresh tail takes the inserts from now on
    reclaim(rel, std::ptr::null_mut(), maint);
    let meta = Meta::read(rel);
    let mut tail = Locked::read(rel, meta.buffer_tail, Mode::Exclusive);
    loop {
        let o = tail.check(Kind::Buffer, None);
        if o.next == pg_sys::InvalidBlockNumber {
            break;
        }
        tail = Locked::read(rel, o.next, Mode::Exclusive);
    }
    // SAFETY: a locked page.
    let empty_tail = unsafe { pg_sys::PageGetMaxOffsetNumber(tail.page()) } == 0;
    if empty_tail && meta.buffer_head == tail.block() {
        return 0;
    }
    let last = tail.block();
    {
        let new = allocate(rel);
        let m = Locked::read(rel, META_BLOCK, Mode::Exclusive);
        let mut meta = Meta::of(&m);
        let serial = meta.serial();
        let mut rec = Record::start(rel);
        let mut old = rec.register(&tail, false);
        let mut img = rec.register(&new, true);
        img.init(Kind::Buffer, serial);
        let mut o = old.opaque();
        o.next = new.block();
        o.next_owner = serial;
        o.flags |= FROZEN;
        old.set_opaque(o);
        meta.buffer_tail = new.block();
        meta.buffer_pages += 1;
        meta.write(&mut rec.register(&m, false));
        rec.finish();
    }
    drop(tail);
    // 2. the frozen chain's live documents into a segment
    let (docs, frozen) = read_chain(rel, &meta, Some(last));
    let live: Vec<Doc> = docs
        .into_iter()
        .filter(|(_, dead)| !dead)
        .map(|(d, _)| d)
        .collect();
    let flushed = live.len() as u64;
    let mut meta = Meta::read(rel);
    let entry = (!live.is_empty()).then(|| segment_of(rel, &mut meta, live));
    // 3. publish: the segment in, the frozen pages out of the chain
    let m = Locked::read(rel, META_BLOCK, Mode::Exclusive);
    let mut now = Meta::of(&m);
    let last_page = Locked::read_kind(rel, last, Mode::Share, Kind::Buffer, None);
    let o = last_page.check(Kind::Buffer, None);
    drop(last_page);
    now.buffer_head = o.next;
    now.buffer_head_owner = o.next_owner;
    now.buffer_pages -= frozen.len() as u32;
    now.advance_serials(meta.next_segment);
    if let Some(e) = entry {
        let mut list = now.segments().to_vec();
        list.push(e);
        now.set_segments(&list);
    }
    now.flushes += 1;
    let mut rec = Record::start(rel);
    now.write(&mut rec.register(&m, false));
    rec.finish();
    drop(m);
    // 4. the frozen pages are displaced, and listed to be freed
    let stamp = stamp_now();
    store::displace(rel, &frozen, Kind::Buffer, None, stamp);
    remember(rel, maint, stamp, &frozen);
    flushed
}

/// Make sure the metapage can list one more segment: merge the tiers due, and if that is
/// not enough, every segment into one.
pub fn make_room(rel: pg_sys::Relation, maint: &Maint) {
    if (Meta::read(rel).n_segments as usize) < MAX_SEGMENTS - 1 {
        return;
    }
    merge_due(rel, maint, u64::MAX, u64::MAX);
    let meta = Meta::read(rel);
    if (meta.n_segments as usize) >= MAX_SEGMENTS - 1 {
        let all: Vec<u64> = meta.segments().iter().map(|e| e.id).collect();
        merge(rel, maint, &all);
    }
}

/// Publish a segment of `docs` (a document too large for the write buffer).
pub fn add_segment(rel: pg_sys::Relation, _maint: &Maint, docs: Vec<Doc>) {
    let mut meta = Meta::read(rel);
    let e = segment_of(rel, &mut meta, docs);
    let m = Locked::read(rel, META_BLOCK, Mode::Exclusive);
    let mut now = Meta::of(&m);
    let mut list = now.segments().to_vec();
    list.push(e);
    now.set_segments(&list);
    now.advance_serials(meta.next_segment);
    let mut rec = Record::start(rel);
    now.write(&mut rec.register(&m, false));
    rec.finish();
}

/// Merge segments `ids` into one, dropping their dead documents. Returns the documents kept.
pub fn merge(rel: pg_sys::Relation, maint: &Maint, ids: &[u64]) -> u64 {
    reclaim(rel, std::ptr::null_mut(), maint);
    let meta = Meta::read(rel);
    let chosen: Vec<SegEntry> = meta
        .segments()
        .iter()
        .filter(|e| ids.contains(&e.id))
        .copied()
        .collect();
    if chosen.is_empty() {
        return 0;
    }
    let segs: Vec<_> = chosen.iter().map(|e| store::open(rel, e)).collect();
    let with_dead: Vec<_> = segs
        .iter()
        .map(|s| (s, s.dead_bits().unwrap_or_else(|e| store::corrupt(rel, e))))
        .collect();
    let docs = live_docs(&with_dead).unwrap_or_else(|e| store::corrupt(rel, e));
    let kept = docs.len() as u64;
    let mut next = Meta::read(rel);
    let entry = (!docs.is_empty()).then(|| segment_of(rel, &mut next, docs));
    let m = Locked::read(rel, META_BLOCK, Mode::Exclusive);
    let mut now = Meta::of(&m);
    let mut list: Vec<SegEntry> = now
        .segments()
        .iter()
        .filter(|e| !ids.contains(&e.id))
        .copied()
        .collect();
    if let Some(e) = entry {
        list.push(e);
    }
    now.set_segments(&list);
    now.advance_serials(next.next_segment);
    now.merges += 1;
    let mut rec = Record::start(rel);
    now.write(&mut rec.register(&m, false));
    rec.finish();
    drop(m);
    let stamp = stamp_now();
    let mut displaced = Vec::new();
    for e in &chosen {
        let (maps, data) = store::pages(rel, e);
        store::displace(rel, &data, Kind::Data, Some(e.id), stamp);
        store::displace(rel, &maps, Kind::Map, Some(e.id), stamp);
        displaced.extend(data.into_iter().chain(maps));
    }
    remember(rel, maint, stamp, &displaced);
    kept
}

fn stats(meta: &Meta) -> Vec<SegStat> {
    meta.segments()
        .iter()
        .map(|e| SegStat {
            id: e.id,
            tier: e.tier,
            docs: e.docs,
            dead: e.dead,
            pages: e.pages as u64,
        })
        .collect()
}

/// Run the merges the tiers call for (`next_merge`), each of at most `max_docs` documents,
/// writing at most `budget` pages in all. Returns how many ran.
pub fn merge_due(rel: pg_sys::Relation, maint: &Maint, max_docs: u64, mut budget: u64) -> usize {
    let mut ran = 0;
    loop {
        let segs = stats(&Meta::read(rel));
        let Some(ids) = next_merge(&segs, max_docs, budget) else {
            return ran;
        };
        budget = budget.saturating_sub(merge_pages(&segs, &ids));
        merge(rel, maint, &ids);
        ran += 1;
    }
}

/// The pages a VACUUM's merges may write: those free now, and an eighth of the index's
/// live pages more. Pages a merge displaces are freed by the next merge only if no reader
/// holds the index meanwhile (`readers`), and otherwise once every snapshot older than the
/// merge is gone, which is not within the VACUUM that merged; unbounded, its merges
/// would write a copy of what they merge beside it (a tier as large as the index: twice the
/// index). Bounded, a large tier merges in parts over passes and the file grows by at most
/// an eighth in one.
pub fn vacuum_budget(meta: &Meta, free_pages: u64) -> u64 {
    let live: u64 =
        meta.segments().iter().map(|e| e.pages as u64).sum::<u64>() + meta.buffer_pages as u64;
    free_pages + live / 8
}

/// Free the displaced pages no reader can still reach: each is stamped free (logged)
/// and recorded in the free space map. Returns the pages free after (those freed with them).
pub fn free_displaced(rel: pg_sys::Relation, heap: pg_sys::Relation, _maint: &Maint) -> u64 {
    let mut unreachable = Unreachable::new(rel, heap);
    // SAFETY: `rel` is open.
    let nblocks =
        unsafe { pg_sys::RelationGetNumberOfBlocksInFork(rel, pg_sys::ForkNumber::MAIN_FORKNUM) };
    let mut free = 0;
    for blk in 1..nblocks {
        let p = Locked::read(rel, blk, Mode::Exclusive);
        // SAFETY: a locked page.
        let new = unsafe { pg_sys::PageIsNew(p.page()) };
        let o = p.opaque();
        let free_now = match o {
            _ if new => true,
            Some(o) if o.kind == Kind::Free as u16 => true,
            Some(o) if o.flags & DISPLACED != 0 && unreachable.at(o.stamp) => {
                let mut rec = Record::start(rel);
                rec.register(&p, false).free();
                rec.finish();
                true
            }
            _ => false,
        };
        drop(p);
        if free_now {
            free += 1;
            // SAFETY: records a hint; the page is trusted again only if it reads free.
            unsafe { pg_sys::RecordFreeIndexPage(rel, blk) };
        }
        crate::bm25am::vacuum_delay();
    }
    // SAFETY: `rel` is open.
    unsafe { pg_sys::IndexFreeSpaceMapVacuum(rel) };
    free
}
