//! A collection's `qortex_bm25` index: the one on its table's stored tsvector column (or on
//! `to_tsvector(config, content)` for a table without one) that the text leg reads, or one
//! created for it (with the user column, or the global scope, as its scope column, so
//! user-scoped searches are bounded inside the index), saying so; or why it has none.
use crate::catalog::{self, Bm25Index, Layout};
use crate::errors::error;
use crate::spi::run;
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, SpiClient};
use std::rc::Rc;

/// Types of a user column the index can scope by (its scope operator classes: text, which
/// varchar reads as, the integers, uuid).
const SCOPE_TYPES: [&str; 6] = ["text", "varchar", "int2", "int4", "int8", "uuid"];

/// Why a collection has no qortex_bm25 index, and what would give it one.
pub struct Absent {
    pub reason: String,
    pub hint: Option<String>,
}

/// The collection's qortex_bm25 index, and whether it was created now: the table's own, or
/// one created if `create` and the collection can have one (not a partition of its table,
/// not on Citus, the caller owning the table); `Absent` says why there is none.
pub fn ensure(
    client: &mut SpiClient<'_>,
    func: &str,
    t: &Layout,
    create: bool,
) -> Result<(Rc<Bm25Index>, bool), Absent> {
    if let Some(found) = catalog::bm25_index(t) {
        return Ok((found, false));
    }
    let sql = create_statement(t);
    if let Some(reason) = cannot_have(t) {
        return Err(Absent { reason, hint: None });
    }
    if !create {
        return Err(Absent {
            reason: "registered with columns.bm25_index = false; the text leg reads the GIN \
                     index"
                .into(),
            hint: Some(sql),
        });
    }
    // SAFETY: a catalog lookup of the caller's role.
    if !crate::pg_compat::owns_relation(t.source, unsafe { pg_sys::GetUserId() }) {
        return Err(Absent {
            reason: format!(
                "only the owner of {} may create one; the text leg reads the GIN index",
                t.table
            ),
            hint: Some(format!("as the table's owner: {sql}")),
        });
    }
    run(client, func, &sql);
    let made = catalog::bm25_index(t).map(|found| (found, true));
    made.ok_or_else(|| Absent {
        reason: format!("the index {sql} made does not serve the collection"),
        hint: None,
    })
}

/// Why the collection can have no qortex_bm25 index its text leg reads; `None` if it can.
pub fn cannot_have(t: &Layout) -> Option<String> {
    if t.partition.is_some() {
        Some(
            "the collection is one partition of its table: the text leg reads the GIN index \
             within the partition, as under a filter"
                .into(),
        )
    } else if crate::citus::is_citus_table(t.source) {
        Some(
            "a Citus table (its rows are in shards, scored on the shards): the text leg \
             reads the GIN index"
                .into(),
        )
    } else {
        None
    }
}

/// The CREATE INDEX of the collection's qortex_bm25 index: on its tsvector column or
/// `to_tsvector(config, content)`, scoped by the user column, or with global rows by
/// `catalog::global_scope`.
pub fn create_statement(t: &Layout) -> String {
    let key = match &t.tsv_column {
        Some((_, _, tsv)) => quote_identifier(tsv),
        None => format!("({})", t.tsv),
    };
    let scope = match (
        t.user_column(),
        t.is_global.as_deref(),
        t.user_typname.as_deref(),
    ) {
        // global rows: the user's rows under the user id as text, the global ones under ''
        (Some(u), Some(g), _) => Some(format!("({})", catalog::global_scope(g, u))),
        (Some(u), None, Some(ty)) if SCOPE_TYPES.contains(&ty) => Some(u.to_owned()),
        _ => None,
    };
    format!(
        "CREATE INDEX ON {} USING qortex_bm25 ({key}{})",
        t.table,
        scope.map(|s| format!(", {s}")).unwrap_or_default()
    )
}

/// A NOTICE from `func`.
pub fn notice(func: &str, message: &str, hint: Option<String>) {
    let e = error(
        PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION,
        format!("{func}: {message}"),
    );
    match hint {
        Some(h) => e.hint(h).notice(),
        None => e.notice(),
    }
}
