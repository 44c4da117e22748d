"""Faults and operations, on servers of their own: the postmaster killed (-9) under observe
and ingest load, a streaming hot standby, a dump and restore, and the role set-up with
row-level security end to end."""
import ctypes
import os
import signal
import subprocess
import threading
import time

import psycopg
import pytest
from psycopg.types.json import Jsonb

from conftest import ROOT
from test_abuse import WRITERS

MAJOR = os.environ.get("PG_MAJOR", "15")
SUFFIX = "" if MAJOR == "15" else f"-{MAJOR}"
BASE = int(os.environ.get("QORTEX_TEST_PORT", "28816"))
PRIMARY = (ROOT / ".pg" / f"test-rel{SUFFIX}", BASE + 20)
STANDBY = (ROOT / ".pg" / f"test-standby{SUFFIX}", BASE + 21)
CLUSTER = str(ROOT / "scripts" / "cluster.sh")


def bindir():
    pg_config = subprocess.run([str(ROOT / "scripts" / "pg-config.sh")], check=True,
                               capture_output=True, text=True).stdout.strip()
    return subprocess.run([pg_config, "--bindir"], check=True, capture_output=True,
                          text=True).stdout.strip()


def as_owner(cmd):
    if os.getuid() == 0:
        cmd = ["sudo", "-u", "postgres", "--"] + cmd
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, f"{cmd}:\n{done.stdout}\n{done.stderr}"
    return done


def connect(server, dbname="postgres", **kw):
    d, port = server
    return psycopg.connect(host=str(d / "run"), port=port, user="postgres", dbname=dbname,
                           autocommit=True, **kw)


def wait_up(server):
    for _ in range(600):
        try:
            with connect(server) as c:
                c.execute("SELECT 1")
                return
        except psycopg.OperationalError:
            time.sleep(0.1)
    raise AssertionError("the server did not come back")


def become_subreaper():
    """Servers started from here are reparented to this process when pg_ctl exits, so a
    postmaster killed with -9 can be reaped here: on machines whose init does not reap
    orphans, it would stay a zombie that pg_ctl and the next postmaster take for a running
    server."""
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_child_subreaper = 36
    assert libc.prctl(pr_set_child_subreaper, 1, 0, 0, 0) == 0, ctypes.get_errno()


def reap(pids):
    """Wait for killed processes (reparented to this process) to be gone."""
    for pid in pids:
        for _ in range(500):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
                if done:
                    break
            except ChildProcessError:  # not (yet) ours, or already reaped
                if not os.path.exists(f"/proc/{pid}"):
                    break
            time.sleep(0.01)


@pytest.fixture(scope="module")
def primary():
    become_subreaper()
    d, port = PRIMARY
    subprocess.run([CLUSTER, "stop", str(d)], check=True)
    subprocess.run([CLUSTER, "start", str(d), str(port)], check=True)
    yield PRIMARY
    subprocess.run([CLUSTER, "stop", str(STANDBY[0])], check=True)
    subprocess.run([CLUSTER, "stop", str(d)], check=True)


def fresh_db(server, name):
    with connect(server) as c:
        c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        c.execute(f"CREATE DATABASE {name}")
    with connect(server, name) as c:
        c.execute("CREATE EXTENSION qortex CASCADE")


def test_postmaster_killed_under_load_loses_no_acknowledged_write(primary):
    fresh_db(primary, "crashload")
    with connect(primary, "crashload") as c:
        c.execute("SELECT qortex_create_collection('kb', 3)")
    acked = {"observe": {}, "docs": []}
    attempted = {}
    stop = threading.Event()
    lock = threading.Lock()

    def observer(arm):
        try:
            with connect(primary, "crashload") as c:
                while not stop.is_set():
                    with lock:
                        attempted[arm] = attempted.get(arm, 0) + 1
                    c.execute("SELECT * FROM qortex_observe('crash', %s, 'accepted')", (arm,))
                    with lock:
                        acked["observe"][arm] = acked["observe"].get(arm, 0) + 1
        except psycopg.Error:
            pass

    def ingester():
        n = 0
        try:
            with connect(primary, "crashload") as c:
                while not stop.is_set():
                    n += 1
                    chunks = [{"content": f"doc {n} part {i} zebra{n}", "embedding": [1, i, n % 7]}
                              for i in range(20)]
                    d = c.execute("SELECT qortex_ingest('kb', %s, %s)",
                                  (Jsonb({"external_id": f"e{n}"}), Jsonb(chunks))).fetchone()[0]
                    with lock:
                        acked["docs"].append((d, f"e{n}"))
        except psycopg.Error:
            pass

    threads = [threading.Thread(target=observer, args=(f"arm{i}",)) for i in range(3)]
    threads.append(threading.Thread(target=ingester))
    for t in threads:
        t.start()
    time.sleep(2.0)
    # the machine goes down: the postmaster and every backend, at once
    pid = int((PRIMARY[0] / "data" / "postmaster.pid").read_text().split()[0])
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                              text=True).stdout.split()
    kill_server(pid, children)
    stop.set()
    for t in threads:
        t.join()
    assert sum(acked["observe"].values()) > 0 and acked["docs"], acked
    subprocess.run([CLUSTER, "start", str(PRIMARY[0]), str(PRIMARY[1])], check=True)
    wait_up(primary)
    with connect(primary, "crashload") as c:
        pulls = dict(c.execute("SELECT arm_id, pulls FROM qortex.learning_arm_states "
                               "WHERE learner_name = 'crash'").fetchall())
        for arm, n in acked["observe"].items():
            assert n <= pulls[arm] <= attempted[arm], (arm, n, pulls[arm], attempted[arm])
        have = dict(c.execute("SELECT d.id, count(ch.id) FROM qortex.kb_documents d "
                              "LEFT JOIN qortex.kb_chunks ch ON ch.document_id = d.id "
                              "GROUP BY d.id").fetchall())
        for d, _ in acked["docs"]:
            assert have.get(d) == 20, (d, have.get(d))
        assert set(have.values()) == {20}  # no document partly there
        assert c.execute("SELECT count(*) FROM qortex.kb_chunks ch WHERE NOT EXISTS "
                         "(SELECT 1 FROM qortex.kb_documents d WHERE d.id = ch.document_id)"
                         ).fetchone() == (0,)
        check = c.execute("SELECT qortex_check_text_index('kb')").fetchone()[0]
        assert check["ok"], check
        # the last acknowledged document is found by its own term at once
        d, ext = acked["docs"][-1]
        n = ext[1:]
        found = c.execute("SELECT count(*) FROM hybrid_search('kb', NULL, %s, 50) "
                          "WHERE document_id = %s", (f"zebra{n}", str(d))).fetchone()[0]
        assert found == 20


def wait_replay(primary_conn, standby_conn):
    # the insert position: WAL of a transaction without an xid may not be written yet
    lsn = primary_conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]
    for _ in range(300):
        if standby_conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn",
                                (lsn,)).fetchone()[0]:
            return
        time.sleep(0.05)
    raise AssertionError("the standby did not replay in time")


def kill_server(pid, children):
    """The machine goes down: the postmaster (`pid`) and its `children`, at once."""
    os.kill(pid, signal.SIGKILL)
    for child in children:
        try:
            os.kill(int(child), signal.SIGKILL)
        except ProcessLookupError:
            pass
    reap([pid] + [int(c) for c in children])


def make_standby():
    """A fresh hot standby of PRIMARY (pg_basebackup -R, streaming), started and up;
    hot_standby_feedback off (`set_feedback`)."""
    d, port = STANDBY
    subprocess.run([CLUSTER, "stop", str(d)], check=True)
    subprocess.run(["rm", "-rf", str(d)], check=True)
    d.mkdir(parents=True)
    if os.getuid() == 0:
        subprocess.run(["chown", "postgres:", str(d)], check=True)
    as_owner([f"{bindir()}/pg_basebackup", "-D", str(d / "data"), "-R", "-X", "stream",
              "-h", str(PRIMARY[0] / "run"), "-p", str(PRIMARY[1]), "-U", "postgres"])
    subprocess.run([CLUSTER, "start", str(d), str(port)], check=True)
    wait_up(STANDBY)


def set_feedback(on):
    """Turn the standby's hot_standby_feedback on or off, and wait until the primary's WAL
    sender has (or has not) the standby's xmin."""
    with connect(STANDBY) as s:
        s.execute(f"ALTER SYSTEM SET hot_standby_feedback = {'on' if on else 'off'}")
        s.execute("SELECT pg_reload_conf()")
    with connect(PRIMARY) as p:
        for _ in range(300):
            if p.execute("SELECT count(*) FROM pg_stat_replication "
                         "WHERE backend_xmin IS NOT NULL").fetchone()[0] == int(on):
                return
            time.sleep(0.05)
    raise AssertionError(f"the primary does not see hot_standby_feedback {on}")


def test_streaming_standby_reads_refuses_writes_and_follows_config(primary):
    fresh_db(primary, "repl")
    with connect(primary, "repl") as p:
        p.execute("SELECT * FROM qortex_observe('l', 'a', 'accepted')")
        p.execute("SELECT qortex_create_collection('kb', 3)")
        p.execute("""SELECT qortex_ingest('kb', '{}', '[{"content": "cats and owls",
                     "embedding": [1, 0, 0]}, {"content": "dogs", "embedding": [0, 1, 0]}]')""")
        p.execute("CREATE TABLE reg (id text PRIMARY KEY, body text, emb vector(3))")
        p.execute("INSERT INTO reg VALUES ('r1', 'cats sleep', '[1,0,0]'), ('r2', 'owls', '[0,1,0]')")
        p.execute("""SELECT qortex_register_collection('reg', 'reg',
                     '{"id": "id", "embedding": "emb", "content": "body"}')""")
    make_standby()
    with connect(primary, "repl") as p, connect(STANDBY, "repl") as s:
        assert s.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        # reads: the same answers as the primary's, the qortex_bm25 index used
        for sql in ["SELECT arm_id, rank FROM qortex_select_arms('l', ARRAY['a', 'b'], NULL, 2, "
                    "NULL, NULL, 5)",
                    "SELECT id, score FROM hybrid_search('kb', '[1,0,0]', 'cats owls', 5)",
                    "SELECT id, score FROM hybrid_search('reg', '[1,0,0]', 'cats owls', 5)"]:
            assert s.execute(sql).fetchall() == p.execute(sql).fetchall(), sql
        notes = []
        s.add_notice_handler(lambda n: notes.append(n.message_detail or ""))
        s.execute("SET qortex.debug_plans = on")
        s.execute("SELECT * FROM hybrid_search('reg', NULL, 'cats', 5)").fetchall()
        assert "qortex_bm25 index" in notes[-1], notes
        s.execute("SET qortex.debug_plans = off")
        assert {r[0] for r in s.execute("SELECT name FROM qortex_collections()")} == {"kb", "reg"}
        assert s.execute("SELECT qortex_check_text_index('reg')").fetchone()[0]["ok"]
        # every write: 25006, not an internal error
        for sql in WRITERS:
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction, match="standby"):
                s.execute(sql.replace("'l'", "'l'").replace("abuse_role", "postgres"))
        # a config change and new rows on the primary reach the standby's caches and index
        before = s.execute("SELECT qortex_metrics('l')").fetchone()[0]["config"]["prior_alpha"]
        p.execute("""SELECT qortex_learner_configure('l', '{"prior_alpha": 7}')""")
        p.execute("INSERT INTO reg VALUES ('r3', 'a quokka smiles', '[0,0,1]')")
        wait_replay(p, s)
        after = s.execute("SELECT qortex_metrics('l')").fetchone()[0]["config"]["prior_alpha"]
        assert (before, after) == (1.0, 7.0)
        assert s.execute("SELECT id FROM hybrid_search('reg', NULL, 'quokka', 5)").fetchall() \
            == [("r3",)]
    subprocess.run([CLUSTER, "stop", str(STANDBY[0])], check=True)


def test_dump_and_restore_keep_a_registered_table_with_a_dropped_column(primary):
    fresh_db(primary, "dumpsrc")
    with connect(primary, "dumpsrc") as c:
        c.execute("""CREATE TABLE docs (id text PRIMARY KEY, junk int, body text, summary text,
                                        emb2 vector(3), emb vector(3))""")
        c.execute("ALTER TABLE docs DROP COLUMN junk")  # attribute numbers shift in a restore
        c.execute("INSERT INTO docs VALUES ('d1', 'cats purr', 'feline', '[0,0,1]', '[1,0,0]'), "
                  "('d2', 'dogs bark', 'canine', '[1,0,0]', '[0,1,0]')")
        c.execute("""SELECT qortex_register_collection('docs', 'docs',
                     '{"id": "id", "embedding": "emb", "content": "body"}')""")
        c.execute("SELECT qortex_create_collection('kb', 3)")
        c.execute("""SELECT qortex_ingest('kb', '{}', '[{"content": "owls hoot",
                     "embedding": [0, 0, 1]}]')""")
        c.execute("SELECT * FROM qortex_observe('l', 'a', 'accepted')")
        query = ("SELECT id, content, vector_rank, text_rank FROM hybrid_search(%s, "
                 "'[1,0,0]', 'cats', 5)")
        before = {n: c.execute(query, (n,)).fetchall() for n in ("docs", "kb")}
        assert before["docs"][0][:2] == ("d1", "cats purr")
        state = c.execute("SELECT learner_name, arm_id, alpha, beta, pulls "
                          "FROM qortex.learning_arm_states").fetchall()
    dump = PRIMARY[0] / "dump.custom"
    bin_ = bindir()
    as_owner([f"{bin_}/pg_dump", "-Fc", "-h", str(PRIMARY[0] / "run"), "-p", str(PRIMARY[1]),
              "-U", "postgres", "-f", str(dump), "dumpsrc"])
    with connect(primary) as c:
        c.execute("DROP DATABASE IF EXISTS dumpdst WITH (FORCE)")
        c.execute("CREATE DATABASE dumpdst")
    as_owner([f"{bin_}/pg_restore", "-h", str(PRIMARY[0] / "run"), "-p", str(PRIMARY[1]),
              "-U", "postgres", "-d", "dumpdst", "--exit-on-error", str(dump)])
    with connect(primary, "dumpdst") as c:
        after = {n: c.execute(query, (n,)).fetchall() for n in ("docs", "kb")}
        assert after == before
        assert c.execute("SELECT learner_name, arm_id, alpha, beta, pulls "
                         "FROM qortex.learning_arm_states").fetchall() == state
        for n in ("docs", "kb"):
            check = c.execute("SELECT qortex_check_text_index(%s)", (n,)).fetchone()[0]
            assert check["ok"], check
        # and it stays maintained: a new row is found by the index at once
        c.execute("INSERT INTO docs (id, body, summary, emb2, emb) "
                  "VALUES ('d3', 'a quokka', 'x', '[0,0,1]', '[0,0,1]')")
        assert c.execute("SELECT id, content FROM hybrid_search('docs', NULL, 'quokka', 5)") \
            .fetchall() == [("d3", "a quokka")]
    dump.unlink()


def test_role_set_up_end_to_end_with_row_level_security(primary):
    fresh_db(primary, "roles")
    with connect(primary, "roles") as c:
        c.execute("DROP ROLE IF EXISTS app_alice")
        c.execute("DROP ROLE IF EXISTS qortex_user")
        c.execute("CREATE ROLE qortex_user NOLOGIN")
        c.execute("CREATE ROLE app_alice LOGIN IN ROLE qortex_user")
        c.execute("SELECT qortex_create_collection('kb', 3)")
        granted = c.execute("SELECT qortex_grant('qortex_user')").fetchone()[0]
        assert any("qortex.kb_chunks" in g for g in granted), granted
        c.execute("""CREATE TABLE notes (id text PRIMARY KEY, owner text, body text,
                                         emb vector(3))""")
        c.execute("INSERT INTO notes VALUES ('n1', 'app_alice', 'cats of alice', '[1,0,0]'), "
                  "('n2', 'bob', 'cats of bob', '[1,0,0]')")
        c.execute("ALTER TABLE notes ENABLE ROW LEVEL SECURITY")
        c.execute("CREATE POLICY mine ON notes USING (owner = current_user)")
        c.execute("GRANT SELECT ON notes TO app_alice")
        c.execute("""SELECT qortex_register_collection('notes', 'notes',
                     '{"id": "id", "embedding": "emb", "content": "body"}')""")
        # a table alice may not read, registered too
        c.execute("CREATE TABLE secret (id text PRIMARY KEY, body text, emb vector(3))")
        c.execute("INSERT INTO secret VALUES ('s1', 'cats secret', '[1,0,0]')")
        c.execute("""SELECT qortex_register_collection('secret', 'secret',
                     '{"id": "id", "embedding": "emb", "content": "body"}')""")
        # an old-style blanket grant
        c.execute("GRANT SELECT ON ALL TABLES IN SCHEMA qortex TO app_alice")
    try:
        with connect(primary, "roles", options="-c role=app_alice") as a:
            # every kind of call works for her
            a.execute("SELECT * FROM qortex_observe('l', 'x', 'accepted')")
            assert a.execute("SELECT arm_id FROM qortex_select_arms('l', ARRAY['x'])") \
                .fetchone() == ("x",)
            a.execute("""SELECT qortex_ingest('kb', '{"user_id": "app_alice"}',
                         '[{"content": "cats in kb", "embedding": [1, 0, 0]}]')""")
            a.execute("SELECT qortex_job_create('kb', 1)")
            a.execute("SELECT * FROM qortex_remember('app_alice', 'likes cats')")
            a.execute("""SELECT * FROM interoception_update('{"n1": "accepted"}')""")
            assert len(a.execute("SELECT * FROM hybrid_search('kb', NULL, 'cats', 5)")
                       .fetchall()) == 1
            # the policy holds on both legs and the qortex_bm25 index: only her row, no
            # hidden id
            for q in ("SELECT id FROM hybrid_search('notes', NULL, 'cats', 5)",
                      "SELECT id FROM hybrid_search('notes', '[1,0,0]', NULL, 5)",
                      "SELECT id FROM hybrid_search('notes', '[1,0,0]', 'cats', 5)"):
                assert a.execute(q).fetchall() == [("n1",)], q
            # describing every collection works though one table is unreadable
            rows = dict(a.execute("SELECT name, details->'rows' FROM qortex_collections()")
                        .fetchall())
            assert rows["secret"] is None and rows["notes"] == 1
            a.execute("SELECT qortex_status()")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                a.execute("SELECT * FROM hybrid_search('secret', NULL, 'cats', 5)")
    finally:
        with connect(primary, "roles") as c:
            c.execute("DROP OWNED BY app_alice, qortex_user")
        with connect(primary) as c:
            c.execute("DROP DATABASE roles WITH (FORCE)")
            c.execute("DROP ROLE app_alice")
            c.execute("DROP ROLE qortex_user")
