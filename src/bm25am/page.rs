//! Pages of a `qortex_bm25` index: the special area every page carries, buffer guards that
//! release what they hold, generic WAL records, and allocation. Every page read is checked
//! (magic and kind) before anything on it is trusted.
//!
//! Every page: a standard header, contents, and a 40-byte special area
//! `{magic, kind, flags, owner, next, stamp, next_owner}`; `owner` is the segment id of a
//! segment's pages and a serial of its own for a write-buffer page, `next` the next page of
//! the buffer's chain and `next_owner` that page's owner, so a reader following the chain
//! (or a metapage copy) to a page freed and reused meanwhile finds another owner and stops
//! with an error instead of reading the wrong rows. A flush or merge displaces pages by a flag and a
//! stamp (a full transaction id) and changes nothing else: a reader that copied the
//! metapage before still reads them as what they were, until no reader can reach them
//! (`readers`) and they are freed.
use crate::errors::raise;
use pgrx::pg_sys;
use pgrx::prelude::*;

pub const MAGIC: u32 = 0x5142_4D32; // "QBM2"
pub const META_BLOCK: pg_sys::BlockNumber = 0;
/// The heavyweight page lock (on a pseudo block: no page has this number) that flushes,
/// merges and VACUUM's marking hold: one of them at a time, readers and inserters never.
pub const MAINT_LOCK: pg_sys::BlockNumber = 0xFFFF_FFF0;

/// What a page is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Kind {
    Meta = 1,
    /// The write buffer: one line item per document (`qortex_core::bm25::record`).
    Buffer = 2,
    /// A segment's page map: the data pages' block numbers, in order.
    Map = 3,
    /// A segment's bytes.
    Data = 4,
    /// Free to reuse (recorded in the free space map; trusted only when it reads so).
    Free = 6,
    /// The list of displaced pages to free once no reader can reach them (`reclaim`).
    Reclaim = 7,
}

/// A buffer page's flag: a flush froze it (inserts go to the new tail).
pub const FROZEN: u16 = 1;
/// A page's flag: a flush or merge replaced what it holds; `stamp` says since when.
pub const DISPLACED: u16 = 2;

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Opaque {
    pub magic: u32,
    pub kind: u16,
    pub flags: u16,
    pub owner: u64,
    pub next: pg_sys::BlockNumber,
    pub _pad: u32,
    /// When a displaced page was displaced (a full transaction id; 0 otherwise).
    pub stamp: u64,
    /// The owner `next` must have.
    pub next_owner: u64,
}

pub const SPECIAL: usize = std::mem::size_of::<Opaque>();
/// Where contents start: the page header, MAXALIGNed.
pub const CONTENTS: usize = 24;
/// Bytes of contents a page holds.
pub const PAYLOAD: usize = pg_sys::BLCKSZ as usize - CONTENTS - SPECIAL;

/// An open relation's name.
pub fn name_of(rel: pg_sys::Relation) -> String {
    // SAFETY: `rel` is an open relation (every caller holds it open).
    unsafe { pgrx::name_data_to_str(&(*(*rel).rd_rel).relname) }.to_string()
}

fn corrupt(rel: pg_sys::Relation, blk: pg_sys::BlockNumber, what: &str) -> ! {
    let name = name_of(rel);
    raise(
        PgSqlErrorCode::ERRCODE_INDEX_CORRUPTED,
        format!("qortex_bm25 index \"{name}\": block {blk} {what}; REINDEX it"),
    )
}

fn replaced_on_standby(rel: pg_sys::Relation, blk: pg_sys::BlockNumber, what: &str) -> ! {
    let name = name_of(rel);
    crate::errors::error(
        PgSqlErrorCode::ERRCODE_T_R_SERIALIZATION_FAILURE,
        format!("qortex_bm25 index \"{name}\": block {blk} {what}: the primary freed it while this query read it"),
    )
    .hint("Retry the query. A standby that sets hot_standby_feedback = on keeps the pages its queries read; if the error persists, REINDEX the index on the primary.")
    .raise()
}

/// A pinned and locked buffer, released when dropped.
pub struct Locked {
    rel: pg_sys::Relation,
    buf: pg_sys::Buffer,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Share,
    Exclusive,
}

/// Block `blk` of `rel`'s main fork, pinned (not locked).
///
/// # Safety
/// `rel` is open; ReadBufferExtended raises (not returns) for a block past the end.
unsafe fn pin(rel: pg_sys::Relation, blk: pg_sys::BlockNumber) -> pg_sys::Buffer {
    pg_sys::ReadBufferExtended(
        rel,
        pg_sys::ForkNumber::MAIN_FORKNUM,
        blk,
        pg_sys::ReadBufferMode::RBM_NORMAL,
        std::ptr::null_mut(),
    )
}

impl Locked {
    /// Block `blk` of `rel`'s main fork, locked.
    pub fn read(rel: pg_sys::Relation, blk: pg_sys::BlockNumber, mode: Mode) -> Locked {
        // SAFETY: `rel` is open; ReadBufferExtended raises (not returns) for a block past
        // the end; the lock is taken on the buffer just pinned.
        unsafe {
            let buf = pin(rel, blk);
            pg_sys::LockBuffer(
                buf,
                match mode {
                    Mode::Share => pg_sys::BUFFER_LOCK_SHARE as i32,
                    Mode::Exclusive => pg_sys::BUFFER_LOCK_EXCLUSIVE as i32,
                },
            );
            Locked { rel, buf }
        }
    }

    /// `read`, checked: a page of `kind` (and of `owner`, if given).
    pub fn read_kind(
        rel: pg_sys::Relation,
        blk: pg_sys::BlockNumber,
        mode: Mode,
        kind: Kind,
        owner: Option<u64>,
    ) -> Locked {
        let p = Locked::read(rel, blk, mode);
        p.check(kind, owner);
        p
    }

    pub fn block(&self) -> pg_sys::BlockNumber {
        // SAFETY: a pinned buffer.
        unsafe { pg_sys::BufferGetBlockNumber(self.buf) }
    }

    pub fn page(&self) -> pg_sys::Page {
        // SAFETY: a pinned buffer.
        unsafe { pg_sys::BufferGetPage(self.buf) }
    }

    /// Whether an item of `len` bytes fits: its MAXALIGNed size and a line pointer.
    pub fn fits(&self, len: usize) -> bool {
        // SAFETY: a pinned, locked page; PageGetFreeSpace already counts one line pointer.
        let free = unsafe { pg_sys::PageGetFreeSpace(self.page()) };
        free >= len.next_multiple_of(pg_sys::MAXIMUM_ALIGNOF as usize)
    }

    /// The page's special area, if it has one of the right size and magic.
    pub fn opaque(&self) -> Option<Opaque> {
        opaque_of(self.page())
    }

    /// Raise "index corrupted" unless the page is of `kind` (and `owner`). On a standby, a
    /// page of ours that is something else is most likely one the primary freed and reused
    /// while this query read it (`readers`): that is raised as a conflict to retry.
    pub fn check(&self, kind: Kind, owner: Option<u64>) -> Opaque {
        match self.opaque() {
            Some(o) if o.kind == kind as u16 && owner.is_none_or(|w| w == o.owner) => o,
            Some(o) => {
                let what = format!(
                    "is a page of kind {} (owner {}), not {kind:?}",
                    o.kind, o.owner
                );
                // SAFETY: a plain query of the server's state.
                if unsafe { pg_sys::RecoveryInProgress() } {
                    replaced_on_standby(self.rel, self.block(), &what)
                }
                corrupt(self.rel, self.block(), &what)
            }
            None => corrupt(self.rel, self.block(), "is not a qortex_bm25 page"),
        }
    }

    /// The page's contents (the bytes between the header and the special area).
    pub fn contents(&self) -> &[u8] {
        // SAFETY: a locked page of BLCKSZ bytes: CONTENTS..CONTENTS + PAYLOAD is within it.
        unsafe { std::slice::from_raw_parts((self.page() as *const u8).add(CONTENTS), PAYLOAD) }
    }

    /// The line items' bytes (a buffer page), in order.
    pub fn items(&self) -> Vec<&[u8]> {
        items_of(self.rel, self.block(), self.page())
    }

    /// Let go of the lock and keep the pin.
    pub fn unlock(self) -> Pinned {
        let buf = self.buf;
        std::mem::forget(self);
        // SAFETY: the buffer is pinned and locked (by `read`); the pin passes to `Pinned`.
        unsafe { pg_sys::LockBuffer(buf, pg_sys::BUFFER_LOCK_UNLOCK as i32) };
        Pinned { buf }
    }
}

impl Drop for Locked {
    fn drop(&mut self) {
        // SAFETY: the buffer was pinned and locked by `read`. After an abort PostgreSQL has
        // released it already, so only release while the transaction is still running.
        unsafe {
            if pg_sys::IsTransactionState() {
                pg_sys::UnlockReleaseBuffer(self.buf);
            }
        }
    }
}

/// A pinned buffer (not locked), released when dropped.
pub struct Pinned {
    buf: pg_sys::Buffer,
}

impl Pinned {
    /// Leave the pin to the resource owner: for a guard kept in memory that outlives an
    /// error (a scan's state), whose pin the abort has released already.
    pub fn abandon(self) {
        std::mem::forget(self);
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        // SAFETY: pinned by `Locked::read`; after an abort PostgreSQL has released it.
        unsafe {
            if pg_sys::IsTransactionState() {
                pg_sys::ReleaseBuffer(self.buf);
            }
        }
    }
}

/// Whether no other backend pins block `blk`, nor this one but for this call: a
/// conditional cleanup lock, let go at once.
pub fn unpinned(rel: pg_sys::Relation, blk: pg_sys::BlockNumber) -> bool {
    // SAFETY: `rel` is open; the buffer is pinned here and released before returning; the
    // cleanup lock, when granted, is an exclusive content lock, released at once.
    unsafe {
        let buf = pin(rel, blk);
        let alone = pg_sys::ConditionalLockBufferForCleanup(buf);
        if alone {
            pg_sys::LockBuffer(buf, pg_sys::BUFFER_LOCK_UNLOCK as i32);
        }
        pg_sys::ReleaseBuffer(buf);
        alone
    }
}

/// A page's special area, if it is a qortex_bm25 page.
pub fn opaque_of(page: pg_sys::Page) -> Option<Opaque> {
    // SAFETY: `page` is a locked page of BLCKSZ bytes; the special area is read only when
    // the header says it has our size, which puts it within the page.
    unsafe {
        if pg_sys::PageIsNew(page) || pg_sys::PageGetSpecialSize(page) as usize != SPECIAL {
            return None;
        }
        let o = std::ptr::read_unaligned(pg_sys::PageGetSpecialPointer(page) as *const Opaque);
        (o.magic == MAGIC).then_some(o)
    }
}

fn items_of<'a>(
    rel: pg_sys::Relation,
    blk: pg_sys::BlockNumber,
    page: pg_sys::Page,
) -> Vec<&'a [u8]> {
    // SAFETY: `page` is locked by the caller for as long as the slices live (they borrow
    // from the guard); each item id's offset and length are checked to lie in the page.
    unsafe {
        let n = pg_sys::PageGetMaxOffsetNumber(page);
        let mut out = Vec::with_capacity(n as usize);
        for off in 1..=n {
            let id = pg_sys::PageGetItemId(page, off);
            let (start, len) = ((*id).lp_off() as usize, (*id).lp_len() as usize);
            if (*id).lp_flags() != pg_sys::LP_NORMAL
                || start + len > pg_sys::BLCKSZ as usize - SPECIAL
                || start < CONTENTS
            {
                corrupt(rel, blk, "has a line pointer outside its contents");
            }
            out.push(std::slice::from_raw_parts(
                pg_sys::PageGetItem(page, id) as *const u8,
                len,
            ));
        }
        out
    }
}

/// A generic WAL record over up to four locked pages: changes go to the images `register`
/// returns, and `finish` applies and logs them at once. Dropped unfinished, it is abandoned
/// and the pages stay as they were.
pub struct Record {
    state: *mut pg_sys::GenericXLogState,
}

impl Record {
    pub fn start(rel: pg_sys::Relation) -> Record {
        // SAFETY: `rel` is open; the state lives until finish or abort.
        Record {
            state: unsafe { pg_sys::GenericXLogStart(rel) },
        }
    }

    /// The image of `page` to change; `fresh` logs it whole (a new or reused page).
    pub fn register(&mut self, page: &Locked, fresh: bool) -> Image {
        let flags = if fresh {
            pg_sys::GENERIC_XLOG_FULL_IMAGE as i32
        } else {
            0
        };
        // SAFETY: the page is locked exclusively by the caller (a `Locked` in exclusive
        // mode) for as long as the record is open; generic WAL allows four pages.
        Image(unsafe { pg_sys::GenericXLogRegisterBuffer(self.state, page.buf, flags) })
    }

    pub fn finish(mut self) {
        // SAFETY: the state was started and not finished; finish frees it.
        unsafe { pg_sys::GenericXLogFinish(self.state) };
        self.state = std::ptr::null_mut();
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        if !self.state.is_null() {
            // SAFETY: an open state; abort frees it without touching the pages.
            unsafe {
                if pg_sys::IsTransactionState() {
                    pg_sys::GenericXLogAbort(self.state);
                }
            }
        }
    }
}

/// A page image inside a `Record`.
pub struct Image(pg_sys::Page);

impl Image {
    /// A page written directly (not through a record): the init fork of an unlogged index.
    ///
    /// # Safety
    /// `page` is a locked buffer's page the caller logs itself.
    pub unsafe fn of(page: pg_sys::Page) -> Image {
        Image(page)
    }

    /// Make it an empty page of `kind`.
    pub fn init(&mut self, kind: Kind, owner: u64) {
        // SAFETY: the image is a BLCKSZ buffer of the record's; PageInit sets the header
        // and reserves SPECIAL bytes at its end, where the special area is written.
        unsafe {
            pg_sys::PageInit(self.0, pg_sys::BLCKSZ as usize, SPECIAL);
        }
        self.set_opaque(Opaque {
            magic: MAGIC,
            kind: kind as u16,
            flags: 0,
            owner,
            next: pg_sys::InvalidBlockNumber,
            _pad: 0,
            stamp: 0,
            next_owner: 0,
        });
    }

    pub fn opaque(&self) -> Opaque {
        opaque_of(self.0).expect("an image of a qortex_bm25 page")
    }

    pub fn set_opaque(&mut self, o: Opaque) {
        // SAFETY: the image has a special area of SPECIAL bytes (PageInit above, or a page
        // checked when it was read).
        unsafe {
            std::ptr::write_unaligned(pg_sys::PageGetSpecialPointer(self.0) as *mut Opaque, o);
        }
    }

    /// Mark it displaced at `stamp`, keeping everything else (readers may still read it).
    pub fn displace(&mut self, stamp: u64) {
        let mut o = self.opaque();
        o.flags |= DISPLACED;
        o.stamp = stamp;
        self.set_opaque(o);
    }

    /// Make it a free page (its contents kept, never read again).
    pub fn free(&mut self) {
        let mut o = self.opaque();
        o.kind = Kind::Free as u16;
        o.owner = 0;
        o.flags = 0;
        o.stamp = 0;
        o.next = pg_sys::InvalidBlockNumber;
        o.next_owner = 0;
        self.set_opaque(o);
    }

    /// The contents, to write; `used` of them count as data (the rest is free space that
    /// WAL need not carry).
    pub fn contents_mut(&mut self, used: usize) -> &mut [u8] {
        assert!(used <= PAYLOAD);
        // SAFETY: CONTENTS..CONTENTS + PAYLOAD lies within the BLCKSZ image; pd_lower and
        // pd_upper mark the used part as the page's data.
        unsafe {
            let header = self.0 as *mut pg_sys::PageHeaderData;
            (*header).pd_lower = (CONTENTS + used) as u16;
            (*header).pd_upper = (pg_sys::BLCKSZ as usize - SPECIAL) as u16;
            std::slice::from_raw_parts_mut((self.0 as *mut u8).add(CONTENTS), PAYLOAD)
        }
    }

    /// Append a line item; false if it does not fit.
    pub fn add_item(&mut self, item: &[u8]) -> bool {
        // SAFETY: a valid page image; PageAddItemExtended copies `item` and checks space.
        let off = unsafe {
            pg_sys::PageAddItemExtended(
                self.0,
                item.as_ptr() as pg_sys::Item,
                item.len(),
                pg_sys::InvalidOffsetNumber,
                0,
            )
        };
        off != pg_sys::InvalidOffsetNumber
    }

    /// Item `i`'s bytes (0-based), to change in place.
    /// Remove items `idx` (0-based, ascending, distinct), compacting the page.
    pub fn delete_items(&mut self, idx: &[usize]) {
        let mut offsets: Vec<pg_sys::OffsetNumber> = idx.iter().map(|&i| (i + 1) as u16).collect();
        // SAFETY: a valid page image; every offset names one of its items (callers take
        // them from `Locked::items` of the same page, under its exclusive lock).
        unsafe { pg_sys::PageIndexMultiDelete(self.0, offsets.as_mut_ptr(), offsets.len() as i32) }
    }

    pub fn item_mut(&mut self, i: usize) -> &mut [u8] {
        // SAFETY: a valid page image whose items were checked when the page was read
        // (`Locked::items`); `i` is below the item count.
        unsafe {
            let n = pg_sys::PageGetMaxOffsetNumber(self.0) as usize;
            assert!(i < n);
            let id = pg_sys::PageGetItemId(self.0, (i + 1) as u16);
            std::slice::from_raw_parts_mut(
                pg_sys::PageGetItem(self.0, id) as *mut u8,
                (*id).lp_len() as usize,
            )
        }
    }
}

/// A page to write: a free page the free space map offers and that reads as free, or a new
/// one at the end of the relation. Locked exclusively; its contents must be initialised
/// (registered `fresh`).
pub fn allocate(rel: pg_sys::Relation) -> Locked {
    // SAFETY: `rel` is open; buffers are pinned and locked by guards; a page offered by
    // the free space map is used only if it is new or stamped free (the map is a hint).
    unsafe {
        loop {
            let blk = pg_sys::GetFreeIndexPage(rel);
            if blk == pg_sys::InvalidBlockNumber {
                break;
            }
            let buf = pin(rel, blk);
            if pg_sys::ConditionalLockBuffer(buf) {
                let page = pg_sys::BufferGetPage(buf);
                let free = pg_sys::PageIsNew(page)
                    || opaque_of(page).is_some_and(|o| o.kind == Kind::Free as u16);
                if free {
                    return Locked { rel, buf };
                }
                pg_sys::LockBuffer(buf, pg_sys::BUFFER_LOCK_UNLOCK as i32);
            }
            pg_sys::ReleaseBuffer(buf);
        }
        pg_sys::LockRelationForExtension(rel, pg_sys::ExclusiveLock as i32);
        let p = Locked::read(rel, pg_sys::InvalidBlockNumber, Mode::Exclusive);
        pg_sys::UnlockRelationForExtension(rel, pg_sys::ExclusiveLock as i32);
        p
    }
}

/// Which flush, merge or VACUUM pass holds the index's maintenance lock; released when dropped.
pub struct Maint {
    rel: pg_sys::Relation,
}

impl Maint {
    /// Wait for it (VACUUM, the SQL functions).
    pub fn lock(rel: pg_sys::Relation) -> Maint {
        // SAFETY: a heavyweight lock on an open relation's pseudo page; the lock manager
        // detects deadlocks and releases it at abort.
        unsafe { pg_sys::LockPage(rel, MAINT_LOCK, pg_sys::ExclusiveLock as i32) };
        Maint { rel }
    }

    /// Take it if free (a writer's flush: never waits).
    pub fn try_lock(rel: pg_sys::Relation) -> Option<Maint> {
        // SAFETY: as in `lock`.
        unsafe { pg_sys::ConditionalLockPage(rel, MAINT_LOCK, pg_sys::ExclusiveLock as i32) }
            .then_some(Maint { rel })
    }
}

impl Drop for Maint {
    fn drop(&mut self) {
        // SAFETY: held since `lock`; at abort the lock manager releases it instead.
        unsafe {
            if pg_sys::IsTransactionState() {
                pg_sys::UnlockPage(self.rel, MAINT_LOCK, pg_sys::ExclusiveLock as i32);
            }
        }
    }
}
