//! The server internals whose signatures differ between the PostgreSQL majors qortex is
//! built and tested for, 15 and 18: every `cfg` on a major is here, nowhere else.
//!
//! | function | 15 | 18 |
//! |---|---|---|
//! | `RelationGetPrimaryKeyIndex` | (rel) | (rel, deferrable_ok) |
//! | `index_beginscan` | (heap, index, snapshot, nkeys, norderbys) | adds `instrument` before nkeys |
//! | a tuple descriptor's attributes | `attrs[i]` | `TupleDescAttr(desc, i)` (after `compact_attrs`) |
//! | `ExecInitRangeTable` | (estate, rtable) | adds `permInfos` (an RTE points into it), `unpruned_relids` |
//! | `EvalPlanQualInit` | 5 arguments | adds `resultRelations` |
//! | a relation's owner check | `pg_class_ownercheck` | `object_ownercheck(RelationRelationId, …)` |
use pgrx::pg_sys;

#[cfg(not(any(feature = "pg15", feature = "pg18")))]
compile_error!("qortex is built for PostgreSQL 15 or 18: enable the feature pg15 or pg18");

/// Whether the current user may SELECT from `rel`.
pub fn may_read(rel: pg_sys::Oid) -> bool {
    // SAFETY: an ACL lookup of an OID and the current user.
    unsafe {
        pg_sys::pg_class_aclcheck(rel, pg_sys::GetUserId(), pg_sys::ACL_SELECT as _)
            == pg_sys::AclResult::ACLCHECK_OK
    }
}

/// Whether `role` owns the relation `rel` (or is a superuser).
pub fn owns_relation(rel: pg_sys::Oid, role: pg_sys::Oid) -> bool {
    // SAFETY: a catalog lookup of two OIDs; a relation that does not exist raises.
    #[cfg(feature = "pg15")]
    unsafe {
        pg_sys::pg_class_ownercheck(rel, role)
    }
    #[cfg(feature = "pg18")]
    unsafe {
        pg_sys::object_ownercheck(pg_sys::RelationRelationId, rel, role)
    }
}

/// The primary key index of `rel` (InvalidOid when it has none).
pub unsafe fn primary_key_index(rel: pg_sys::Relation) -> pg_sys::Oid {
    #[cfg(feature = "pg15")]
    unsafe {
        pg_sys::RelationGetPrimaryKeyIndex(rel)
    }
    #[cfg(feature = "pg18")]
    unsafe {
        pg_sys::RelationGetPrimaryKeyIndex(rel, false)
    }
}

/// Begin an index scan with `nkeys` keys and no ordering operators.
pub unsafe fn index_beginscan(
    heap: pg_sys::Relation,
    index: pg_sys::Relation,
    snapshot: pg_sys::Snapshot,
    nkeys: i32,
) -> pg_sys::IndexScanDesc {
    #[cfg(feature = "pg15")]
    unsafe {
        pg_sys::index_beginscan(heap, index, snapshot, nkeys, 0)
    }
    #[cfg(feature = "pg18")]
    unsafe {
        pg_sys::index_beginscan(heap, index, snapshot, std::ptr::null_mut(), nkeys, 0)
    }
}

/// The `i`-th attribute (0-based) of a tuple descriptor.
pub unsafe fn attribute(desc: pg_sys::TupleDesc, i: usize) -> *const pg_sys::FormData_pg_attribute {
    #[cfg(feature = "pg15")]
    unsafe {
        (*desc).attrs.as_ptr().add(i)
    }
    #[cfg(feature = "pg18")]
    unsafe {
        pg_sys::TupleDescAttr(desc, i as i32)
    }
}

/// The executor's range table: the one relation `rte` (range table index 1), as logical
/// replication's apply worker sets it up for `ExecSimpleRelationUpdate` (from 16 on, with
/// its permission info in a list of its own).
pub unsafe fn init_range_table(estate: *mut pg_sys::EState, rte: *mut pg_sys::RangeTblEntry) {
    unsafe {
        let rtable = pg_sys::lappend(std::ptr::null_mut(), rte.cast());
        #[cfg(feature = "pg15")]
        pg_sys::ExecInitRangeTable(estate, rtable);
        #[cfg(feature = "pg18")]
        {
            let mut perminfos: *mut pg_sys::List = std::ptr::null_mut();
            pg_sys::addRTEPermissionInfo(&mut perminfos, rte);
            pg_sys::ExecInitRangeTable(estate, rtable, perminfos, pg_sys::bms_make_singleton(1));
        }
    }
}

/// An EvalPlanQual state without a plan (for `ExecSimpleRelationUpdate`).
pub unsafe fn epq_init(epq: *mut pg_sys::EPQState, estate: *mut pg_sys::EState) {
    unsafe {
        #[cfg(feature = "pg15")]
        pg_sys::EvalPlanQualInit(epq, estate, std::ptr::null_mut(), std::ptr::null_mut(), -1);
        #[cfg(feature = "pg18")]
        pg_sys::EvalPlanQualInit(
            epq,
            estate,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            -1,
            std::ptr::null_mut(),
        );
    }
}
