"""qortex on a server that does not preload it: everything works, counters say why they
are missing. This starts a second throw-away cluster (scripts/cluster.sh, QORTEX_PRELOAD=0)."""
import os
import subprocess

import psycopg
import pytest

from conftest import ROOT

PORT = int(os.environ.get("QORTEX_TEST_PORT", "28816")) + 1
DIR = ROOT / ".pg" / "test-nopreload"


@pytest.fixture(scope="module")
def plain_server():
    cluster = [str(ROOT / "scripts" / "cluster.sh")]
    env = dict(os.environ, QORTEX_PRELOAD="0")
    subprocess.run(cluster + ["stop", str(DIR)], check=True, env=env)
    subprocess.run(cluster + ["start", str(DIR), str(PORT)], check=True, env=env)
    yield
    subprocess.run(cluster + ["stop", str(DIR)], check=True, env=env)


def test_without_preload_learning_works_and_counters_are_null(plain_server):
    with psycopg.connect(host=str(DIR / "run"), port=PORT, user="postgres", dbname="postgres",
                         autocommit=True) as conn:
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
