#!/usr/bin/env python3
"""qortex through a Citus coordinator beside one node, in one run, on one machine:
learning throughput (pgbench, 8 clients) and hybrid_search latency on SciFact.

    scripts/citus.sh start && make install     # the cluster, then a release build
    .venv/bin/python bench/citus.py [--seconds 10] [--queries 200]

Cluster: database `qortex` of scripts/citus.sh (coordinator 28830, workers 28831/28832),
qortex_distribute() done. One node: database `qortex_single` on the coordinator's server
(same PostgreSQL, no citus extension). Both get `bench_citus`: the 5,183 SciFact abstracts as
bench/latency.py builds them (HNSW, GIN), on the cluster distributed by id
(create_distributed_table, --shards over the two workers: 32, Citus's default), registered
as a collection.
Throughput: qortex_select_arms (10 arms) and qortex_observe against the same learner state;
latency: hybrid_search and the bare pgvector query, interleaved per query, p50/p95 (ms).
All three servers share the machine's 2 cores, so the cluster figures are a floor.
"""
import argparse
import os
import pathlib
import re
import statistics
import subprocess
import tempfile
import time

import psycopg

import common
import latency

ROOT = pathlib.Path(__file__).resolve().parents[1]
RUN = ROOT / ".pg" / "citus" / "coordinator" / "run"
PORT = 28830
PG_CONFIG = subprocess.run([str(ROOT / "scripts" / "pg-config.sh")], capture_output=True,
                           text=True, check=True).stdout.strip()
BIN = subprocess.run([PG_CONFIG, "--bindir"], capture_output=True, text=True,
                     check=True).stdout.strip()
TABLE = "bench_citus"


def connect(db, **kw):
    return psycopg.connect(host=str(RUN), port=PORT, user="postgres", dbname=db, **kw)


def prepare(db, distributed, corpus, shards):
    with connect(db, autocommit=True) as c:
        c.execute("SET client_min_messages = warning")
        if distributed:
            c.execute("SELECT qortex_distribute()")
        c.execute("SELECT qortex_reset('bench_citus')")
        c.execute("SELECT qortex_observe('bench_citus', 'a' || i, 'accepted') "
                  "FROM generate_series(0, 9) i")
        if distributed and c.execute(
                "SELECT count(*) FROM pg_dist_shard WHERE logicalrelid = to_regclass(%s)",
                (TABLE,)).fetchone()[0] != shards:
            c.execute("SELECT qortex_drop_collection(name) FROM qortex.collections "
                      "WHERE name = %s", (TABLE,))
        if c.execute("SELECT count(*) FROM qortex.collections WHERE name = %s",
                     (TABLE,)).fetchone()[0]:
            return
        c.execute(f"DROP TABLE IF EXISTS {TABLE}")
        distribute = f"SELECT create_distributed_table('{{t}}', 'id', shard_count => {shards});"
        ddl = latency.DDL + (distribute if distributed else "")
        latency.load(c, TABLE, [(int(r["id"]), f"{r['title']} {r['text']}", r["embedding"])
                                for r in corpus], ddl, "SELECT 1")
        # one statement at a time: Citus sends each to the shards as a prepared statement
        for sql in latency.INDEXES.format(t=TABLE).split(";"):
            if sql.strip():
                c.execute(sql)
        latency.register(c, TABLE)


def tps(db, script, seconds):
    with tempfile.NamedTemporaryFile("w", suffix=".sql") as f:
        f.write(script)
        f.flush()
        out = subprocess.run(
            [f"{BIN}/pgbench", "-n", "-M", "prepared", "-c", "8", "-j", "2", "-T", str(seconds),
             "-h", str(RUN), "-p", str(PORT), "-U", "postgres", "-f", f.name, db],
            capture_output=True, text=True, env={**os.environ,
                                                 "PGOPTIONS": "-c synchronous_commit=off"})
    m = re.search(r"tps = ([0-9.]+)", out.stdout)
    if not m:
        raise SystemExit(out.stderr)
    return float(m.group(1))


SELECT = ("SELECT * FROM qortex_select_arms('bench_citus', "
          "ARRAY['a0','a1','a2','a3','a4','a5','a6','a7','a8','a9']);\n")
OBSERVE = ("\\set arm random(0, 9)\n"
           "SELECT * FROM qortex_observe('bench_citus', 'a' || :arm, 'accepted');\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--shards", type=int, default=32, help="shards of the distributed table "
                    "(Citus's default: 32)")
    args = ap.parse_args()
    with connect("postgres", autocommit=True) as c:
        if not c.execute("SELECT 1 FROM pg_database WHERE datname = 'qortex_single'").fetchone():
            c.execute("CREATE DATABASE qortex_single")
    with connect("qortex_single", autocommit=True) as c:
        c.execute("CREATE EXTENSION IF NOT EXISTS qortex CASCADE")
        common.require_release(c)
    corpus = latency.load_csv("corpus.csv")
    queries = latency.load_csv("queries-train.csv")
    prepare("qortex", True, corpus, args.shards)
    prepare("qortex_single", False, corpus, args.shards)

    print(f"throughput (pgbench, 8 clients, {args.seconds} s per run, median of 3 "
          "interleaved rounds)")
    runs = {(db, name): [] for db in ("qortex_single", "qortex")
            for name in ("select", "observe")}
    for _ in range(3):
        for (db, name), got in runs.items():
            got.append(tps(db, SELECT if name == "select" else OBSERVE, args.seconds))
    for name in ("select", "observe"):
        one = statistics.median(runs[("qortex_single", name)])
        many = statistics.median(runs[("qortex", name)])
        print(f"  qortex_{name:<8} one node {one:9.0f}/s   cluster {many:9.0f}/s   "
              f"{many / one:5.2f}x", flush=True)

    ms = latency.methods(TABLE, None)
    times = {(db, m): [] for db in ("qortex_single", "qortex") for m in ms}
    conns = {db: connect(db, autocommit=True) for db in ("qortex_single", "qortex")}
    for q in queries[:10]:  # warm caches
        for db, c in conns.items():
            for m in ms.values():
                c.execute(m, {"emb": q["embedding"], "text": q["text"]}).fetchall()
    for i in range(args.queries):
        q = queries[i % len(queries)]
        params = {"emb": q["embedding"], "text": q["text"]}
        for (db, m) in (list(times)[i % 4:] + list(times)[:i % 4]):
            t0 = time.perf_counter()
            conns[db].execute(ms[m], params, prepare=True).fetchall()
            times[(db, m)].append(1000 * (time.perf_counter() - t0))
    print(f"latency on SciFact 5k ({args.shards} shards on the cluster), {args.queries} "
          "queries, k = 10 (ms)")
    bare = statistics.median(times[("qortex_single", "bare pgvector")])
    for (db, m), t in times.items():
        if m == "SQL RRF":
            continue
        t = sorted(t)
        p50, p95 = statistics.median(t), t[int(0.95 * (len(t) - 1))]
        where = "cluster " if db == "qortex" else "one node"
        print(f"  {where}  {m:<14} p50 {p50:7.2f}  p95 {p95:7.2f}  "
              f"{p50 / bare:5.1f}x one node's bare", flush=True)


if __name__ == "__main__":
    main()
