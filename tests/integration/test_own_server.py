"""Tests that need a server of their own (a second throw-away cluster, started with
scripts/cluster.sh and QORTEX_PRELOAD=0): qortex without the preload, and a backend crash."""
import os
import signal
import subprocess
import threading
import time

import psycopg
import pytest
from psycopg.types.json import Jsonb

from conftest import ROOT

PORT = int(os.environ.get("QORTEX_TEST_PORT", "28816")) + 1
MAJOR = os.environ.get("PG_MAJOR", "15")
DIR = ROOT / ".pg" / ("test-own" if MAJOR == "15" else f"test-own-{MAJOR}")


def own(dbname="postgres"):
    return psycopg.connect(host=str(DIR / "run"), port=PORT, user="postgres", dbname=dbname,
                           autocommit=True)


@pytest.fixture(scope="module")
def plain_server():
    cluster = [str(ROOT / "scripts" / "cluster.sh")]
    env = dict(os.environ, QORTEX_PRELOAD="0")
    subprocess.run(cluster + ["stop", str(DIR)], check=True, env=env)
    subprocess.run(cluster + ["start", str(DIR), str(PORT)], check=True, env=env)
    yield
    subprocess.run(cluster + ["stop", str(DIR)], check=True, env=env)


def test_without_preload_learning_works_and_counters_are_null(plain_server):
    with own() as conn:
        assert conn.execute("SHOW shared_preload_libraries").fetchone()[0] == ""
        conn.execute("DROP EXTENSION IF EXISTS qortex CASCADE")
        conn.execute("CREATE EXTENSION qortex CASCADE")
        try:
            conn.execute("SELECT * FROM qortex_observe('np', 'a', 'accepted')")
            assert conn.execute("SELECT arm_id FROM qortex_select_arms('np', ARRAY['a'])") \
                .fetchone() == ("a",)
            m = conn.execute("SELECT qortex_metrics('np')").fetchone()[0]
            assert m["total_pulls"] == 1
            assert m["selections"] is None and m["observations"] is None
            counters = conn.execute("SELECT qortex_status()").fetchone()[0]["counters"]
            assert counters["enabled"] is False
            assert "shared_preload_libraries" in counters["hint"]
        finally:
            conn.execute("DROP EXTENSION qortex CASCADE")


def test_a_backend_killed_mid_ingest_leaves_no_partial_document(plain_server):
    """kill -9 the backend while it inserts a 10,000-chunk document: after crash recovery
    the documents committed before are whole and nothing of the killed one exists."""
    with own() as conn:
        conn.execute("DROP DATABASE IF EXISTS crash")
        conn.execute("CREATE DATABASE crash")
    with own("crash") as conn:
        conn.execute("CREATE EXTENSION qortex CASCADE")
        conn.execute("SELECT qortex_create_collection('big', 8)")
        job = conn.execute("SELECT qortex_job_create('big', 2)").fetchone()[0]
        chunks = [{"content": f"chunk {i}", "embedding": [float((i * 7 + j) % 13) for j in range(8)]}
                  for i in range(10_000)]
        conn.execute("SELECT qortex_ingest('big', '{}', %s, %s)", (Jsonb(chunks[:20]), job))
    victim = own("crash")
    pid = victim.execute("SELECT pg_backend_pid()").fetchone()[0]
    failure = []

    def run():
        try:
            victim.execute("SELECT qortex_ingest('big', '{}', %s, %s)", (Jsonb(chunks), job))
        except psycopg.Error as e:
            failure.append(e)

    t = threading.Thread(target=run)
    t.start()
    with own("crash") as watcher:
        for _ in range(200):
            active = watcher.execute(
                "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND state = 'active'", (pid,))
            if active.fetchone():
                break
            time.sleep(0.01)
    time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
    t.join()
    victim.close()
    assert failure, "the ingest finished before the kill; make the document bigger"
    for _ in range(300):  # the postmaster restarts every backend and recovers
        try:
            with own("crash") as conn:
                conn.execute("SELECT 1")
                break
        except psycopg.OperationalError:
            time.sleep(0.1)
    with own("crash") as conn:
        docs = conn.execute("SELECT count(*) FROM qortex.big_documents").fetchone()[0]
        per_doc = conn.execute("SELECT count(*) FROM qortex.big_chunks "
                               "GROUP BY document_id").fetchall()
        assert (docs, per_doc) == (1, [(20,)])
        status = conn.execute("SELECT qortex_job_status(%s)", (job,)).fetchone()[0]
        assert (status["status"], status["processed_documents"]) == ("processing", 1)
    with own() as conn:
        conn.execute("DROP DATABASE crash")


def test_edge_scores_survive_a_restart(plain_server):
    """The Python store keeps edge scores in memory; here they are rows, kept across a
    real server restart."""
    with own() as conn:
        conn.execute("DROP DATABASE IF EXISTS edges")
        conn.execute("CREATE DATABASE edges")
    with own("edges") as conn:
        conn.execute("CREATE EXTENSION qortex CASCADE")
        conn.execute("SELECT qortex_create_collection('kb', 2)")
        conn.execute("""SELECT qortex_ingest('kb', '{}', '[{"content": "a", "embedding": [1, 0]},
                        {"content": "b", "embedding": [1, 0.2]}]')""")
        ids = [r[0] for r in conn.execute("SELECT id::text FROM qortex.kb_chunks ORDER BY id")]
        for _ in range(2):
            conn.execute("SELECT interoception_record_edges('kb', %s)", (ids,))
        before = conn.execute("SELECT * FROM qortex.interoception_edge_buffer").fetchall()
    cluster = [str(ROOT / "scripts" / "cluster.sh")]
    env = dict(os.environ, QORTEX_PRELOAD="0")
    subprocess.run(cluster + ["stop", str(DIR)], check=True, env=env)
    subprocess.run(cluster + ["start", str(DIR), str(PORT)], check=True, env=env)
    with own("edges") as conn:
        after = conn.execute("SELECT * FROM qortex.interoception_edge_buffer").fetchall()
        assert after == before and after[0][2] == 2 and len(after[0][3]) == 2
    with own() as conn:
        conn.execute("DROP DATABASE edges")
