//! The registry of collections (API.md §2): managed collections created with their tables
//! and indexes, users' own tables registered in place, dropping, and the description
//! `qortex_collections()` and `qortex_status()` give of each.
//!
//! Checks happen in `qortex_core::collections` and here before anything is written.
//! Identifiers in generated SQL come from the catalog and go through `quote_identifier`;
//! values are bound parameters (DDL takes none: its only values are checked integers and
//! a quoted literal).
use crate::catalog::{self, count_rows, indexes, load, quoted, relation_name, FILTER_ROLE};
use crate::errors::{bad_arg, error, internal, invalid_param, raise, required};
use crate::spi::{plan, run, spi_failed, INT4, JSONB, OID, TEXT};
use crate::text_index;
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, quote_literal, SpiClient};
use pgrx::JsonB;
use qortex_core::collections::{self as spec, CollectionOptions, Distance};
use qortex_core::ParamError;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

fn check_new_name(client: &SpiClient<'_>, func: &str, name: &str) {
    spec::check_name("name", name).unwrap_or_else(|e| invalid_param(func, e));
    let p = plan(
        client,
        "SELECT 1 FROM qortex.collections WHERE name = $1",
        &[TEXT],
        false,
    );
    let exists = client
        .select(&*p, Some(1), &[name.into()])
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
        .select(&*p, Some(1), &[name.into()])
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

/// Create a qortex-managed collection: documents and chunks tables in schema `qortex`,
/// an HNSW index on the embeddings and a GIN index on the chunks' full text.
#[pg_extern(volatile)]
fn qortex_create_collection(
    name: Option<String>,
    dimensions: Option<i32>,
    options: default!(Option<crate::jsonb::Jsonb>, "'{}'"),
) -> JsonB {
    const F: &str = "qortex_create_collection";
    crate::errors::require_writable(F);
    let name = required(F, "name", name);
    let dims = required(F, "dimensions", dimensions);
    if !(1..=spec::MAX_DIMENSIONS).contains(&dims) {
        invalid_param(
            F,
            ParamError::new(
                "dimensions",
                format!(
                    "must be within [1, {}] (pgvector's HNSW limit), got {dims}",
                    spec::MAX_DIMENSIONS
                ),
            ),
        );
    }
    let opts = CollectionOptions::parse(options.as_ref().map(|j| &j.0))
        .unwrap_or_else(|e| invalid_param(F, e));
    Spi::connect_mut(|client| {
        check_new_name(client, F, &name);
        let cfg = text_config(client, F, "options.text_config", &opts.text_config);
        let (vec, _) = catalog::vector_type(client, F);
        let docs = quoted("qortex", &format!("{name}_documents"));
        let chunks = quoted("qortex", &format!("{name}_chunks"));
        let ix = |suffix: &str| quote_identifier(format!("{name}_{suffix}"));
        let ddl = [
            format!(
                "CREATE TABLE {docs} (
                    id            BIGINT PRIMARY KEY
                                  DEFAULT pg_catalog.nextval('qortex.document_ids'),
                    user_id       TEXT,
                    document_type TEXT NOT NULL DEFAULT 'text' CHECK (document_type IN
                                  ('text', 'markdown', 'html', 'pdf', 'code')),
                    is_global     BOOLEAN NOT NULL DEFAULT false,
                    content       TEXT,
                    metadata      JSONB NOT NULL DEFAULT '{{}}',
                    external_id   TEXT,
                    created_at    TIMESTAMPTZ NOT NULL DEFAULT pg_catalog.now())"
            ),
            format!("CREATE INDEX {} ON {docs} (user_id)", ix("documents_user")),
            format!(
                "CREATE INDEX {} ON {docs} (is_global)",
                ix("documents_global")
            ),
            format!(
                "CREATE INDEX {} ON {docs} (created_at DESC)",
                ix("documents_created")
            ),
            format!(
                "CREATE TABLE {chunks} (
                    id          BIGINT PRIMARY KEY
                                DEFAULT pg_catalog.nextval('qortex.chunk_ids'),
                    document_id BIGINT NOT NULL REFERENCES {docs} (id) ON DELETE CASCADE,
                    chunk_index INT NOT NULL,
                    content     TEXT NOT NULL,
                    embedding   {vec}.vector({dims}) NOT NULL,
                    metadata    JSONB NOT NULL DEFAULT '{{}}',
                    user_id     TEXT,
                    is_global   BOOLEAN NOT NULL DEFAULT false,
                    fts         TSVECTOR GENERATED ALWAYS AS
                                (pg_catalog.to_tsvector({}::regconfig, content)) STORED,
                    UNIQUE (document_id, chunk_index))",
                quote_literal(&cfg)
            ),
            format!(
                "CREATE INDEX {} ON {chunks} USING hnsw (embedding {vec}.{})
                   WITH (m = {}, ef_construction = {})",
                ix("chunks_hnsw"),
                opts.distance.opclass(),
                opts.m,
                opts.ef_construction
            ),
            format!(
                "CREATE INDEX {} ON {chunks} USING gin (fts)",
                ix("chunks_fts")
            ),
            format!(
                "CREATE INDEX {} ON {chunks} (user_id, is_global)",
                ix("chunks_user")
            ),
        ];
        for sql in &ddl {
            run(client, F, sql);
        }
        // role → column: the managed table's columns are named for their roles
        let mut columns: Map<String, Value> = [
            "id",
            "document_id",
            "content",
            "embedding",
            "metadata",
            "user_id",
            "is_global",
        ]
        .iter()
        .map(|c| (c.to_string(), json!(c)))
        .collect();
        columns.insert("tsvector".into(), json!("fts"));
        let mut stored_opts = opts.to_json();
        stored_opts["text_config"] = json!(cfg);
        insert_collection(
            client,
            F,
            &name,
            "managed",
            &chunks,
            Some(&docs),
            dims,
            opts.distance,
            &cfg,
            columns,
            stored_opts,
        );
        match crate::citus::distributed() {
            true => distribute_collection(client, F, &name, &chunks, &docs),
            false => {
                text_index::create(client, F, &catalog::layout(client, F, &name));
            }
        }
        JsonB(describe(client, F, &name))
    })
}

/// Spread every managed collection over the Citus cluster (`qortex_distribute`), as new ones
/// are once it has run; returns how many there are.
pub fn distribute_managed(client: &mut SpiClient<'_>, func: &str) -> usize {
    let p = plan(
        client,
        "SELECT name, source::text, documents::text FROM qortex.collections
          WHERE kind = 'managed' ORDER BY name",
        &[],
        false,
    );
    let managed: Vec<(String, String, String)> = client
        .select(&*p, None, &[])
        .unwrap_or_else(spi_failed(func))
        .filter_map(|r| {
            Some((
                r.get::<String>(1).ok()??,
                r.get::<String>(2).ok()??,
                r.get::<String>(3).ok()??,
            ))
        })
        .collect();
    for (name, chunks, docs) in &managed {
        distribute_collection(client, func, name, chunks, docs);
    }
    managed.len()
}

/// A managed collection's documents distributed by id and its chunks by document, co-located,
/// so a document and its chunks share a shard (ingestion and deletion of a document touch
/// one). Its BM25 index goes: Citus distributes no table with triggers, and the text leg
/// scores on the shards instead. Citus wants the distribution column in every unique
/// constraint, so the chunks' primary key becomes (id, document_id); ids stay unique, from
/// their sequence.
fn distribute_collection(
    client: &mut SpiClient<'_>,
    func: &str,
    name: &str,
    chunks: &str,
    docs: &str,
) {
    let p = plan(
        client,
        "SELECT c.conrelid::oid, c.conname::text, pg_catalog.array_length(c.conkey, 1)
           FROM pg_catalog.pg_constraint c
          WHERE c.conrelid = $1::regclass AND c.contype = 'p'",
        &[TEXT],
        false,
    );
    let key = client
        .select(&*p, Some(1), &[chunks.into()])
        .unwrap_or_else(spi_failed(func))
        .next()
        .and_then(|r| {
            Some((
                r.get::<pg_sys::Oid>(1).ok()??,
                r.get::<String>(2).ok()??,
                r.get::<i32>(3).ok()??,
            ))
        });
    if let Some((oid, constraint, 1)) = key {
        if !crate::citus::is_citus_table(oid) {
            text_index::drop_index(client, func, name, Some((chunks, oid)));
            let p = plan(
                client,
                "UPDATE qortex.collections SET text_index = NULL, text_index_stats = NULL
                  WHERE name = $1",
                &[TEXT],
                true,
            );
            client
                .update(&*p, None, &[name.into()])
                .unwrap_or_else(spi_failed(func));
        }
        run(
            client,
            func,
            &format!(
                "ALTER TABLE {chunks} DROP CONSTRAINT {}, ADD PRIMARY KEY (id, document_id)",
                quote_identifier(constraint)
            ),
        );
    }
    crate::citus::distribute(
        client,
        func,
        &[(docs, "id", None), (chunks, "document_id", Some(docs))],
    );
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
            &*p,
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
        .chain(["distance", "text_config", "partition", "filters"])
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
                "hybrid_search pages by id, so ids should be unique; without such an index the \
                 collection has no BM25 index and its text leg reads the GIN index.",
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
        text_index::create(client, F, &catalog::layout(client, F, &name));
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
        .select(&*p, Some(1), &[value.into()])
        .unwrap_or_else(spi_failed(func));
}

/// For `replace`: forget a registered collection's mapping and BM25 index (in the caller's
/// transaction, so a failed registration keeps the old one); nothing if there is none.
fn forget_registered(client: &mut SpiClient<'_>, func: &str, name: &str) {
    let p = plan(
        client,
        "SELECT kind FROM qortex.collections WHERE name = $1",
        &[TEXT],
        false,
    );
    let kind = client
        .select(&*p, Some(1), &[name.into()])
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

/// Remove a collection's row.
fn forget(client: &mut SpiClient<'_>, func: &str, name: &str) {
    let p = plan(
        client,
        "DELETE FROM qortex.collections WHERE name = $1",
        &[TEXT],
        true,
    );
    client
        .update(&*p, None, &[name.into()])
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
        .select(&*p, Some(1), &[oid.into()])
        .unwrap_or_else(spi_failed(func))
        .next()
        .unwrap_or_else(|| internal(func, format!("{table} vanished")));
    let kind = row.get::<String>(1).ok().flatten().unwrap_or_default();
    // a table: its BM25 index is kept by triggers, which views, materialized views and
    // foreign tables cannot carry (a view was accepted once, and every search failed)
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
        .select(&*p, Some(1), &[rel.into(), col.into()])
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

/// Everything about one collection, as `qortex_collections().details` and the return value
/// of create/register show it.
pub fn describe(client: &SpiClient<'_>, func: &str, name: &str) -> Value {
    let c = load(client, func, name);
    let Some(table) = relation_name(client, c.source) else {
        return json!({
            "name": c.name, "kind": c.kind(),
            "source": null, "dimensions": c.dimensions,
            "problem": "its table no longer exists; remove it with qortex_drop_collection",
        });
    };
    let columns: Map<String, Value> = c
        .resolved
        .iter()
        .filter(|(role, _)| !role.starts_with(FILTER_ROLE) && *role != "partition")
        .map(|(role, (_, n))| (role.clone(), json!(quote_identifier(n))))
        .collect();
    let mut filters: Vec<String> = c
        .filter_roles()
        .filter_map(|(_, role)| Some(quote_identifier(&c.resolved.get(role)?.1)))
        .collect();
    filters.sort();
    // (column quoted, its type, the value)
    let partition = c.resolved.get("partition").map(|(attnum, n)| {
        (
            quote_identifier(n),
            catalog::column_type(client, c.source, *attnum).unwrap_or_default(),
            c.option("partition_value").unwrap_or_default().to_owned(),
        )
    });
    let idx = indexes(client, c.source);
    let role_of = |attnum: i16| {
        c.resolved
            .iter()
            .filter(|(_, (a, _))| *a == attnum)
            .map(|(k, _)| k.clone())
            .min()
    };
    let index_json: Vec<Value> = idx
        .iter()
        .map(|i| {
            json!({"name": i.name, "method": i.method, "column": role_of(i.attnum),
                   "opclass": i.opclass, "size_bytes": i.size_bytes})
        })
        .collect();
    let on = |role: &str, methods: &[&str]| {
        c.attnum(role).and_then(|a| {
            idx.iter()
                .find(|i| i.attnum == a && methods.contains(&i.method.as_str()))
        })
    };
    let vector_index = on("embedding", &["hnsw", "ivfflat"]);
    let text_index = on("tsvector", &["gin", "gist"]);
    let mut vector_leg = json!({"indexed": vector_index.is_some(),
                                "index": vector_index.map(|i| &i.name)});
    if vector_index.is_none() {
        vector_leg["hint"] = json!(format!(
            "no HNSW index on the embedding: the vector leg scans every row; add one with \
             CREATE INDEX ON {table} USING hnsw ({} {})",
            columns
                .get("embedding")
                .and_then(Value::as_str)
                .unwrap_or("embedding"),
            c.distance.opclass()
        ));
    }
    let mut text_leg = json!({"indexed": text_index.is_some(),
                              "index": text_index.map(|i| &i.name)});
    if text_index.is_none() {
        let content = columns
            .get("content")
            .and_then(Value::as_str)
            .unwrap_or("content");
        text_leg["hint"] = json!(match columns.get("tsvector") {
            Some(ts) => format!(
                "no GIN index on {ts}: add one with CREATE INDEX ON {table} USING gin ({ts})"
            ),
            None => format!(
                "the text leg has no index: it computes to_tsvector on every row. Add a \
                 column and an index, then register the collection again with \
                 \"tsvector\": \"fts\": ALTER TABLE {table} ADD COLUMN fts tsvector GENERATED \
                 ALWAYS AS (to_tsvector({}, {content})) STORED; CREATE INDEX ON {table} \
                 USING gin (fts)",
                quote_literal(&c.text_config)
            ),
        });
    }
    text_leg["text_index"] = text_index::describe(client, func, &c);

    let mut d = json!({
        "name": c.name,
        "kind": c.kind(),
        "source": table,
        "dimensions": c.dimensions,
        "distance": c.distance.name(),
        "text_config": c.text_config,
        "columns": columns,
        "rows": catalog::count_rows_where(
            client,
            &table,
            partition.as_ref().map(|(c, t, v)| (c.as_str(), t.as_str(), v.as_str())),
        ),
        "indexes": index_json,
        "vector_leg": vector_leg,
        "text_leg": text_leg,
    });
    if !filters.is_empty() {
        d["filters"] = json!(filters);
    }
    if let Some((column, _, value)) = &partition {
        d["partition"] = json!({"column": column, "equals": value});
    }
    if let Some(key) = c.option("document_key") {
        d["columns"]["document_id"] = json!({"metadata_key": key});
    }
    if let Some(docs) = c.documents.and_then(|o| relation_name(client, o)) {
        d["documents"] = json!(count_rows(client, &docs));
        d["documents_table"] = json!(docs);
    }
    d
}

/// Every collection, with row counts and indexes.
#[allow(clippy::type_complexity)]
#[pg_extern(stable)]
fn qortex_collections() -> TableIterator<
    'static,
    (
        name!(name, String),
        name!(kind, String),
        name!(source, Option<String>),
        name!(dimensions, i32),
        name!(rows, Option<i64>),
        name!(distance, Option<String>),
        name!(vector_index, Option<String>),
        name!(text_index, Option<String>),
        name!(details, JsonB),
    ),
> {
    const F: &str = "qortex_collections";
    let rows: Vec<_> = Spi::connect(|client| {
        let names = catalog::names(client, F);
        names
            .iter()
            .map(|n| {
                let d = describe(client, F, n);
                let s = |v: &Value| v.as_str().map(str::to_owned);
                (
                    n.clone(),
                    s(&d["kind"]).unwrap_or_default(),
                    s(&d["source"]),
                    d["dimensions"].as_i64().unwrap_or(0) as i32,
                    d["rows"].as_i64(),
                    s(&d["distance"]),
                    s(&d["vector_leg"]["index"]),
                    s(&d["text_leg"]["index"]),
                    JsonB(d),
                )
            })
            .collect()
    });
    TableIterator::new(rows)
}

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
