//! Managed collections: created with their documents and chunks tables and indexes, and
//! distributed by document over a Citus cluster.
use super::{check_new_name, describe, insert_collection, text_config};
use crate::catalog::{self, quoted};
use crate::errors::{invalid_param, required};
use crate::spi::{plan, run, spi_failed, TEXT};
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, quote_literal, SpiClient};
use pgrx::JsonB;
use qortex_core::collections::{self as spec, CollectionOptions};
use qortex_core::ParamError;
use serde_json::{json, Map, Value};

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
            true => distribute_collection(client, F, &chunks, &docs),
            // its text leg reads a qortex_bm25 index scoped by user, global rows under ''
            false => run(
                client,
                F,
                &format!(
                    "CREATE INDEX {} ON {chunks} USING qortex_bm25 (fts, ({}))",
                    ix("chunks_bm25"),
                    catalog::global_scope("is_global", "user_id")
                ),
            ),
        }
        JsonB(describe(client, F, &name))
    })
}

/// Spread every managed collection over the Citus cluster (`qortex_distribute`), as new ones
/// are once it has run; returns how many there are.
pub fn distribute_managed(client: &mut SpiClient<'_>, func: &str) -> usize {
    let p = plan(
        client,
        "SELECT source::text, documents::text FROM qortex.collections
          WHERE kind = 'managed' ORDER BY name",
        &[],
        false,
    );
    let managed: Vec<(String, String)> = client
        .select(&**p, None, &[])
        .unwrap_or_else(spi_failed(func))
        .filter_map(|r| Some((r.get::<String>(1).ok()??, r.get::<String>(2).ok()??)))
        .collect();
    for (chunks, docs) in &managed {
        distribute_collection(client, func, chunks, docs);
    }
    managed.len()
}

/// A managed collection's documents distributed by id and its chunks by document, co-located,
/// so a document and its chunks share a shard (ingestion and deletion of a document touch
/// one). Its qortex_bm25 index goes: the coordinator cannot read the shards' indexes, and
/// the text leg scores on the shards instead. Citus wants the distribution column in every unique
/// constraint, so the chunks' primary key becomes (id, document_id); ids stay unique, from
/// their sequence.
fn distribute_collection(client: &mut SpiClient<'_>, func: &str, chunks: &str, docs: &str) {
    let p = plan(
        client,
        "SELECT c.conrelid::oid, c.conname::text, pg_catalog.array_length(c.conkey, 1)
           FROM pg_catalog.pg_constraint c
          WHERE c.conrelid = $1::regclass AND c.contype = 'p'",
        &[TEXT],
        false,
    );
    let key = client
        .select(&**p, Some(1), &[chunks.into()])
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
            // (Citus would make the shards' own; their text leg scores on the shards)
            for index in crate::catalog::qortex_bm25_indexes(client, func, oid) {
                run(client, func, &format!("DROP INDEX {index}"));
            }
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
