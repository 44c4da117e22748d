//! Arm states read and updated straight through the primary key of
//! `qortex.learning_arm_states`, without SPI: the two calls an application makes per request.
//!
//! - `stored_states` (select): one B-tree descent and a walk over the context's arms (one
//!   descent per candidate arm when the context holds many more), under the snapshot of the
//!   calling statement, skipping what SPI costs per call (plan-cache lookup, executor
//!   start-up and shutdown). SELECT privilege is checked as a query would.
//! - `update_in_place` (observe of an arm that has a row): what `UPDATE ... SET alpha =
//!   alpha + r ...` does under READ COMMITTED: find the row, lock its latest version
//!   (waiting for a concurrent writer), write the new version through PostgreSQL's own
//!   single-row update (constraints, HOT or index entries, WAL). Where that is not exactly
//!   what the SQL statement would do (REPEATABLE READ or SERIALIZABLE, a read-only
//!   transaction, row-level security, triggers on the table, missing privileges, no row yet)
//!   it declines and the caller runs the SQL upsert.
//! - Both leave a Citus table (rows in shards, not in this heap) to SQL.
//!
//! The table's column layout is checked on every call, so a changed table is an error
//! rather than misread.
use crate::citus;
use crate::errors::error;
use crate::pg_compat;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::{FromDatum, IntoDatum};
use std::collections::HashMap;
use std::ffi::CStr;

/// The state table's OID, or 42P01.
unsafe fn table_oid(func: &str) -> pg_sys::Oid {
    unsafe {
        let nsp = pg_sys::get_namespace_oid(c"qortex".as_ptr(), false);
        let oid = pg_sys::get_relname_relid(c"learning_arm_states".as_ptr(), nsp);
        if oid == pg_sys::InvalidOid {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
                format!("{func}: table qortex.learning_arm_states does not exist")
            );
        }
        oid
    }
}

unsafe fn allowed(oid: pg_sys::Oid, privilege: u32) -> bool {
    unsafe {
        pg_sys::pg_class_aclcheck(oid, pg_sys::GetUserId(), privilege as _)
            == pg_sys::AclResult::ACLCHECK_OK
    }
}

/// 55000: someone changed qortex's state table so that qortex can no longer read it.
fn altered(func: &str, what: &str) -> ! {
    error(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        format!("{func}: qortex.learning_arm_states {what}"),
    )
    .detail(
        "qortex reads it as (learner_name, context_hash, arm_id, alpha, beta, pulls, \
         total_reward, last_updated) with that primary key on the first three.",
    )
    .hint("restore the table as the extension created it (DROP EXTENSION and CREATE EXTENSION start over)")
    .raise()
}

/// The primary key index, opened, after checking the table's and the key's layout.
unsafe fn open_key(
    func: &str,
    rel: pg_sys::Relation,
    columns: usize,
    lock: pg_sys::LOCKMODE,
) -> pg_sys::Relation {
    unsafe {
        check_layout(func, rel, columns);
        let index_oid = pg_compat::primary_key_index(rel);
        if index_oid == pg_sys::InvalidOid {
            altered(func, "has no primary key");
        }
        let index = pg_sys::index_open(index_oid, lock);
        if (*(*index).rd_index).indnatts != 3 {
            altered(func, "has a primary key other than qortex created");
        }
        index
    }
}

/// `(alpha, beta, pulls)` of each arm, in the order given; `None` where nothing is stored.
/// `None` for all of them when the table is a Citus table (its rows are in shards): the
/// caller reads them through SQL.
pub fn stored_states(
    learner: &str,
    ctx: &str,
    arms: &[String],
) -> Option<Vec<Option<(f64, f64, i32)>>> {
    const F: &str = "qortex_select_arms";
    unsafe {
        let table_oid = table_oid(F);
        if citus::is_citus_table(table_oid) {
            return None;
        }
        if !allowed(table_oid, pg_sys::ACL_SELECT) {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                "permission denied for table qortex.learning_arm_states"
            );
        }
        let lock = pg_sys::AccessShareLock as pg_sys::LOCKMODE;
        let rel = pg_sys::table_open(table_oid, lock);
        let index = open_key(F, rel, 6, lock);
        let collation = |i: usize| *(*index).rd_indcollation.add(i);

        let mut keys: [pg_sys::ScanKeyData; 3] = std::mem::zeroed();
        let fixed = [learner, ctx];
        for (i, v) in fixed.iter().enumerate() {
            key_init(&mut keys[i], i + 1, collation(i), v);
        }
        let snapshot = pg_sys::GetActiveSnapshot();
        let scan = pg_compat::index_beginscan(rel, index, snapshot, 2);
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
            let scan = pg_compat::index_beginscan(rel, index, snapshot, 3);
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
        Some(out)
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

/// The first `columns` columns must be the seed layout this module decodes and writes.
unsafe fn check_layout(func: &str, rel: pg_sys::Relation, columns: usize) {
    const EXPECTED: [(&CStr, pg_sys::Oid); 8] = [
        (c"learner_name", pg_sys::TEXTOID),
        (c"context_hash", pg_sys::TEXTOID),
        (c"arm_id", pg_sys::TEXTOID),
        (c"alpha", pg_sys::FLOAT8OID),
        (c"beta", pg_sys::FLOAT8OID),
        (c"pulls", pg_sys::INT4OID),
        (c"total_reward", pg_sys::FLOAT8OID),
        (c"last_updated", pg_sys::TIMESTAMPTZOID),
    ];
    unsafe {
        let desc = (*rel).rd_att;
        let ok = (*desc).natts as usize >= columns
            && EXPECTED[..columns]
                .iter()
                .enumerate()
                .all(|(i, (name, typ))| {
                    let att = pg_compat::attribute(desc, i);
                    !(*att).attisdropped
                        && (*att).atttypid == *typ
                        && CStr::from_ptr((*att).attname.data.as_ptr()) == *name
                });
        if !ok {
            altered(func, "does not have the columns qortex created");
        }
    }
}

/// Add reward `r` to the stored state of an arm, in place, as `UPDATE` would under READ
/// COMMITTED; `(alpha, beta, pulls, total_reward)` after it. `None` when the arm has no row
/// or the update must go through SQL (see the module comment): nothing was changed then.
pub fn update_in_place(
    learner: &str,
    ctx: &str,
    arm: &str,
    r: f64,
) -> Option<(f64, f64, i32, f64)> {
    const F: &str = "qortex_observe";
    unsafe {
        // The executor's own refusals (read-only transaction, standby, parallel worker) come
        // from the SQL path.
        if pg_sys::XactIsoLevel >= pg_sys::XACT_REPEATABLE_READ as i32
            || pg_sys::XactReadOnly
            || pg_sys::IsInParallelMode()
        {
            return None;
        }
        let oid = table_oid(F);
        if citus::is_citus_table(oid) {
            return None;
        }
        let privileges = [pg_sys::ACL_SELECT, pg_sys::ACL_INSERT, pg_sys::ACL_UPDATE];
        if !privileges.iter().all(|&p| allowed(oid, p))
            || pg_sys::check_enable_rls(oid, pg_sys::InvalidOid, false)
                == pg_sys::CheckEnableRlsResult::RLS_ENABLED as i32
        {
            return None;
        }
        let lock = pg_sys::RowExclusiveLock as pg_sys::LOCKMODE;
        let rel = pg_sys::table_open(oid, lock);
        if !(*rel).trigdesc.is_null() {
            pg_sys::table_close(rel, pg_sys::NoLock as _);
            return None;
        }
        let index = open_key(F, rel, 8, lock);
        // A fresh snapshot, as SPI takes for each statement: it sees this transaction's
        // earlier updates, also those of the same statement.
        let snapshot = pg_sys::RegisterSnapshot(pg_sys::GetTransactionSnapshot());
        let estate = pg_sys::CreateExecutorState();
        (*estate).es_snapshot = snapshot;
        (*estate).es_output_cid = pg_sys::GetCurrentCommandId(true);
        let rte = pg_sys::palloc0(std::mem::size_of::<pg_sys::RangeTblEntry>())
            as *mut pg_sys::RangeTblEntry;
        (*rte).type_ = pg_sys::NodeTag::T_RangeTblEntry;
        (*rte).rtekind = pg_sys::RTEKind::RTE_RELATION;
        (*rte).relid = oid;
        (*rte).relkind = (*(*rel).rd_rel).relkind;
        (*rte).rellockmode = lock;
        pg_compat::init_range_table(estate, rte);
        let info = pg_sys::palloc0(std::mem::size_of::<pg_sys::ResultRelInfo>())
            as *mut pg_sys::ResultRelInfo;
        (*info).type_ = pg_sys::NodeTag::T_ResultRelInfo;
        pg_sys::InitResultRelInfo(info, rel, 1, std::ptr::null_mut(), 0);
        pg_sys::ExecOpenIndices(info, false);

        let found = pg_sys::table_slot_create(rel, &mut (*estate).es_tupleTable);
        let collation = |i: usize| *(*index).rd_indcollation.add(i);
        let mut keys: [pg_sys::ScanKeyData; 3] = std::mem::zeroed();
        for (i, v) in [learner, ctx, arm].iter().enumerate() {
            key_init(&mut keys[i], i + 1, collation(i), v);
        }
        let scan = pg_compat::index_beginscan(rel, index, snapshot, 3);
        pg_sys::index_rescan(scan, keys.as_mut_ptr(), 3, std::ptr::null_mut(), 0);
        let mut out = None;
        if next(scan, found) {
            // Lock the row's latest version, waiting for a writer in progress; it is the one
            // to update (a READ COMMITTED UPDATE re-reads it the same way).
            let mut tid = (*found).tts_tid;
            let mut tmfd: pg_sys::TM_FailureData = std::mem::zeroed();
            let tuple_lock = (*(*rel).rd_tableam)
                .tuple_lock
                .expect("table AM tuple_lock");
            let locked = tuple_lock(
                rel,
                &mut tid,
                snapshot,
                found,
                (*estate).es_output_cid,
                pg_sys::LockTupleMode::LockTupleExclusive,
                pg_sys::LockWaitPolicy::LockWaitBlock,
                pg_sys::TUPLE_LOCK_FLAG_FIND_LAST_VERSION as u8,
                &mut tmfd,
            );
            if locked == pg_sys::TM_Result::TM_Ok {
                out = Some(write_update(estate, info, rel, found, r));
            }
        }
        pg_sys::index_endscan(scan);
        pg_sys::ExecCloseIndices(info);
        pg_sys::ExecResetTupleTable((*estate).es_tupleTable, false);
        pg_sys::FreeExecutorState(estate);
        pg_sys::UnregisterSnapshot(snapshot);
        pg_sys::index_close(index, lock);
        pg_sys::table_close(rel, pg_sys::NoLock as _);
        if out.is_some() {
            // Like SPI after a write: later reads in this statement see the new version.
            pg_sys::CommandCounterIncrement();
        }
        out
    }
}

/// Write the new version of the locked row in `old`: constraints, the heap update (HOT
/// when it can be), index entries otherwise.
unsafe fn write_update(
    estate: *mut pg_sys::EState,
    info: *mut pg_sys::ResultRelInfo,
    rel: pg_sys::Relation,
    old: *mut pg_sys::TupleTableSlot,
    r: f64,
) -> (f64, f64, i32, f64) {
    unsafe {
        let natts = (*(*rel).rd_att).natts as usize;
        pg_sys::slot_getsomeattrs_int(old, natts as i32);
        let get = |i: usize| (*(*old).tts_values.add(i), *(*old).tts_isnull.add(i));
        let f = |i: usize| {
            let (d, n) = get(i);
            f64::from_datum(d, n).unwrap_or(0.0)
        };
        let (a, b, total) = (f(3) + r, f(4) + (1.0 - r), f(6) + r);
        let (p, pn) = get(5);
        // as the SQL path's `pulls + 1` does: 22003, not a count that silently stops
        let pulls = i32::from_datum(p, pn)
            .unwrap_or(0)
            .checked_add(1)
            .unwrap_or_else(|| {
                crate::errors::raise(
                    PgSqlErrorCode::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
                    "qortex_observe: integer out of range: the arm's pulls would exceed 2147483647",
                )
            });
        let new = pg_sys::table_slot_create(rel, &mut (*estate).es_tupleTable);
        pg_sys::ExecClearTuple(new);
        for i in 0..natts {
            let (d, n) = get(i);
            *(*new).tts_values.add(i) = d;
            *(*new).tts_isnull.add(i) = n;
        }
        let now = pg_sys::GetCurrentTransactionStartTimestamp();
        for (i, d) in [
            (3, a.into_datum()),
            (4, b.into_datum()),
            (5, pulls.into_datum()),
            (6, total.into_datum()),
            (7, now.into_datum()),
        ] {
            *(*new).tts_values.add(i) = d.expect("datum");
            *(*new).tts_isnull.add(i) = false;
        }
        pg_sys::ExecStoreVirtualTuple(new);
        let mut epq: pg_sys::EPQState = std::mem::zeroed();
        pg_compat::epq_init(&mut epq, estate);
        epq.origslot = old;
        pg_sys::ExecSimpleRelationUpdate(info, estate, &mut epq, old, new);
        pg_sys::EvalPlanQualEnd(&mut epq);
        (a, b, pulls, total)
    }
}
