//! Users' own tables registered in place as collections: the `columns` argument's specs
//! (roles, partition, filters, document id), and the checks of the table and each column.
use super::bm25_index;
use super::drop::forget_registered;
use super::{check_new_name, describe, insert_collection, text_config};
use crate::catalog::{self, indexes, relation_name, FILTER_ROLE};
use crate::errors::{bad_arg, error, internal, invalid_param, raise, required};
use crate::spi::{plan, spi_failed, OID, TEXT};
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, SpiClient};
use pgrx::JsonB;
use qortex_core::collections::Distance;
use qortex_core::ParamError;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// The roles `columns` may map, and the column types each accepts.
const ROLES: [(&str, &[&str]); 8] = [
    ("id", &[]),
    ("embedding", &["vector"]),
    ("content", &["text", "varchar", "bpchar"]),
    ("tsvector", &["tsvector"]),
    ("metadata", &["jsonb", "json"]),
    (
        "user_id",
        &["text", "varchar", "bpchar", "uuid", "int4", "int8"],
    ),
    ("is_global", &["bool"]),
    ("document_id", &[]),
];

/// Column types a filter column may not have: no `=`, or nothing a filter value names.
const NOT_FILTERABLE: [&str; 6] = ["json", "vector", "halfvec", "sparsevec", "tsvector", "bit"];

/// Use an existing table in place as a collection (or, with `replace`, change how one is).
#[pg_extern(
    volatile,
    sql = r#"
CREATE FUNCTION qortex_register_collection(
    name TEXT, source regclass, columns jsonb, replace boolean DEFAULT false
) RETURNS jsonb VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
"#
)]
fn qortex_register_collection(
    name: Option<String>,
    source: Option<pg_sys::Oid>,
    columns: Option<crate::jsonb::Jsonb>,
    replace: Option<bool>,
) -> JsonB {
    const F: &str = "qortex_register_collection";
    crate::errors::require_writable(F);
    let name = required(F, "name", name);
    let source = required(F, "source", source);
    let replace = required(F, "replace", replace);
    let spec = match required(F, "columns", columns).0 {
        Value::Object(m) => m,
        other => invalid_param(
            F,
            ParamError::new("columns", format!("must be a JSON object, got {other}")),
        ),
    };
    let allowed: Vec<&str> = ROLES
        .iter()
        .map(|r| r.0)
        .chain([
            "distance",
            "text_config",
            "partition",
            "filters",
            "bm25_index",
        ])
        .collect();
    if let Some(k) = spec.keys().find(|k| !allowed.contains(&k.as_str())) {
        invalid_param(
            F,
            ParamError::new(
                format!("columns.{k}"),
                format!("unknown key (allowed: {})", allowed.join(", ")),
            ),
        );
    }
    for role in ["id", "embedding"] {
        if !spec.contains_key(role) {
            invalid_param(F, ParamError::new(format!("columns.{role}"), "is required"));
        }
    }
    if !spec.contains_key("content") && !spec.contains_key("tsvector") {
        invalid_param(
            F,
            ParamError::new(
                "columns.content",
                "is required unless columns.tsvector is given",
            ),
        );
    }
    let bm25_index = match spec.get("bm25_index") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(v) => invalid_param(
            F,
            ParamError::new(
                "columns.bm25_index",
                format!("must be true or false, got {v}"),
            ),
        ),
    };
    let partition = spec.get("partition").map(partition_spec);
    let filters = spec.get("filters").map_or_else(Vec::new, filters_spec);
    // the document id: a column, or a key of the metadata (LlamaIndex's `ref_doc_id`)
    let document_key = match spec.get("document_id") {
        Some(Value::Object(o)) => match (o.get("metadata_key"), o.len()) {
            (Some(Value::String(k)), 1) if !k.is_empty() => Some(k.clone()),
            _ => invalid_param(
                F,
                ParamError::new(
                    "columns.document_id",
                    format!(
                        "must be a column name or {{\"metadata_key\": \"<key>\"}}, got {}",
                        Value::Object(o.clone())
                    ),
                ),
            ),
        },
        _ => None,
    };
    if document_key.is_some() && !spec.contains_key("metadata") {
        invalid_param(
            F,
            ParamError::new(
                "columns.document_id",
                "names a metadata key, but columns.metadata maps no column",
            ),
        );
    }
    Spi::connect_mut(|client| {
        if replace {
            forget_registered(client, F, &name);
        }
        check_new_name(client, F, &name);
        let table = relation_name(client, source).unwrap_or_else(|| {
            raise(
                PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
                format!("{F}: source: no relation with oid {}", source.to_u32()),
            )
        });
        check_source(client, F, source, &table);
        let mut mapped = Map::new();
        let mut attnums = HashMap::new();
        let mut dims = 0;
        // (role, the types its column may have, the column, the argument that named it)
        let wanted: Vec<(String, &[&str], Value, String)> = ROLES
            .iter()
            .filter(|(role, _)| !(*role == "document_id" && document_key.is_some()))
            .filter_map(|(role, types)| {
                let v = spec.get(*role)?.clone();
                Some((role.to_string(), *types, v, format!("columns.{role}")))
            })
            .chain(partition.iter().map(|(col, _)| {
                (
                    "partition".into(),
                    &[][..],
                    json!(col),
                    "columns.partition.column".into(),
                )
            }))
            .chain(filters.iter().map(|col| {
                (
                    format!("{FILTER_ROLE}{col}"),
                    &[][..],
                    json!(col),
                    "columns.filters".into(),
                )
            }))
            .collect();
        for (role, types, v, arg) in &wanted {
            let role = role.as_str();
            let col = v.as_str().unwrap_or_else(|| {
                invalid_param(
                    F,
                    ParamError::new(arg.as_str(), format!("must be a column name, got {v}")),
                )
            });
            let (attnum, typname, typmod) = column_info(client, source, col).unwrap_or_else(|| {
                raise(
                    PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
                    format!("{F}: {arg}: table {table} has no column {col:?}"),
                )
            });
            if !types.is_empty() && !types.contains(&typname.as_str()) {
                invalid_param(
                    F,
                    ParamError::new(
                        arg.as_str(),
                        format!(
                            "column {col:?} is of type {typname}; it must be one of {}",
                            types.join(", ")
                        ),
                    ),
                );
            }
            if role == "embedding" {
                if typmod <= 0 {
                    bad_arg(
                        F,
                        ParamError::new(
                            arg.as_str(),
                            format!("column {col:?} is a vector without a fixed dimension"),
                        ),
                    )
                    .detail("Only a vector column of a fixed dimension can have an HNSW index.")
                    .hint(format!(
                        "give it one: ALTER TABLE {table} ALTER COLUMN {} TYPE vector(<n>)",
                        quote_identifier(col)
                    ))
                    .raise();
                }
                dims = typmod;
            }
            if role.starts_with(FILTER_ROLE) && NOT_FILTERABLE.contains(&typname.as_str()) {
                invalid_param(
                    F,
                    ParamError::new(
                        arg.as_str(),
                        format!(
                            "column {col:?} is of type {typname}, which a filter cannot compare"
                        ),
                    ),
                );
            }
            mapped.insert(role.into(), json!(col)); // (stored with its attnum)
            attnums.insert(role.to_owned(), attnum);
        }
        if let Some((_, value)) = &partition {
            check_partition_value(client, F, source, attnums["partition"], value);
        }
        let cfg_name = match spec.get("text_config") {
            None => "english".to_owned(),
            Some(Value::String(s)) => s.clone(),
            Some(v) => invalid_param(
                F,
                ParamError::new("columns.text_config", format!("must be text, got {v}")),
            ),
        };
        let cfg = text_config(client, F, "columns.text_config", &cfg_name);
        let emb = attnums["embedding"];
        let from_index = indexes(client, source)
            .into_iter()
            .find(|i| i.attnum == emb && (i.method == "hnsw" || i.method == "ivfflat"))
            .and_then(|i| opclass_distance(&i.opclass));
        let distance = match spec.get("distance") {
            None => from_index.unwrap_or(Distance::Cosine),
            Some(v) => {
                let d = v.as_str().and_then(Distance::parse).unwrap_or_else(|| {
                    invalid_param(
                        F,
                        ParamError::new(
                            "columns.distance",
                            format!("must be 'cosine', 'l2' or 'ip', got {v}"),
                        ),
                    )
                });
                if let Some(ix) = from_index.filter(|ix| *ix != d) {
                    invalid_param(
                        F,
                        ParamError::new(
                            "columns.distance",
                            format!(
                                "is {:?} but the embedding's vector index uses {:?}",
                                d.name(),
                                ix.name()
                            ),
                        ),
                    );
                }
                d
            }
        };
        let id = attnums["id"];
        if !catalog::unique_on(client, source, id) {
            error(
                PgSqlErrorCode::ERRCODE_WARNING,
                format!("{F}: no unique index covers only columns.id of {table}"),
            )
            .detail(
                "hybrid_search pages by id and identifies results by it, so ids should be \
                 unique.",
            )
            .hint(format!(
                "CREATE UNIQUE INDEX ON {table} ({})",
                spec["id"]
                    .as_str()
                    .map(quote_identifier)
                    .unwrap_or_default()
            ))
            .warn();
        }
        let mut options = json!({"distance": distance.name(), "text_config": cfg});
        if let Some((_, value)) = &partition {
            options["partition_value"] = json!(value);
        }
        if let Some(key) = &document_key {
            options["document_key"] = json!(key);
        }
        insert_collection(
            client,
            F,
            &name,
            "registered",
            &table,
            None,
            dims,
            distance,
            &cfg,
            mapped,
            options,
        );
        let layout = catalog::layout(client, F, &name);
        match bm25_index::ensure(client, F, &layout, bm25_index) {
            Ok((am, true)) => bm25_index::notice(
                F,
                &format!(
                    "created the qortex_bm25 index {} on {}: the text leg reads it",
                    quote_identifier(&am.index.name),
                    layout.table
                ),
                Some(
                    "columns.bm25_index = false registers without it (the text leg then reads \
                     the GIN index)"
                        .into(),
                ),
            ),
            Ok((_, false)) => {}
            Err(_) if !bm25_index => {}
            Err(absent) => bm25_index::notice(
                F,
                &format!(
                    "no qortex_bm25 index on {}: {}",
                    layout.table, absent.reason
                ),
                absent.hint,
            ),
        }
        JsonB(describe(client, F, &name))
    })
}

/// `columns.partition`: `{"column": <name>, "equals": <value>}`, the value as text.
fn partition_spec(v: &Value) -> (String, String) {
    const F: &str = "qortex_register_collection";
    let bad = || -> ! {
        invalid_param(
            F,
            ParamError::new(
                "columns.partition",
                format!(
                    "must be {{\"column\": \"<column>\", \"equals\": <string, number or \
                     boolean>}}, got {v}"
                ),
            ),
        )
    };
    let Value::Object(o) = v else { bad() };
    if o.len() != 2 {
        bad()
    }
    let column = o
        .get("column")
        .and_then(Value::as_str)
        .unwrap_or_else(|| bad());
    let value = match o.get("equals") {
        Some(Value::String(s)) => s.clone(),
        Some(n @ (Value::Number(_) | Value::Bool(_))) => n.to_string(),
        _ => bad(),
    };
    (column.to_owned(), value)
}

/// `columns.filters`: the names of columns a `filter` may name.
fn filters_spec(v: &Value) -> Vec<String> {
    let names: Option<Vec<String>> = v
        .as_array()
        .and_then(|a| a.iter().map(|c| c.as_str().map(str::to_owned)).collect());
    names.unwrap_or_else(|| {
        invalid_param(
            "qortex_register_collection",
            ParamError::new(
                "columns.filters",
                format!("must be an array of column names, got {v}"),
            ),
        )
    })
}

/// The partition's value must be one of its column's type (22P02 and the like otherwise).
fn check_partition_value(
    client: &SpiClient<'_>,
    func: &str,
    rel: pg_sys::Oid,
    attnum: i16,
    value: &str,
) {
    let column_type = catalog::column_type(client, rel, attnum)
        .unwrap_or_else(|| internal(func, format!("column {attnum} vanished")));
    let p = plan(client, &format!("SELECT $1::{column_type}"), &[TEXT], false);
    client
        .select(&**p, Some(1), &[value.into()])
        .unwrap_or_else(spi_failed(func));
}

fn check_source(client: &SpiClient<'_>, func: &str, oid: pg_sys::Oid, table: &str) {
    let p = plan(
        client,
        "SELECT c.relkind::text, pg_catalog.has_table_privilege(c.oid, 'SELECT')
           FROM pg_catalog.pg_class c WHERE c.oid = $1",
        &[OID],
        false,
    );
    let row = client
        .select(&**p, Some(1), &[oid.into()])
        .unwrap_or_else(spi_failed(func))
        .next()
        .unwrap_or_else(|| internal(func, format!("{table} vanished")));
    let kind = row.get::<String>(1).ok().flatten().unwrap_or_default();
    // a table: views, materialized views and foreign tables cannot carry the indexes the
    // legs read, nor the TIDs the text leg's index returns (a view was accepted once, and
    // every search failed)
    if !["r", "p"].contains(&kind.as_str()) {
        let what = match kind.as_str() {
            "v" => "a view",
            "m" => "a materialized view",
            "f" => "a foreign table",
            _ => "not a table",
        };
        error(
            PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
            format!("{func}: source: {table} is {what}; only a table can be registered"),
        )
        .hint("register the table it reads from; a user_id or filter in hybrid_search's options scopes the rows")
        .raise();
    }
    if row.get::<bool>(2).ok().flatten() != Some(true) {
        error(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("{func}: permission denied for table {table}"),
        )
        .detail("Registering a table needs the SELECT privilege on it.")
        .raise();
    }
}

/// (attnum, type name, typmod) of a column, by its name.
fn column_info(client: &SpiClient<'_>, rel: pg_sys::Oid, col: &str) -> Option<(i16, String, i32)> {
    let p = plan(
        client,
        "SELECT a.attnum, t.typname::text, a.atttypmod FROM pg_catalog.pg_attribute a
           JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
          WHERE a.attrelid = $1 AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
        &[OID, TEXT],
        false,
    );
    let r = client
        .select(&**p, Some(1), &[rel.into(), col.into()])
        .unwrap_or_else(spi_failed("qortex"))
        .next()?;
    Some((
        r.get::<i16>(1).ok().flatten()?,
        r.get::<String>(2).ok().flatten()?,
        r.get::<i32>(3).ok().flatten()?,
    ))
}

fn opclass_distance(opclass: &str) -> Option<Distance> {
    [Distance::Cosine, Distance::L2, Distance::Ip]
        .into_iter()
        .find(|d| d.opclass() == opclass)
}
