//! Transactional ingestion into managed collections (API.md §2): one document and all its
//! chunks in one statement, ingestion jobs that record failed documents and go on, and
//! deletion of a document with its chunks.
use crate::catalog::{self, Layout};
use crate::errors::{error, internal, invalid_param, required};
use crate::jsonb::object_arg;
use crate::spi::{plan, spi_failed, BOOL, INT4, INT8, JSONB, JSONB_ARRAY, TEXT, TEXT_ARRAY};
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

/// Run `f` in a subtransaction: its error (SQLSTATE and message) is caught and everything
/// it did rolled back, as a PL/pgSQL EXCEPTION block does.
fn in_subtransaction<R>(
    f: impl FnOnce() -> R + std::panic::UnwindSafe,
) -> Result<R, (PgSqlErrorCode, String)> {
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
                    (r.sql_error_code(), r.message().to_owned())
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
            &**p,
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
