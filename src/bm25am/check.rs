//! `qortex_bm25_check(index)`: the index against its table, as amcheck checks a B-tree
//! against its heap. The table's visible rows are read first (the scan CREATE INDEX
//! CONCURRENTLY makes, under one MVCC snapshot), then the index: every row visible then was
//! indexed before, so it must be there, alive, with the same document. The comparison and
//! the segments' structural checks are `qortex_core::bm25::check`'s.
use super::buffer::read_chain;
use super::functions::Index;
use super::meta::Meta;
use super::{doc_of, store};
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::JsonB;
use qortex_core::bm25::check::{compare, verify_segment, Report};
use qortex_core::bm25::{live_docs, pack_tid, Doc};
use serde_json::json;

#[pg_guard]
unsafe extern "C-unwind" fn collect(
    index: pg_sys::Relation,
    tid: pg_sys::ItemPointer,
    values: *mut pg_sys::Datum,
    isnull: *mut bool,
    _alive: bool,
    state: *mut std::ffi::c_void,
) {
    // SAFETY: the scan passes the state given to it (a Vec<Doc>) and one value per column.
    let docs = &mut *(state as *mut Vec<Doc>);
    let t = pack_tid(
        pgrx::itemptr::item_pointer_get_block_number(tid),
        pgrx::itemptr::item_pointer_get_offset_number(tid),
    );
    docs.extend(doc_of(index, values, isnull, t));
}

/// The documents the table's visible rows make, as the index would hold them.
fn table_docs(index: pg_sys::Relation) -> Vec<Doc> {
    let mut docs: Vec<Doc> = Vec::new();
    // SAFETY: the index is open; its table is opened (AccessShareLock, held to the end of
    // the transaction) and closed here; BuildIndexInfo allocates in the current context.
    // ii_Concurrent makes the scan read under a fresh MVCC snapshot (no wait on writers).
    unsafe {
        let heap = pg_sys::relation_open(
            (*(*index).rd_index).indrelid,
            pg_sys::AccessShareLock as i32,
        );
        let info = pg_sys::BuildIndexInfo(index);
        (*info).ii_Concurrent = true;
        let scan = (*(*heap).rd_tableam)
            .index_build_range_scan
            .expect("a table access method that builds indexes");
        scan(
            heap,
            index,
            info,
            true,
            false,
            false,
            0,
            pg_sys::InvalidBlockNumber,
            Some(collect),
            &mut docs as *mut Vec<Doc> as *mut std::ffi::c_void,
            std::ptr::null_mut(),
        );
        pg_sys::relation_close(heap, pg_sys::NoLock as i32);
    }
    docs
}

/// Compare a qortex_bm25 index with its table; `ok` when nothing differs.
#[pg_extern(sql = r#"
CREATE FUNCTION qortex_bm25_check(index regclass) RETURNS jsonb
VOLATILE STRICT PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
"#)]
fn qortex_bm25_check(index: pg_sys::Oid) -> JsonB {
    JsonB(check("qortex_bm25_check", index))
}

/// The report of `qortex_bm25_check` for `index`, as `func` (which needs SELECT on the
/// index's table).
pub fn check(func: &str, index: pg_sys::Oid) -> serde_json::Value {
    let ix = Index::open(func, index, pg_sys::AccessShareLock, false);
    let table = table_docs(ix.rel);
    let (meta, _pin) = Meta::pinned(ix.rel);
    let mut report = Report::default();
    let (buffered, _) = read_chain(ix.rel, &meta, None);
    let mut held: Vec<Doc> = buffered
        .into_iter()
        .filter(|(_, dead)| !dead)
        .map(|(d, _)| d)
        .collect();
    let mut dead_docs = 0u64;
    for e in meta.segments() {
        let seg = store::open(ix.rel, e);
        let checked =
            verify_segment(&seg, &format!("segment {}", e.id), &mut report).and_then(|()| {
                let dead = seg.dead_bits()?;
                dead_docs += dead.iter().map(|b| b.count_ones() as u64).sum::<u64>();
                live_docs(&[(&seg, dead)])
            });
        held.extend(checked.unwrap_or_else(|err| store::corrupt(ix.rel, err)));
        super::vacuum_delay();
    }
    let listed_dead: u64 = meta.segments().iter().map(|e| e.dead).sum();
    if listed_dead != dead_docs {
        report.structure += 1;
        report.examples.push(format!(
            "the metapage counts {listed_dead} dead documents, the segments' bitmaps {dead_docs}"
        ));
    }
    compare(table, held, &mut report);
    json!({
        "ok": report.ok(),
        "rows": report.rows,
        "indexed": report.indexed,
        "missing": report.missing,
        "differing": report.differing,
        "duplicates": report.duplicates,
        "not_visible": report.gone,
        "structure_errors": report.structure,
        "segments": meta.n_segments,
        "problems": report.examples,
    })
}
