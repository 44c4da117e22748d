"""The runnable examples in examples/ (psql, Python, Node.js), run as a user would, against a
fresh database of the test server: they must work as written and print what they promise."""
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

from conftest import HOST, PORT, ROOT

EXAMPLES = ROOT / "examples"


def run(cmd, dbname, cwd=ROOT):
    env = dict(os.environ, PGHOST=HOST, PGPORT=str(PORT), PGUSER="postgres", PGDATABASE=dbname)
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def psql():
    """The psql of the server under test (of PG_CONFIG or PG_MAJOR, as scripts/test.sh's)."""
    pg_config = subprocess.run([str(ROOT / "scripts" / "pg-config.sh")], capture_output=True,
                               text=True, check=True).stdout.strip()
    bindir = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                            check=True).stdout.strip()
    return str(pathlib.Path(bindir) / "psql")


def check_loop(out):
    """Each example finds the cats document first, gives it a factor of 1.1 with its
    feedback, then chooses an arm and observes it."""
    assert re.search(r"\b1\.10\b", out), out
    assert re.search(r"chosen style: (terse|detailed)", out), out


def test_psql_example(empty_db):
    out = run([psql(), "-X", "-v", "ON_ERROR_STOP=1", "-f", str(EXAMPLES / "agent_loop.sql")], empty_db)
    assert "Cats purr" in out.split("Dogs bark")[0], out  # the cats chunk ranks first
    check_loop(out)
    # a second run starts over: same output, new ids
    again = run([psql(), "-X", "-v", "ON_ERROR_STOP=1", "-f", str(EXAMPLES / "agent_loop.sql")], empty_db)
    assert "(1 row)" in again and "chosen style" in again


def test_python_example(empty_db):
    out = run([sys.executable, str(EXAMPLES / "agent_loop.py")], empty_db)
    assert re.search(r"result \d+: 'Cats purr", out.splitlines()[3]), out
    assert len(re.findall(r"ingested \w+ as document \d+", out)) == 3, out
    check_loop(out)
    assert re.search(r"observed (terse|detailed): pulls=1 mean=0\.667", out), out


def test_node_example(empty_db):
    node = shutil.which("node")
    assert node, "node is missing: scripts/setup.sh installs it"
    assert (EXAMPLES / "node_modules" / "pg").is_dir(), "run scripts/setup.sh (npm ci in examples/)"
    out = run([node, "agent_loop.js"], empty_db, cwd=EXAMPLES)
    assert re.search(r'result \d+: "Cats purr', out.splitlines()[3]), out
    assert len(re.findall(r"ingested \w+ as document \d+", out)) == 3, out
    check_loop(out)
    assert re.search(r"observed (terse|detailed): pulls=1 mean=0\.667", out), out
