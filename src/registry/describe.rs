//! The description of a collection: its table, columns, row counts, indexes and what each
//! search leg reads, as `qortex_collections()`, `qortex_status()` and create/register give it.
use super::bm25_index;
use crate::catalog::{self, count_rows, indexes, load, relation_name, FILTER_ROLE};
use crate::spi::{plan, spi_failed, TEXT};
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, quote_literal, SpiClient};
use pgrx::JsonB;
use serde_json::{json, Map, Value};

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
                                "index": vector_index.map(|i| &i.name),
                                "recall": recall_check(client, func, &c.name)});
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
    // the qortex_bm25 index the leg reads (unfiltered searches), if the table has one
    let layout = catalog::layout(client, func, &c.name);
    let am = catalog::bm25_index(&layout);
    let mut text_leg = json!({"indexed": text_index.is_some(),
                              "index": text_index.map(|i| &i.name)});
    if text_index.is_none() {
        let content = columns
            .get("content")
            .and_then(Value::as_str)
            .unwrap_or("content");
        // what reads the rows the qortex_bm25 index does not serve (filters, 'and' and
        // 'websearch'), or every search without one
        let which = match am {
            Some(_) => "under a filter, or in the 'and' and 'websearch' modes, the text leg",
            None => "the text leg",
        };
        text_leg["hint"] = json!(match columns.get("tsvector") {
            Some(ts) => format!(
                "no GIN index on {ts}: {which} reads every row; add one with CREATE INDEX ON \
                 {table} USING gin ({ts})"
            ),
            None => format!(
                "no GIN index: {which} computes to_tsvector on every row. Add a column and an \
                 index, then register the collection again with \"tsvector\": \"fts\": ALTER \
                 TABLE {table} ADD COLUMN fts tsvector GENERATED ALWAYS AS \
                 (to_tsvector({}, {content})) STORED; CREATE INDEX ON {table} USING gin (fts)",
                quote_literal(&c.text_config)
            ),
        });
    }
    text_leg["bm25_index"] = match &am {
        Some(a) => json!({"name": a.index.name, "user_scope": a.scoped, "global_rows": a.global,
                          "scope_column": a.index.scope_column.as_ref().map(|s| &s.0)}),
        None => {
            let (reason, hint) = match bm25_index::cannot_have(&layout) {
                Some(r) => (r, None),
                None => (
                    "none on the table: the text leg reads the GIN index".to_owned(),
                    Some(format!(
                        "SELECT qortex_refresh_text_index({}) creates one (as the table's \
                         owner): {}",
                        quote_literal(&c.name),
                        bm25_index::create_statement(&layout)
                    )),
                ),
            };
            json!({"name": null, "reason": reason, "hint": hint})
        }
    };

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

/// The latest `qortex_check_recall` of a collection (null: none, or the caller may not read
/// `qortex.recall_checks`).
fn recall_check(client: &SpiClient<'_>, func: &str, name: &str) -> Value {
    let may = plan(
        client,
        "SELECT pg_catalog.has_table_privilege('qortex.recall_checks', 'SELECT')",
        &[],
        false,
    );
    let readable = client
        .select(&**may, Some(1), &[])
        .unwrap_or_else(spi_failed(func))
        .next()
        .and_then(|r| r.get::<bool>(1).ok().flatten())
        .unwrap_or(false);
    if !readable {
        return Value::Null;
    }
    let p = plan(
        client,
        "SELECT pg_catalog.to_jsonb(c) OPERATOR(pg_catalog.-) 'collection'::text
           FROM qortex.recall_checks c WHERE collection = $1",
        &[TEXT],
        false,
    );
    client
        .select(&**p, Some(1), &[name.into()])
        .unwrap_or_else(spi_failed(func))
        .next()
        .and_then(|r| r.get::<JsonB>(1).ok().flatten())
        .map_or(Value::Null, |j| j.0)
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
                    // the index the text leg reads first
                    s(&d["text_leg"]["bm25_index"]["name"]).or_else(|| s(&d["text_leg"]["index"])),
                    JsonB(d),
                )
            })
            .collect()
    });
    TableIterator::new(rows)
}
