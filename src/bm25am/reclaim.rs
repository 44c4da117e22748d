//! Freeing displaced pages as the index is written, not only in VACUUM: each flush and merge
//! lists the pages it displaces, with their stamp, on one reclaim page; the next flush or
//! merge frees those no reader can still reach (`readers`; VACUUM too), so the pages are
//! reused before the relation grows. Under a stream of small writes, or one transaction's
//! many, the index then stays near its live size without waiting for VACUUM.
//!
//! The list is a hint, like the free space map: a listed page is freed only if it still
//! reads displaced with the listed stamp (VACUUM's scan may have freed and reused it
//! meanwhile). What does not fit on the page is left to VACUUM's scan. Every change is
//! logged; callers hold the maintenance lock.
use super::meta::Meta;
use super::page::{allocate, Kind, Locked, Maint, Mode, Record, DISPLACED, META_BLOCK};
use super::readers::Unreachable;
use pgrx::pg_sys;

/// Blocks one list entry holds at most (an entry is one line item: stamp, then blocks).
const MAX_ENTRY_BLOCKS: usize = 1024;

fn entry(stamp: u64, blocks: &[pg_sys::BlockNumber]) -> Vec<u8> {
    let mut e = Vec::with_capacity(8 + 4 * blocks.len());
    e.extend_from_slice(&stamp.to_le_bytes());
    for b in blocks {
        e.extend_from_slice(&b.to_le_bytes());
    }
    e
}

fn parse(item: &[u8]) -> Option<(u64, Vec<pg_sys::BlockNumber>)> {
    if item.len() < 8 || !(item.len() - 8).is_multiple_of(4) {
        return None;
    }
    let stamp = u64::from_le_bytes(item[..8].try_into().ok()?);
    let blocks = item[8..]
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Some((stamp, blocks))
}

/// List `blocks`, displaced at `stamp`, to be freed by a later `reclaim`.
pub fn remember(rel: pg_sys::Relation, _maint: &Maint, stamp: u64, blocks: &[pg_sys::BlockNumber]) {
    for part in blocks.chunks(MAX_ENTRY_BLOCKS) {
        let item = entry(stamp, part);
        let meta = Meta::read(rel);
        if meta.reclaim == META_BLOCK {
            // the list's page, made with the metapage naming it, in one record
            let page = allocate(rel);
            let m = Locked::read(rel, META_BLOCK, Mode::Exclusive);
            let mut now = Meta::of(&m);
            let mut rec = Record::start(rel);
            let mut img = rec.register(&page, true);
            img.init(Kind::Reclaim, 0);
            img.add_item(&item);
            now.reclaim = page.block();
            now.write(&mut rec.register(&m, false));
            rec.finish();
            continue;
        }
        let page = Locked::read_kind(rel, meta.reclaim, Mode::Exclusive, Kind::Reclaim, None);
        if !page.fits(item.len()) {
            return; // full: VACUUM's scan frees the rest
        }
        let mut rec = Record::start(rel);
        rec.register(&page, false).add_item(&item);
        rec.finish();
    }
}

/// Free the listed pages no reader can still reach; returns how many were freed.
pub fn reclaim(rel: pg_sys::Relation, heap: pg_sys::Relation, _maint: &Maint) -> u64 {
    let meta = Meta::read(rel);
    if meta.reclaim == META_BLOCK {
        return 0;
    }
    let mut unreachable = Unreachable::new(rel, heap);
    let page = Locked::read_kind(rel, meta.reclaim, Mode::Exclusive, Kind::Reclaim, None);
    let mut done = Vec::new();
    let mut freed: Vec<pg_sys::BlockNumber> = Vec::new();
    for (i, item) in page.items().iter().enumerate() {
        match parse(item) {
            Some((stamp, blocks)) if unreachable.at(stamp) => {
                for chunk in blocks.chunks(4) {
                    freed.extend(free_if_displaced(rel, chunk, stamp));
                }
                done.push(i);
            }
            Some(_) => {}
            None => done.push(i), // not an entry: drop it (the list is only a hint)
        }
    }
    if !done.is_empty() {
        let mut rec = Record::start(rel);
        rec.register(&page, false).delete_items(&done);
        rec.finish();
    }
    drop(page);
    for &b in &freed {
        // SAFETY: records a hint; the page is trusted again only if it reads free.
        unsafe { pg_sys::RecordFreeIndexPage(rel, b) };
    }
    if let (Some(&lo), Some(&hi)) = (freed.iter().min(), freed.iter().max()) {
        // SAFETY: `rel` is open; makes the recorded pages findable from the map's root.
        unsafe { pg_sys::FreeSpaceMapVacuumRange(rel, lo, hi + 1) };
    }
    freed.len() as u64
}

/// Free those of `blocks` (up to 4: one record) that still read displaced at `stamp`.
fn free_if_displaced(
    rel: pg_sys::Relation,
    blocks: &[pg_sys::BlockNumber],
    stamp: u64,
) -> Vec<pg_sys::BlockNumber> {
    // SAFETY: a plain query of the relation's size.
    let nblocks =
        unsafe { pg_sys::RelationGetNumberOfBlocksInFork(rel, pg_sys::ForkNumber::MAIN_FORKNUM) };
    let pages: Vec<Locked> = blocks
        .iter()
        .filter(|&&b| b != META_BLOCK && b < nblocks)
        .map(|&b| Locked::read(rel, b, Mode::Exclusive))
        .filter(|p| {
            p.opaque()
                .is_some_and(|o| o.flags & DISPLACED != 0 && o.stamp == stamp)
        })
        .collect();
    if pages.is_empty() {
        return Vec::new();
    }
    let mut rec = Record::start(rel);
    for p in &pages {
        rec.register(p, false).free();
    }
    rec.finish();
    pages.iter().map(Locked::block).collect()
}
