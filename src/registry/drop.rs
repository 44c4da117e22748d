//! Dropping a collection (a managed one's tables with it), and forgetting a registered one's
//! mapping and BM25 index (also for `qortex_register_collection`'s `replace`).
use crate::catalog::{count_rows, load, relation_name};
use crate::errors::{error, required};
use crate::spi::{plan, run, spi_failed, TEXT};
use crate::text_index;
use pgrx::prelude::*;
use pgrx::spi::{quote_literal, SpiClient};

/// Forget a collection. Registered: the table is the user's and stays. Managed: its
/// tables are dropped; if they hold documents, only with `drop_data => true`.
#[pg_extern(volatile)]
fn qortex_drop_collection(name: Option<String>, drop_data: default!(Option<bool>, false)) {
    const F: &str = "qortex_drop_collection";
    crate::errors::require_writable(F);
    let name = required(F, "name", name);
    let drop_data = drop_data.unwrap_or(false);
    Spi::connect_mut(|client| {
        let c = load(client, F, &name);
        if c.managed {
            let docs = c.documents.and_then(|o| relation_name(client, o));
            let chunks = relation_name(client, c.source);
            let held = docs
                .as_deref()
                .and_then(|d| count_rows(client, d))
                .unwrap_or(0);
            if held > 0 && !drop_data {
                error(
                    PgSqlErrorCode::ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST,
                    format!("{F}: collection \"{name}\" holds {held} documents"),
                )
                .hint(format!(
                    "SELECT qortex_drop_collection({}, drop_data => true) deletes them with \
                     the collection",
                    quote_literal(&name)
                ))
                .raise();
            }
            text_index::drop_index(client, F, &name, None);
            for t in [chunks, docs].into_iter().flatten() {
                run(client, F, &format!("DROP TABLE {t}"));
            }
            forget(client, F, &name);
        } else {
            drop_registered(client, F, &name);
        }
    })
}

/// For `replace`: forget a registered collection's mapping and BM25 index (in the caller's
/// transaction, so a failed registration keeps the old one); nothing if there is none.
pub(super) fn forget_registered(client: &mut SpiClient<'_>, func: &str, name: &str) {
    let p = plan(
        client,
        "SELECT kind FROM qortex.collections WHERE name = $1",
        &[TEXT],
        false,
    );
    let kind = client
        .select(&**p, Some(1), &[name.into()])
        .unwrap_or_else(spi_failed(func))
        .next()
        .and_then(|r| r.get::<String>(1).ok().flatten());
    match kind.as_deref() {
        None => {}
        Some("registered") => drop_registered(client, func, name),
        Some(_) => error(
            PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
            format!(
                "{func}: collection \"{name}\" is managed; replace applies to a registered one"
            ),
        )
        .hint("choose another name")
        .raise(),
    }
}

/// Drop a registered collection's BM25 index and triggers and forget its mapping.
fn drop_registered(client: &mut SpiClient<'_>, func: &str, name: &str) {
    let c = load(client, func, name);
    let table = relation_name(client, c.source);
    let table = table.as_deref().map(|t| (t, c.source));
    text_index::drop_index(client, func, name, table);
    forget(client, func, name);
}

/// Remove a collection's row, and its latest recall check.
fn forget(client: &mut SpiClient<'_>, func: &str, name: &str) {
    let p = plan(
        client,
        "WITH checked AS (DELETE FROM qortex.recall_checks WHERE collection = $1)
         DELETE FROM qortex.collections WHERE name = $1",
        &[TEXT],
        true,
    );
    client
        .update(&**p, None, &[name.into()])
        .unwrap_or_else(spi_failed(func));
}
