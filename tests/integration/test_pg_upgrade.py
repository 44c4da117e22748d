"""pg_upgrade from PostgreSQL 15 to 18 keeps qortex's state: every row of its tables, the
text index, every seeded pick and every search result are what they were.

Runs in the PostgreSQL 18 suite (PG_MAJOR=18 make test) and needs qortex of this version
installed for 15 as well (CI runs the 15 suite first, which installs it). Without it the
test is skipped, except under CI, where that is a failure."""
import os
import pathlib
import random
import shutil
import subprocess

import psycopg
import pytest
from psycopg.types.json import Jsonb

from conftest import ROOT, VERSION

OLD, NEW = "15", "18"
WORK = ROOT / ".pg" / "upgrade"
PORT = int(os.environ.get("QORTEX_TEST_PORT", "28819")) + 10


def pg_config(major):
    env = {k: v for k, v in os.environ.items() if k != "PG_CONFIG"}
    env["PG_MAJOR"] = major
    return subprocess.run([str(ROOT / "scripts" / "pg-config.sh")], env=env, check=True,
                          capture_output=True, text=True).stdout.strip()


def config(major, what):
    return subprocess.run([pg_config(major), what], check=True, capture_output=True,
                          text=True).stdout.strip()


def as_owner(cmd, **kw):
    if os.getuid() == 0:
        cmd = ["sudo", "-u", "postgres", "--"] + cmd
    done = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if done.returncode != 0:
        # pg_upgrade names its logs; their last lines say what failed
        logs = "".join(f"\n--- {log}:\n" + "\n".join(log.read_text().splitlines()[-15:])
                       for log in sorted(WORK.glob("**/pg_upgrade_output.d/**/*.log")))
        raise AssertionError(f"{cmd}:\n{done.stdout}\n{done.stderr}{logs}")
    return done


def installed(major):
    ext = pathlib.Path(config(major, "--sharedir")) / "extension"
    return (ext / f"qortex--{VERSION}.sql").exists() and (ext / "vector.control").exists()


@pytest.fixture(scope="module")
def clusters():
    if os.environ.get("PG_MAJOR", "15") != NEW:
        pytest.skip(f"runs in the PostgreSQL {NEW} suite")
    missing = [m for m in (OLD, NEW) if not os.path.exists(pg_config(m)) or not installed(m)]
    if missing:
        why = f"qortex {VERSION} is not installed for PostgreSQL {', '.join(missing)}"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    if os.getuid() == 0:
        shutil.chown(WORK, "postgres")
    yield
    for major in (OLD, NEW):
        stop(major)
    if not os.environ.get("QORTEX_KEEP_UPGRADE"):
        shutil.rmtree(WORK, ignore_errors=True)


def data(major):
    return str(WORK / major)


def start(major):
    (WORK / "run").mkdir(exist_ok=True)
    if os.getuid() == 0:
        shutil.chown(WORK / "run", "postgres")
    as_owner([f"{config(major, '--bindir')}/pg_ctl", "-D", data(major), "-w", "-l",
              str(WORK / f"{major}.log"), "-o",
              f"-p {PORT} -k {WORK / 'run'} -c listen_addresses='' "
              f"-c shared_preload_libraries=qortex", "start"])


def stop(major):
    pid = pathlib.Path(data(major)) / "postmaster.pid"
    if pid.exists():
        as_owner([f"{config(major, '--bindir')}/pg_ctl", "-D", data(major), "-w", "-m",
                  "fast", "stop"])


def connect(dbname="upg"):
    return psycopg.connect(host=str(WORK / "run"), port=PORT, user="postgres", dbname=dbname,
                           autocommit=True)


def vec(rng, dims=8):
    return "[" + ",".join(f"{rng.gauss(0, 1):.5f}" for _ in range(dims)) + "]"


WORDS = ("memory retrieval agent bandit vector index posting query table user policy "
         "cache latency recall ranking fusion feedback").split()


def populate(conn):
    rng = random.Random(5)
    conn.execute("CREATE EXTENSION qortex CASCADE")
    # learners and arm states, with and without a context
    conn.execute("SELECT qortex_learner_configure('up', '{\"prior_alpha\": 2}')")
    for i in range(60):
        conn.execute("SELECT qortex_observe('up', %s, %s, NULL, %s)",
                     (f"arm{i % 5}", ("accepted", "rejected", "partial")[i % 3],
                      Jsonb({"task": i % 2})))
    # a managed collection with documents of users and global ones
    conn.execute("SELECT qortex_create_collection('kb', 8)")
    for d in range(25):
        chunks = [{"content": " ".join(rng.choices(WORDS, k=12)), "embedding": vec(rng)}
                  for _ in range(3)]
        conn.execute("SELECT qortex_ingest('kb', %s, %s)",
                     (Jsonb({"user_id": f"u{d % 4}", "is_global": d % 5 == 0,
                             "metadata": {"n": d % 3}}), Jsonb(chunks)))
    conn.execute("SELECT qortex_delete_document('kb', 3)")
    # a registered table, LangChain's layout, with its own indexes (registration adds a
    # qortex_bm25 index scoped by user, global rows under '')
    conn.execute("""CREATE TABLE lc (id text PRIMARY KEY, content text, metadata jsonb,
                        user_id text, is_global bool, embedding vector(8),
                        tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED)""")
    for i in range(80):
        conn.execute("INSERT INTO lc VALUES (%s, %s, %s, %s, %s, %s)",
                     (f"r{i}", " ".join(rng.choices(WORDS, k=15)), Jsonb({"p": i % 4 == 0}),
                      f"u{i % 4}", i % 10 == 0, vec(rng)))
    conn.execute("CREATE INDEX ON lc USING hnsw (embedding vector_cosine_ops)")
    conn.execute("CREATE INDEX ON lc USING gin (tsv)")
    conn.execute("""SELECT qortex_register_collection('lc', 'lc', '{"id": "id",
                        "embedding": "embedding", "content": "content", "tsvector": "tsv",
                        "metadata": "metadata", "user_id": "user_id", "is_global": "is_global"
                        }')""")
    # another qortex_bm25 index on it: a segment from the build, a flushed one, the buffer
    conn.execute("CREATE INDEX lc_bm25 ON lc USING qortex_bm25 (tsv)")
    for i in range(80, 110):
        conn.execute("INSERT INTO lc VALUES (%s, %s, '{}', 'u9', false, %s)",
                     (f"r{i}", " ".join(rng.choices(WORDS, k=12)), vec(rng)))
    conn.execute("SELECT qortex_bm25_flush('lc_bm25')")
    conn.execute("UPDATE lc SET content = content || ' upgraded' WHERE id IN ('r1', 'r2')")
    conn.execute("DELETE FROM lc WHERE id = 'r5'")
    # factors and edges
    conn.execute("SELECT * FROM interoception_update('{\"r7\": \"accepted\", \"r8\": \"rejected\"}')")
    ids = [r[0] for r in conn.execute("SELECT id::text FROM qortex.kb_chunks ORDER BY id LIMIT 6")]
    for _ in range(3):
        conn.execute("SELECT interoception_record_edges('kb', %s, 0.0)", (ids,))
    conn.execute("SELECT * FROM interoception_flush(3, 0.0)")
    conn.execute("SELECT qortex_remember('u1', 'prefers short answers')")


def state(conn):
    """Everything a user can observe: the rows of qortex's tables and of the registered one,
    the text index's check, seeded picks and searches."""
    out = {}
    tables = [r[0] for r in conn.execute(
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname IN ('qortex', 'public') AND c.relkind = 'r' "
        "ORDER BY 1")]
    for t in tables:
        out[t] = conn.execute(f"SELECT t::text FROM {t} t ORDER BY 1").fetchall()
    for c in ("kb", "lc"):
        check = conn.execute("SELECT qortex_check_text_index(%s)", (c,)).fetchone()[0]
        assert check["ok"], check
        out[f"check {c}"] = {k: v for k, v in check.items() if k not in ("seconds",)}
    check = conn.execute("SELECT qortex_bm25_check('lc_bm25')").fetchone()[0]
    assert check["ok"] and check["rows"] > 100, check
    out["bm25 check"] = check
    out["bm25 info"] = conn.execute("SELECT * FROM qortex_bm25_info('lc_bm25')").fetchall()
    for q in ("memory agent", "upgraded", " ".join(WORDS[:5])):
        out[f"bm25 {q}"] = conn.execute(
            "SELECT id, tsv <@> qortex_bm25_query('english', %s) FROM lc "
            "ORDER BY tsv <@> qortex_bm25_query('english', %s) LIMIT 10", (q, q)).fetchall()
        assert out[f"bm25 {q}"], q
    out["picks"] = conn.execute(
        "SELECT * FROM qortex_select_arms('up', ARRAY['arm0','arm1','arm2','arm3','arm4'], "
        "'{\"task\": 1}', 3, NULL, NULL, 42)").fetchall()
    rng = random.Random(9)
    for c in ("kb", "lc"):
        for opts in ({}, {"user_id": "u1"}, {"filter": {"p": True}}, {"fusion": "weighted"}):
            q = vec(rng)
            out[f"search {c} {opts}"] = conn.execute(
                "SELECT * FROM hybrid_search(%s, %s::vector, 'memory agent upgraded', 8, %s)",
                (c, q, Jsonb(opts))).fetchall()
    out["recall"] = conn.execute("SELECT * FROM qortex_recall('u1')").fetchall()
    return out


def strip_attver(conn):
    """This machine's PostgreSQL 15 build (Debian 15.20-0+deb12u1 here) gives every column
    an attribute option `pg_attver`, which PostgreSQL 18 does not know: pg_upgrade fails
    restoring any table ("unrecognized parameter"), qortex's or not. Take it out of the
    user tables' columns of the old cluster (nothing else reads it); where the build does
    not add it, this changes nothing."""
    conn.execute("""UPDATE pg_catalog.pg_attribute
                       SET attoptions = NULLIF(ARRAY(SELECT o FROM unnest(attoptions) o
                                                      WHERE o NOT LIKE 'pg_attver=%'), '{}')
                     WHERE attrelid >= 16384 AND attoptions::text LIKE '%pg_attver=%'""")


def test_pg_upgrade_from_15_to_18_keeps_every_row_pick_and_search(clusters):
    as_owner([f"{config(OLD, '--bindir')}/initdb", "-D", data(OLD), "-U", "postgres",
              "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8"])
    start(OLD)
    with connect("postgres") as conn:
        conn.execute("CREATE DATABASE upg")
    with connect() as conn:
        populate(conn)
        before = state(conn)
        assert len(before["qortex.learning_arm_states"]) == 10  # 5 arms, 2 contexts
        assert before["search lc {}"] and before["search kb {'user_id': 'u1'}"]
        strip_attver(conn)
    with connect("postgres") as conn:
        strip_attver(conn)
    stop(OLD)

    # the new cluster as pg_upgrade wants it: same encoding and locale, and no data
    # checksums (initdb 18 turns them on; 15's default was off)
    as_owner([f"{config(NEW, '--bindir')}/initdb", "-D", data(NEW), "-U", "postgres",
              "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-data-checksums"])
    done = as_owner([f"{config(NEW, '--bindir')}/pg_upgrade",
                     "-b", config(OLD, "--bindir"), "-B", config(NEW, "--bindir"),
                     "-d", data(OLD), "-D", data(NEW), "-U", "postgres", "--link"],
                    cwd=str(WORK))
    assert "Upgrade Complete" in done.stdout, done.stdout + done.stderr
    start(NEW)
    with connect() as conn:
        assert conn.execute("SHOW server_version_num").fetchone()[0].startswith(NEW)
        # the extension's version is the old cluster's; nothing to update within a release
        assert conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'qortex'") \
            .fetchone()[0] == VERSION
        conn.execute("ALTER EXTENSION vector UPDATE")  # 0.8.0 (15's) to the new install's
        conn.execute("ALTER EXTENSION qortex UPDATE")
        after = state(conn)
    for key in before:
        assert after[key] == before[key], key
    assert after.keys() == before.keys()
