//! VACUUM: every index entry whose row is gone is marked dead (a flag in the write buffer,
//! a bit in a segment's dead bitmap) before the table may reuse its TID; the cleanup pass
//! then flushes the buffer, frees the pages no reader can still reach, runs the merges the
//! tiers call for (which drop the dead) within a budget of pages (`vacuum_budget`), and frees
//! again.
use super::buffer::mark_dead;
use super::meta::Meta;
use super::page::{Kind, Locked, Maint, Mode, Record, META_BLOCK};
use super::{maintain, store};
use pgrx::pg_sys;
use pgrx::prelude::*;
use qortex_core::bm25::segment::is_dead;
use qortex_core::bm25::unpack_tid;
use std::collections::BTreeMap;

fn gone(callback: pg_sys::IndexBulkDeleteCallback, state: *mut std::ffi::c_void, tid: u64) -> bool {
    let (block, offset) = unpack_tid(tid);
    let mut ip = pg_sys::ItemPointerData::default();
    pgrx::itemptr::item_pointer_set_all(&mut ip, block, offset);
    // SAFETY: the callback and its state are VACUUM's, valid for this call.
    unsafe { callback.expect("a bulk-delete callback")(&mut ip, state) }
}

/// VACUUM's result so far, or a new one (palloc'd in VACUUM's context).
fn or_new(stats: *mut pg_sys::IndexBulkDeleteResult) -> *mut pg_sys::IndexBulkDeleteResult {
    if stats.is_null() {
        // SAFETY: a zeroed struct palloc'd in the current (VACUUM's) memory context.
        unsafe { PgBox::<pg_sys::IndexBulkDeleteResult>::alloc0() }.into_pg()
    } else {
        stats
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn ambulkdelete(
    info: *mut pg_sys::IndexVacuumInfo,
    stats: *mut pg_sys::IndexBulkDeleteResult,
    callback: pg_sys::IndexBulkDeleteCallback,
    callback_state: *mut std::ffi::c_void,
) -> *mut pg_sys::IndexBulkDeleteResult {
    // SAFETY: VACUUM passes its info (the open index) and the result so far, or null.
    let rel = (*info).index;
    let stats = or_new(stats);
    // no flush or merge while marking: a document they copied would come back alive
    let maint = Maint::lock(rel);
    let meta = Meta::read(rel);
    let (marked, mut live) = mark_dead(rel, &meta, &mut |tid| gone(callback, callback_state, tid));
    let mut removed = marked;
    for e in meta.segments() {
        let seg = store::open(rel, e);
        let tids = seg
            .all_tids()
            .unwrap_or_else(|err| store::corrupt(rel, err));
        let bits = seg
            .dead_bits()
            .unwrap_or_else(|err| store::corrupt(rel, err));
        let (dead_off, _) = seg.dead_range();
        // per data page: (offset in page, bit) to set
        let mut pages: BTreeMap<pg_sys::BlockNumber, Vec<(usize, u8)>> = BTreeMap::new();
        for (d, &tid) in tids.iter().enumerate() {
            let d = d as u32;
            if is_dead(&bits, d) {
                continue;
            }
            if gone(callback, callback_state, tid) {
                let (blk, within) = seg.bytes.locate(dead_off + d as u64 / 8);
                pages.entry(blk).or_default().push((within, 1 << (d % 8)));
                removed += 1;
            } else {
                live += 1;
            }
        }
        // A page's bits and the metapage's count of them in one record, so that a crash
        // leaves the two agreeing. The order (data page, then metapage) is the insert's.
        for (blk, bits) in pages {
            let p = Locked::read_kind(rel, blk, Mode::Exclusive, Kind::Data, Some(e.id));
            let m = Locked::read(rel, META_BLOCK, Mode::Exclusive);
            let mut now = Meta::of(&m);
            let mut list = now.segments().to_vec();
            let listed = list.iter_mut().find(|l| l.id == e.id);
            let listed = listed.expect("Maint keeps merges out: the segment is still listed");
            listed.dead += bits.len() as u64;
            now.set_segments(&list);
            let mut rec = Record::start(rel);
            let mut img = rec.register(&p, false);
            let c = img.contents_mut(super::page::PAYLOAD);
            for (at, bit) in bits {
                c[at] |= bit;
            }
            now.write(&mut rec.register(&m, false));
            rec.finish();
        }
        super::vacuum_delay();
    }
    drop(maint);
    (*stats).tuples_removed += removed as f64;
    (*stats).num_index_tuples = live as f64;
    stats
}

#[pg_guard]
pub unsafe extern "C-unwind" fn amvacuumcleanup(
    info: *mut pg_sys::IndexVacuumInfo,
    stats: *mut pg_sys::IndexBulkDeleteResult,
) -> *mut pg_sys::IndexBulkDeleteResult {
    // SAFETY: as in `ambulkdelete`.
    if (*info).analyze_only {
        return stats;
    }
    let rel = (*info).index;
    let stats = or_new(stats);
    let maint = Maint::lock(rel);
    maintain::make_room(rel, &maint);
    maintain::flush(rel, &maint);
    // what earlier flushes and merges displaced, free first: the merges reuse it
    let free = maintain::free_displaced(rel, std::ptr::null_mut(), &maint);
    let budget = maintain::vacuum_budget(&Meta::read(rel), free);
    maintain::merge_due(rel, &maint, u64::MAX, budget);
    super::reclaim::reclaim(rel, std::ptr::null_mut(), &maint);
    maintain::free_displaced(rel, std::ptr::null_mut(), &maint);
    drop(maint);
    let meta = Meta::read(rel);
    (*stats).num_pages =
        pg_sys::RelationGetNumberOfBlocksInFork(rel, pg_sys::ForkNumber::MAIN_FORKNUM);
    (*stats).num_index_tuples = meta
        .segments()
        .iter()
        .map(|e| (e.docs - e.dead) as f64)
        .sum();
    stats
}
