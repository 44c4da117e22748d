//! Running as the extension's owner: how qortex reads and writes its internal tables
//! (schema `qortex_internal`), which no other role can read. Callers check the invoker's
//! right to the data first (SELECT on the collection's table), as a SECURITY DEFINER
//! function would.
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::Cell;

thread_local! {
    static OWNER: Cell<Option<pg_sys::Oid>> = const { Cell::new(None) };
}

/// The role that owns the qortex extension in this database.
fn owner() -> pg_sys::Oid {
    if let Some(o) = OWNER.get() {
        return o;
    }
    // (a read-only SPI connection: Spi::get_one would mark the transaction as writing and
    // assign it a transaction id, which a hot standby refuses)
    let o = Spi::connect(|c| {
        c.select(
            "SELECT extowner FROM pg_catalog.pg_extension WHERE extname = 'qortex'",
            Some(1),
            &[],
        )
        .ok()
        .and_then(|t| t.first().get_one::<pg_sys::Oid>().ok().flatten())
    })
    .unwrap_or_else(|| unsafe { pg_sys::GetUserId() });
    OWNER.set(Some(o));
    o
}

/// Run `f` as the extension's owner; the caller's identity comes back afterwards (and, on
/// an error, when the transaction or subtransaction aborts, as for SECURITY DEFINER).
pub fn as_owner<R>(f: impl FnOnce() -> R) -> R {
    let owner = owner();
    let (mut user, mut context) = (pg_sys::InvalidOid, 0);
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut user, &mut context);
        pg_sys::SetUserIdAndSecContext(
            owner,
            context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32,
        );
    }
    let r = f();
    unsafe { pg_sys::SetUserIdAndSecContext(user, context) };
    r
}

/// Whether the current user may SELECT from `rel`.
pub fn may_read(rel: pg_sys::Oid) -> bool {
    unsafe {
        pg_sys::pg_class_aclcheck(rel, pg_sys::GetUserId(), pg_sys::ACL_SELECT as _)
            == pg_sys::AclResult::ACLCHECK_OK
    }
}
