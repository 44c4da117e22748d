"""Client-side tests: they talk to a running PostgreSQL the way users do (psycopg, plain SQL).

scripts/test.sh starts a throw-away cluster and passes its socket directory and port in
QORTEX_TEST_HOST / QORTEX_TEST_PORT. Every test gets its own freshly created database.
"""
import itertools
import os
import pathlib
import tomllib

import psycopg
import pytest

HOST = os.environ.get("QORTEX_TEST_HOST", "localhost")
PORT = int(os.environ.get("QORTEX_TEST_PORT", "28816"))
_names = itertools.count()
ROOT = pathlib.Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]["version"]


def connect(dbname, **kw):
    return psycopg.connect(host=HOST, port=PORT, user="postgres", dbname=dbname, **kw)


def _new_database():
    name = f"qortex_it_{os.getpid()}_{next(_names)}"
    with connect("postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield name
    with connect("postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def empty_db():
    """Name of a new database without any extension; dropped after the test."""
    yield from _new_database()


@pytest.fixture
def another_db():
    """A second new database, for tests that compare two."""
    yield from _new_database()


@pytest.fixture
def db(empty_db):
    """An autocommit connection to a new database with `CREATE EXTENSION qortex CASCADE` done."""
    with connect(empty_db, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION qortex CASCADE")
        yield conn
