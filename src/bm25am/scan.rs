//! `ORDER BY tsv <@> query`: the exact BM25 top-k over the write buffer and every segment
//! (`qortex_core::bm25::Searcher`), from one copy of the metapage. The first rows come from
//! a top-10; when the executor wants more (a LIMIT beyond it, a filter above the scan) the
//! next batch doubles, with the statistics and the query's dictionary entries kept.
//!
//! `WHERE scope = value` on an index's second column bounds the top-k to the rows of that
//! value inside the loop (`Searcher`'s scope), so a scoped query gets its k rows; the
//! executor rechecks the condition (two values may share a hash).
//!
//! The operator itself, evaluated outside the scan (the SELECT list, say), scores with the
//! statistics of the scan running the same query in this backend, so it returns the
//! score the scan ordered by.
use super::buffer::read_matched;
use super::meta::Meta;
use super::page::Pinned;
use super::store::{self, PageBytes};
use crate::errors::raise;
use crate::settings;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::PgMemoryContexts;
use qortex_core::bm25::{scope_lexeme, unpack_tid, Hit, QueryTerms, Searcher, MAX_QUERY_TERMS};
use qortex_core::hybrid::text::{Bm25, TsVector};
use std::cell::RefCell;

/// Rows the first batch of a scan holds.
const FIRST_BATCH: usize = 10;

/// Statistics a scan scores with, for the operator evaluated beside it, and the row it
/// returned last (for `qortex_bm25_scored`).
struct Active {
    scan: usize,
    index: pg_sys::Oid,
    last: Option<Hit>,
    /// The query as the scan got it, and its lexemes.
    query: Vec<u8>,
    lexemes: Vec<Vec<u8>>,
    idfs: Vec<f64>,
    avgdl: f64,
    bm25: Bm25,
}

thread_local! {
    static ACTIVE: RefCell<Vec<Active>> = const { RefCell::new(Vec::new()) };
}

#[derive(Default)]
struct ScanState {
    query: Vec<u8>,
    lexemes: Vec<Vec<u8>>,
    /// The scope the keys ask for: None, unscoped; Some(None), no row can match (a NULL
    /// key, or keys asking for two values).
    scope: Option<Option<Vec<u8>>>,
    searcher: Option<Searcher<PageBytes>>,
    /// The metapage's pin, held while `searcher` reads what its copy lists.
    pin: Option<Pinned>,
    hits: Vec<Hit>,
    pos: usize,
    asked: usize,
    /// Registered in ACTIVE under this key (the state's address).
    key: usize,
}

impl ScanState {
    /// Ready for a new search (a rescan), or done (the scan's end): the pin let go.
    fn reset(&mut self) {
        self.forget();
        self.pin = None;
    }

    fn forget(&mut self) {
        self.searcher = None;
        self.hits.clear();
        self.pos = 0;
        self.asked = 0;
        let key = self.key;
        ACTIVE.with(|a| a.borrow_mut().retain(|x| x.scan != key));
    }
}

impl Drop for ScanState {
    /// Freed with its memory context. After `amendscan` nothing is held; without it an
    /// error ended the scan, and the abort has released the pin already.
    fn drop(&mut self) {
        self.forget();
        if let Some(pin) = self.pin.take() {
            pin.abandon();
        }
    }
}

/// A qortex_bm25_query's (a tsvector's) lexemes, checked: at least one, at most MAX_QUERY_TERMS.
pub fn query_lexemes(bytes: &[u8]) -> Vec<Vec<u8>> {
    let tsv = TsVector::new(bytes).unwrap_or_else(|e| {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("qortex_bm25: not a qortex_bm25_query: {e}"),
        )
    });
    let lexemes: Vec<Vec<u8>> = tsv.entries().map(|(l, _)| l.to_vec()).collect();
    if lexemes.is_empty() {
        crate::errors::error(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "qortex_bm25: the query has no lexemes",
        )
        .hint("Every word of it is a stop word of the text search configuration, or it is empty; a BM25 ranking needs at least one lexeme.")
        .raise();
    }
    if lexemes.len() > MAX_QUERY_TERMS {
        crate::errors::error(
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            format!(
                "qortex_bm25: the query has {} distinct lexemes (at most {MAX_QUERY_TERMS})",
                lexemes.len()
            ),
        )
        .raise();
    }
    lexemes
}

fn bm25() -> Bm25 {
    Bm25 {
        k1: settings::BM25_K1.get(),
        b: settings::BM25_B.get(),
    }
}

unsafe fn state<'a>(scan: pg_sys::IndexScanDesc) -> &'a mut ScanState {
    // SAFETY (caller): `opaque` was set by `ambeginscan` to a state that lives as long as
    // the scan's memory context.
    &mut *((*scan).opaque as *mut ScanState)
}

#[pg_guard]
pub unsafe extern "C-unwind" fn ambeginscan(
    index: pg_sys::Relation,
    nkeys: i32,
    norderbys: i32,
) -> pg_sys::IndexScanDesc {
    // SAFETY: RelationGetIndexScan allocates the scan; the state is freed (dropped) with
    // the memory context the scan lives in.
    let scan = pg_sys::RelationGetIndexScan(index, nkeys, norderbys);
    let st = PgMemoryContexts::CurrentMemoryContext.leak_and_drop_on_delete(ScanState::default());
    (*st).key = st as usize;
    (*scan).opaque = st as *mut std::ffi::c_void;
    scan
}

/// The scope the scan keys ask for (see `ScanState::scope`).
unsafe fn scope_of(
    index: pg_sys::Relation,
    keys: pg_sys::ScanKey,
    nkeys: i32,
) -> Option<Option<Vec<u8>>> {
    // SAFETY (caller): `keys` holds `nkeys` keys, each on the second column (the only one
    // with an equality operator) with strategy 1.
    let mut scope: Option<Option<Vec<u8>>> = None;
    for i in 0..nkeys.max(0) as usize {
        let key = &*keys.add(i);
        let this = (key.sk_flags as u32 & pg_sys::SK_ISNULL == 0)
            .then(|| scope_lexeme(super::scope_hash(index, key.sk_argument, key.sk_subtype)));
        scope = Some(match scope {
            None => this,
            Some(prev) if prev == this => this,
            Some(_) => None,
        });
    }
    scope
}

#[pg_guard]
pub unsafe extern "C-unwind" fn amrescan(
    scan: pg_sys::IndexScanDesc,
    keys: pg_sys::ScanKey,
    nkeys: i32,
    orderbys: pg_sys::ScanKey,
    norderbys: i32,
) {
    // SAFETY: the scan is ours; `keys` holds `nkeys` keys and `orderbys` `norderbys`.
    let st = state(scan);
    st.reset();
    st.scope = scope_of((*scan).indexRelation, keys, nkeys);
    if nkeys > 0 {
        std::ptr::copy(keys, (*scan).keyData, nkeys as usize);
    }
    if norderbys < 1 || orderbys.is_null() {
        raise(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            "a qortex_bm25 index is read only by ORDER BY column <@> query",
        );
    }
    let key = &*orderbys;
    if key.sk_flags as u32 & pg_sys::SK_ISNULL != 0 {
        raise(
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            "qortex_bm25: the query is NULL",
        );
    }
    let bytes = <&[u8]>::from_datum(key.sk_argument, false).expect("a non-null query");
    st.lexemes = query_lexemes(bytes);
    st.query = bytes.to_vec();
    if norderbys > 0 {
        std::ptr::copy(orderbys, (*scan).orderByData, norderbys as usize);
    }
}

/// A search of `lexemes` over the index as it is now (its metapage copied once: the write
/// buffer's documents and every segment), within `scope` (a scope term) if given; with the
/// metapage's pin, to hold as long as the search reads.
pub(crate) fn searcher(
    index: pg_sys::Relation,
    lexemes: Vec<Vec<u8>>,
    scope: Option<Vec<u8>>,
) -> (Searcher<PageBytes>, Pinned) {
    let (meta, pin) = Meta::pinned(index);
    let docs = read_matched(index, &meta, &QueryTerms::new(&lexemes, scope.as_deref()));
    let segments = meta
        .segments()
        .iter()
        .map(|e| store::open(index, e))
        .collect();
    let searcher = Searcher::new(segments, &docs, lexemes, bm25(), scope)
        .unwrap_or_else(|e| store::corrupt(index, e));
    (searcher, pin)
}

#[pg_guard]
pub unsafe extern "C-unwind" fn amgettuple(
    scan: pg_sys::IndexScanDesc,
    dir: pg_sys::ScanDirection::Type,
) -> bool {
    // SAFETY: the scan is ours and open on its index.
    if dir != pg_sys::ScanDirection::ForwardScanDirection {
        raise(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            "a qortex_bm25 index scans forward only",
        );
    }
    let st = state(scan);
    if st.lexemes.is_empty() {
        raise(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            "a qortex_bm25 index is read only by ORDER BY column <@> query",
        );
    }
    let index = (*scan).indexRelation;
    if st.searcher.is_none() {
        let snap = (*scan).xs_snapshot;
        if snap.is_null() || (*snap).snapshot_type != pg_sys::SnapshotType::SNAPSHOT_MVCC {
            raise(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                "a qortex_bm25 index is read with MVCC snapshots only",
            );
        }
        let scope = match &st.scope {
            Some(None) => return false,
            Some(Some(l)) => Some(l.clone()),
            None => None,
        };
        // PostgreSQL 18's EXPLAIN ANALYZE shows the index searches an access method counts
        #[cfg(feature = "pg18")]
        if !(*scan).instrument.is_null() {
            (*(*scan).instrument).nsearches += 1;
        }
        let (s, pin) = searcher(index, st.lexemes.clone(), scope);
        st.pin = Some(pin);
        ACTIVE.with(|a| {
            a.borrow_mut().push(Active {
                scan: st.key,
                index: (*index).rd_id,
                last: None,
                query: st.query.clone(),
                lexemes: st.lexemes.clone(),
                idfs: s.idfs(),
                avgdl: s.prepared.avgdl,
                bm25: bm25(),
            })
        });
        st.searcher = Some(s);
    }
    loop {
        if let Some(h) = st.hits.get(st.pos).copied() {
            st.pos += 1;
            let (block, offset) = unpack_tid(h.tid);
            pgrx::itemptr::item_pointer_set_all(&mut (*scan).xs_heaptid, block, offset);
            (*scan).xs_recheck = st.scope.is_some();
            (*scan).xs_recheckorderby = false;
            let key = st.key;
            ACTIVE.with(|a| {
                if let Some(x) = a.borrow_mut().iter_mut().find(|x| x.scan == key) {
                    x.last = Some(h);
                }
            });
            return true;
        }
        let s = st.searcher.as_mut().expect("prepared above");
        if st.asked > 0 && s.exhausted(st.asked) {
            return false;
        }
        st.asked = if st.asked == 0 {
            FIRST_BATCH
        } else {
            st.asked.saturating_mul(2)
        };
        st.hits = s.top(st.asked).unwrap_or_else(|e| store::corrupt(index, e));
        if st.hits.len() <= st.pos {
            return false;
        }
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn amendscan(scan: pg_sys::IndexScanDesc) {
    // SAFETY: the scan is ours; its state is freed with its memory context.
    state(scan).reset();
}

/// `tsv <@> query`: minus the BM25 score of `doc`, with the statistics of this backend's
/// running scan of the same query.
///
/// STABLE (it reads the scan's statistics and the k1, b settings), and costed high (100,000
/// operator costs a row) so the planner never sorts by it above another scan, where it
/// could not score, while an index scan exists: the rows the index scan returns pay the
/// same cost on every plan, and only a sort pays it for every row it sorts.
#[pg_extern(
    stable,
    parallel_safe,
    strict,
    sql = r#"
CREATE FUNCTION qortex_bm25_distance(document tsvector, query qortex_bm25_query) RETURNS double precision
STABLE STRICT PARALLEL SAFE COST 100000 LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
"#,
    requires = ["qortex_bm25_query_type"]
)]
fn qortex_bm25_distance(document: &[u8], query: &[u8]) -> f64 {
    let k = bm25();
    let tsv = TsVector::new(document).unwrap_or_else(|e| {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("<@>: the document is not a tsvector: {e}"),
        )
    });
    // the scan of this query (the same bytes, or failing that the same lexemes); two with
    // different statistics leave it ambiguous
    let score = ACTIVE.with(|a| {
        let a = a.borrow();
        let mut lexemes: Option<Vec<Vec<u8>>> = None;
        let mut found: Option<&Active> = None;
        for x in a.iter().filter(|x| x.bm25 == k) {
            if x.query != query && x.lexemes != *lexemes.get_or_insert_with(|| query_lexemes(query))
            {
                continue;
            }
            match found {
                Some(f) if f.idfs != x.idfs || f.avgdl != x.avgdl => return None,
                Some(_) => {}
                None => found = Some(x),
            }
        }
        let x = found?;
        let terms = x
            .lexemes
            .iter()
            .map(Vec::as_slice)
            .zip(x.idfs.iter().copied());
        Some(k.score_terms(terms, &tsv, x.avgdl))
    });
    let Some(score) = score else {
        crate::errors::error(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "tsvector <@> qortex_bm25_query is scored only beside a qortex_bm25 index scan of the same query",
        )
        .hint("Use it as ORDER BY column <@> query LIMIT k over a column with a qortex_bm25 index (the same expression may also appear in the SELECT list).")
        .raise()
    };
    0.0 - score // (0, not -0, for a row without the query's lexemes)
}

/// The score (as `<@>` gives it) of `row` by the scan of `index` that returned it last in
/// this backend; NULL unless exactly one scan of the index has `row` as the row it returned
/// last. The planner hook (`plan`) puts it in a scan's output in place of the scan's own
/// `<@>`, inside a COALESCE that falls back to the operator: the scan projecting a row has
/// just returned it, so when it is the only one, it is that scan's score.
#[pg_extern(
    volatile,
    parallel_safe,
    strict,
    sql = r#"
CREATE FUNCTION qortex_bm25_scored(index oid, "row" tid) RETURNS double precision
VOLATILE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
"#
)]
fn qortex_bm25_scored(index: pg_sys::Oid, row: pg_sys::ItemPointerData) -> Option<f64> {
    let block = (row.ip_blkid.bi_hi as u32) << 16 | row.ip_blkid.bi_lo as u32;
    let tid = qortex_core::bm25::pack_tid(block, row.ip_posid);
    ACTIVE.with(|a| {
        let a = a.borrow();
        let mut it = a
            .iter()
            .filter_map(|x| x.last.filter(|h| x.index == index && h.tid == tid));
        match (it.next(), it.next()) {
            (Some(h), None) => Some(0.0 - h.score),
            _ => None,
        }
    })
}
