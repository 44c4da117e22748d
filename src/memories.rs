//! One free-text memory per user (API.md §2): `qortex_remember` upserts it,
//! `qortex_recall` reads it.
use crate::errors::{internal, invalid_param, required};
use crate::jsonb::object_arg;
use crate::spi::{plan, spi_failed, JSONB, TEXT};
use pgrx::prelude::*;
use pgrx::JsonB;
use qortex_core::ParamError;
use serde_json::json;

/// Characters one user memory holds; bigger memories are refused, not cut.
pub const MAX_MEMORY_CHARS: usize = 65_536;

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
                    updated_at = excluded.updated_at
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
