//! A user's memory history: the text appends pushed out of the memory, oldest first by
//! `seq`, read by `qortex_memory_history` and folded by an outside summariser with
//! `qortex_memory_history_replace`. Both writers of a user's history lock the user's memory
//! row first, so seqs are given in order.
use super::micros_sql;
use crate::errors::{invalid_param, require_writable, required};
use crate::spi::{plan, spi_failed, INT8, TEXT};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use pgrx::spi::{SpiClient, SpiHeapTupleData};
use qortex_core::memory::PushedOut;
use qortex_core::ParamError;

/// Store what an append pushed out as the user's next history row; its seq.
pub(super) fn archive(client: &mut SpiClient<'_>, func: &str, user: &str, p: &PushedOut) -> i64 {
    let last = plan(
        client,
        "SELECT COALESCE(pg_catalog.max(seq), 0) FROM qortex.user_memory_history
          WHERE user_id = $1",
        &[TEXT],
        false,
    );
    let seq = client
        .select(&**last, Some(1), &[user.into()])
        .unwrap_or_else(spi_failed(func))
        .next()
        .and_then(|r| r.get::<i64>(1).ok().flatten())
        .unwrap_or(0)
        + 1;
    let insert = plan(
        client,
        &format!(
            "INSERT INTO qortex.user_memory_history
                    (user_id, seq, memory, written_from, written_to)
             VALUES ($1, $2, $3, {}, {})",
            micros_sql(4),
            micros_sql(5)
        ),
        &[TEXT, INT8, TEXT, INT8, INT8],
        true,
    );
    client
        .update(
            &**insert,
            None,
            &[
                user.into(),
                seq.into(),
                p.text.as_str().into(),
                p.first.into(),
                p.last.into(),
            ],
        )
        .unwrap_or_else(spi_failed(func));
    seq
}

type HistoryRow = (
    i64,
    String,
    TimestampWithTimeZone,
    TimestampWithTimeZone,
    i32,
    bool,
    TimestampWithTimeZone,
);

const COLUMNS: &str = "seq, memory, written_from, written_to, pieces, summarized, archived_at";

fn history_row(func: &str, r: &SpiHeapTupleData<'_>) -> HistoryRow {
    let time = |i: usize| {
        r.get::<TimestampWithTimeZone>(i)
            .ok()
            .flatten()
            .unwrap_or_else(|| crate::errors::internal(func, "a history row without its times"))
    };
    (
        r.get::<i64>(1).ok().flatten().unwrap_or_default(),
        r.get::<String>(2).ok().flatten().unwrap_or_default(),
        time(3),
        time(4),
        r.get::<i32>(5).ok().flatten().unwrap_or(1),
        r.get::<bool>(6).ok().flatten().unwrap_or(false),
        time(7),
    )
}

/// The user's memory history, oldest first: every row, or those with `seq` from `from_seq`
/// to `to_seq`.
#[allow(clippy::type_complexity)]
#[pg_extern(stable)]
fn qortex_memory_history(
    user_id: Option<String>,
    from_seq: default!(Option<i64>, "NULL"),
    to_seq: default!(Option<i64>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(seq, i64),
        name!(memory, String),
        name!(written_from, TimestampWithTimeZone),
        name!(written_to, TimestampWithTimeZone),
        name!(pieces, i32),
        name!(summarized, bool),
        name!(archived_at, TimestampWithTimeZone),
    ),
> {
    const F: &str = "qortex_memory_history";
    let user = required(F, "user_id", user_id);
    let rows: Vec<_> = Spi::connect(|client| {
        let p = plan(
            client,
            &format!(
                "SELECT {COLUMNS} FROM qortex.user_memory_history
                  WHERE user_id = $1 AND seq >= COALESCE($2, 0)
                    AND seq <= COALESCE($3, 9223372036854775807)
                  ORDER BY seq"
            ),
            &[TEXT, INT8, INT8],
            false,
        );
        client
            .select(
                &**p,
                None,
                &[user.as_str().into(), from_seq.into(), to_seq.into()],
            )
            .unwrap_or_else(spi_failed(F))
            .map(|r| history_row(F, &r))
            .collect()
    });
    TableIterator::new(rows)
}

/// Replace the user's history rows from `from_seq` to `to_seq` by one holding `memory` (a
/// summary of theirs, say): it takes the first seq, the time range of them all, and stands
/// for all their pieces. Returns it.
#[allow(clippy::type_complexity)]
#[pg_extern(volatile)]
fn qortex_memory_history_replace(
    user_id: Option<String>,
    from_seq: Option<i64>,
    to_seq: Option<i64>,
    memory: Option<String>,
) -> TableIterator<
    'static,
    (
        name!(seq, i64),
        name!(memory, String),
        name!(written_from, TimestampWithTimeZone),
        name!(written_to, TimestampWithTimeZone),
        name!(pieces, i32),
        name!(summarized, bool),
        name!(archived_at, TimestampWithTimeZone),
    ),
> {
    const F: &str = "qortex_memory_history_replace";
    require_writable(F);
    let user = required(F, "user_id", user_id);
    let from = required(F, "from_seq", from_seq);
    let to = required(F, "to_seq", to_seq);
    let memory = required(F, "memory", memory);
    if from > to {
        invalid_param(
            F,
            ParamError::new("to_seq", format!("is {to}, before from_seq {from}")),
        );
    }
    let row = Spi::connect_mut(|client| {
        // (appends of this user wait until this commits)
        let lock = plan(
            client,
            "SELECT 1 FROM qortex.user_memories WHERE user_id = $1 FOR UPDATE",
            &[TEXT],
            true,
        );
        client
            .update(&**lock, Some(1), &[user.as_str().into()])
            .unwrap_or_else(spi_failed(F));
        let p = plan(
            client,
            &format!(
                "WITH gone AS (
                     DELETE FROM qortex.user_memory_history
                      WHERE user_id = $1 AND seq >= $2 AND seq <= $3
                     RETURNING seq, written_from, written_to, pieces)
                 INSERT INTO qortex.user_memory_history
                        (user_id, seq, memory, written_from, written_to, pieces, summarized)
                 SELECT $1, pg_catalog.min(seq), $4, pg_catalog.min(written_from),
                        pg_catalog.max(written_to), pg_catalog.sum(pieces)::int, true
                   FROM gone HAVING pg_catalog.count(*) > 0
                 RETURNING {COLUMNS}"
            ),
            &[TEXT, INT8, INT8, TEXT],
            true,
        );
        client
            .update(
                &**p,
                Some(1),
                &[
                    user.as_str().into(),
                    from.into(),
                    to.into(),
                    memory.as_str().into(),
                ],
            )
            .unwrap_or_else(spi_failed(F))
            .next()
            .map(|r| history_row(F, &r))
            .unwrap_or_else(|| {
                invalid_param(
                    F,
                    ParamError::new(
                        "from_seq",
                        format!("user {user:?} has no history from seq {from} to {to}"),
                    ),
                )
            })
    });
    TableIterator::once(row)
}
