//! API.md §2: collections (managed tables, or the user's own registered in place),
//! transactional ingestion with jobs, and user memories.
//!
//! Identifiers in generated SQL come from the catalog and go through `quote_identifier`;
//! values are bound parameters (DDL takes none: its only values are checked integers and
//! a quoted literal). Checks happen in `qortex_core::collections` before anything is written.
use crate::search::Target;
use crate::spi_util::{
    invalid_param, object_arg, plan, raise, required, BOOL, INT2, INT4, INT8, JSONB, JSONB_ARRAY,
    OID, TEXT, TEXT_ARRAY,
};
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, quote_literal, SpiClient};
use pgrx::JsonB;
use qortex_core::collections::{self as spec, CollectionOptions, Distance};
use qortex_core::ParamError;
use serde_json::{json, Map, Value};
use std::panic::AssertUnwindSafe;
use std::rc::Rc;

/// A collection as stored in `qortex.collections`.
pub struct Collection {
    pub name: String,
    pub managed: bool,
    pub source: pg_sys::Oid,
    pub documents: Option<pg_sys::Oid>,
    pub dimensions: i32,
    pub distance: Distance,
    pub text_config: String,
    /// role → attribute number of `source`
    pub columns: Map<String, Value>,
    /// The text index's table and build statistics, and whether rows changed since.
    pub text_index: Option<(String, Value)>,
    pub text_index_stale: bool,
}

impl Collection {
    pub fn attnum(&self, role: &str) -> Option<i16> {
        self.columns
            .get(role)
            .and_then(Value::as_i64)
            .map(|n| n as i16)
    }
}

fn quoted(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_identifier(schema), quote_identifier(name))
}

/// The collection `name`, or 42704.
pub fn load(client: &SpiClient<'_>, func: &str, name: &str) -> Collection {
    let p = plan(
        client,
        "SELECT kind, source::oid, documents::oid, dimensions, distance, text_config::text,
                columns, text_index::text, text_index_stats, text_index_stale
           FROM qortex.collections WHERE name = $1",
        &[TEXT],
        false,
    );
    let row = client
        .select(&*p, Some(1), &[name.into()])
        .unwrap_or_else(|e| error!("{func}: {e}"))
        .next();
    let Some(row) = row else {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("{func}: collection \"{name}\" does not exist (see qortex_collections())"),
        )
    };
    let get_text = |i: usize| row.get::<String>(i).ok().flatten().unwrap_or_default();
    Collection {
        name: name.to_owned(),
        managed: get_text(1) == "managed",
        source: row.get::<pg_sys::Oid>(2).ok().flatten().unwrap_or_default(),
        documents: row.get::<pg_sys::Oid>(3).ok().flatten(),
        dimensions: row.get::<i32>(4).ok().flatten().unwrap_or_default(),
        distance: Distance::parse(&get_text(5)).unwrap_or(Distance::Cosine),
        text_config: get_text(6),
        columns: match row.get::<JsonB>(7).ok().flatten() {
            Some(JsonB(Value::Object(m))) => m,
            _ => Map::new(),
        },
        text_index: row
            .get::<String>(8)
            .ok()
            .flatten()
            .zip(row.get::<JsonB>(9).ok().flatten().map(|j| j.0)),
        text_index_stale: row.get::<bool>(10).ok().flatten().unwrap_or(true),
    }
}

/// `schema.table`, quoted, of a relation; `None` if it no longer exists.
pub fn relation_name(client: &SpiClient<'_>, oid: pg_sys::Oid) -> Option<String> {
    let p = plan(
        client,
        "SELECT n.nspname::text, c.relname::text FROM pg_catalog.pg_class c
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
        &[OID],
        false,
    );
    let row = client
        .select(&*p, Some(1), &[oid.into()])
        .unwrap_or_else(|e| error!("qortex: {e}"))
        .next()?;
    Some(quoted(
        &row.get::<String>(1).ok().flatten()?,
        &row.get::<String>(2).ok().flatten()?,
    ))
}

/// The source table's quoted name, or 42P01 if it was dropped behind qortex's back.
pub fn source_name(client: &SpiClient<'_>, func: &str, c: &Collection) -> String {
    relation_name(client, c.source).unwrap_or_else(|| {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            format!(
                "{func}: the table of collection \"{}\" no longer exists; \
                 remove the collection with qortex_drop_collection('{}')",
                c.name, c.name
            ),
        )
    })
}

/// The quoted name of a column of `rel`, by attribute number.
pub fn column_name(client: &SpiClient<'_>, rel: pg_sys::Oid, attnum: i16) -> Option<String> {
    let p = plan(
        client,
        "SELECT attname::text FROM pg_catalog.pg_attribute
          WHERE attrelid = $1 AND attnum = $2 AND NOT attisdropped",
        &[OID, INT2],
        false,
    );
    client
        .select(&*p, Some(1), &[rel.into(), attnum.into()])
        .unwrap_or_else(|e| error!("qortex: {e}"))
        .next()
        .and_then(|r| r.get::<String>(1).ok().flatten())
        .map(quote_identifier)
}

/// pgvector's schema, quoted, for type and operator-class names in generated SQL.
pub fn vector_schema(client: &SpiClient<'_>) -> String {
    let p = plan(
        client,
        "SELECT n.nspname::text FROM pg_catalog.pg_extension e
           JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'vector'",
        &[],
        false,
    );
    client
        .select(&*p, Some(1), &[])
        .unwrap_or_else(|e| error!("qortex: {e}"))
        .next()
        .and_then(|r| r.get::<String>(1).ok().flatten())
        .map(quote_identifier)
        .unwrap_or_else(|| error!("qortex: the vector extension is not installed"))
}

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
        .unwrap_or_else(|e| error!("{func}: {e}"))
        .next()
        .is_some();
    if exists {
        raise(
            PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT,
            format!("{func}: collection \"{name}\" already exists"),
        );
    }
}

/// The canonical name of a text search configuration, or 22023 naming `arg`.
fn text_config(client: &SpiClient<'_>, func: &str, arg: &str, name: &str) -> String {
    let p = plan(
        client,
        "SELECT c.oid::pg_catalog.regconfig::text
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
        .unwrap_or_else(|e| error!("{func}: {e}"))
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

/// Run a statement without parameters; an error names `func`.
pub fn run(client: &mut SpiClient<'_>, func: &str, sql: &str) {
    client
        .update(sql, None, &[])
        .unwrap_or_else(|e| error!("{func}: {e}"));
}

/// Create a qortex-managed collection: documents and chunks tables in schema `qortex`,
/// an HNSW index on the embeddings and a GIN index on the chunks' full text.
#[pg_extern(volatile)]
fn qortex_create_collection(
    name: Option<String>,
    dimensions: Option<i32>,
    options: default!(Option<JsonB>, "'{}'"),
) -> JsonB {
    const F: &str = "qortex_create_collection";
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
        let vec = vector_schema(client);
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
        run(client, F, &crate::text_index::trigger_sql(&name, &chunks));
        let mut columns = attnums(client, &chunks);
        if let Some(fts) = columns.remove("fts") {
            columns.insert("tsvector".into(), fts);
        }
        columns.remove("chunk_index");
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
        JsonB(describe(client, F, &name))
    })
}

/// Column name → attribute number of a table.
fn attnums(client: &SpiClient<'_>, table: &str) -> Map<String, Value> {
    let p = plan(
        client,
        "SELECT attname::text, attnum FROM pg_catalog.pg_attribute
          WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped",
        &[TEXT],
        false,
    );
    client
        .select(&*p, None, &[table.into()])
        .unwrap_or_else(|e| error!("qortex: {e}"))
        .filter_map(|r| {
            Some((
                r.get::<String>(1).ok().flatten()?,
                json!(r.get::<i16>(2).ok().flatten()?),
            ))
        })
        .collect()
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
                (name, kind, source, documents, dimensions, distance, text_config, columns, options)
         VALUES ($1, $2, $3::regclass, $4::regclass, $5, $6, $7::regconfig, $8, $9)",
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
        .unwrap_or_else(|e| error!("{func}: {e}"));
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

/// Use an existing table in place as a collection.
#[pg_extern(
    volatile,
    sql = r#"
CREATE FUNCTION qortex_register_collection(name TEXT, source regclass, columns jsonb)
RETURNS jsonb VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
"#
)]
fn qortex_register_collection(
    name: Option<String>,
    source: Option<pg_sys::Oid>,
    columns: Option<JsonB>,
) -> JsonB {
    const F: &str = "qortex_register_collection";
    let name = required(F, "name", name);
    let source = required(F, "source", source);
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
        .chain(["distance", "text_config"])
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
    Spi::connect_mut(|client| {
        check_new_name(client, F, &name);
        let table = relation_name(client, source).unwrap_or_else(|| {
            raise(
                PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
                format!("{F}: source: no relation with oid {}", source.to_u32()),
            )
        });
        check_source(client, F, source, &table);
        let mut mapped = Map::new();
        let mut dims = 0;
        for (role, types) in ROLES {
            let Some(v) = spec.get(role) else { continue };
            let arg = format!("columns.{role}");
            let col = v.as_str().unwrap_or_else(|| {
                invalid_param(
                    F,
                    ParamError::new(&arg, format!("must be a column name, got {v}")),
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
                        &arg,
                        format!(
                            "column {col:?} is of type {typname}; it must be one of {}",
                            types.join(", ")
                        ),
                    ),
                );
            }
            if role == "embedding" {
                if typmod <= 0 {
                    invalid_param(
                        F,
                        ParamError::new(
                            &arg,
                            format!(
                                "column {col:?} is a vector without a fixed dimension; give it \
                                 one (ALTER TABLE {table} ALTER COLUMN {} TYPE vector(<n>)) so \
                                 it can have an HNSW index",
                                quote_identifier(col)
                            ),
                        ),
                    );
                }
                dims = typmod;
            }
            mapped.insert(role.into(), json!(attnum));
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
        let emb = mapped["embedding"].as_i64().unwrap_or_default() as i16;
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
        let id = mapped["id"].as_i64().unwrap_or_default() as i16;
        if !unique_on(client, source, id) {
            warning!(
                "{F}: no unique index covers only columns.id of {table}; hybrid_search pages \
                 by id, so ids should be unique"
            );
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
            json!({"distance": distance.name(), "text_config": cfg}),
        );
        JsonB(describe(client, F, &name))
    })
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
        .unwrap_or_else(|e| error!("{func}: {e}"))
        .next()
        .unwrap_or_else(|| error!("{func}: {table} vanished"));
    let kind = row.get::<String>(1).ok().flatten().unwrap_or_default();
    if !["r", "p", "m", "v", "f"].contains(&kind.as_str()) {
        invalid_param(
            func,
            ParamError::new(
                "source",
                format!("{table} is not a table, view or materialized view"),
            ),
        );
    }
    if row.get::<bool>(2).ok().flatten() != Some(true) {
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("{func}: permission denied for table {table} (SELECT is needed)"),
        );
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
        .unwrap_or_else(|e| error!("qortex: {e}"))
        .next()?;
    Some((
        r.get::<i16>(1).ok().flatten()?,
        r.get::<String>(2).ok().flatten()?,
        r.get::<i32>(3).ok().flatten()?,
    ))
}

fn unique_on(client: &SpiClient<'_>, rel: pg_sys::Oid, attnum: i16) -> bool {
    let p = plan(
        client,
        "SELECT 1 FROM pg_catalog.pg_index
          WHERE indrelid = $1 AND indisunique AND indnkeyatts = 1 AND indkey[0] = $2
            AND indpred IS NULL",
        &[OID, INT2],
        false,
    );
    client
        .select(&*p, Some(1), &[rel.into(), attnum.into()])
        .unwrap_or_else(|e| error!("qortex: {e}"))
        .next()
        .is_some()
}

/// An index whose first key is a plain column.
pub struct IndexInfo {
    pub name: String,
    pub method: String,
    pub attnum: i16,
    pub opclass: String,
    pub size_bytes: i64,
}

pub fn indexes(client: &SpiClient<'_>, rel: pg_sys::Oid) -> Vec<IndexInfo> {
    let p = plan(
        client,
        "SELECT ic.relname::text, am.amname::text, i.indkey[0], opc.opcname::text,
                pg_catalog.pg_relation_size(i.indexrelid)
           FROM pg_catalog.pg_index i
           JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
           JOIN pg_catalog.pg_am am ON am.oid = ic.relam
           JOIN pg_catalog.pg_opclass opc ON opc.oid = i.indclass[0]
          WHERE i.indrelid = $1 AND i.indkey[0] <> 0
          ORDER BY 1",
        &[OID],
        false,
    );
    client
        .select(&*p, None, &[rel.into()])
        .unwrap_or_else(|e| error!("qortex: {e}"))
        .filter_map(|r| {
            Some(IndexInfo {
                name: r.get::<String>(1).ok().flatten()?,
                method: r.get::<String>(2).ok().flatten()?,
                attnum: r.get::<i16>(3).ok().flatten()?,
                opclass: r.get::<String>(4).ok().flatten()?,
                size_bytes: r.get::<i64>(5).ok().flatten().unwrap_or(0),
            })
        })
        .collect()
}

fn opclass_distance(opclass: &str) -> Option<Distance> {
    [Distance::Cosine, Distance::L2, Distance::Ip]
        .into_iter()
        .find(|d| d.opclass() == opclass)
}

fn count_rows(client: &SpiClient<'_>, table: &str) -> i64 {
    client
        .select(
            &format!("SELECT pg_catalog.count(*) FROM {table}"),
            Some(1),
            &[],
        )
        .ok()
        .and_then(|t| t.first().get_one::<i64>().ok().flatten())
        .unwrap_or(0)
}

/// Everything about one collection, as `qortex_collections().details` and the return value
/// of create/register show it.
pub fn describe(client: &SpiClient<'_>, func: &str, name: &str) -> Value {
    let c = load(client, func, name);
    let Some(table) = relation_name(client, c.source) else {
        return json!({
            "name": c.name, "kind": if c.managed { "managed" } else { "registered" },
            "source": null, "dimensions": c.dimensions,
            "problem": "its table no longer exists; remove it with qortex_drop_collection",
        });
    };
    let mut columns = Map::new();
    for (role, attnum) in &c.columns {
        if let Some(n) = attnum
            .as_i64()
            .and_then(|a| column_name(client, c.source, a as i16))
        {
            columns.insert(role.clone(), json!(n));
        }
    }
    let idx = indexes(client, c.source);
    let role_of = |attnum: i16| {
        c.columns
            .iter()
            .find(|(_, v)| v.as_i64() == Some(attnum as i64))
            .map(|(k, _)| k.clone())
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
    text_leg["text_index"] = match &c.text_index {
        None => json!({"built": false, "hint": format!(
            "the text leg scores every GIN match; SELECT qortex_refresh_text_index({}) builds \
             the impact-ordered index that reads only each term's best rows",
            quote_literal(&c.name))}),
        Some((postings, stats)) => {
            let current = crate::text_index::IndexInfo::from_stats(postings, stats).is_some();
            let mut i = json!({"built": true, "table": postings, "stale": c.text_index_stale,
                               "stats": stats});
            if !current {
                i["hint"] = json!(format!(
                    "built by an earlier qortex in another layout and not used; rebuild it \
                     with SELECT qortex_refresh_text_index({})",
                    quote_literal(&c.name)
                ));
            } else if c.text_index_stale {
                i["hint"] = json!(format!(
                    "the table changed since the build: the text leg scores GIN matches \
                     until SELECT qortex_refresh_text_index({})",
                    quote_literal(&c.name)
                ));
            }
            i
        }
    };
    let mut d = json!({
        "name": c.name,
        "kind": if c.managed { "managed" } else { "registered" },
        "source": table,
        "dimensions": c.dimensions,
        "distance": c.distance.name(),
        "text_config": c.text_config,
        "columns": columns,
        "rows": count_rows(client, &table),
        "indexes": index_json,
        "vector_leg": vector_leg,
        "text_leg": text_leg,
    });
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
        let names: Vec<String> = client
            .select(
                "SELECT name FROM qortex.collections ORDER BY name",
                None,
                &[],
            )
            .unwrap_or_else(|e| error!("{F}: {e}"))
            .filter_map(|r| r.get::<String>(1).ok().flatten())
            .collect();
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
    let name = required(F, "name", name);
    let drop_data = drop_data.unwrap_or(false);
    Spi::connect_mut(|client| {
        let c = load(client, F, &name);
        if c.managed {
            let docs = c.documents.and_then(|o| relation_name(client, o));
            let chunks = relation_name(client, c.source);
            let held = docs.as_deref().map_or(0, |d| count_rows(client, d));
            if held > 0 && !drop_data {
                raise(
                    PgSqlErrorCode::ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST,
                    format!(
                        "{F}: collection \"{name}\" holds {held} documents; pass \
                         drop_data => true to delete them with the collection"
                    ),
                );
            }
            for t in [chunks, docs].into_iter().flatten() {
                run(client, F, &format!("DROP TABLE {t}"));
            }
        } else if let Some(table) = relation_name(client, c.source) {
            run(
                client,
                F,
                &format!(
                    "DROP TRIGGER IF EXISTS {} ON {table}",
                    crate::text_index::trigger_name(&name)
                ),
            );
        }
        run(
            client,
            F,
            &format!(
                "DROP TABLE IF EXISTS {}",
                crate::text_index::table_name(&name)
            ),
        );
        let p = plan(
            client,
            "DELETE FROM qortex.collections WHERE name = $1",
            &[TEXT],
            true,
        );
        client
            .update(&*p, None, &[name.as_str().into()])
            .unwrap_or_else(|e| error!("{F}: {e}"));
    })
}

/// A managed collection's layout (cached per backend, see `search::target`) and its
/// documents table; 0A000 for a registered collection.
fn managed(client: &SpiClient<'_>, func: &str, name: &str) -> (Rc<Target>, String) {
    let t = crate::search::target(client, func, name);
    if !t.managed {
        raise(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!(
                "{func}: collection \"{name}\" is registered: its table belongs to your \
                 application, which writes it; qortex writes managed collections only"
            ),
        );
    }
    let docs = t.documents.clone().unwrap_or_else(|| {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            format!(
                "{func}: the documents table of collection \"{name}\" no longer exists; \
                 remove the collection with qortex_drop_collection('{name}')"
            ),
        )
    });
    (t, docs)
}

/// Insert one document and all its chunks in one statement: all of it or nothing.
#[pg_extern(volatile)]
fn qortex_ingest(
    collection: Option<String>,
    document: Option<JsonB>,
    chunks: Option<JsonB>,
    job_id: default!(Option<i64>, "NULL"),
) -> Option<i64> {
    const F: &str = "qortex_ingest";
    let name = required(F, "collection", collection);
    let document = required(F, "document", document).0;
    let chunks = required(F, "chunks", chunks).0;
    Spi::connect_mut(|client| {
        let (t, docs) = managed(client, F, &name);
        let dims = t.dims as usize;
        let job = job_id.map(|id| lock_job(client, F, id, &name));
        let checked = spec::parse_document(&document)
            .and_then(|d| spec::parse_chunks(&chunks, dims).map(|ch| (d, ch)));
        let Some(job) = job else {
            let (doc, ch) = checked.unwrap_or_else(|e| invalid_param(F, e));
            return Some(insert_document(client, F, &t, &docs, &doc, ch));
        };
        let label = document
            .get("external_id")
            .and_then(Value::as_str)
            .map_or_else(|| json!(job.done() + 1), |s| json!(s));
        let outcome = match checked {
            Err(e) => Err(format!("{F}: {e}")),
            Ok((doc, ch)) => {
                let client = AssertUnwindSafe(&mut *client);
                in_subtransaction(move || {
                    let whole = client;
                    insert_document(whole.0, F, &t, &docs, &doc, ch)
                })
            }
        };
        record(client, F, &job, &label, outcome.as_ref().err());
        match outcome {
            Ok(id) => Some(id),
            Err(msg) => {
                warning!(
                    "{msg} (recorded in job {}; nothing of the document was stored)",
                    job.id
                );
                None
            }
        }
    })
}

fn insert_document(
    client: &mut SpiClient<'_>,
    func: &str,
    t: &Target,
    docs: &str,
    doc: &spec::Document,
    ch: spec::Chunks,
) -> i64 {
    let (chunks, vec) = (&t.table, &t.vector_schema);
    // Chunks carry the document's scope (user_id, is_global) and its metadata overlaid by
    // their own, so hybrid_search filters them without a join.
    let sql = format!(
        "WITH d AS (
            INSERT INTO {docs} (user_id, is_global, document_type, content, metadata, external_id)
            VALUES ($1, $2, $3, $4, $5, $6) RETURNING id
         ), c AS (
            INSERT INTO {chunks}
                   (document_id, chunk_index, content, embedding, metadata, user_id, is_global)
            SELECT d.id, (u.ord - 1)::int, u.content, CAST(u.emb AS {vec}.vector), $5 || u.meta,
                   $1, $2
              FROM d, ROWS FROM (pg_catalog.unnest($7::text[]), pg_catalog.unnest($8::text[]),
                                 pg_catalog.unnest($9::jsonb[]))
                      WITH ORDINALITY AS u(content, emb, meta, ord)
         )
         SELECT id FROM d"
    );
    let p = plan(
        client,
        &sql,
        &[
            TEXT,
            BOOL,
            TEXT,
            TEXT,
            JSONB,
            TEXT,
            TEXT_ARRAY,
            TEXT_ARRAY,
            JSONB_ARRAY,
        ],
        true,
    );
    let metas: Vec<JsonB> = ch.metadata.into_iter().map(JsonB).collect();
    client
        .update(
            &*p,
            Some(1),
            &[
                doc.user_id.as_deref().into(),
                doc.is_global.into(),
                doc.document_type.as_str().into(),
                doc.content.as_deref().into(),
                JsonB(doc.metadata.clone()).into(),
                doc.external_id.as_deref().into(),
                ch.content.into(),
                ch.embedding.into(),
                metas.into(),
            ],
        )
        .unwrap_or_else(|e| error!("{func}: {e}"))
        .next()
        .and_then(|r| r.get::<i64>(1).ok().flatten())
        .unwrap_or_else(|| error!("{func}: the insert returned no document id"))
}

/// Run `f` in a subtransaction: its error is caught and everything it did rolled back, as
/// a PL/pgSQL EXCEPTION block does.
fn in_subtransaction<R>(f: impl FnOnce() -> R + std::panic::UnwindSafe) -> Result<R, String> {
    unsafe {
        let cx = pg_sys::CurrentMemoryContext;
        let owner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(cx);
        PgTryBuilder::new(move || {
            let r = f();
            pg_sys::ReleaseCurrentSubTransaction();
            pg_sys::MemoryContextSwitchTo(cx);
            pg_sys::CurrentResourceOwner = owner;
            Ok(r)
        })
        .catch_others(move |e| {
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
            pg_sys::MemoryContextSwitchTo(cx);
            pg_sys::CurrentResourceOwner = owner;
            Err(match e {
                pg_sys::panic::CaughtError::PostgresError(r)
                | pg_sys::panic::CaughtError::ErrorReport(r)
                | pg_sys::panic::CaughtError::RustPanic { ereport: r, .. } => {
                    r.message().to_owned()
                }
            })
        })
        .execute()
    }
}

struct Job {
    id: i64,
    total: i64,
    processed: i64,
    failed: i64,
}

impl Job {
    fn done(&self) -> i64 {
        self.processed + self.failed
    }
}

/// Lock the job row for this document (concurrent ingests into one job queue here).
fn lock_job(client: &mut SpiClient<'_>, func: &str, id: i64, collection: &str) -> Job {
    let p = plan(
        client,
        "SELECT collection, total_documents, processed_documents, failed_documents
           FROM qortex.ingestion_jobs WHERE id = $1 FOR UPDATE",
        &[INT8],
        true,
    );
    let row = client
        .update(&*p, Some(1), &[id.into()])
        .unwrap_or_else(|e| error!("{func}: {e}"))
        .next()
        .unwrap_or_else(|| {
            raise(
                PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
                format!("{func}: job_id: there is no ingestion job {id}"),
            )
        });
    let owner = row.get::<String>(1).ok().flatten().unwrap_or_default();
    if owner != collection {
        invalid_param(
            func,
            ParamError::new(
                "job_id",
                format!("job {id} belongs to collection \"{owner}\", not \"{collection}\""),
            ),
        );
    }
    let n = |i: usize| row.get::<i32>(i).ok().flatten().unwrap_or(0) as i64;
    Job {
        id,
        total: n(2),
        processed: n(3),
        failed: n(4),
    }
}

/// Count the document in its job, with its error if it failed.
fn record(
    client: &mut SpiClient<'_>,
    func: &str,
    job: &Job,
    label: &Value,
    error: Option<&String>,
) {
    let (processed, failed) = match error {
        None => (job.processed + 1, job.failed),
        Some(_) => (job.processed, job.failed + 1),
    };
    // More documents than announced: the total grows rather than progress passing 100%.
    let total = job.total.max(processed + failed);
    let status = spec::job_status(total, processed, failed);
    let entry = error.map(|e| JsonB(json!({"document": label, "error": e})));
    let p = plan(
        client,
        "UPDATE qortex.ingestion_jobs
            SET total_documents = $2, processed_documents = $3, failed_documents = $4,
                status = $5, updated_at = pg_catalog.now(),
                completed_at = CASE WHEN $5 IN ('completed', 'partial', 'failed')
                                    THEN pg_catalog.now() END,
                errors = CASE WHEN $6::jsonb IS NULL THEN errors
                              ELSE errors || pg_catalog.jsonb_build_array($6::jsonb ||
                                   pg_catalog.jsonb_build_object('timestamp', pg_catalog.now()))
                         END
          WHERE id = $1",
        &[INT8, INT4, INT4, INT4, TEXT, JSONB],
        true,
    );
    client
        .update(
            &*p,
            None,
            &[
                job.id.into(),
                (total as i32).into(),
                (processed as i32).into(),
                (failed as i32).into(),
                status.into(),
                entry.into(),
            ],
        )
        .unwrap_or_else(|e| error!("{func}: {e}"));
}

/// A new ingestion job for `total_documents` documents of a managed collection.
#[pg_extern(volatile)]
fn qortex_job_create(
    collection: Option<String>,
    total_documents: Option<i32>,
    metadata: default!(Option<JsonB>, "'{}'"),
) -> i64 {
    const F: &str = "qortex_job_create";
    let name = required(F, "collection", collection);
    let total = required(F, "total_documents", total_documents);
    if total < 0 {
        invalid_param(
            F,
            ParamError::new("total_documents", format!("must be >= 0, got {total}")),
        );
    }
    let metadata = object_arg(F, "metadata", metadata);
    Spi::connect_mut(|client| {
        managed(client, F, &name);
        let p = plan(
            client,
            "INSERT INTO qortex.ingestion_jobs (collection, total_documents, metadata)
             VALUES ($1, $2, $3) RETURNING id",
            &[TEXT, INT4, JSONB],
            true,
        );
        client
            .update(
                &*p,
                Some(1),
                &[name.as_str().into(), total.into(), JsonB(metadata).into()],
            )
            .unwrap_or_else(|e| error!("{F}: {e}"))
            .next()
            .and_then(|r| r.get::<i64>(1).ok().flatten())
            .unwrap_or_else(|| error!("{F}: the insert returned no id"))
    })
}

/// A job's status, counts, progress and errors.
#[pg_extern(stable)]
fn qortex_job_status(job_id: Option<i64>) -> JsonB {
    const F: &str = "qortex_job_status";
    let id = required(F, "job_id", job_id);
    Spi::connect(|client| {
        let p = plan(
            client,
            "SELECT pg_catalog.jsonb_build_object(
                      'job_id', id, 'collection', collection, 'status', status,
                      'total_documents', total_documents,
                      'processed_documents', processed_documents,
                      'failed_documents', failed_documents, 'errors', errors,
                      'metadata', metadata, 'created_at', created_at,
                      'updated_at', updated_at, 'completed_at', completed_at)
               FROM qortex.ingestion_jobs WHERE id = $1",
            &[INT8],
            false,
        );
        let JsonB(mut v) = client
            .select(&*p, Some(1), &[id.into()])
            .unwrap_or_else(|e| error!("{F}: {e}"))
            .next()
            .and_then(|r| r.get::<JsonB>(1).ok().flatten())
            .unwrap_or_else(|| {
                raise(
                    PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
                    format!("{F}: job_id: there is no ingestion job {id}"),
                )
            });
        let n = |k: &str| v[k].as_i64().unwrap_or(0);
        v["progress_percent"] = json!(spec::progress_percent(
            n("total_documents"),
            n("processed_documents"),
            n("failed_documents")
        ));
        JsonB(v)
    })
}

/// Delete a document of a managed collection with its chunks; false if there was none.
#[pg_extern(volatile)]
fn qortex_delete_document(collection: Option<String>, document_id: Option<i64>) -> bool {
    const F: &str = "qortex_delete_document";
    let name = required(F, "collection", collection);
    let id = required(F, "document_id", document_id);
    Spi::connect_mut(|client| {
        let (_, docs) = managed(client, F, &name);
        let p = plan(
            client,
            &format!("DELETE FROM {docs} WHERE id = $1"),
            &[INT8],
            true,
        );
        !client
            .update(&*p, None, &[id.into()])
            .unwrap_or_else(|e| error!("{F}: {e}"))
            .is_empty()
    })
}

/// Characters one user memory holds; bigger memories are refused, not cut.
pub const MAX_MEMORY_CHARS: usize = 65_536;

/// Store (replace) the one free-text memory of a user.
#[pg_extern(volatile)]
fn qortex_remember(
    user_id: Option<String>,
    memory: Option<String>,
    metadata: default!(Option<JsonB>, "'{}'"),
) -> TableIterator<
    'static,
    (
        name!(user_id, String),
        name!(memory, String),
        name!(metadata, JsonB),
        name!(updated_at, pgrx::datum::TimestampWithTimeZone),
    ),
> {
    const F: &str = "qortex_remember";
    let user = required(F, "user_id", user_id);
    let memory = required(F, "memory", memory);
    let chars = memory.chars().count();
    if chars > MAX_MEMORY_CHARS {
        invalid_param(
            F,
            ParamError::new(
                "memory",
                format!("has {chars} characters; a memory holds at most {MAX_MEMORY_CHARS}"),
            ),
        );
    }
    let metadata = object_arg(F, "metadata", metadata);
    let row = Spi::connect_mut(|client| {
        let p = plan(
            client,
            "INSERT INTO qortex.user_memories (user_id, memory, metadata) VALUES ($1, $2, $3)
             ON CONFLICT (user_id) DO UPDATE
                SET memory = excluded.memory, metadata = excluded.metadata,
                    updated_at = pg_catalog.now()
             RETURNING user_id, memory, metadata, updated_at",
            &[TEXT, TEXT, JSONB],
            true,
        );
        client
            .update(
                &*p,
                Some(1),
                &[
                    user.as_str().into(),
                    memory.as_str().into(),
                    JsonB(metadata).into(),
                ],
            )
            .unwrap_or_else(|e| error!("{F}: {e}"))
            .next()
            .map(|r| memory_row(&r))
            .unwrap_or_else(|| error!("{F}: the upsert returned no row"))
    });
    TableIterator::once(row)
}

fn memory_row(
    r: &pgrx::spi::SpiHeapTupleData<'_>,
) -> (String, String, JsonB, pgrx::datum::TimestampWithTimeZone) {
    (
        r.get::<String>(1).ok().flatten().unwrap_or_default(),
        r.get::<String>(2).ok().flatten().unwrap_or_default(),
        r.get::<JsonB>(3).ok().flatten().unwrap_or(JsonB(json!({}))),
        r.get::<pgrx::datum::TimestampWithTimeZone>(4)
            .ok()
            .flatten()
            .unwrap_or_else(|| error!("qortex: memory row without updated_at")),
    )
}

/// A user's memory: one row, or none.
#[pg_extern(stable)]
fn qortex_recall(
    user_id: Option<String>,
) -> TableIterator<
    'static,
    (
        name!(user_id, String),
        name!(memory, String),
        name!(metadata, JsonB),
        name!(updated_at, pgrx::datum::TimestampWithTimeZone),
    ),
> {
    const F: &str = "qortex_recall";
    let user = required(F, "user_id", user_id);
    let rows: Vec<_> = Spi::connect(|client| {
        let p = plan(
            client,
            "SELECT user_id, memory, metadata, updated_at FROM qortex.user_memories
              WHERE user_id = $1",
            &[TEXT],
            false,
        );
        client
            .select(&*p, Some(1), &[user.as_str().into()])
            .unwrap_or_else(|e| error!("{F}: {e}"))
            .map(|r| memory_row(&r))
            .collect()
    });
    TableIterator::new(rows)
}
