//! SPI helpers shared by every capability: plans prepared once per backend, type OIDs.
use crate::errors::internal;
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::spi::{OwnedPreparedStatement, SpiClient};
use pgrx::{PgBuiltInOids, PgOid};
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CString;
use std::rc::Rc;

thread_local! {
    /// Plans prepared once per backend and kept (SPI_keepplan), keyed by their SQL text
    /// (which, for a collection's statements, names its tables).
    static PLANS: RefCell<HashMap<String, Rc<OwnedPreparedStatement>>> =
        RefCell::new(HashMap::new());
}

pub const TEXT: PgOid = PgOid::BuiltIn(PgBuiltInOids::TEXTOID);
pub const TEXT_ARRAY: PgOid = PgOid::BuiltIn(PgBuiltInOids::TEXTARRAYOID);
pub const FLOAT8: PgOid = PgOid::BuiltIn(PgBuiltInOids::FLOAT8OID);
pub const FLOAT8_ARRAY: PgOid = PgOid::BuiltIn(PgBuiltInOids::FLOAT8ARRAYOID);
pub const INT4_ARRAY: PgOid = PgOid::BuiltIn(PgBuiltInOids::INT4ARRAYOID);
pub const JSONB: PgOid = PgOid::BuiltIn(PgBuiltInOids::JSONBOID);
pub const JSONB_ARRAY: PgOid = PgOid::BuiltIn(PgBuiltInOids::JSONBARRAYOID);
pub const BOOL: PgOid = PgOid::BuiltIn(PgBuiltInOids::BOOLOID);
pub const BOOL_ARRAY: PgOid = PgOid::BuiltIn(PgBuiltInOids::BOOLARRAYOID);
pub const INT4: PgOid = PgOid::BuiltIn(PgBuiltInOids::INT4OID);
pub const INT8: PgOid = PgOid::BuiltIn(PgBuiltInOids::INT8OID);
pub const OID: PgOid = PgOid::BuiltIn(PgBuiltInOids::OIDOID);
pub const INT2: PgOid = PgOid::BuiltIn(PgBuiltInOids::INT2OID);

/// The kept plan for `sql`, prepared on first use in this backend.
pub fn plan(
    client: &SpiClient<'_>,
    sql: &str,
    args: &[PgOid],
    mutating: bool,
) -> Rc<OwnedPreparedStatement> {
    if let Some(p) = PLANS.with(|m| m.borrow().get(sql).cloned()) {
        return p;
    }
    let prepared = if mutating {
        client.prepare_mut(sql, args)
    } else {
        client.prepare(sql, args)
    }
    .unwrap_or_else(|e| internal("qortex", format!("preparing a statement failed: {e}")));
    let p = Rc::new(prepared.keep());
    PLANS.with(|m| m.borrow_mut().insert(sql.to_owned(), p.clone()));
    p
}

/// The error of a failed SPI call, as an internal error of `func` (see `errors::internal`).
pub fn spi_failed<T>(func: &str) -> impl Fn(pgrx::spi::SpiError) -> T + '_ {
    move |e| internal(func, e)
}

/// Run a statement without parameters (DDL qortex generates).
pub fn run(client: &mut SpiClient<'_>, func: &str, sql: &str) {
    client
        .update(sql, None, &[])
        .unwrap_or_else(spi_failed(func));
}

thread_local! {
    /// Plans kept for `planned`, prepared to be planned with each call's parameter values.
    static ESTIMATE_PLANS: RefCell<HashMap<String, usize>> = RefCell::new(HashMap::new());
}

/// What PostgreSQL's planner makes of `sql` with these parameter values, without running
/// it: the top node's estimated rows, and whether the plan reads a table sequentially.
/// The statement is planned for each call's values (a custom plan), so the statistics of
/// the values given decide, as they would for a query with literals. Must run inside SPI.
pub fn planned(func: &str, sql: &str, args: &[DatumWithOid<'_>]) -> (f64, bool) {
    let custom = crate::settings::ForCall::new();
    custom.set("plan_cache_mode", "force_custom_plan");
    let r = planned_custom(func, sql, args);
    custom.restore();
    r
}

fn planned_custom(func: &str, sql: &str, args: &[DatumWithOid<'_>]) -> (f64, bool) {
    let mut types: Vec<pg_sys::Oid> = args.iter().map(|a| a.oid()).collect();
    let mut values: Vec<pg_sys::Datum> = args
        .iter()
        .map(|a| {
            a.datum()
                .map_or(pg_sys::Datum::from(0), |d| d.sans_lifetime())
        })
        .collect();
    let nulls: Vec<std::ffi::c_char> = args
        .iter()
        .map(|a| if a.datum().is_some() { b' ' } else { b'n' } as std::ffi::c_char)
        .collect();
    unsafe {
        let plan = ESTIMATE_PLANS.with(|m| m.borrow().get(sql).copied());
        let plan = match plan {
            Some(p) => p as pg_sys::SPIPlanPtr,
            None => {
                let src = CString::new(sql).expect("SQL without NUL");
                let p = pg_sys::SPI_prepare_cursor(
                    src.as_ptr(),
                    types.len() as i32,
                    types.as_mut_ptr(),
                    (pg_sys::CURSOR_OPT_CUSTOM_PLAN | pg_sys::CURSOR_OPT_NO_SCROLL) as i32,
                );
                if p.is_null() || pg_sys::SPI_keepplan(p) != 0 {
                    let code = pg_sys::SPI_result;
                    internal(func, format!("preparing an estimate failed: {code}"));
                }
                ESTIMATE_PLANS.with(|m| m.borrow_mut().insert(sql.to_owned(), p as usize));
                p
            }
        };
        let portal = pg_sys::SPI_cursor_open(
            std::ptr::null(),
            plan,
            values.as_mut_ptr(),
            nulls.as_ptr(),
            true,
        );
        if portal.is_null() {
            internal(func, "opening an estimate's cursor failed");
        }
        let stmt = pg_sys::list_nth((*portal).stmts, 0) as *mut pg_sys::PlannedStmt;
        let top = (*stmt).planTree;
        let rows = (*top).plan_rows;
        let mut sequential = false;
        let mut stack = vec![top];
        while let Some(node) = stack.pop() {
            if node.is_null() {
                continue;
            }
            sequential |= (*node).type_ == pg_sys::NodeTag::T_SeqScan;
            stack.push((*node).lefttree);
            stack.push((*node).righttree);
        }
        pg_sys::SPI_cursor_close(portal);
        (rows, sequential)
    }
}
