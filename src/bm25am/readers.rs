//! When a displaced page may be freed: once no reader can still follow a metapage copied
//! before it was displaced.
//!
//! A reader copies the metapage and reads the pages it lists; a flush or merge that then
//! publishes a metapage without them leaves them as they were, marked displaced with a
//! stamp (`stamp_now`). Two ways to know that no reader is left:
//!
//! - **No pin on the metapage.** Every reader on this server holds a pin on the metapage
//!   from before its copy until it is done with the pages (`Meta::pinned`: a scan until it
//!   ends, an insert until it has locked the tail). A conditional cleanup lock granted on
//!   the metapage then means that every page displaced before it is unread: the way GIN's
//!   posting-tree deletion and hash's split cleanup wait for scans. It frees the pages a
//!   transaction displaces while that transaction is still running (a bulk load).
//! - **The stamp is older than every snapshot** (`stamp_removable`): covers readers whose
//!   pins cannot be seen, those of standbys, as far as hot_standby_feedback reports their
//!   snapshots; and frees pages while pins keep the first way shut (a cursor left open).
//!
//! While a standby sends hot_standby_feedback, only the second way frees pages, so that
//! the standby's readers keep the protection they asked for. A standby without feedback
//! has none either way: its query that reads a page freed and reused meanwhile fails
//! (the page's kind and owner are checked) and is retried.
use super::page::{unpinned, META_BLOCK};
use pgrx::pg_sys;

/// The stamp of a page displaced now: once it is removable, no snapshot that could have
/// read the index's earlier state remains.
pub fn stamp_now() -> u64 {
    // SAFETY: reads the shared transaction counter.
    unsafe { pg_sys::ReadNextFullTransactionId().value }
}

/// Whether a displaced page's stamp is older than every snapshot (of this database).
fn stamp_removable(heap: pg_sys::Relation, stamp: u64) -> bool {
    // SAFETY: a plain query of the visibility horizons.
    unsafe {
        pg_sys::GlobalVisCheckRemovableFullXid(heap, pg_sys::FullTransactionId { value: stamp })
    }
}

/// Which displaced pages of an index no reader can reach any more, for one pass that frees
/// them under the maintenance lock (so nothing is displaced meanwhile): a page whose stamp
/// is removable, or any page once no reader is left (`none_left`), which is asked at most
/// once and only for a page its stamp does not free.
pub struct Unreachable {
    rel: pg_sys::Relation,
    heap: pg_sys::Relation,
    none_left: Option<bool>,
}

impl Unreachable {
    pub fn new(rel: pg_sys::Relation, heap: pg_sys::Relation) -> Unreachable {
        Unreachable {
            rel,
            heap,
            none_left: None,
        }
    }

    /// Whether a page displaced at `stamp` (before this pass) may be freed.
    pub fn at(&mut self, stamp: u64) -> bool {
        stamp_removable(self.heap, stamp)
            || *self.none_left.get_or_insert_with(|| none_left(self.rel))
    }
}

/// Whether every page of `rel` displaced before now is beyond every reader's reach: no
/// reader on this server pins the metapage, and no standby reports its snapshots.
fn none_left(rel: pg_sys::Relation) -> bool {
    !standby_feedback() && unpinned(rel, META_BLOCK)
}

/// Whether a standby asks, by hot_standby_feedback, that its snapshots hold back what the
/// primary removes: a replication slot with an xmin, or a WAL sender (whose process
/// carries the xmin the standby reports when it has no slot).
fn standby_feedback() -> bool {
    // SAFETY: ProcArrayGetReplicationSlotXmin reads under ProcArrayLock. WalSndCtl is
    // shared memory set up at startup with max_wal_senders entries; a sender's pid and its
    // process's xmin are single aligned words, read without their spinlock as
    // pg_stat_replication's readers may see them a moment late: a standby whose feedback
    // arrives a moment late is not protected by PostgreSQL's own horizons either.
    // BackendPidGetProc takes ProcArrayLock and returns null for a pid that is gone.
    unsafe {
        let (mut xmin, mut catalog_xmin) =
            (pg_sys::InvalidTransactionId, pg_sys::InvalidTransactionId);
        pg_sys::ProcArrayGetReplicationSlotXmin(&mut xmin, &mut catalog_xmin);
        if xmin != pg_sys::InvalidTransactionId {
            return true;
        }
        let ctl = pg_sys::WalSndCtl;
        if ctl.is_null() {
            return false;
        }
        let senders = (*ctl)
            .walsnds
            .as_slice(pg_sys::max_wal_senders.max(0) as usize);
        senders.iter().any(|w| {
            let pid = std::ptr::read_volatile(&w.pid);
            if pid == 0 {
                return false;
            }
            let proc = pg_sys::BackendPidGetProc(pid);
            !proc.is_null()
                && std::ptr::read_volatile(&(*proc).xmin) != pg_sys::InvalidTransactionId
        })
    }
}
