//! The planner's estimates a search is planned on: rows in the collection's table, rows its
//! filter and user scope admit, and whether an index finds those rows. Taken from the plan
//! PostgreSQL makes of a statement with the search's own parameter values (so the table's
//! statistics and the filter's values decide), kept per backend for a minute.
use super::Scope;
use crate::cache::Cache;
use crate::catalog::Layout;
use crate::spi::planned;
use std::cell::RefCell;
use std::time::{Duration, Instant};

/// How long a backend trusts an estimate.
const TTL: Duration = Duration::from_secs(60);

/// What the planner expects of a statement over the rows in scope.
#[derive(Clone, Copy, Debug)]
pub struct Estimate {
    /// Rows in the table.
    pub table_rows: f64,
    /// Rows the filter and user scope admit (the table's rows without them).
    pub rows: f64,
    /// Whether finding them reads the whole table (no index serves the scope).
    pub full_scan: bool,
    at: Instant,
}

thread_local! {
    static ESTIMATES: RefCell<Cache<Estimate>> = RefCell::new(Cache::new(4096));
}

/// The estimate for a search's scope (cached by collection, filter and user).
pub fn scope(func: &str, t: &Layout, scope: &Scope<'_>) -> Estimate {
    let key = format!("{}\u{1}{}", t.name, scope.key());
    ESTIMATES.with(|c| {
        let mut cache = c.borrow_mut();
        if let Some(e) = cache.get(&key).filter(|e| e.at.elapsed() < TTL) {
            return e;
        }
        cache.fill(&key, || {
            let table = explain(func, &format!("SELECT 1 FROM {}", t.table), None);
            let e = if scope.sql.is_empty() {
                Estimate {
                    table_rows: table.0,
                    rows: table.0,
                    full_scan: true,
                    at: Instant::now(),
                }
            } else {
                let sql = format!("SELECT 1 FROM {} WHERE true{}", t.table, scope.sql);
                let (rows, full_scan) = explain(func, &sql, Some(scope));
                Estimate {
                    table_rows: table.0,
                    rows,
                    full_scan,
                    at: Instant::now(),
                }
            };
            (e, vec![t.source])
        })
    })
}

/// The planner's rows for `sql` (with the scope's parameters, if any) and whether it reads
/// the table sequentially.
fn explain(func: &str, sql: &str, scope: Option<&Scope<'_>>) -> (f64, bool) {
    let unset = || {
        [
            None::<String>.into(),
            None::<i64>.into(),
            None::<pgrx::JsonB>.into(),
            None::<String>.into(),
            None::<pgrx::JsonB>.into(),
            None::<String>.into(),
        ]
    };
    match scope {
        Some(s) => planned(
            func,
            sql,
            &s.args(None::<String>.into(), None::<i64>.into()),
        ),
        None => planned(func, sql, &unset()),
    }
}
