//! SPI helpers shared by every capability: cached plans and error raising.
use pgrx::prelude::*;
use pgrx::spi::{OwnedPreparedStatement, SpiClient};
use pgrx::{PgBuiltInOids, PgOid};
use qortex_core::ParamError;
use std::cell::RefCell;
use std::collections::HashMap;
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
    .unwrap_or_else(|e| error!("qortex: preparing an internal statement failed: {e}"));
    let p = Rc::new(prepared.keep());
    PLANS.with(|m| m.borrow_mut().insert(sql.to_owned(), p.clone()));
    p
}

/// Raise a bad argument as SQLSTATE 22023, naming the function and the argument.
pub fn invalid_param(func: &str, e: ParamError) -> ! {
    ereport!(
        ERROR,
        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        format!("{func}: {e}")
    );
}

/// `Option<T>` → `T`, or 22023 "`arg` must not be NULL".
pub fn required<T>(func: &str, arg: &str, v: Option<T>) -> T {
    v.unwrap_or_else(|| invalid_param(func, ParamError::new(arg, "must not be NULL")))
}

/// Raise a problem with stored data as SQLSTATE 22000 (data_exception).
pub fn data_error(message: String) -> ! {
    ereport!(ERROR, PgSqlErrorCode::ERRCODE_DATA_EXCEPTION, message);
}

/// Raise `message` with the given SQLSTATE.
pub fn raise(code: PgSqlErrorCode, message: String) -> ! {
    ereport!(ERROR, code, message);
}

/// An optional jsonb argument that must be an object: NULL → `{}`, else 22023 naming `arg`.
pub fn object_arg(func: &str, arg: &str, v: Option<pgrx::JsonB>) -> serde_json::Value {
    match v.map(|j| j.0) {
        None | Some(serde_json::Value::Null) => serde_json::json!({}),
        Some(v @ serde_json::Value::Object(_)) => v,
        Some(v) => invalid_param(
            func,
            ParamError::new(arg, format!("must be a JSON object, got {v}")),
        ),
    }
}
