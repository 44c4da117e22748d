//! Dropping a collection (a managed one's tables with it), and forgetting a registered one's
//! mapping (also for `qortex_register_collection`'s `replace`); its table keeps its indexes.
use crate::catalog::{count_rows, load, relation_name};
use crate::errors::{error, required};
use crate::spi::{plan, run, spi_failed, TEXT};
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
            for t in [chunks, docs].into_iter().flatten() {
                run(client, F, &format!("DROP TABLE {t}"));
            }
            forget(client, F, &name);
        } else {
            keeps_index(client, &name);
            forget(client, F, &name);
        }
    })
}

/// For `replace`: forget a registered collection's mapping (in the caller's
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
        Some("registered") => forget(client, func, name),
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

/// A NOTICE naming each qortex_bm25 index a registered collection's table keeps.
fn keeps_index(client: &SpiClient<'_>, name: &str) {
    const F: &str = "qortex_drop_collection";
    let c = load(client, F, name);
    // (a partition's collection reads no qortex_bm25 index of its table)
    let Some(table) = relation_name(client, c.source).filter(|_| c.attnum("partition").is_none())
    else {
        return;
    };
    let kept = crate::catalog::qortex_bm25_indexes(client, F, c.source);
    for index in kept {
        super::bm25_index::notice(
            F,
            &format!("the qortex_bm25 index {index} stays on {table}"),
            Some("DROP INDEX it if nothing else reads it".into()),
        );
    }
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
