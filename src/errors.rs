//! Raising errors: every error a caller can cause carries a specific SQLSTATE, its message
//! names the function and the argument, and what to do about it goes into the HINT (facts
//! about the data into the DETAIL), as PostgreSQL's own errors do.
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use qortex_core::ParamError;

/// An error about to be raised; add a hint or detail, then `raise()`.
#[must_use]
pub struct Raise {
    code: PgSqlErrorCode,
    message: String,
    hint: Option<String>,
    detail: Option<String>,
}

/// An error with SQLSTATE `code`.
pub fn error(code: PgSqlErrorCode, message: impl Into<String>) -> Raise {
    Raise {
        code,
        message: message.into(),
        hint: None,
        detail: None,
    }
}

impl Raise {
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    fn report(self, level: PgLogLevel) {
        let mut r = ErrorReport::new(self.code, self.message, "qortex");
        if let Some(h) = self.hint {
            r = r.set_hint(h);
        }
        if let Some(d) = self.detail {
            r = r.set_detail(d);
        }
        r.report(level);
    }

    pub fn raise(self) -> ! {
        self.report(PgLogLevel::ERROR);
        unreachable!("an ERROR report does not return")
    }

    /// Report it as a WARNING instead, and go on.
    pub fn warn(self) {
        self.report(PgLogLevel::WARNING);
    }

    /// Report it as a NOTICE, and go on.
    pub fn notice(self) {
        self.report(PgLogLevel::NOTICE);
    }
}

/// Raise `message` with the given SQLSTATE.
pub fn raise(code: PgSqlErrorCode, message: impl Into<String>) -> ! {
    error(code, message).raise()
}

/// A bad argument: SQLSTATE 22023, naming the function and the argument.
pub fn bad_arg(func: &str, e: ParamError) -> Raise {
    error(
        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        format!("{func}: {e}"),
    )
}

/// Raise a bad argument (see `bad_arg`).
pub fn invalid_param(func: &str, e: ParamError) -> ! {
    bad_arg(func, e).raise()
}

/// `Option<T>` → `T`, or 22023 "`arg` must not be NULL".
pub fn required<T>(func: &str, arg: &str, v: Option<T>) -> T {
    v.unwrap_or_else(|| invalid_param(func, ParamError::new(arg, "must not be NULL")))
}

/// A problem with stored or given data: SQLSTATE 22000 (data_exception).
pub fn data_error(message: impl Into<String>) -> ! {
    raise(PgSqlErrorCode::ERRCODE_DATA_EXCEPTION, message)
}

/// qortex's own statement failed in a way no argument can cause (SPI refused a prepared
/// plan, a statement returned no row where it always returns one): SQLSTATE XX000, the
/// one error that is a bug to report. Errors PostgreSQL raises inside a statement (a
/// constraint, a privilege, a cancel) pass through with their own SQLSTATE, never here.
pub fn internal(func: &str, what: impl std::fmt::Display) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
        format!("{func}: internal error: {what}"),
    )
}

/// A function that writes refuses to start where nothing can be written, with the SQLSTATE
/// PostgreSQL gives any write there (25006): on a hot standby (a write would otherwise fail
/// deep inside with an internal error about transaction ids), and in a read-only
/// transaction.
pub fn require_writable(func: &str) {
    // SAFETY: reads of the server's state, valid in any backend
    let (standby, read_only) = unsafe { (pg_sys::RecoveryInProgress(), pg_sys::XactReadOnly) };
    if standby {
        error(
            PgSqlErrorCode::ERRCODE_READ_ONLY_SQL_TRANSACTION,
            format!("{func} writes, and this server is a standby in recovery"),
        )
        .hint(
            "call it on the primary; reads such as hybrid_search and qortex_select_arms work here",
        )
        .raise();
    }
    if read_only {
        error(
            PgSqlErrorCode::ERRCODE_READ_ONLY_SQL_TRANSACTION,
            format!("{func} writes, and this transaction is read-only"),
        )
        .raise();
    }
}

/// Run `f` in a subtransaction: its error (SQLSTATE and message) is caught and everything
/// it did rolled back, as a PL/pgSQL EXCEPTION block does.
pub fn in_subtransaction<R>(
    f: impl FnOnce() -> R + std::panic::UnwindSafe,
) -> Result<R, (PgSqlErrorCode, String)> {
    // SAFETY: as PL/pgSQL's exception blocks: the subtransaction is ended on both paths
    // (released after `f`, rolled back after its error, which frees what `f` held: buffer
    // pins, locks, SPI connections), and the caller's memory context and resource owner
    // are restored after either.
    unsafe {
        let cx = pg_sys::CurrentMemoryContext;
        let owner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(cx);
        PgTryBuilder::new(move || {
            let r = f();
            pg_sys::ReleaseCurrentSubTransaction();
            pg_sys::MemoryContextSwitchTo(cx);
            pg_sys::CurrentResourceOwner = owner;
            Ok(r)
        })
        .catch_others(move |e| {
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
            pg_sys::MemoryContextSwitchTo(cx);
            pg_sys::CurrentResourceOwner = owner;
            Err(match e {
                pg_sys::panic::CaughtError::PostgresError(r)
                | pg_sys::panic::CaughtError::ErrorReport(r)
                | pg_sys::panic::CaughtError::RustPanic { ereport: r, .. } => {
                    (r.sql_error_code(), r.message().to_owned())
                }
            })
        })
        .execute()
    }
}

/// The five characters of a SQLSTATE, as `ERRCODE_*` packs them (six bits each).
pub fn sqlstate(code: PgSqlErrorCode) -> String {
    let packed = code as i32;
    (0..5)
        .map(|i| char::from(b'0' + ((packed >> (6 * i)) & 0x3F) as u8))
        .collect()
}
