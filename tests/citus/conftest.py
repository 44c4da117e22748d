"""The Citus suite: a coordinator and two workers started by scripts/citus.sh (`make
test-citus`). Each test gets a new database on all three nodes with citus and qortex created
and the workers added, and, for comparisons, a plain database (no citus extension) on the
coordinator's server.
"""
import itertools
import os
import pathlib

import psycopg
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
RUN = os.environ.get("QORTEX_CITUS_RUN", str(ROOT / ".pg" / "citus"))
PORTS = {"coordinator": 28830, "worker1": 28831, "worker2": 28832}
_names = itertools.count()


def connect(node, dbname, **kw):
    return psycopg.connect(host=f"{RUN}/{node}/run", port=PORTS[node], user="postgres",
                           dbname=dbname, **kw)


def _admin(node, sql):
    with connect(node, "postgres", autocommit=True) as c:
        c.execute(sql)


@pytest.fixture
def cluster():
    """An autocommit connection to the coordinator of a new database spread over the
    cluster (citus and qortex on every node, both workers added)."""
    name = f"qortex_citus_{os.getpid()}_{next(_names)}"
    for node in PORTS:
        _admin(node, f'CREATE DATABASE "{name}"')
        with connect(node, name, autocommit=True) as c:
            c.execute("SET client_min_messages = warning")
            c.execute("CREATE EXTENSION citus")
            c.execute("CREATE EXTENSION qortex CASCADE")
    with connect("coordinator", name, autocommit=True) as c:
        c.execute("SET client_min_messages = warning")
        c.execute("SELECT citus_set_coordinator_host('127.0.0.1', %s)", (PORTS["coordinator"],))
        for w in ("worker1", "worker2"):
            c.execute("SELECT citus_add_node('127.0.0.1', %s)", (PORTS[w],))
        yield c
    for node in PORTS:
        _admin(node, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def single():
    """An autocommit connection to a plain database (qortex, no citus) on the coordinator's
    server: what one node does with the same rows."""
    name = f"qortex_single_{os.getpid()}_{next(_names)}"
    _admin("coordinator", f'CREATE DATABASE "{name}"')
    with connect("coordinator", name, autocommit=True) as c:
        c.execute("SET client_min_messages = warning")
        c.execute("CREATE EXTENSION qortex CASCADE")
        yield c
    _admin("coordinator", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
