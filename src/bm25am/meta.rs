//! The metapage (block 0): where the write buffer is and which segments make the index.
//! Readers copy it under a share lock and let go at once; every change is one small
//! generic WAL record.
use super::page::{Image, Kind, Locked, Mode, Pinned, META_BLOCK, PAYLOAD};
use pgrx::pg_sys;

pub const VERSION: u32 = 1;
/// Segments the metapage lists at most; a flush that would pass it merges first.
pub const MAX_SEGMENTS: usize = 96;

/// A segment as the metapage lists it.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SegEntry {
    pub id: u64,
    /// Its first page-map page.
    pub map: pg_sys::BlockNumber,
    pub tier: u32,
    pub docs: u64,
    /// Documents VACUUM marked dead in it.
    pub dead: u64,
    pub total_len: u64,
    pub bytes: u64,
    /// Its pages (maps and data).
    pub pages: u32,
    pub _pad: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Meta {
    pub version: u32,
    pub n_segments: u32,
    pub next_segment: u64,
    /// The write buffer's chain: readers start at `head`, inserters append at `tail`.
    pub buffer_head: pg_sys::BlockNumber,
    pub buffer_tail: pg_sys::BlockNumber,
    /// Pages in the chain from `head`.
    pub buffer_pages: u32,
    /// The reclaim list's page (`reclaim`), META_BLOCK while there is none.
    pub reclaim: pg_sys::BlockNumber,
    pub flushes: u64,
    pub merges: u64,
    /// The owner of the buffer's head page (write-buffer pages have serials of their own).
    pub buffer_head_owner: u64,
    pub segments: [SegEntry; MAX_SEGMENTS],
}

const _: () = assert!(std::mem::size_of::<Meta>() <= PAYLOAD);

impl Meta {
    pub fn new(buffer: pg_sys::BlockNumber) -> Meta {
        Meta {
            version: VERSION,
            n_segments: 0,
            next_segment: 1,
            buffer_head: buffer,
            buffer_tail: buffer,
            buffer_pages: 1,
            reclaim: META_BLOCK,
            flushes: 0,
            merges: 0,
            buffer_head_owner: 0,
            segments: [SegEntry::default(); MAX_SEGMENTS],
        }
    }

    pub fn segments(&self) -> &[SegEntry] {
        &self.segments[..self.n_segments as usize]
    }

    /// A new serial: a segment's id, or a write-buffer page's owner.
    pub fn serial(&mut self) -> u64 {
        let s = self.next_segment;
        self.next_segment += 1;
        s
    }

    /// Serials taken from a copy of the metapage (new segments' ids) are taken here too;
    /// inserters may have taken others meanwhile, so the counter only moves forward.
    pub fn advance_serials(&mut self, copy: u64) {
        self.next_segment = self.next_segment.max(copy);
    }

    pub fn set_segments(&mut self, list: &[SegEntry]) {
        assert!(list.len() <= MAX_SEGMENTS);
        self.segments = [SegEntry::default(); MAX_SEGMENTS];
        self.segments[..list.len()].copy_from_slice(list);
        self.n_segments = list.len() as u32;
    }

    /// The metapage's contents, checked.
    pub fn of(page: &Locked) -> Meta {
        page.check(Kind::Meta, None);
        // SAFETY: a checked metapage's contents start with a `Meta` (written by `write`),
        // within PAYLOAD (asserted above); read unaligned into a copy.
        let m = unsafe { std::ptr::read_unaligned(page.contents().as_ptr() as *const Meta) };
        if m.version != VERSION || m.n_segments as usize > MAX_SEGMENTS {
            crate::errors::raise(
                pgrx::PgSqlErrorCode::ERRCODE_INDEX_CORRUPTED,
                format!("qortex_bm25: metapage version {} (this build reads {VERSION}); REINDEX the index", m.version),
            );
        }
        m
    }

    /// A copy of the index's metapage as it is now, for the holder of the maintenance lock
    /// (nothing it lists is freed meanwhile); a reader takes `pinned`.
    pub fn read(rel: pg_sys::Relation) -> Meta {
        Meta::of(&Locked::read(rel, META_BLOCK, Mode::Share))
    }

    /// A copy of the index's metapage as it is now, and a pin on it that keeps every page
    /// the copy lists from being freed (`readers`) while it is held.
    pub fn pinned(rel: pg_sys::Relation) -> (Meta, Pinned) {
        let page = Locked::read(rel, META_BLOCK, Mode::Share);
        (Meta::of(&page), page.unlock())
    }

    /// Write into a registered metapage image.
    pub fn write(&self, image: &mut Image) {
        let bytes = image.contents_mut(std::mem::size_of::<Meta>());
        // SAFETY: the contents hold PAYLOAD ≥ size_of::<Meta>() bytes.
        unsafe { std::ptr::write_unaligned(bytes.as_mut_ptr() as *mut Meta, *self) };
    }
}
