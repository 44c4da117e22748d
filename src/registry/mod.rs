//! The registry of collections (docs/reference/collections.md, API.md §2), one file per
//! phase:
//!
//! - `create`: managed collections created with their tables and indexes
//!   (`qortex_create_collection`), and distributed over a Citus cluster with them.
//! - `register`: users' own tables registered in place (`qortex_register_collection`): the
//!   `columns` argument's specs and the checks of the table and its columns.
//! - `drop`: dropping (`qortex_drop_collection`) and forgetting a collection's row.
//! - `describe`: the description `qortex_collections()` and `qortex_status()` give of each.
//! - `bm25_index`: the qortex_bm25 index a collection's text leg reads, created for it or
//!   why it has none; `text_index`: its rebuild and check by collection name.
//!
//! Here: what creating and registering share (a new name's check, the text search
//! configuration, the catalog row).
//!
//! Checks happen in `qortex_core::collections` and here before anything is written.
//! Identifiers in generated SQL come from the catalog and go through `quote_identifier`;
//! values are bound parameters (DDL takes none: its only values are checked integers and
//! a quoted literal).
mod bm25_index;
mod create;
mod describe;
mod drop;
mod register;
mod text_index;

pub use create::distribute_managed;
pub use describe::describe;

use crate::errors::{error, invalid_param};
use crate::spi::{plan, spi_failed, INT4, JSONB, TEXT};
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::JsonB;
use qortex_core::collections::{self as spec, Distance};
use qortex_core::ParamError;
use serde_json::{Map, Value};

fn check_new_name(client: &SpiClient<'_>, func: &str, name: &str) {
    spec::check_name("name", name).unwrap_or_else(|e| invalid_param(func, e));
    let p = plan(
        client,
        "SELECT 1 FROM qortex.collections WHERE name = $1",
        &[TEXT],
        false,
    );
    let exists = client
        .select(&**p, Some(1), &[name.into()])
        .unwrap_or_else(spi_failed(func))
        .next()
        .is_some();
    if exists {
        error(
            PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT,
            format!("{func}: collection \"{name}\" already exists"),
        )
        .hint("choose another name, or drop it first with qortex_drop_collection")
        .raise();
    }
}

/// The canonical name of a text search configuration, or 22023 naming `arg`: qualified
/// unless it is in pg_catalog, so it names the same configuration under any search_path.
fn text_config(client: &SpiClient<'_>, func: &str, arg: &str, name: &str) -> String {
    let p = plan(
        client,
        "SELECT CASE WHEN n.nspname = 'pg_catalog' THEN pg_catalog.quote_ident(c.cfgname)
                     ELSE pg_catalog.format('%I.%I', n.nspname, c.cfgname) END
           FROM pg_catalog.pg_ts_config c
           JOIN pg_catalog.pg_namespace n ON n.oid = c.cfgnamespace
          WHERE (n.nspname OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) c.cfgname = $1)
             OR (c.cfgname = $1 AND pg_catalog.pg_ts_config_is_visible(c.oid))
          LIMIT 1",
        &[TEXT],
        false,
    );
    client
        .select(&**p, Some(1), &[name.into()])
        .unwrap_or_else(spi_failed(func))
        .next()
        .and_then(|r| r.get::<String>(1).ok().flatten())
        .unwrap_or_else(|| {
            invalid_param(
                func,
                ParamError::new(
                    arg,
                    format!("there is no text search configuration named {name:?}"),
                ),
            )
        })
}

#[allow(clippy::too_many_arguments)]
fn insert_collection(
    client: &mut SpiClient<'_>,
    func: &str,
    name: &str,
    kind: &str,
    source: &str,
    documents: Option<&str>,
    dims: i32,
    distance: Distance,
    cfg: &str,
    columns: Map<String, Value>,
    options: Value,
) {
    let p = plan(
        client,
        "INSERT INTO qortex.collections
                (name, kind, source, documents, dimensions, distance, text_config, columns,
                 options, source_oid)
         -- (INSERT ... SELECT: Citus takes no subquery in VALUES of a reference table)
         SELECT $1, $2, $3::regclass, $4::regclass, $5, $6, $7,
                pg_catalog.jsonb_object_agg(m.key, pg_catalog.jsonb_build_object(
                    'name', a.attname::text, 'attnum', a.attnum)),
                $9, $3::regclass::oid
           FROM pg_catalog.jsonb_each_text($8) m
           JOIN pg_catalog.pg_attribute a
             ON a.attrelid = $3::regclass AND a.attname = m.value
            AND a.attnum > 0 AND NOT a.attisdropped",
        &[TEXT, TEXT, TEXT, TEXT, INT4, TEXT, TEXT, JSONB, JSONB],
        true,
    );
    client
        .update(
            &**p,
            None,
            &[
                name.into(),
                kind.into(),
                source.into(),
                documents.into(),
                dims.into(),
                distance.name().into(),
                cfg.into(),
                JsonB(Value::Object(columns)).into(),
                JsonB(options).into(),
            ],
        )
        .unwrap_or_else(spi_failed(func));
}
