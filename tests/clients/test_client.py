"""qortex_client's core: QortexClient over every supported connection, its errors, and what
it leaves of the caller's connection."""
import json
import subprocess
import sys

import psycopg
import pytest

from conftest import ASYNC_DRIVERS, DRIVERS, Opened, conninfo, embed, run, sql_rows
from qortex_client import (
    DataError,
    InvalidArgumentError,
    QortexClient,
    QortexError,
    UndefinedObjectError,
)


def as_rows(hits):
    return [(h.id, h.document_id, h.content, h.metadata, h.score, h.vector_rank,
             h.vector_similarity, h.text_rank, h.text_score, h.factor) for h in hits]


async def search_with(kind, dbname, *args, **kw):
    async with Opened(kind, dbname) as conn:
        client = QortexClient(conn)
        if kind in ASYNC_DRIVERS:
            return await client.asearch(*args, **kw)
        return client.search(*args, **kw)


@pytest.mark.parametrize("kind", DRIVERS)
def test_search_returns_the_sql_calls_rows(kind, db, kb):
    q = "why do cats purr"
    for options in ({}, {"fusion": "weighted"}, {"filter": {"topic": "food"}}, {"user_id": "u1"}):
        got = run(search_with(kind, db.info.dbname, "kb", embed(q), q, 5, options))
        assert as_rows(got) == sql_rows(db, "kb", q, 5, options), (kind, options)
    # one leg at a time
    got = run(search_with(kind, db.info.dbname, "kb", None, "brewed", 3))
    assert as_rows(got) == sql_rows(db, "kb", "brewed", 3, vector=False)
    assert all(h.vector_rank is None for h in got) and len(got) == 2


@pytest.mark.parametrize("kind", DRIVERS)
def test_errors_keep_sqlstate_message_hint_and_detail(kind, db, kb):
    d = db.info.dbname

    def error(*args, **kw):
        with pytest.raises(QortexError) as e:
            run(search_with(kind, d, *args, **kw))
        return e.value

    e = error("kb", [0.5, 0.5], "cats")  # wrong dimension
    assert type(e) is DataError and isinstance(e, ValueError)
    assert e.sqlstate == "22000"
    assert e.message == 'hybrid_search: query_embedding has 2 dimensions; collection "kb" has 64'
    assert e.driver_error is e.__cause__ and e.driver_error is not None

    e = error("nope", embed("x"), "cats")
    assert type(e) is UndefinedObjectError and e.sqlstate == "42704" and isinstance(e, LookupError)
    assert 'collection "nope" does not exist' in e.message

    e = error("kb", None, "cats", options={"fusoin": "rrf"})
    assert type(e) is InvalidArgumentError and e.sqlstate == "22023"
    assert e.message.startswith("hybrid_search: invalid options.fusoin: unknown option")

    e = error("kb", None, "cats", k=0)
    assert type(e) is InvalidArgumentError and "10000" in e.message

    # a filter on a column that is not a filter column: the HINT gives the registration
    db.execute("CREATE TABLE notes (id int PRIMARY KEY, body text, emb vector(2), meta jsonb, topic text)")
    db.execute("""INSERT INTO notes VALUES (1, 'cats purr', '[1,0]', '{"lang": "en"}', 'cats')""")
    db.execute("""SELECT qortex_register_collection('n', 'notes',
                  '{"id": "id", "embedding": "emb", "content": "body", "metadata": "meta"}')""")
    e = error("n", None, "cats", options={"filter": {"topic": "cats"}})
    assert type(e) is UndefinedObjectError and e.sqlstate == "42703"
    assert '"filters": ["topic"]' in e.hint
    assert e.detail == "A filter matches metadata keys, and the columns registered as filter columns."
    assert f"HINT: {e.hint}" in str(e) and f"DETAIL: {e.detail}" in str(e)


def test_driver_errors_map_alike(dbname, db):
    """from_driver_error gives the same exception for psycopg's and asyncpg's error of one
    statement (here 0A000 with a DETAIL and a HINT: ingesting into a registered collection)."""
    import asyncpg

    from qortex_client.errors import FeatureNotSupportedError, from_driver_error

    db.execute("CREATE TABLE t (id int PRIMARY KEY, body text, emb vector(2))")
    db.execute("""SELECT qortex_register_collection('t', 't',
                  '{"id": "id", "embedding": "emb", "content": "body"}')""")
    stmt = "SELECT qortex_ingest('t', '{}', '[]')"
    with pytest.raises(psycopg.Error) as pe:
        db.execute(stmt)

    async def main():
        conn = await asyncpg.connect(host=conninfo(dbname)["host"], port=conninfo(dbname)["port"],
                                     user="postgres", database=dbname)
        try:
            with pytest.raises(asyncpg.PostgresError) as ae:
                await conn.fetch(stmt)
            return ae.value
        finally:
            await conn.close()
    mapped = [from_driver_error(pe.value), from_driver_error(run(main()))]
    for m in mapped:
        assert type(m) is FeatureNotSupportedError and m.sqlstate == "0A000"
        assert m.message == 'qortex_ingest: collection "t" is registered, not managed'
        assert m.detail.startswith("A registered collection's table belongs to your application")
        assert m.hint == "write the table itself; qortex writes managed collections only"
    assert from_driver_error(ValueError("x")) is None


def test_feedback_counts_once_per_query_id(db, kb):
    client = QortexClient(db)
    cats = kb["cats-purr"]
    assert [(r.node_id, r.weight) for r in client.feedback({cats: "accepted"}, "q1")] == [(cats, 1.1)]
    assert client.feedback({cats: "accepted"}, "q1")[0].weight == pytest.approx(1.1)
    assert client.feedback({cats: "rejected"}, "q1")[0].weight == pytest.approx(0.95)
    # without a query id every call counts
    client.feedback({cats: "accepted"})
    assert client.feedback({cats: "accepted"})[0].weight == pytest.approx(1.15)
    with pytest.raises(InvalidArgumentError, match="outcome"):
        client.feedback({cats: "liked"}, "q2")
    assert db.execute("SELECT weight FROM qortex.interoception_factors WHERE node_id = %s",
                      (cats,)).fetchone()[0] == pytest.approx(1.15)  # nothing of the bad call


def test_a_transaction_is_left_as_it_was(dbname, db, kb):
    q = "cats"
    # not autocommit, idle: the call's implicit transaction is committed (not left open)
    with psycopg.connect(**conninfo(dbname)) as conn:
        client = QortexClient(conn)
        client.search("kb", None, q, 2)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        client.feedback({kb["tea"]: "accepted"}, "t1")
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert db.execute("SELECT count(*) FROM qortex.interoception_factors").fetchone()[0] == 1
        # inside the caller's transaction: stays in it, and a rollback takes the feedback back
        with pytest.raises(RuntimeError):
            with conn.transaction():
                client.feedback({kb["bread"]: "accepted"}, "t1")
                assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
                raise RuntimeError("the application changes its mind")
        assert db.execute("SELECT count(*) FROM qortex.interoception_factors").fetchone()[0] == 1
        # an error rolls back what the call opened: the connection is usable again
        with pytest.raises(DataError):
            client.search("kb", [1.0], q)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert client.search("kb", None, q, 1)[0].id == kb["cats-purr"]


def test_a_row_factory_of_the_application_does_not_matter(dbname, kb):
    from psycopg.rows import dict_row

    with psycopg.connect(**conninfo(dbname), autocommit=True, row_factory=dict_row) as conn:
        assert QortexClient(conn).search("kb", None, "tea", 1)[0].id == kb["tea"]


def test_codecs_of_the_application_do_not_matter(dbname, db, kb):
    """pgvector's own adapters (psycopg and asyncpg) and a jsonb codec registered by the
    application: parameters are sent as text, so the same calls work."""
    import asyncpg
    from pgvector.asyncpg import register_vector as register_asyncpg
    from pgvector.psycopg import register_vector

    with psycopg.connect(**conninfo(dbname), autocommit=True) as conn:
        register_vector(conn)
        assert QortexClient(conn).search("kb", embed("tea"), "tea", 1)[0].id == kb["tea"]

    async def main():
        async def init(c):
            await register_asyncpg(c)
            await c.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads,
                                   schema="pg_catalog")
        pool = await asyncpg.create_pool(host=conninfo(dbname)["host"], port=conninfo(dbname)["port"],
                                         user="postgres", database=dbname, init=init)
        try:
            hits = await QortexClient(pool).asearch("kb", embed("tea"), "tea", 1)
            return hits[0].id, hits[0].metadata
        finally:
            await pool.close()
    assert run(main()) == (kb["tea"], {"topic": "food"})


def test_sync_calls_on_an_async_connection_say_what_to_do(dbname):
    async def main():
        async with Opened("asyncpg-pool", dbname) as pool:
            with pytest.raises(TypeError, match="asynchronous"):
                QortexClient(pool).search("kb", None, "x")
    run(main())
    with pytest.raises(TypeError, match="unsupported connection"):
        QortexClient(object())


def test_the_core_imports_no_driver_and_no_framework():
    code = ("import sys, qortex_client; "
            "print(sorted(m for m in ('psycopg', 'asyncpg', 'langchain_core', 'llama_index', "
            "'pydantic', 'qortex.learning') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_package_is_typed():
    import importlib.resources

    assert importlib.resources.files("qortex_client").joinpath("py.typed").is_file()


def test_embeddings_are_sent_as_the_float4_values_vector_stores(db):
    """The text the client sends for an embedding gives pgvector the float4 of each value
    (what a binary client would send), for lists and numpy arrays; non-finite values are
    refused before the call."""
    import random
    import struct

    import numpy as np

    from qortex_client._client import vector_literal

    r = random.Random(7)
    values = [r.uniform(-1, 1) * 10 ** r.randint(-30, 30) for _ in range(300)] + [0.0, -0.0, 1.0]
    def f32(xs):  # as float4 (psycopg reads a real as the double of its shortest text)
        return list(struct.unpack(f"{len(xs)}f", struct.pack(f"{len(xs)}f", *xs)))

    stored = db.execute("SELECT %s::vector::real[]", (vector_literal(values),)).fetchone()[0]
    assert f32(stored) == f32(values)
    arr = np.array(values[:10], dtype=np.float32)
    assert f32(db.execute("SELECT %s::vector::real[]", (vector_literal(arr),)).fetchone()[0]) == arr.tolist()
    for bad in ([0.5, float("nan")], [float("-inf")], [1e300]):
        with pytest.raises(ValueError):
            vector_literal(bad)
