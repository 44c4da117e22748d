//! A collection's BM25 index, by the collection's name: the `qortex_bm25` index on its
//! table (`bm25am`; which index serves a collection: `catalog::bm25_index`).
//! `qortex_refresh_text_index` rebuilds it (a REINDEX) or creates it;
//! `qortex_check_text_index` compares it with the table. A collection without one reads
//! the GIN index (`registry::bm25_index` says why it has none).
use super::bm25_index;
use crate::catalog::{self, relation_name};
use crate::errors::{error, required};
use crate::pg_compat::may_read;
use crate::spi::run;
use pgrx::prelude::*;
use pgrx::spi::quote_literal;
use pgrx::JsonB;
use serde_json::json;
use std::time::Instant;

fn permission_denied(func: &str, table: &str) -> ! {
    error(
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        format!("{func}: permission denied for table {table}"),
    )
    .raise()
}

/// Rebuild the collection's qortex_bm25 index (REINDEX: after `ALTER TEXT SEARCH
/// CONFIGURATION`, or to compact it), or create it if the collection has none and can
/// (as `qortex_register_collection` would).
#[pg_extern(volatile)]
fn qortex_refresh_text_index(collection: Option<String>) -> JsonB {
    const F: &str = "qortex_refresh_text_index";
    crate::errors::require_writable(F);
    let name = required(F, "collection", collection);
    Spi::connect_mut(|client| {
        let t = catalog::layout(client, F, &name);
        if !may_read(t.source) {
            permission_denied(F, &t.table);
        }
        let started = Instant::now();
        let (am, created) = match bm25_index::ensure(client, F, &t, true) {
            Ok(found) => found,
            Err(absent) => {
                let e = error(
                    PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                    format!(
                        "{F}: collection \"{name}\" has no qortex_bm25 index: {}",
                        absent.reason
                    ),
                );
                match absent.hint {
                    Some(h) => e.hint(h).raise(),
                    None => e.raise(),
                }
            }
        };
        if !created {
            let index = relation_name(client, am.index.oid).unwrap_or_else(|| {
                error(
                    PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
                    format!("{F}: the index of collection \"{name}\" was dropped meanwhile"),
                )
                .raise()
            });
            run(client, F, &format!("REINDEX INDEX {index}"));
        }
        JsonB(json!({
            "built": true,
            "created": created,
            "index": am.index.name,
            "method": "qortex_bm25",
            "seconds": (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        }))
    })
}

/// Compare the collection's qortex_bm25 index with its table (`qortex_bm25_check`), the
/// index's name added.
#[pg_extern(stable)]
fn qortex_check_text_index(collection: Option<String>) -> JsonB {
    const F: &str = "qortex_check_text_index";
    let name = required(F, "collection", collection);
    Spi::connect(|client| {
        let t = catalog::layout(client, F, &name);
        if !may_read(t.source) {
            permission_denied(F, &t.table);
        }
        let Some(am) = catalog::bm25_index(&t) else {
            let e = error(
                PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
                format!("{F}: collection \"{name}\" has no qortex_bm25 index"),
            );
            match bm25_index::cannot_have(&t) {
                Some(reason) => e.detail(reason).raise(),
                None => e
                    .hint(format!(
                        "SELECT qortex_refresh_text_index({}) creates it",
                        quote_literal(&name)
                    ))
                    .raise(),
            }
        };
        let mut report = crate::bm25am::check::check(F, am.index.oid);
        report["index"] = json!(am.index.name);
        JsonB(report)
    })
}
