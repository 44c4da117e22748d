//! The catalog of collections: what `qortex.collections` says about a collection and how
//! to query its table (its `Layout`), read once per backend and cached as freshly as
//! PostgreSQL's own catalog caches; names of relations, columns and indexes; the
//! qortex_bm25 index a collection's text leg reads.
//!
//! Registration, ingestion, search, the text index and interoception all read collections
//! through this module, and none of them through another.
//!
//! Identifiers in generated SQL come from the catalog and go through `quote_identifier`;
//! values are bound parameters.
use crate::bm25am::direct::{find as find_bm25, AmIndex, Key};
use crate::cache::Cache;
use crate::errors::{data_error, error};
use crate::spi::{plan, spi_failed, INT2, OID, TEXT};
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, quote_literal, SpiClient};
use pgrx::JsonB;
use qortex_core::collections::Distance;
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::collections::HashMap;
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
    /// role → the name its column had when mapped (for errors about a missing one)
    pub columns: Map<String, Value>,
    /// role → (attribute number, name) of its column now; absent: the column is gone
    pub resolved: HashMap<String, (i16, String)>,
    /// `qortex.collections.options`: distance, text configuration and, for a registered
    /// table, its partition's value and the metadata key of its document id.
    pub options: Map<String, Value>,
}

impl Collection {
    pub fn attnum(&self, role: &str) -> Option<i16> {
        self.resolved.get(role).map(|r| r.0)
    }

    /// The name the column mapped as `role` had when mapped, if a column is.
    pub fn column(&self, role: &str) -> Option<&str> {
        self.columns.get(role)?.get("name")?.as_str()
    }

    /// A string option of the registration.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options.get(key)?.as_str()
    }

    /// The roles of the columns a `filter` may name, as (filter key, role).
    pub fn filter_roles(&self) -> impl Iterator<Item = (&str, &str)> {
        self.columns
            .keys()
            .filter_map(|r| Some((r.strip_prefix(FILTER_ROLE)?, r.as_str())))
    }

    pub fn kind(&self) -> &'static str {
        if self.managed {
            "managed"
        } else {
            "registered"
        }
    }
}

/// 42704 for a collection that does not exist.
pub fn no_such_collection(func: &str, name: &str) -> ! {
    error(
        PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
        format!("{func}: collection \"{name}\" does not exist"),
    )
    .hint("SELECT name FROM qortex_collections() lists the collections")
    .raise()
}

/// The role under which a column a `filter` may name is mapped: `filter:<column>`.
pub const FILTER_ROLE: &str = "filter:";

/// The collection `name`, or 42704.
pub fn load(client: &SpiClient<'_>, func: &str, name: &str) -> Collection {
    let p = plan(
        client,
        "SELECT kind, source::oid, documents::oid, dimensions, distance, text_config::text,
                columns,
                -- each role's column now: by attribute number while the table is the one
                -- registered (a rename keeps working), by name once it is another
                (SELECT pg_catalog.jsonb_object_agg(m.key, pg_catalog.jsonb_build_array(
                            a.attnum, a.attname::text))
                   FROM pg_catalog.jsonb_each(columns) m
                   JOIN pg_catalog.pg_attribute a
                     ON a.attrelid = source AND a.attnum > 0 AND NOT a.attisdropped
                    AND CASE WHEN source::oid = source_oid
                             THEN a.attnum = (m.value->>'attnum')::int2
                             ELSE a.attname = m.value->>'name' END),
                options
           FROM qortex.collections WHERE name = $1",
        &[TEXT],
        false,
    );
    let row = p
        .select(client, Some(1), &[name.into()])
        .unwrap_or_else(spi_failed(func))
        .next();
    let Some(row) = row else {
        no_such_collection(func, name)
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
        resolved: match row.get::<JsonB>(8).ok().flatten() {
            Some(JsonB(Value::Object(m))) => m
                .into_iter()
                .filter_map(|(k, v)| Some((k, (v[0].as_i64()? as i16, v[1].as_str()?.to_owned()))))
                .collect(),
            _ => HashMap::new(),
        },
        options: match row.get::<JsonB>(9).ok().flatten() {
            Some(JsonB(Value::Object(m))) => m,
            _ => Map::new(),
        },
    }
}

/// The names of every collection, in order.
pub fn names(client: &SpiClient<'_>, func: &str) -> Vec<String> {
    client
        .select(
            "SELECT name FROM qortex.collections ORDER BY name",
            None,
            &[],
        )
        .unwrap_or_else(spi_failed(func))
        .filter_map(|r| r.get::<String>(1).ok().flatten())
        .collect()
}

/// `schema.name`, both quoted.
pub fn quoted(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_identifier(schema), quote_identifier(name))
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
    let row = p
        .select(client, Some(1), &[oid.into()])
        .unwrap_or_else(spi_failed("qortex"))
        .next()?;
    Some(quoted(
        &row.get::<String>(1).ok().flatten()?,
        &row.get::<String>(2).ok().flatten()?,
    ))
}

/// The source table's quoted name, or 42P01 if it was dropped behind qortex's back.
pub fn source_name(client: &SpiClient<'_>, func: &str, c: &Collection) -> String {
    relation_name(client, c.source).unwrap_or_else(|| {
        error(
            PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            format!(
                "{func}: the table of collection \"{}\" no longer exists",
                c.name
            ),
        )
        .hint(format!(
            "remove the collection with SELECT qortex_drop_collection({})",
            quote_literal(&c.name)
        ))
        .raise()
    })
}

/// pgvector's schema (quoted) and its `vector` type, for names in generated SQL and the
/// type of bound query vectors.
pub fn vector_type(client: &SpiClient<'_>, func: &str) -> (String, pg_sys::Oid) {
    let p = plan(
        client,
        "SELECT n.nspname::text, t.oid FROM pg_catalog.pg_extension e
           JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
           JOIN pg_catalog.pg_type t ON t.typnamespace = e.extnamespace AND t.typname = 'vector'
          WHERE e.extname = 'vector'",
        &[],
        false,
    );
    p.select(client, Some(1), &[])
        .unwrap_or_else(spi_failed(func))
        .next()
        .and_then(|r| {
            Some((
                quote_identifier(r.get::<String>(1).ok().flatten()?),
                r.get::<pg_sys::Oid>(2).ok().flatten()?,
            ))
        })
        .unwrap_or_else(|| {
            error(
                PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
                format!("{func}: the vector extension (pgvector) is not installed"),
            )
            .hint("CREATE EXTENSION vector")
            .raise()
        })
}

/// An index of a table whose first key is a plain column.
pub struct TableIndex {
    pub name: String,
    pub method: String,
    pub attnum: i16,
    pub opclass: String,
    pub size_bytes: i64,
}

/// The indexes of `rel` whose first key is a plain column, by name.
pub fn indexes(client: &SpiClient<'_>, rel: pg_sys::Oid) -> Vec<TableIndex> {
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
    p.select(client, None, &[rel.into()])
        .unwrap_or_else(spi_failed("qortex"))
        .filter_map(|r| {
            Some(TableIndex {
                name: r.get::<String>(1).ok().flatten()?,
                method: r.get::<String>(2).ok().flatten()?,
                attnum: r.get::<i16>(3).ok().flatten()?,
                opclass: r.get::<String>(4).ok().flatten()?,
                size_bytes: r.get::<i64>(5).ok().flatten().unwrap_or(0),
            })
        })
        .collect()
}

/// How to query one collection: its table, and each role's column as a quoted expression.
#[derive(Clone)]
pub struct Layout {
    pub name: String,
    /// The collection's table, quoted.
    pub table: String,
    pub source: pg_sys::Oid,
    pub managed: bool,
    /// Managed collections: the documents table (quoted), if it still exists.
    pub documents: Option<String>,
    pub dims: i32,
    pub distance: Distance,
    pub id: String,
    /// The id column's type as `format_type` writes it.
    pub id_type: String,
    /// pg_type's name of the id column's type.
    pub id_typname: String,
    pub embedding: String,
    pub content: Option<String>,
    /// The content column's name, unquoted.
    pub content_column: Option<String>,
    /// The tsvector: a stored column, or `to_tsvector(config, content)`.
    pub tsv: String,
    /// (schema, table, column) of a stored tsvector column, for ANALYZE's statistics.
    pub tsv_column: Option<(String, String, String)>,
    /// The text search configuration's name.
    pub text_config: String,
    pub metadata: Option<String>,
    pub user_id: Option<String>,
    /// pg_type's name of the user column's type.
    pub user_typname: Option<String>,
    pub is_global: Option<String>,
    /// The document id: a column, or a key of the metadata (`->>`).
    pub document_id: Option<String>,
    /// The one value of a column the collection is limited to (a table shared by several
    /// collections, as LangChain keeps them).
    pub partition: Option<Partition>,
    /// Columns a `filter` may name besides metadata keys: (key, column quoted, its type).
    pub filter_columns: Vec<(String, String, String)>,
    /// The names of every column of the table (a filter key naming one that is not a
    /// filter column is refused rather than matching nothing).
    pub table_columns: Vec<String>,
    /// The HNSW (or IVFFlat) index on the embedding, if there is one.
    pub vector_index: Option<String>,
    /// pgvector's schema (quoted) and vector type.
    pub vector_schema: String,
    pub vector_type: pg_sys::Oid,
}

thread_local! {
    static LAYOUTS: RefCell<Cache<Rc<Layout>>> = RefCell::new(Cache::new(256));
}

/// A `qortex_bm25` index on a collection's table that its text leg may read
/// (`bm25am::direct::find`: on the stored tsvector column itself).
pub struct Bm25Index {
    pub index: AmIndex,
    /// Whether it bounds a user scope: its scope column is the collection's user column and
    /// the collection has no global rows, or its scope is the collection's `global_scope`
    /// (global rows under the scope '').
    pub scoped: bool,
    /// Whether global rows are the scope '' (`global_scope`).
    pub global: bool,
    /// The type of the scope's values.
    pub scope_type: pg_sys::Oid,
}

impl Layout {
    /// The user column itself (quoted), without the `::text` cast `user_id` compares it by.
    pub fn user_column(&self) -> Option<&str> {
        let u = self.user_id.as_deref()?;
        Some(u.strip_suffix("::text").unwrap_or(u))
    }
}

/// The scope a qortex_bm25 index of a collection with global rows has as its second
/// column, for the global flag `g` and the user column `u` (both quoted): the user's rows
/// under the user id as text, rows every user sees under '' (a user whose id is '' shares
/// it; the scope's recheck, `u = user OR g`, sorts them out).
pub fn global_scope(g: &str, u: &str) -> String {
    format!("CASE WHEN {g} THEN ''::text ELSE {u}::text END")
}

/// `global_scope` of the collection's columns as `pg_get_indexdef` writes it back (in
/// parentheses, a text column without its no-op cast, another's cast written
/// `(u)::text`), whitespace runs made single spaces; `None` without both columns.
fn global_scope_written(t: &Layout) -> Option<String> {
    let g = t.is_global.as_deref()?;
    let column = t.user_column()?;
    // `user_id` is the column itself for a text column, else the column cast to text
    let u = match t.user_id.as_deref() == Some(column) {
        true => column.to_owned(),
        false => format!("({column})::text"),
    };
    Some(format!("( CASE WHEN {g} THEN ''::text ELSE {u} END)"))
}

thread_local! {
    /// Each collection's qortex_bm25 index, by name; dropped on any invalidation of its table
    /// (CREATE and DROP INDEX send one, as does every change of the index's pg_index row).
    static BM25_INDEXES: RefCell<Cache<Option<Rc<Bm25Index>>>> = RefCell::new(Cache::new(256));
}

/// The collection's `qortex_bm25` index, if its table has one its text leg may read.
pub fn bm25_index(t: &Layout) -> Option<Rc<Bm25Index>> {
    BM25_INDEXES.with(|c| {
        let mut cache = c.borrow_mut();
        if let Some(found) = cache.get(&t.name) {
            return found;
        }
        cache.fill(&t.name, || {
            (read_bm25_index(t).map(Rc::new), vec![t.source])
        })
    })
}

fn read_bm25_index(t: &Layout) -> Option<Bm25Index> {
    // (a Citus table's rows are in its shards: an index on the coordinator's shell is empty)
    if t.partition.is_some() || crate::citus::is_citus_table(t.source) {
        return None;
    }
    let index = match (&t.tsv_column, &t.content_column) {
        (Some((_, _, column)), _) => find_bm25(t.source, Key::Column(column))?,
        (None, Some(column)) => find_bm25(
            t.source,
            Key::ToTsvector {
                config: &t.text_config,
                column,
            },
        )?,
        (None, None) => return None,
    };
    let plain = t.is_global.is_none()
        && index
            .scope_column
            .as_ref()
            .is_some_and(|(c, _)| t.user_column() == Some(quote_identifier(c).as_str()));
    let global = index.scope_expr.is_some() && index.scope_expr == global_scope_written(t);
    let scope_type = match &index.scope_column {
        Some((_, ty)) => *ty,
        None => pg_sys::TEXTOID,
    };
    Some(Bm25Index {
        index,
        scoped: plain || global,
        global,
        scope_type,
    })
}

/// The qortex_bm25 indexes of table `table`, by name, schema-qualified and quoted.
pub fn qortex_bm25_indexes(client: &SpiClient<'_>, func: &str, table: pg_sys::Oid) -> Vec<String> {
    let p = plan(
        client,
        "SELECT pg_catalog.format('%I.%I', n.nspname, x.relname)
           FROM pg_catalog.pg_index i
           JOIN pg_catalog.pg_class x ON x.oid = i.indexrelid
           JOIN pg_catalog.pg_namespace n ON n.oid = x.relnamespace
           JOIN pg_catalog.pg_am a ON a.oid = x.relam
          WHERE i.indrelid = $1 AND a.amname = 'qortex_bm25'
          ORDER BY 1",
        &[OID],
        false,
    );
    client
        .select(&**p, None, &[table.into()])
        .unwrap_or_else(spi_failed(func))
        .filter_map(|r| r.get::<String>(1).ok().flatten())
        .collect()
}

/// How to query collection `name` (cached per backend, dropped when the catalog or the
/// table changes).
pub fn layout(client: &SpiClient<'_>, func: &str, name: &str) -> Rc<Layout> {
    LAYOUTS.with(|t| {
        let mut cache = t.borrow_mut();
        if let Some(t) = cache.get(name) {
            return t;
        }
        cache.fill(name, || read_layout(client, func, name))
    })
}

/// A managed collection's layout and its documents table (quoted); 0A000 for a registered
/// collection.
pub fn managed(client: &SpiClient<'_>, func: &str, name: &str) -> (Rc<Layout>, String) {
    let t = layout(client, func, name);
    if !t.managed {
        error(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("{func}: collection \"{name}\" is registered, not managed"),
        )
        .detail("A registered collection's table belongs to your application, which writes it.")
        .hint("write the table itself; qortex writes managed collections only")
        .raise();
    }
    let docs = t.documents.clone().unwrap_or_else(|| {
        error(
            PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            format!("{func}: the documents table of collection \"{name}\" no longer exists"),
        )
        .hint(format!(
            "remove the collection with SELECT qortex_drop_collection({})",
            quote_literal(name)
        ))
        .raise()
    });
    (t, docs)
}

fn read_layout(client: &SpiClient<'_>, func: &str, name: &str) -> (Rc<Layout>, Vec<pg_sys::Oid>) {
    let c = load(client, func, name);
    let table = source_name(client, func, &c);
    let p = plan(
        client,
        "SELECT a.attnum, a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod),
                t.typname::text, n.nspname::text, cl.relname::text,
                'qortex.collections'::regclass::oid
           FROM pg_catalog.pg_attribute a
           JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
           JOIN pg_catalog.pg_class cl ON cl.oid = a.attrelid
           JOIN pg_catalog.pg_namespace n ON n.oid = cl.relnamespace
          WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped",
        &[OID],
        false,
    );
    let mut cols: HashMap<i16, (String, String, String)> = HashMap::new();
    let mut rel = (String::new(), String::new());
    let mut collections_oid = pg_sys::InvalidOid;
    for r in p
        .select(client, None, &[c.source.into()])
        .unwrap_or_else(spi_failed(func))
    {
        let get = |i: usize| r.get::<String>(i).ok().flatten().unwrap_or_default();
        let attnum = r.get::<i16>(1).ok().flatten().unwrap_or_default();
        cols.insert(attnum, (get(2), get(3), get(4)));
        rel = (get(5), get(6));
        collections_oid = r.get::<pg_sys::Oid>(7).ok().flatten().unwrap_or_default();
    }
    let col = |role: &str| -> Option<(String, String, String)> {
        let column = c.column(role)?;
        Some(
            c.attnum(role)
                .and_then(|a| cols.get(&a).cloned())
                .unwrap_or_else(|| {
                    error(
                        PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
                        format!(
                    "{func}: collection \"{name}\": table {table} has no column {column:?} \
                     (mapped as {role}): it was dropped"
                ),
                    )
                    .hint("register the collection again with the table's columns")
                    .raise()
                }),
        )
    };
    let q = |(n, _, _): &(String, String, String)| quote_identifier(n);
    let (id, embedding) = match (col("id"), col("embedding")) {
        (Some(i), Some(e)) => (i, e),
        _ => data_error(format!(
            "{func}: collection \"{name}\" maps no id or embedding"
        )),
    };
    let content = col("content");
    let text_config = quote_literal(&c.text_config) + "::pg_catalog.regconfig";
    let (tsv, tsv_column) = match col("tsvector") {
        Some(t) => (q(&t), Some((rel.0.clone(), rel.1.clone(), t.0.clone()))),
        None => (
            format!(
                "pg_catalog.to_tsvector({text_config}, {})",
                content.as_ref().map(q).unwrap_or_else(|| "''".into())
            ),
            None,
        ),
    };
    let metadata = col("metadata").map(|m| {
        if m.2 == "json" {
            format!("{}::jsonb", q(&m))
        } else {
            q(&m)
        }
    });
    let document_id = match c.option("document_key") {
        Some(key) => metadata
            .as_ref()
            .map(|m| format!("({m} OPERATOR(pg_catalog.->>) {})", quote_literal(key))),
        None => col("document_id").map(|d| q(&d)),
    };
    let partition = col("partition").map(|p| Partition {
        column: q(&p),
        column_type: p.1.clone(),
        value: c.option("partition_value").unwrap_or_default().to_owned(),
    });
    let mut filter_columns: Vec<(String, String, String)> = c
        .filter_roles()
        .filter_map(|(key, role)| col(role).map(|f| (key.to_owned(), q(&f), f.1.clone())))
        .collect();
    filter_columns.sort();
    let mut table_columns: Vec<String> = cols.values().map(|c| c.0.clone()).collect();
    table_columns.sort();
    let user_typname = col("user_id").map(|u| u.2.clone());
    let user_id = col("user_id").map(|u| {
        if u.2 == "text" {
            q(&u)
        } else {
            format!("{}::text", q(&u))
        }
    });
    let (vector_schema, vector_type) = vector_type(client, func);
    let idx = indexes(client, c.source);
    let vector_index = c.attnum("embedding").and_then(|a| {
        idx.iter()
            .find(|i| i.attnum == a && (i.method == "hnsw" || i.method == "ivfflat"))
            .map(|i| i.name.clone())
    });
    let mut relations = vec![c.source, collections_oid];
    relations.extend(c.documents);
    let t = Layout {
        name: name.to_owned(),
        table: table.clone(),
        source: c.source,
        managed: c.managed,
        documents: c.documents.and_then(|o| relation_name(client, o)),
        dims: c.dimensions,
        distance: c.distance,
        id: q(&id),
        id_type: id.1.clone(),
        id_typname: id.2.clone(),
        embedding: q(&embedding),
        content: content.as_ref().map(q),
        content_column: content.as_ref().map(|c| c.0.clone()),
        tsv,
        tsv_column,
        text_config: c.text_config.clone(),
        metadata,
        user_id,
        user_typname,
        is_global: col("is_global").map(|g| q(&g)),
        document_id,
        partition,
        filter_columns,
        table_columns,
        vector_index,
        vector_schema,
        vector_type,
    };
    (Rc::new(t), relations)
}

/// The value a collection's rows have in the column it is partitioned by.
#[derive(Clone)]
pub struct Partition {
    /// The column, quoted.
    pub column: String,
    /// Its type as `format_type` writes it (the value, bound as text, is cast to it).
    pub column_type: String,
    pub value: String,
}

/// Whether a unique index (without predicate) covers column `attnum` of `rel` alone.
pub fn unique_on(client: &SpiClient<'_>, rel: pg_sys::Oid, attnum: i16) -> bool {
    let p = plan(
        client,
        "SELECT 1 FROM pg_catalog.pg_index
          WHERE indrelid = $1 AND indisunique AND indnkeyatts = 1 AND indkey[0] = $2
            AND indpred IS NULL",
        &[OID, INT2],
        false,
    );
    p.select(client, Some(1), &[rel.into(), attnum.into()])
        .unwrap_or_else(spi_failed("qortex"))
        .next()
        .is_some()
}

/// The rows of `table` the caller can see, or None if it may not read the table (a
/// description of every collection must not fail on one the caller cannot read).
pub fn count_rows(client: &SpiClient<'_>, table: &str) -> Option<i64> {
    count_rows_where(client, table, None)
}

/// The rows of a collection the caller can see: of its table, or of its partition (the
/// partition's column, quoted, its type and the value).
pub fn count_rows_where(
    client: &SpiClient<'_>,
    table: &str,
    partition: Option<(&str, &str, &str)>,
) -> Option<i64> {
    let p = plan(
        client,
        "SELECT pg_catalog.has_table_privilege($1::regclass, 'SELECT')",
        &[TEXT],
        false,
    );
    let readable = p
        .select(client, Some(1), &[table.into()])
        .unwrap_or_else(spi_failed("qortex"))
        .first()
        .get_one::<bool>()
        .ok()
        .flatten()
        == Some(true);
    if !readable {
        return None;
    }
    let (sql, value) = match partition {
        None => (format!("SELECT pg_catalog.count(*) FROM {table}"), None),
        Some((column, column_type, value)) => (
            format!("SELECT pg_catalog.count(*) FROM {table} WHERE {column} = $1::{column_type}"),
            Some(value),
        ),
    };
    let p = plan(client, &sql, &[TEXT], false);
    p.select(client, Some(1), &[value.into()])
        .unwrap_or_else(spi_failed("qortex"))
        .first()
        .get_one::<i64>()
        .ok()
        .flatten()
}

/// A column's type as `format_type` writes it.
pub fn column_type(client: &SpiClient<'_>, rel: pg_sys::Oid, attnum: i16) -> Option<String> {
    let p = plan(
        client,
        "SELECT pg_catalog.format_type(atttypid, atttypmod) FROM pg_catalog.pg_attribute
          WHERE attrelid = $1 AND attnum = $2",
        &[OID, INT2],
        false,
    );
    p.select(client, Some(1), &[rel.into(), attnum.into()])
        .unwrap_or_else(spi_failed("qortex"))
        .next()
        .and_then(|r| r.get::<String>(1).ok().flatten())
}
