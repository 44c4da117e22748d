//! SQL functions over one qortex_bm25 index: flush its write buffer, merge its segments,
//! and say what it holds.
use super::meta::Meta;
use super::page::{name_of, Maint};
use super::{is_ours, maintain};
use crate::errors::raise;
use pgrx::pg_sys;
use pgrx::prelude::*;

/// The index `oid`, open with `lock`, checked to be a qortex_bm25 index the caller may use
/// (`owner`: owns its table; else may SELECT from it); closed when dropped.
pub(super) struct Index {
    pub(super) rel: pg_sys::Relation,
    lock: i32,
}

impl Index {
    pub(super) fn open(func: &str, oid: pg_sys::Oid, lock: u32, owner: bool) -> Index {
        // SAFETY: try_relation_open returns null for a relation that does not exist; the
        // relation is closed by Drop.
        unsafe {
            let rel = pg_sys::try_relation_open(oid, lock as i32);
            if rel.is_null() {
                raise(
                    PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
                    format!("{func}: no relation with OID {}", oid.to_u32()),
                );
            }
            let ix = Index {
                rel,
                lock: lock as i32,
            };
            if !is_ours(rel) {
                raise(
                    PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                    format!("{func}: \"{}\" is not a qortex_bm25 index", name_of(rel)),
                );
            }
            let heap = (*(*rel).rd_index).indrelid;
            let user = pg_sys::GetUserId();
            let allowed = if owner {
                crate::pg_compat::owns_relation(heap, user)
            } else {
                pg_sys::pg_class_aclcheck(heap, user, pg_sys::ACL_SELECT as pg_sys::AclMode)
                    == pg_sys::AclResult::ACLCHECK_OK
            };
            if !allowed {
                raise(
                    PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                    format!(
                        "{func}: permission denied for index \"{}\" ({})",
                        name_of(rel),
                        if owner {
                            "only its table's owner may"
                        } else {
                            "SELECT on its table is needed"
                        }
                    ),
                );
            }
            ix
        }
    }
}

impl Drop for Index {
    fn drop(&mut self) {
        // SAFETY: opened by `open`; at abort PostgreSQL closes it instead.
        unsafe {
            if pg_sys::IsTransactionState() {
                pg_sys::relation_close(self.rel, self.lock);
            }
        }
    }
}

fn writable(func: &str) {
    // SAFETY: a plain query of the server's state.
    if unsafe { pg_sys::RecoveryInProgress() } {
        raise(
            PgSqlErrorCode::ERRCODE_READ_ONLY_SQL_TRANSACTION,
            format!("{func}: cannot change an index during recovery (a standby)"),
        );
    }
}

/// Make the WAL written so far durable (and sent to standbys) before returning: a
/// transaction without a transaction id does not flush it at commit.
fn durable() {
    // SAFETY: flushes WAL up to this backend's last record.
    unsafe { pg_sys::XLogFlush(pg_sys::XactLastRecEnd) };
}

/// The index opened by its table's owner on a primary, under the maintenance lock, with
/// room for one more segment.
fn maintaining(func: &str, index: pg_sys::Oid) -> (Index, Maint) {
    writable(func);
    let ix = Index::open(func, index, pg_sys::RowExclusiveLock, true);
    let maint = Maint::lock(ix.rel);
    maintain::make_room(ix.rel, &maint);
    (ix, maint)
}

/// Turn the index's write buffer into a segment now; returns the documents flushed.
#[pg_extern(sql = r#"
CREATE FUNCTION qortex_bm25_flush(index regclass) RETURNS bigint
VOLATILE STRICT PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
"#)]
fn qortex_bm25_flush(index: pg_sys::Oid) -> i64 {
    let (ix, maint) = maintaining("qortex_bm25_flush", index);
    let flushed = maintain::flush(ix.rel, &maint) as i64;
    durable();
    flushed
}

/// Flush the write buffer and merge every segment into one, dropping the documents VACUUM
/// found dead (their statistics too); returns the documents the index holds after.
#[pg_extern(sql = r#"
CREATE FUNCTION qortex_bm25_merge(index regclass) RETURNS bigint
VOLATILE STRICT PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
"#)]
fn qortex_bm25_merge(index: pg_sys::Oid) -> i64 {
    let (ix, maint) = maintaining("qortex_bm25_merge", index);
    maintain::flush(ix.rel, &maint);
    let all: Vec<u64> = Meta::read(ix.rel).segments().iter().map(|e| e.id).collect();
    if all.len() > 1 || Meta::read(ix.rel).segments().iter().any(|e| e.dead > 0) {
        maintain::merge(ix.rel, &maint, &all);
    }
    durable();
    Meta::read(ix.rel)
        .segments()
        .iter()
        .map(|e| e.docs as i64)
        .sum()
}

/// What an index holds (qortex_bm25_info's row).
pub struct Info {
    pub segments: i32,
    pub buffer_docs: i64,
    pub buffer_pages: i32,
    pub docs: i64,
    pub dead_docs: i64,
    pub pages: i64,
}

/// The index `oid`'s Info, for a caller with SELECT on its table.
pub fn info(func: &str, oid: pg_sys::Oid) -> Info {
    let ix = Index::open(func, oid, pg_sys::AccessShareLock, false);
    let (meta, pin) = Meta::pinned(ix.rel);
    let (docs, _) = super::buffer::read_chain(ix.rel, &meta, None);
    drop(pin);
    // SAFETY: an open relation.
    let pages = unsafe {
        pg_sys::RelationGetNumberOfBlocksInFork(ix.rel, pg_sys::ForkNumber::MAIN_FORKNUM)
    } as i64;
    Info {
        segments: meta.n_segments as i32,
        buffer_docs: docs.iter().filter(|d| !d.1).count() as i64,
        buffer_pages: meta.buffer_pages as i32,
        docs: meta.segments().iter().map(|e| e.docs as i64).sum(),
        dead_docs: meta.segments().iter().map(|e| e.dead as i64).sum(),
        pages,
    }
}

/// What the index holds: its segments, the write buffer's documents and pages, documents
/// in segments and how many VACUUM found dead, and its size.
#[allow(clippy::type_complexity)]
#[pg_extern(sql = r#"
CREATE FUNCTION qortex_bm25_info(index regclass) RETURNS TABLE (
    segments integer, buffer_docs bigint, buffer_pages integer, docs bigint,
    dead_docs bigint, pages bigint, bytes bigint
) STABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
"#)]
fn qortex_bm25_info(
    index: pg_sys::Oid,
) -> TableIterator<
    'static,
    (
        name!(segments, i32),
        name!(buffer_docs, i64),
        name!(buffer_pages, i32),
        name!(docs, i64),
        name!(dead_docs, i64),
        name!(pages, i64),
        name!(bytes, i64),
    ),
> {
    let i = info("qortex_bm25_info", index);
    let row = (
        i.segments,
        i.buffer_docs,
        i.buffer_pages,
        i.docs,
        i.dead_docs,
        i.pages,
        i.pages * pg_sys::BLCKSZ as i64,
    );
    TableIterator::once(row)
}
