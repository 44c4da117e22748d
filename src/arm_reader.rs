//! The read path of `qortex_select_arms`: arm states looked up straight through the primary
//! key of `qortex.learning_arm_states`, without SPI.
//!
//! Select runs once per request in an application, so it skips what SPI costs per call
//! (plan-cache lookup, executor start-up and shutdown) and does only what that plan did:
//! one B-tree descent per candidate arm, under the snapshot of the calling statement.
//! Privileges are checked as a query would (SELECT on the table); the table's column
//! layout is checked on every call, so a changed table is an error rather than misread.
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::FromDatum;
use std::collections::HashMap;
use std::ffi::CStr;

/// `(alpha, beta, pulls)` of each arm, in the order given; `None` where nothing is stored.
pub fn stored_states(learner: &str, ctx: &str, arms: &[String]) -> Vec<Option<(f64, f64, i32)>> {
    unsafe {
        let nsp = pg_sys::get_namespace_oid(c"qortex".as_ptr(), false);
        let table_oid = pg_sys::get_relname_relid(c"learning_arm_states".as_ptr(), nsp);
        if table_oid == pg_sys::InvalidOid {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
                "qortex_select_arms: table qortex.learning_arm_states does not exist"
            );
        }
        if pg_sys::pg_class_aclcheck(table_oid, pg_sys::GetUserId(), pg_sys::ACL_SELECT as _)
            != pg_sys::AclResult::ACLCHECK_OK
        {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                "permission denied for table qortex.learning_arm_states"
            );
        }
        let lock = pg_sys::AccessShareLock as pg_sys::LOCKMODE;
        let rel = pg_sys::table_open(table_oid, lock);
        check_layout(rel);
        let index_oid = pg_sys::RelationGetPrimaryKeyIndex(rel);
        if index_oid == pg_sys::InvalidOid {
            error!("qortex_select_arms: qortex.learning_arm_states has no primary key");
        }
        let index = pg_sys::index_open(index_oid, lock);
        if (*(*index).rd_index).indnatts != 3 {
            error!("qortex_select_arms: the primary key of qortex.learning_arm_states changed");
        }
        let collation = |i: usize| *(*index).rd_indcollation.add(i);

        let mut keys: [pg_sys::ScanKeyData; 3] = std::mem::zeroed();
        let fixed = [learner, ctx];
        for (i, v) in fixed.iter().enumerate() {
            key_init(&mut keys[i], i + 1, collation(i), v);
        }
        let snapshot = pg_sys::GetActiveSnapshot();
        let scan = pg_sys::index_beginscan(rel, index, snapshot, 2, 0);
        let slot = pg_sys::table_slot_create(rel, std::ptr::null_mut());
        let mut out = vec![None; arms.len()];
        let wanted: HashMap<&str, usize> = arms
            .iter()
            .enumerate()
            .map(|(i, a)| (a.as_str(), i))
            .collect();

        // One descent and a walk over the context's arms, as long as that stays within a
        // few times the number of candidates; past that, one descent per arm still missing.
        let budget = 4 * arms.len() + 64;
        let mut walked = 0;
        pg_sys::index_rescan(scan, keys.as_mut_ptr(), 2, std::ptr::null_mut(), 0);
        let mut complete = true;
        while next(scan, slot) {
            if walked == budget {
                complete = false;
                break;
            }
            walked += 1;
            let (arm, state) = decode(slot);
            if let Some(&i) = wanted.get(arm) {
                out[i] = Some(state);
            }
        }
        pg_sys::index_endscan(scan);
        if !complete {
            let scan = pg_sys::index_beginscan(rel, index, snapshot, 3, 0);
            for (i, arm) in arms.iter().enumerate() {
                if out[i].is_some() {
                    continue;
                }
                key_init(&mut keys[2], 3, collation(2), arm);
                pg_sys::index_rescan(scan, keys.as_mut_ptr(), 3, std::ptr::null_mut(), 0);
                if next(scan, slot) {
                    out[i] = Some(decode(slot).1);
                }
            }
            pg_sys::index_endscan(scan);
        }
        pg_sys::ExecDropSingleTupleTableSlot(slot);
        pg_sys::index_close(index, lock);
        pg_sys::table_close(rel, lock);
        out
    }
}

unsafe fn next(scan: pg_sys::IndexScanDesc, slot: *mut pg_sys::TupleTableSlot) -> bool {
    unsafe { pg_sys::index_getnext_slot(scan, pg_sys::ScanDirection::ForwardScanDirection, slot) }
}

/// `arm_id` and `(alpha, beta, pulls)` of the row in `slot`.
unsafe fn decode<'s>(slot: *mut pg_sys::TupleTableSlot) -> (&'s str, (f64, f64, i32)) {
    unsafe {
        pg_sys::slot_getsomeattrs_int(slot, 6);
        let get = |i: usize| (*(*slot).tts_values.add(i), *(*slot).tts_isnull.add(i));
        let (arm, arm_null) = get(2);
        let (a, an) = get(3);
        let (b, bn) = get(4);
        let (p, pn) = get(5);
        (
            <&str>::from_datum(arm, arm_null).unwrap_or_default(),
            (
                f64::from_datum(a, an).unwrap_or(f64::NAN),
                f64::from_datum(b, bn).unwrap_or(f64::NAN),
                i32::from_datum(p, pn).unwrap_or(0),
            ),
        )
    }
}

/// An equality key on a text column of the index.
unsafe fn key_init(key: &mut pg_sys::ScanKeyData, attno: usize, collation: pg_sys::Oid, v: &str) {
    let datum = v.into_datum().expect("text datum");
    unsafe {
        pg_sys::ScanKeyEntryInitialize(
            key,
            0,
            attno as pg_sys::AttrNumber,
            pg_sys::BTEqualStrategyNumber as pg_sys::StrategyNumber,
            pg_sys::InvalidOid,
            collation,
            pg_sys::Oid::from(pg_sys::F_TEXTEQ),
            datum,
        );
    }
}

/// The first six columns must be the seed layout this reader decodes.
unsafe fn check_layout(rel: pg_sys::Relation) {
    const EXPECTED: [(&CStr, pg_sys::Oid); 6] = [
        (c"learner_name", pg_sys::TEXTOID),
        (c"context_hash", pg_sys::TEXTOID),
        (c"arm_id", pg_sys::TEXTOID),
        (c"alpha", pg_sys::FLOAT8OID),
        (c"beta", pg_sys::FLOAT8OID),
        (c"pulls", pg_sys::INT4OID),
    ];
    unsafe {
        let desc = (*rel).rd_att;
        let ok = (*desc).natts >= 6
            && EXPECTED.iter().enumerate().all(|(i, (name, typ))| {
                let att = (*desc).attrs.as_ptr().add(i);
                !(*att).attisdropped
                    && (*att).atttypid == *typ
                    && CStr::from_ptr((*att).attname.data.as_ptr()) == *name
            });
        if !ok {
            error!(
                "qortex_select_arms: qortex.learning_arm_states does not have the column layout \
                 qortex created (learner_name, context_hash, arm_id, alpha, beta, pulls, ...)"
            );
        }
    }
}
