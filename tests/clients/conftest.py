"""Tests of the Python package in clients/python (qortex-client), against a running server.

scripts/test.sh runs them after tests/integration, against the same throw-away cluster:
QORTEX_TEST_HOST / QORTEX_TEST_PORT name it, as for tests/integration, whose conftest's
helpers (connect, a new database per test) are reused here.
"""
import asyncio
import importlib.util
import json
import pathlib
import sys

import psycopg
import pytest

_spec = importlib.util.spec_from_file_location(
    "integration_conftest", pathlib.Path(__file__).resolve().parents[1] / "integration" / "conftest.py")
integration = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(integration)

HOST, PORT, ROOT, connect = integration.HOST, integration.PORT, integration.ROOT, integration.connect
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(EXAMPLES))  # fake_models: the deterministic embedding the examples use

from fake_models import DIM, embed  # noqa: E402

CORPUS = [
    # (external id, topic, user, text)
    ("cats-purr", "pets", None, "Cats purr when they are content and relaxed."),
    ("cats-sleep", "pets", None, "A cat sleeps most of the day, and purrs in its sleep."),
    ("dogs-bark", "pets", None, "Dogs bark at strangers and at the mailman."),
    ("dogs-walk", "pets", "u1", "Dogs love long walks in the park."),
    ("tea", "food", None, "Green tea is brewed below the boiling point."),
    ("coffee", "food", "u2", "Coffee is brewed with water just off the boil."),
    ("bread", "food", None, "Bread rises because yeast makes gas."),
    ("kitten", "pets", "u1", "A kitten chases string and purrs when held."),
]


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def dbname():
    """A new database with qortex created; dropped after the test."""
    gen = integration._new_database()
    name = next(gen)
    with connect(name, autocommit=True) as c:
        c.execute("SET client_min_messages = warning")
        c.execute("CREATE EXTENSION qortex CASCADE")
    yield name
    next(gen, None)


@pytest.fixture
def db(dbname):
    """An autocommit psycopg connection to that database (what the tests check with)."""
    with connect(dbname, autocommit=True) as conn:
        yield conn


def ingest_corpus(db, name="kb"):
    """A managed collection of CORPUS's chunks (one per document, its topic as metadata)."""
    db.execute("SELECT qortex_create_collection(%s, %s)", (name, DIM))
    ids = {}
    for ext, topic, user, text in CORPUS:
        doc = {"external_id": ext, "metadata": {"topic": topic}}
        if user:
            doc["user_id"] = user
        else:
            doc["is_global"] = True
        db.execute("SELECT qortex_ingest(%s, %s, %s)",
                   (name, json.dumps(doc), json.dumps([{"content": text, "embedding": embed(text)}])))
        ids[ext] = db.execute(
            f'SELECT c.id::text FROM qortex."{name}_chunks" c JOIN qortex."{name}_documents" d '
            "ON d.id = c.document_id WHERE d.external_id = %s", (ext,)).fetchone()[0]
    return ids


@pytest.fixture
def kb(db):
    """The corpus in collection "kb": {external id: chunk id}."""
    return ingest_corpus(db)


def sql_rows(db, collection, query, k=10, options=None, vector=True, text=True):
    """hybrid_search's rows for the query, as the retrievers must return them."""
    return db.execute(
        "SELECT id, document_id, content, metadata, score, vector_rank, vector_similarity, "
        "text_rank, text_score, factor FROM hybrid_search(%s, %s::vector, %s, %s, %s)",
        (collection, json.dumps(embed(query)) if vector else None, query if text else None, k,
         json.dumps(options or {}))).fetchall()


# -- one fixture per way of connecting, each yielding (sync connection or None, async one) --

def conninfo(dbname):
    return dict(host=HOST, port=PORT, user="postgres", dbname=dbname)


DRIVERS = ["psycopg", "psycopg-pool", "psycopg-async", "psycopg-async-pool", "asyncpg-pool",
           "asyncpg-conn"]
ASYNC_DRIVERS = ["psycopg-async", "psycopg-async-pool", "asyncpg-pool", "asyncpg-conn"]


class Opened:
    """A driver's connection or pool opened inside an event loop (async ones are bound to it)."""

    def __init__(self, kind, dbname):
        self.kind, self.dbname = kind, dbname

    async def __aenter__(self):
        import asyncpg
        import psycopg_pool

        info = conninfo(self.dbname)
        k = self.kind
        if k == "psycopg":
            self.obj = psycopg.connect(**info, autocommit=True)
        elif k == "psycopg-pool":
            self.obj = psycopg_pool.ConnectionPool(psycopg.conninfo.make_conninfo(**info),
                                                   min_size=1, max_size=8, open=True)
        elif k == "psycopg-async":
            self.obj = await psycopg.AsyncConnection.connect(**info, autocommit=True)
        elif k == "psycopg-async-pool":
            self.obj = psycopg_pool.AsyncConnectionPool(psycopg.conninfo.make_conninfo(**info),
                                                        min_size=1, max_size=8, open=False)
            await self.obj.open()
        elif k == "asyncpg-pool":
            self.obj = await asyncpg.create_pool(host=HOST, port=PORT, user="postgres",
                                                 database=self.dbname, min_size=1, max_size=8)
        elif k == "asyncpg-conn":
            self.obj = await asyncpg.connect(host=HOST, port=PORT, user="postgres",
                                             database=self.dbname)
        else:
            raise ValueError(k)
        return self.obj

    async def __aexit__(self, *exc):
        r = self.obj.close()
        if asyncio.iscoroutine(r):
            await r
