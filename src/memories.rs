//! One free-text memory per user (API.md §2): `qortex_remember` upserts it,
//! `qortex_recall` reads it. `qortex_remember_append` adds to it and moves what no longer
//! fits (`qortex.memory_max_chars`) into the user's history (`history`).
use crate::errors::{internal, invalid_param, required};
use crate::jsonb::object_arg;
use crate::settings::MEMORY_MAX_CHARS;
use crate::spi::{plan, spi_failed, INT8, JSONB, TEXT};
use pgrx::prelude::*;
use pgrx::JsonB;
use qortex_core::memory::{append, segments_json, segments_or};
use qortex_core::ParamError;
use serde_json::json;

mod history;

/// Store (replace) the one free-text memory of a user.
#[pg_extern(volatile)]
fn qortex_remember(
    user_id: Option<String>,
    memory: Option<String>,
    metadata: default!(Option<crate::jsonb::Jsonb>, "'{}'"),
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
    crate::errors::require_writable(F);
    let user = required(F, "user_id", user_id);
    let memory = required(F, "memory", memory);
    let chars = memory.chars().count();
    let max = MEMORY_MAX_CHARS.get();
    if chars > max as usize {
        crate::errors::bad_arg(
            F,
            ParamError::new(
                "memory",
                format!("has {chars} characters; a memory holds at most {max}"),
            ),
        )
        .hint(
            "qortex_remember_append keeps the newest characters and moves the oldest into \
               the user's history; the bound is the setting qortex.memory_max_chars",
        )
        .raise();
    }
    let metadata = object_arg(F, "metadata", metadata);
    let row = Spi::connect_mut(|client| {
        let p = plan(
            client,
            "INSERT INTO qortex.user_memories (user_id, memory, metadata) VALUES ($1, $2, $3)
             ON CONFLICT (user_id) DO UPDATE
                SET memory = excluded.memory, metadata = excluded.metadata,
                    updated_at = excluded.updated_at, segments = NULL
             RETURNING user_id, memory, metadata, updated_at",
            &[TEXT, TEXT, JSONB],
            true,
        );
        client
            .update(
                &**p,
                Some(1),
                &[
                    user.as_str().into(),
                    memory.as_str().into(),
                    JsonB(metadata).into(),
                ],
            )
            .unwrap_or_else(spi_failed(F))
            .next()
            .map(|r| memory_row(&r))
            .unwrap_or_else(|| internal(F, "the upsert returned no row"))
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
            .unwrap_or_else(|| internal("qortex_recall", "a memory without updated_at")),
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
            .select(&**p, Some(1), &[user.as_str().into()])
            .unwrap_or_else(spi_failed(F))
            .map(|r| memory_row(&r))
            .collect()
    });
    TableIterator::new(rows)
}

/// Microseconds since 1970 of the transaction's start (`now()`).
fn now_micros() -> i64 {
    // (PostgreSQL counts from 2000-01-01)
    const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
    // SAFETY: reads the current transaction's start time
    let since_2000 = unsafe { pg_sys::GetCurrentTransactionStartTimestamp() };
    since_2000 + PG_EPOCH_MICROS
}

/// `$n` microseconds since 1970 as a timestamptz, in SQL.
fn micros_sql(n: u8) -> String {
    format!(
        "(TIMESTAMPTZ 'epoch' OPERATOR(pg_catalog.+) \
          (${n}::float8 OPERATOR(pg_catalog.*) INTERVAL '1 microsecond'))"
    )
}

/// Add `memory` to the user's memory (after `separator`, unless the memory is empty): the
/// newest `qortex.memory_max_chars` characters stay in it, the oldest beyond them go into
/// the user's history with when they were appended. Concurrent appends for one user wait for
/// each other (the memory's row is locked), so none is lost and they keep their order.
#[allow(clippy::type_complexity)]
#[pg_extern(volatile)]
fn qortex_remember_append(
    user_id: Option<String>,
    memory: Option<String>,
    separator: default!(Option<String>, "E'\\n'"),
) -> TableIterator<
    'static,
    (
        name!(user_id, String),
        name!(memory_chars, i32),
        name!(pushed_out_chars, i32),
        name!(history_seq, Option<i64>),
        name!(updated_at, pgrx::datum::TimestampWithTimeZone),
    ),
> {
    const F: &str = "qortex_remember_append";
    crate::errors::require_writable(F);
    let user = required(F, "user_id", user_id);
    let text = required(F, "memory", memory);
    let separator = required(F, "separator", separator);
    if text.is_empty() {
        invalid_param(F, ParamError::new("memory", "is empty: nothing to append"));
    }
    let bound = MEMORY_MAX_CHARS.get() as usize;
    let now = now_micros();
    let row = Spi::connect_mut(|client| {
        let lock = plan(
            client,
            "SELECT memory, segments,
                    (EXTRACT(epoch FROM updated_at) OPERATOR(pg_catalog.*) 1000000)::int8
               FROM qortex.user_memories WHERE user_id = $1 FOR UPDATE",
            &[TEXT],
            true,
        );
        // The memory's row, locked; a first append inserts it, and if another inserted it
        // meanwhile (it commits first: the insert waits for it), this one reads it again.
        for _ in 0..2 {
            let current = client
                .update(&**lock, Some(1), &[user.as_str().into()])
                .unwrap_or_else(spi_failed(F))
                .next()
                .map(|r| {
                    let memory = r.get::<String>(1).ok().flatten().unwrap_or_default();
                    let stored = r.get::<JsonB>(2).ok().flatten();
                    let updated = r.get::<i64>(3).ok().flatten().unwrap_or(now);
                    let segs = segments_or(
                        stored.as_ref().map(|j| &j.0),
                        memory.chars().count(),
                        updated,
                    );
                    (memory, segs)
                });
            let exists = current.is_some();
            let (memory, segs) = current.unwrap_or_default();
            let a = append(&memory, &segs, &text, &separator, now, bound);
            let args = [
                user.as_str().into(),
                a.memory.as_str().into(),
                JsonB(segments_json(&a.segments)).into(),
                now.into(),
            ];
            let write = if exists {
                format!(
                    "UPDATE qortex.user_memories SET memory = $2, segments = $3, updated_at = {}
                      WHERE user_id = $1 RETURNING updated_at",
                    micros_sql(4)
                )
            } else {
                format!(
                    "INSERT INTO qortex.user_memories
                            (user_id, memory, segments, created_at, updated_at)
                     VALUES ($1, $2, $3, {t}, {t})
                     ON CONFLICT (user_id) DO NOTHING RETURNING updated_at",
                    t = micros_sql(4)
                )
            };
            let p = plan(client, &write, &[TEXT, TEXT, JSONB, INT8], true);
            let Some(updated_at) = client
                .update(&**p, Some(1), &args)
                .unwrap_or_else(spi_failed(F))
                .next()
                .and_then(|r| {
                    r.get::<pgrx::datum::TimestampWithTimeZone>(1)
                        .ok()
                        .flatten()
                })
            else {
                continue;
            };
            let seq = a
                .pushed_out
                .as_ref()
                .map(|p| history::archive(client, F, &user, p));
            let pushed = a.pushed_out.as_ref().map_or(0, |p| p.text.chars().count());
            return (
                user.clone(),
                a.memory.chars().count() as i32,
                pushed as i32,
                seq,
                updated_at,
            );
        }
        crate::errors::error(
            PgSqlErrorCode::ERRCODE_T_R_SERIALIZATION_FAILURE,
            format!("{F}: another transaction created the memory of this user concurrently"),
        )
        .hint("retry the transaction")
        .raise()
    });
    TableIterator::once(row)
}
