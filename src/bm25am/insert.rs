//! INSERT (and UPDATE's new versions): the row's document appended to the write buffer in
//! one WAL record; no statistics, no postings. The insert that fills the buffer flushes it
//! into a segment if no flush, merge or VACUUM pass is running (it never waits for one),
//! and runs the small merges the tiers call for.
use super::page::Maint;
use super::{doc_of, maintain, page::PAYLOAD};
use crate::errors::raise;
use pgrx::pg_sys;
use pgrx::prelude::*;
use qortex_core::bm25::{pack_tid, RecordError};

/// The largest record a buffer page takes (with its line pointer, aligned).
const MAX_RECORD: usize = PAYLOAD - 16;

#[allow(clippy::too_many_arguments)]
#[pg_guard]
pub unsafe extern "C-unwind" fn aminsert(
    index: pg_sys::Relation,
    values: *mut pg_sys::Datum,
    isnull: *mut bool,
    heap_tid: pg_sys::ItemPointer,
    _heap: pg_sys::Relation,
    _check_unique: pg_sys::IndexUniqueCheck::Type,
    _index_unchanged: bool,
    _index_info: *mut pg_sys::IndexInfo,
) -> bool {
    // SAFETY: PostgreSQL passes one value per index column and the new row's TID.
    let tid = pack_tid(
        pgrx::itemptr::item_pointer_get_block_number(heap_tid),
        pgrx::itemptr::item_pointer_get_offset_number(heap_tid),
    );
    let Some(doc) = doc_of(index, values, isnull, tid) else {
        return false; // no lexemes: no query can find it
    };
    let record = doc.encode().unwrap_or_else(|e| match e {
        RecordError::TooManyTerms(n) => raise(
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            format!("qortex_bm25: a document of {n} distinct lexemes (at most 65,535)"),
        ),
        RecordError::Corrupt => unreachable!("encoding does not fail so"),
    });
    if record.len() > MAX_RECORD {
        // a document larger than a page is a segment of its own
        let maint = Maint::lock(index);
        maintain::make_room(index, &maint);
        maintain::add_segment(index, &maint, vec![doc]);
        return false;
    }
    let pages = super::buffer::append(index, &record);
    if pages >= maintain::FLUSH_PAGES {
        if let Some(maint) = Maint::try_lock(index) {
            maintain::make_room(index, &maint);
            maintain::flush(index, &maint);
            maintain::merge_due(index, &maint, maintain::WRITER_MERGE_DOCS, u64::MAX);
        }
    }
    false
}
