//! SPI helpers shared by every capability: plans prepared once per backend, type OIDs, and
//! the trace of the statements one call ran (`qortex.debug_plans`).
use crate::errors::internal;
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::spi::{OwnedPreparedStatement, SpiClient, SpiResult, SpiTupleTable};
use pgrx::{PgBuiltInOids, PgOid};
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CString;
use std::rc::Rc;
use std::time::Instant;

thread_local! {
    /// Plans prepared once per backend and kept (SPI_keepplan), keyed by their SQL text
    /// (which, for a collection's statements, names its tables).
    static PLANS: RefCell<HashMap<String, Rc<Plan>>> = RefCell::new(HashMap::new());
    /// The statements the current traced call ran: what, how long, rows.
    static TRACE: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// Statements a trace keeps at most (a call that runs more says how many it left out).
const TRACE_MAX: usize = 200;

/// A kept plan and the SQL it was prepared from.
pub struct Plan {
    stmt: OwnedPreparedStatement,
    sql: String,
}

impl std::ops::Deref for Plan {
    type Target = OwnedPreparedStatement;
    fn deref(&self) -> &OwnedPreparedStatement {
        &self.stmt
    }
}

impl Plan {
    /// Run the plan as `client.select` does, recorded in the call's trace when one is kept.
    pub fn select<'c>(
        &self,
        client: &SpiClient<'c>,
        limit: Option<i64>,
        args: &[DatumWithOid<'_>],
    ) -> SpiResult<SpiTupleTable<'c>> {
        traced(&self.sql, || client.select(&self.stmt, limit, args))
    }
}

/// Keeps a trace of the statements run until it is taken or dropped (on an error too).
pub struct Trace(());

impl Trace {
    /// Start tracing the statements of this call, if `on`.
    pub fn start(on: bool) -> Option<Trace> {
        on.then(|| {
            TRACE.with(|t| *t.borrow_mut() = Some(Vec::new()));
            Trace(())
        })
    }

    /// The statements run since `start`, one line each, and the count.
    pub fn take(self) -> Vec<String> {
        TRACE.with(|t| t.borrow_mut().take()).unwrap_or_default()
    }
}

impl Drop for Trace {
    fn drop(&mut self) {
        TRACE.with(|t| t.borrow_mut().take());
    }
}

/// Run `run`, a statement whose SQL is `sql`, timed into the trace when one is kept.
pub fn traced<T>(sql: &str, run: impl FnOnce() -> SpiResult<T>) -> SpiResult<T>
where
    T: Rows,
{
    if TRACE.with(|t| t.borrow().is_none()) {
        return run();
    }
    let started = Instant::now();
    let r = run();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let rows = r.as_ref().map_or(0, |t| t.rows());
    note(format!("{ms:.3} ms, {rows} rows: {}", one_line(sql)));
    r
}

/// A line for the trace, when one is kept (statements not run through `Plan::select`).
pub fn note(line: String) {
    TRACE.with(|t| {
        if let Some(v) = t.borrow_mut().as_mut() {
            if v.len() < TRACE_MAX {
                v.push(line);
            } else if v.len() == TRACE_MAX {
                v.push(format!("(more statements than {TRACE_MAX}: not listed)"));
            }
        }
    })
}

/// Whether a trace is kept now.
pub fn tracing() -> bool {
    TRACE.with(|t| t.borrow().is_some())
}

/// What a statement returned, for the trace.
pub trait Rows {
    fn rows(&self) -> usize;
}

impl Rows for SpiTupleTable<'_> {
    fn rows(&self) -> usize {
        self.len()
    }
}

/// SQL on one line, at most 160 characters.
fn one_line(sql: &str) -> String {
    let s = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    match s.char_indices().nth(160) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s,
    }
}

pub const TEXT: PgOid = PgOid::BuiltIn(PgBuiltInOids::TEXTOID);
pub const TEXT_ARRAY: PgOid = PgOid::BuiltIn(PgBuiltInOids::TEXTARRAYOID);
pub const FLOAT8: PgOid = PgOid::BuiltIn(PgBuiltInOids::FLOAT8OID);
pub const FLOAT8_ARRAY: PgOid = PgOid::BuiltIn(PgBuiltInOids::FLOAT8ARRAYOID);
pub const INT4_ARRAY: PgOid = PgOid::BuiltIn(PgBuiltInOids::INT4ARRAYOID);
pub const INT8_ARRAY: PgOid = PgOid::BuiltIn(PgBuiltInOids::INT8ARRAYOID);
pub const JSONB: PgOid = PgOid::BuiltIn(PgBuiltInOids::JSONBOID);
pub const JSONB_ARRAY: PgOid = PgOid::BuiltIn(PgBuiltInOids::JSONBARRAYOID);
pub const BOOL: PgOid = PgOid::BuiltIn(PgBuiltInOids::BOOLOID);
pub const BOOL_ARRAY: PgOid = PgOid::BuiltIn(PgBuiltInOids::BOOLARRAYOID);
pub const INT4: PgOid = PgOid::BuiltIn(PgBuiltInOids::INT4OID);
pub const INT8: PgOid = PgOid::BuiltIn(PgBuiltInOids::INT8OID);
pub const OID: PgOid = PgOid::BuiltIn(PgBuiltInOids::OIDOID);
pub const INT2: PgOid = PgOid::BuiltIn(PgBuiltInOids::INT2OID);

/// The kept plan for `sql`, prepared on first use in this backend.
pub fn plan(client: &SpiClient<'_>, sql: &str, args: &[PgOid], mutating: bool) -> Rc<Plan> {
    if let Some(p) = PLANS.with(|m| m.borrow().get(sql).cloned()) {
        return p;
    }
    let prepared = if mutating {
        client.prepare_mut(sql, args)
    } else {
        client.prepare(sql, args)
    }
    .unwrap_or_else(|e| internal("qortex", format!("preparing a statement failed: {e}")));
    let p = Rc::new(Plan {
        stmt: prepared.keep(),
        sql: sql.to_owned(),
    });
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
    let started = Instant::now();
    let r = planned_custom(func, sql, args);
    if tracing() {
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        note(format!(
            "{ms:.3} ms, planned only (an estimate): {}",
            one_line(sql)
        ));
    }
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
