"""One way to run a statement over whichever connection the application has.

Supported, recognised by class (no driver is imported unless the application uses it):

- psycopg 3: ``psycopg.Connection``, ``psycopg.AsyncConnection``,
  ``psycopg_pool.ConnectionPool``, ``psycopg_pool.AsyncConnectionPool``;
- asyncpg: ``asyncpg.Pool``, ``asyncpg.Connection`` (and a pool's acquired connection).

Statements are written with ``%s`` placeholders and every parameter cast explicitly
(``%s::text::vector``), so they mean the same to both drivers whatever codecs the application
registered (pgvector's, a jsonb codec). A psycopg connection in a transaction is left in it;
one that is idle and not in autocommit gets its implicit transaction committed (or rolled back
on error), so a call never leaves it "idle in transaction". Server errors are raised as
:mod:`qortex_client.errors` exceptions.
"""
from __future__ import annotations

import asyncio
import re
from typing import Any, NoReturn, Sequence

from .errors import from_driver_error

SYNC_CONN, SYNC_POOL, ASYNC_CONN, ASYNC_POOL, ASYNCPG = (
    "psycopg", "psycopg_pool", "psycopg_async", "psycopg_async_pool", "asyncpg")


def kind_of(connection: Any) -> str:
    """Which driver object this is (TypeError for anything else)."""
    for cls in type(connection).__mro__:
        mod, name = cls.__module__, cls.__name__
        if mod.startswith("psycopg_pool"):
            if name == "ConnectionPool":
                return SYNC_POOL
            if name == "AsyncConnectionPool":
                return ASYNC_POOL
        elif mod.startswith("psycopg"):
            if name == "Connection":
                return SYNC_CONN
            if name == "AsyncConnection":
                return ASYNC_CONN
        elif mod.startswith("asyncpg") and name in ("Connection", "Pool", "PoolConnectionProxy"):
            return ASYNCPG
    raise TypeError(
        f"unsupported connection {type(connection).__module__}.{type(connection).__name__}: pass a "
        "psycopg 3 Connection/AsyncConnection, a psycopg_pool ConnectionPool/AsyncConnectionPool, "
        "or an asyncpg Pool/Connection")


def is_async(connection: Any) -> bool:
    return kind_of(connection) in (ASYNC_CONN, ASYNC_POOL, ASYNCPG)


_PLACEHOLDER = re.compile(r"%s")


def _numbered(sql: str) -> str:
    """``%s`` placeholders as asyncpg's ``$1, $2, ...``."""
    n = iter(range(1, 1 << 16))
    return _PLACEHOLDER.sub(lambda _: f"${next(n)}", sql)


def _raise(err: BaseException) -> NoReturn:
    mapped = from_driver_error(err)
    if mapped is not None:
        raise mapped from err
    raise err


class Statement:
    """A statement prepared for both drivers' placeholder styles."""

    __slots__ = ("psycopg", "asyncpg")

    def __init__(self, sql: str) -> None:
        self.psycopg = sql
        self.asyncpg = _numbered(sql)


def _tuple_row() -> Any:
    from psycopg.rows import tuple_row
    return tuple_row


def _fetch_psycopg(conn: Any, stmt: Statement, params: Sequence[Any]) -> list[Any]:
    # commit the implicit transaction only if this call opened it (0 = IDLE)
    owns = not conn.autocommit and conn.info.transaction_status == 0
    try:
        with conn.cursor(row_factory=_tuple_row()) as cur:
            cur.execute(stmt.psycopg, params)
            rows = cur.fetchall() if cur.description is not None else []
    except Exception as err:
        if owns and not conn.closed:
            conn.rollback()
        _raise(err)
    if owns:
        conn.commit()
    return rows


async def _afetch_psycopg(conn: Any, stmt: Statement, params: Sequence[Any]) -> list[Any]:
    owns = not conn.autocommit and conn.info.transaction_status == 0
    try:
        async with conn.cursor(row_factory=_tuple_row()) as cur:
            await cur.execute(stmt.psycopg, params)
            rows = await cur.fetchall() if cur.description is not None else []
    except Exception as err:
        if owns and not conn.closed:
            await conn.rollback()
        _raise(err)
    if owns:
        await conn.commit()
    return rows


def fetch(connection: Any, stmt: Statement, params: Sequence[Any]) -> list[Any]:
    """Rows of the statement, on a synchronous connection or pool."""
    kind = kind_of(connection)
    if kind == SYNC_CONN:
        return _fetch_psycopg(connection, stmt, params)
    if kind == SYNC_POOL:
        try:
            with connection.connection() as conn:  # the pool commits (or rolls back) on return
                return _fetch_psycopg(conn, stmt, params)
        except Exception as err:
            _raise(err)
    raise TypeError(
        "this connection is asynchronous: use the async method (ainvoke, aretrieve, "
        "afeedback, asearch), or give a synchronous psycopg connection or pool")


async def afetch(connection: Any, stmt: Statement, params: Sequence[Any]) -> list[Any]:
    """Rows of the statement, on an asynchronous connection or pool (a synchronous one runs
    in a worker thread)."""
    kind = kind_of(connection)
    if kind == ASYNCPG:
        try:
            return list(await connection.fetch(stmt.asyncpg, *params))
        except Exception as err:
            _raise(err)
    if kind == ASYNC_CONN:
        return await _afetch_psycopg(connection, stmt, params)
    if kind == ASYNC_POOL:
        try:
            async with connection.connection() as conn:
                return await _afetch_psycopg(conn, stmt, params)
        except Exception as err:
            _raise(err)
    return await asyncio.to_thread(fetch, connection, stmt, params)
