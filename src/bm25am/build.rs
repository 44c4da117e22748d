//! CREATE INDEX: the metapage and an empty write buffer, then every row's document into
//! segments of at most `maintenance_work_mem` each (one for most tables), each page logged
//! once as it is written.
use super::meta::{Meta, SegEntry};
use super::page::{allocate, Kind, Locked, Mode, Record, META_BLOCK};
use super::{doc_of, maintain, store};
use pgrx::pg_sys;
use pgrx::prelude::*;
use qortex_core::bm25::segment::encode_segment;
use qortex_core::bm25::{pack_tid, tier_of, Doc};

struct BuildState {
    index: pg_sys::Relation,
    docs: Vec<Doc>,
    bytes: usize,
    limit: usize,
    meta: Meta,
    segments: Vec<SegEntry>,
    tuples: f64,
}

impl BuildState {
    fn spill(&mut self) {
        if self.docs.is_empty() {
            return;
        }
        let mut docs = std::mem::take(&mut self.docs);
        self.bytes = 0;
        docs.sort_by_key(|d| d.tid);
        let id = self.meta.next_segment;
        self.meta.next_segment += 1;
        let total = docs.iter().map(|d| d.len as u64).sum();
        let bytes = encode_segment(&docs, super::page::PAYLOAD);
        let tier = tier_of(docs.len() as u64, maintain::TIER_BASE);
        self.segments.push(store::write(
            self.index,
            id,
            tier,
            &bytes,
            docs.len() as u64,
            total,
        ));
    }
}

/// Refuse an index that is not `(tsvector [, scope])`: the operator classes would let a
/// text or integer column be the first (they are the scope column's).
fn check_columns(index: pg_sys::Relation) {
    // SAFETY: an open index: rd_opcintype holds one type per key column.
    let types: Vec<pg_sys::Oid> = unsafe {
        (0..super::columns(index))
            .map(|i| *(*index).rd_opcintype.add(i))
            .collect()
    };
    let ok = match types.as_slice() {
        [first] => *first == pg_sys::TSVECTOROID,
        [first, scope] => *first == pg_sys::TSVECTOROID && *scope != pg_sys::TSVECTOROID,
        _ => false,
    };
    if !ok {
        crate::errors::error(
            PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
            "a qortex_bm25 index is (tsvector) or (tsvector, scope): a tsvector column or expression first, then optionally one text, integer, bigint or uuid column",
        )
        .hint("For text, index an expression: USING qortex_bm25 ((to_tsvector('english', body))).")
        .raise();
    }
}

/// The metapage and the first (empty) buffer page of a new index, in `fork`.
fn init_pages(index: pg_sys::Relation) -> Meta {
    let m = allocate(index);
    assert_eq!(m.block(), META_BLOCK, "a new index starts at block 0");
    let b = allocate(index);
    let meta = Meta::new(b.block());
    let mut rec = Record::start(index);
    let mut mi = rec.register(&m, true);
    mi.init(Kind::Meta, 0);
    meta.write(&mut mi);
    rec.register(&b, true).init(Kind::Buffer, 0);
    rec.finish();
    meta
}

#[pg_guard]
unsafe extern "C-unwind" fn callback(
    _index: pg_sys::Relation,
    tid: pg_sys::ItemPointer,
    values: *mut pg_sys::Datum,
    isnull: *mut bool,
    _alive: bool,
    state: *mut std::ffi::c_void,
) {
    // SAFETY: PostgreSQL passes the state given to the scan, and one value per index column.
    let st = &mut *(state as *mut BuildState);
    st.tuples += 1.0;
    let t = pack_tid(
        pgrx::itemptr::item_pointer_get_block_number(tid),
        pgrx::itemptr::item_pointer_get_offset_number(tid),
    );
    if let Some(doc) = doc_of(st.index, values, isnull, t) {
        st.bytes += doc.encoded_len() + 48;
        st.docs.push(doc);
        if st.bytes >= st.limit {
            st.spill();
        }
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn ambuild(
    heap: pg_sys::Relation,
    index: pg_sys::Relation,
    index_info: *mut pg_sys::IndexInfo,
) -> *mut pg_sys::IndexBuildResult {
    // SAFETY: PostgreSQL hands an empty index and its table, both open and locked.
    if pg_sys::RelationGetNumberOfBlocksInFork(index, pg_sys::ForkNumber::MAIN_FORKNUM) != 0 {
        crate::errors::raise(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            "qortex_bm25: the index to build is not empty",
        );
    }
    check_columns(index);
    let meta = init_pages(index);
    let mut st = BuildState {
        index,
        docs: Vec::new(),
        bytes: 0,
        limit: (pg_sys::maintenance_work_mem as usize)
            .saturating_mul(1024)
            .max(1 << 20),
        meta,
        segments: Vec::new(),
        tuples: 0.0,
    };
    let scan = (*(*heap).rd_tableam)
        .index_build_range_scan
        .expect("a table access method that builds indexes");
    scan(
        heap,
        index,
        index_info,
        true,
        false,
        true,
        0,
        pg_sys::InvalidBlockNumber,
        Some(callback),
        &mut st as *mut BuildState as *mut std::ffi::c_void,
        std::ptr::null_mut(),
    );
    st.spill();
    let docs: u64 = st.segments.iter().map(|e| e.docs).sum();
    let m = Locked::read(index, META_BLOCK, Mode::Exclusive);
    let mut now = Meta::of(&m);
    now.next_segment = st.meta.next_segment;
    now.set_segments(&st.segments);
    let mut rec = Record::start(index);
    now.write(&mut rec.register(&m, false));
    rec.finish();
    let mut result = PgBox::<pg_sys::IndexBuildResult>::alloc0();
    result.heap_tuples = st.tuples;
    result.index_tuples = docs as f64;
    result.into_pg()
}

/// An unlogged table's index: the same two pages in the init fork, logged.
#[pg_guard]
pub unsafe extern "C-unwind" fn ambuildempty(index: pg_sys::Relation) {
    // SAFETY: PostgreSQL hands the open index whose init fork is empty; both pages are
    // written whole and logged (the init fork must survive a crash).
    let read = |blk| {
        let buf = pg_sys::ReadBufferExtended(
            index,
            pg_sys::ForkNumber::INIT_FORKNUM,
            blk,
            pg_sys::ReadBufferMode::RBM_NORMAL,
            std::ptr::null_mut(),
        );
        pg_sys::LockBuffer(buf, pg_sys::BUFFER_LOCK_EXCLUSIVE as i32);
        buf
    };
    let m = read(pg_sys::InvalidBlockNumber);
    let b = read(pg_sys::InvalidBlockNumber);
    let meta = Meta::new(pg_sys::BufferGetBlockNumber(b));
    for (buf, kind) in [(m, Kind::Meta), (b, Kind::Buffer)] {
        let mut img = super::page::Image::of(pg_sys::BufferGetPage(buf));
        img.init(kind, 0);
        if kind == Kind::Meta {
            meta.write(&mut img);
        }
        pg_sys::MarkBufferDirty(buf);
    }
    pg_sys::UnlockReleaseBuffer(b);
    pg_sys::UnlockReleaseBuffer(m);
    pg_sys::log_newpage_range(index, pg_sys::ForkNumber::INIT_FORKNUM, 0, 2, true);
}
