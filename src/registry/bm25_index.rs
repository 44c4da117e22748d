//! A registered table's `qortex_bm25` index: the one on its stored tsvector column that the
//! text leg reads, or, asked to, one created by the registration (with the user column as
//! its scope column, so user-scoped searches are bounded inside the index), saying so.
use crate::catalog::{self, Bm25Index, Layout};
use crate::errors::error;
use crate::spi::run;
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, SpiClient};
use std::rc::Rc;

/// Types of a user column the index can scope by (its scope operator classes: text, which
/// varchar reads as, the integers, uuid).
const SCOPE_TYPES: [&str; 6] = ["text", "varchar", "int2", "int4", "int8", "uuid"];

/// The collection's qortex_bm25 index: the table's own, or one created now if `create` and
/// the collection can have one (a stored tsvector column, no partition, not on Citus, the
/// caller owning the table), scoped by the user column, or with global rows by
/// `catalog::global_scope`. A NOTICE says what was created, or why not.
pub fn ensure(
    client: &mut SpiClient<'_>,
    func: &str,
    t: &Layout,
    user_type: Option<&str>,
    create: bool,
) -> Option<Rc<Bm25Index>> {
    if let Some(found) = catalog::bm25_index(t) {
        return Some(found);
    }
    let (_, _, tsv) = t.tsv_column.as_ref()?;
    if !create || t.partition.is_some() || crate::citus::is_citus_table(t.source) {
        return None;
    }
    let scope = match (t.user_column(), t.is_global.as_deref(), user_type) {
        // global rows: the user's rows under the user id as text, the global ones under ''
        (Some(u), Some(g), _) => Some(format!("({})", catalog::global_scope(g, u))),
        (Some(u), None, Some(ty)) if SCOPE_TYPES.contains(&ty) => Some(u.to_owned()),
        _ => None,
    };
    let sql = format!(
        "CREATE INDEX ON {} USING qortex_bm25 ({}{})",
        t.table,
        quote_identifier(tsv),
        scope.map(|s| format!(", {s}")).unwrap_or_default()
    );
    // SAFETY: a catalog lookup of the caller's role.
    if !crate::pg_compat::owns_relation(t.source, unsafe { pg_sys::GetUserId() }) {
        notice(
            func,
            &format!(
                "no qortex_bm25 index created on {}: only its owner may create one; its text \
                 leg reads qortex's BM25 index",
                t.table
            ),
            Some(format!("as the table's owner: {sql}")),
        );
        return None;
    }
    run(client, func, &sql);
    let found = catalog::bm25_index(t);
    if let Some(f) = &found {
        notice(
            func,
            &format!(
                "created the qortex_bm25 index {} on {}: the text leg reads it",
                quote_identifier(&f.index.name),
                t.table
            ),
            Some(
                "columns.bm25_index = false registers without it (the text leg then reads \
                 qortex's own BM25 index)"
                    .into(),
            ),
        );
    }
    found
}

fn notice(func: &str, message: &str, hint: Option<String>) {
    let e = error(
        PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION,
        format!("{func}: {message}"),
    );
    match hint {
        Some(h) => e.hint(h).notice(),
        None => e.notice(),
    }
}
