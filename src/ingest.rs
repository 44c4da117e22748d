//! Transactional ingestion into managed collections (API.md §2): one document and all its
//! chunks in one statement, ingestion jobs that record failed documents and go on, and
//! deletion of a document with its chunks.
use crate::catalog::{self, Layout};
use crate::errors::{error, in_subtransaction, internal, invalid_param, required};
use crate::jsonb::object_arg;
use crate::spi::{
    plan, spi_failed, BOOL, BOOL_ARRAY, INT4, INT4_ARRAY, INT8, INT8_ARRAY, JSONB, JSONB_ARRAY,
    TEXT, TEXT_ARRAY,
};
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::JsonB;
use qortex_core::collections as spec;
use qortex_core::ParamError;
use serde_json::{json, Value};
use std::panic::AssertUnwindSafe;

/// Insert one document and all its chunks in one statement: all of it or nothing.
#[pg_extern(volatile)]
fn qortex_ingest(
    collection: Option<String>,
    document: Option<crate::jsonb::Jsonb>,
    chunks: Option<crate::jsonb::Jsonb>,
    job_id: default!(Option<i64>, "NULL"),
) -> Option<i64> {
    const F: &str = "qortex_ingest";
    crate::errors::require_writable(F);
    let name = required(F, "collection", collection);
    let document = required(F, "document", document).0;
    let chunks = required(F, "chunks", chunks).0;
    Spi::connect_mut(|client| {
        let (t, docs) = catalog::managed(client, F, &name);
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
            Err(e) => Err((
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("{F}: {e}"),
            )),
            Ok((doc, ch)) => {
                let client = AssertUnwindSafe(&mut *client);
                in_subtransaction(move || {
                    let whole = client;
                    insert_document(whole.0, F, &t, &docs, &doc, ch)
                })
            }
        };
        record(
            client,
            F,
            &job,
            &label,
            outcome.as_ref().err().map(|e| &e.1),
        );
        match outcome {
            Ok(id) => Some(id),
            Err((code, msg)) => {
                error(code, msg)
                    .detail(format!(
                        "Recorded in ingestion job {}; nothing of the document was stored.",
                        job.id
                    ))
                    .warn();
                None
            }
        }
    })
}

fn insert_document(
    client: &mut SpiClient<'_>,
    func: &str,
    t: &Layout,
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
            &**p,
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
        .unwrap_or_else(spi_failed(func))
        .next()
        .and_then(|r| r.get::<i64>(1).ok().flatten())
        .unwrap_or_else(|| internal(func, "the insert returned no document id"))
}

/// Insert many documents with their chunks: one statement for the batch (ids drawn first,
/// so each chunk names its document), or, with `job_id`, documents that fail are recorded
/// in the job and the others stored (all of a document or nothing); the document ids in
/// the batch's order, NULL for a document that failed.
#[pg_extern(volatile)]
fn qortex_ingest_batch(
    collection: Option<String>,
    documents: Option<crate::jsonb::Jsonb>,
    job_id: default!(Option<i64>, "NULL"),
) -> Vec<Option<i64>> {
    const F: &str = "qortex_ingest_batch";
    crate::errors::require_writable(F);
    let name = required(F, "collection", collection);
    let documents = required(F, "documents", documents).0;
    let items = spec::batch_items(&documents).unwrap_or_else(|e| invalid_param(F, e));
    Spi::connect_mut(|client| {
        let (t, docs) = catalog::managed(client, F, &name);
        let dims = t.dims as usize;
        let job = job_id.map(|id| lock_job(client, F, id, &name));
        let parsed: Vec<_> = items
            .iter()
            .enumerate()
            .map(|(i, item)| spec::parse_batch_document(i, item, dims))
            .collect();
        let Some(job) = job else {
            // no job: the call is one transaction, refused whole for any bad document
            let good: Vec<_> = parsed
                .into_iter()
                .map(|p| p.unwrap_or_else(|e| invalid_param(F, e)))
                .collect();
            return insert_documents(client, F, &t, &docs, &good)
                .into_iter()
                .map(Some)
                .collect();
        };
        let mut ids: Vec<Option<i64>> = vec![None; items.len()];
        let mut failures: Vec<(usize, String)> = Vec::new();
        // the documents that parsed, and where each stands in the call's array
        let (mut at, mut batch) = (Vec::new(), Vec::new());
        for (i, p) in parsed.into_iter().enumerate() {
            match p {
                Ok(d) => {
                    at.push(i);
                    batch.push(d);
                }
                Err(e) => failures.push((i, format!("{F}: {e}"))),
            }
        }
        // the batch in one statement; if it fails, each document in a subtransaction
        let whole = {
            let client = AssertUnwindSafe(&mut *client);
            let (t, docs, batch) = (&t, &docs, &batch);
            in_subtransaction(move || {
                let c = client;
                insert_documents(c.0, F, t, docs, batch)
            })
        };
        match whole {
            Ok(made) => {
                for (i, id) in at.into_iter().zip(made) {
                    ids[i] = Some(id);
                }
            }
            Err(_) => {
                for (i, (doc, ch)) in at.into_iter().zip(batch) {
                    let client = AssertUnwindSafe(&mut *client);
                    let (t, docs) = (&t, &docs);
                    match in_subtransaction(move || {
                        let c = client;
                        insert_document(c.0, F, t, docs, &doc, ch)
                    }) {
                        Ok(id) => ids[i] = Some(id),
                        Err((_, msg)) => failures.push((i, msg)),
                    }
                }
            }
        }
        failures.sort();
        let errors: Vec<Value> = failures
            .iter()
            .map(|(i, msg)| {
                let label = items[*i]
                    .get("external_id")
                    .and_then(Value::as_str)
                    .map_or_else(|| json!(job.done() + *i as i64 + 1), |s| json!(s));
                json!({"document": label, "error": msg})
            })
            .collect();
        let stored = ids.iter().flatten().count() as i64;
        record_many(client, F, &job, stored, &errors);
        if !failures.is_empty() {
            error(
                PgSqlErrorCode::ERRCODE_WARNING,
                format!(
                    "{F}: {} of {} documents failed",
                    failures.len(),
                    items.len()
                ),
            )
            .detail(format!(
                "Recorded in ingestion job {}; nothing of a failed document was stored. First: {}",
                job.id, failures[0].1
            ))
            .warn();
        }
        ids
    })
}

/// Insert `batch` (documents with their chunks) in one statement; their ids in order.
fn insert_documents(
    client: &mut SpiClient<'_>,
    func: &str,
    t: &Layout,
    docs: &str,
    batch: &[(spec::Document, spec::Chunks)],
) -> Vec<i64> {
    if batch.is_empty() {
        return Vec::new();
    }
    let (chunks, vec) = (&t.table, &t.vector_schema);
    let n: usize = batch.iter().map(|(_, c)| c.content.len()).sum();
    // the documents' and the chunks' ids are drawn first, in the order given, in a statement
    // of their own: the insert then has no volatile function in it (on Citus a distributed
    // insert's ids came out other than one node's: its defaults are not evaluated in the
    // rows' order), and each chunk row names its document by the batch's ordinal (`v` is
    // read three times: computed once)
    let draw = plan(
        client,
        "SELECT (SELECT pg_catalog.array_agg(pg_catalog.nextval('qortex.document_ids') ORDER BY i)
                   FROM pg_catalog.generate_series(1, $1) AS i),
                (SELECT pg_catalog.array_agg(pg_catalog.nextval('qortex.chunk_ids') ORDER BY i)
                   FROM pg_catalog.generate_series(1, $2) AS i)",
        &[INT4, INT4],
        true,
    );
    let (drawn, chunk_ids) = client
        .update(
            &**draw,
            Some(1),
            &[(batch.len() as i32).into(), (n as i32).into()],
        )
        .unwrap_or_else(spi_failed(func))
        .next()
        .map(|r| {
            let ids = |i| r.get::<Vec<i64>>(i).ok().flatten().unwrap_or_default();
            (ids(1), ids(2))
        })
        .unwrap_or_default();
    let sql = format!(
        "WITH v AS MATERIALIZED (
            SELECT u.*
              FROM ROWS FROM (pg_catalog.unnest($12::int8[]),
                              pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::bool[]),
                              pg_catalog.unnest($3::text[]), pg_catalog.unnest($4::text[]),
                              pg_catalog.unnest($5::jsonb[]), pg_catalog.unnest($6::text[]))
                   WITH ORDINALITY AS u(id, user_id, is_global, document_type, content,
                                        metadata, external_id, ord)
         ), d AS (
            INSERT INTO {docs} (id, user_id, is_global, document_type, content, metadata,
                                external_id)
            SELECT id, user_id, is_global, document_type, content, metadata, external_id
              FROM v
         ), c AS (
            INSERT INTO {chunks} (id, document_id, chunk_index, content, embedding, metadata,
                                  user_id, is_global)
            SELECT k.id, v.id, k.chunk_index, k.content, CAST(k.emb AS {vec}.vector),
                   v.metadata || k.meta, v.user_id, v.is_global
              FROM ROWS FROM (pg_catalog.unnest($13::int8[]),
                              pg_catalog.unnest($7::int8[]), pg_catalog.unnest($8::int4[]),
                              pg_catalog.unnest($9::text[]), pg_catalog.unnest($10::text[]),
                              pg_catalog.unnest($11::jsonb[]))
                   AS k(id, doc, chunk_index, content, emb, meta)
              JOIN v ON v.ord = k.doc
         )
         SELECT 1 -- (the CTEs insert; the ids were drawn above)"
    );
    let p = plan(
        client,
        &sql,
        &[
            TEXT_ARRAY,
            BOOL_ARRAY,
            TEXT_ARRAY,
            TEXT_ARRAY,
            JSONB_ARRAY,
            TEXT_ARRAY,
            INT8_ARRAY,
            INT4_ARRAY,
            TEXT_ARRAY,
            TEXT_ARRAY,
            JSONB_ARRAY,
            INT8_ARRAY,
            INT8_ARRAY,
        ],
        true,
    );
    let (mut doc_of, mut index) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut content, mut emb, mut meta) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for (ord, (_, c)) in batch.iter().enumerate() {
        for (k, ((text, e), m)) in c
            .content
            .iter()
            .zip(&c.embedding)
            .zip(&c.metadata)
            .enumerate()
        {
            doc_of.push(ord as i64 + 1);
            index.push(k as i32);
            content.push(text.clone());
            emb.push(e.clone());
            meta.push(JsonB(m.clone()));
        }
    }
    let col = |f: fn(&spec::Document) -> Option<String>| -> Vec<Option<String>> {
        batch.iter().map(|(d, _)| f(d)).collect()
    };
    client
        .update(
            &**p,
            Some(1),
            &[
                col(|d| d.user_id.clone()).into(),
                batch
                    .iter()
                    .map(|(d, _)| d.is_global)
                    .collect::<Vec<bool>>()
                    .into(),
                col(|d| Some(d.document_type.clone())).into(),
                col(|d| d.content.clone()).into(),
                batch
                    .iter()
                    .map(|(d, _)| JsonB(d.metadata.clone()))
                    .collect::<Vec<JsonB>>()
                    .into(),
                col(|d| d.external_id.clone()).into(),
                doc_of.into(),
                index.into(),
                content.into(),
                emb.into(),
                meta.into(),
                drawn.as_slice().into(),
                chunk_ids.into(),
            ],
        )
        .unwrap_or_else(spi_failed(func));
    drawn
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
        .update(&**p, Some(1), &[id.into()])
        .unwrap_or_else(spi_failed(func))
        .next()
        .unwrap_or_else(|| {
            error(
                PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
                format!("{func}: job_id: there is no ingestion job {id}"),
            )
            .hint("qortex_job_create() returns the id of a new job")
            .raise()
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
    let entries: Vec<Value> = error
        .map(|e| json!({"document": label, "error": e}))
        .into_iter()
        .collect();
    record_many(client, func, job, error.is_none() as i64, &entries);
}

/// Count a batch in its job: `stored` documents processed, one failure per error entry.
fn record_many(client: &mut SpiClient<'_>, func: &str, job: &Job, stored: i64, errors: &[Value]) {
    let processed = job.processed + stored;
    let failed = job.failed + errors.len() as i64;
    let total = job.total.max(processed + failed);
    let status = spec::job_status(total, processed, failed);
    let p = plan(
        client,
        "UPDATE qortex.ingestion_jobs
            SET total_documents = $2, processed_documents = $3, failed_documents = $4,
                status = $5, updated_at = pg_catalog.now(),
                completed_at = CASE WHEN $5 IN ('completed', 'partial', 'failed')
                                    THEN pg_catalog.now() END,
                errors = errors || (SELECT COALESCE(pg_catalog.jsonb_agg(e ||
                             pg_catalog.jsonb_build_object('timestamp', pg_catalog.now())
                             ORDER BY o), '[]')
                           FROM pg_catalog.jsonb_array_elements($6) WITH ORDINALITY x(e, o))
          WHERE id = $1",
        &[INT8, INT4, INT4, INT4, TEXT, JSONB],
        true,
    );
    client
        .update(
            &**p,
            None,
            &[
                job.id.into(),
                (total as i32).into(),
                (processed as i32).into(),
                (failed as i32).into(),
                status.into(),
                JsonB(Value::Array(errors.to_vec())).into(),
            ],
        )
        .unwrap_or_else(spi_failed(func));
}

/// A new ingestion job for `total_documents` documents of a managed collection.
#[pg_extern(volatile)]
fn qortex_job_create(
    collection: Option<String>,
    total_documents: Option<i32>,
    metadata: default!(Option<crate::jsonb::Jsonb>, "'{}'"),
) -> i64 {
    const F: &str = "qortex_job_create";
    crate::errors::require_writable(F);
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
        catalog::managed(client, F, &name);
        let p = plan(
            client,
            "INSERT INTO qortex.ingestion_jobs (collection, total_documents, metadata)
             VALUES ($1, $2, $3) RETURNING id",
            &[TEXT, INT4, JSONB],
            true,
        );
        client
            .update(
                &**p,
                Some(1),
                &[name.as_str().into(), total.into(), JsonB(metadata).into()],
            )
            .unwrap_or_else(spi_failed(F))
            .next()
            .and_then(|r| r.get::<i64>(1).ok().flatten())
            .unwrap_or_else(|| internal(F, "the insert returned no id"))
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
            .select(&**p, Some(1), &[id.into()])
            .unwrap_or_else(spi_failed(F))
            .next()
            .and_then(|r| r.get::<JsonB>(1).ok().flatten())
            .unwrap_or_else(|| {
                error(
                    PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
                    format!("{F}: job_id: there is no ingestion job {id}"),
                )
                .raise()
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
    crate::errors::require_writable(F);
    let name = required(F, "collection", collection);
    let id = required(F, "document_id", document_id);
    Spi::connect_mut(|client| {
        let (_, docs) = catalog::managed(client, F, &name);
        let p = plan(
            client,
            &format!("DELETE FROM {docs} WHERE id = $1"),
            &[INT8],
            true,
        );
        !client
            .update(&**p, None, &[id.into()])
            .unwrap_or_else(spi_failed(F))
            .is_empty()
    })
}

// A load larger than one call should take, in batches each committed on its own, so the
// job's progress is readable from other sessions while it runs (a procedure: CALL it
// outside a transaction block).
pgrx::extension_sql!(
    r#"
CREATE PROCEDURE qortex_ingest_batches(
    collection TEXT, documents jsonb, INOUT job_id bigint DEFAULT NULL,
    batch_size INT DEFAULT 500
) LANGUAGE plpgsql AS $$
DECLARE
    items jsonb[];
    n int;
    i int := 1;
BEGIN
    IF collection IS NULL OR documents IS NULL THEN
        RAISE EXCEPTION 'qortex_ingest_batches: %: must not be NULL',
            CASE WHEN collection IS NULL THEN 'collection' ELSE 'documents' END
            USING ERRCODE = '22023';
    END IF;
    IF pg_catalog.jsonb_typeof(documents) <> 'array' THEN
        RAISE EXCEPTION 'qortex_ingest_batches: documents: must be a JSON array of document objects, each with its "chunks"'
            USING ERRCODE = '22023';
    END IF;
    IF batch_size IS NULL OR batch_size < 1 OR batch_size > 10000 THEN
        RAISE EXCEPTION 'qortex_ingest_batches: batch_size: must be between 1 and 10000, got %',
            coalesce(batch_size::text, 'NULL') USING ERRCODE = '22023';
    END IF;
    items := ARRAY(SELECT e FROM pg_catalog.jsonb_array_elements(documents) e);
    n := pg_catalog.cardinality(items);
    IF job_id IS NULL THEN
        job_id := @extschema@.qortex_job_create(collection, n);
    END IF;
    RAISE NOTICE 'qortex_ingest_batches: % documents into collection "%": ingestion job %',
        n, collection, job_id
        USING HINT = pg_catalog.format('SELECT qortex_job_status(%s) shows its progress', job_id);
    COMMIT;
    WHILE i <= n LOOP
        PERFORM @extschema@.qortex_ingest_batch(
            collection, pg_catalog.to_jsonb(items[i:i + batch_size - 1]), job_id);
        COMMIT;
        i := i + batch_size;
    END LOOP;
END
$$;
"#,
    name = "qortex_ingest_batches",
    requires = [qortex_ingest_batch, qortex_job_create]
);
