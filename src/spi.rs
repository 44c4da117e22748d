//! SPI helpers shared by every capability: plans prepared once per backend, type OIDs.
use crate::errors::internal;
use pgrx::spi::{OwnedPreparedStatement, SpiClient};
use pgrx::{PgBuiltInOids, PgOid};
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
