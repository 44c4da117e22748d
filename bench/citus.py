#!/usr/bin/env python3
"""qortex through a Citus coordinator beside one node, in one run, on one machine:
learning throughput (pgbench, 8 clients) and hybrid_search under the agents' workload.

    scripts/citus.sh start && make install     # the cluster, then a release build
    .venv/bin/python bench/citus.py [--seconds 10] [--search-seconds 20] [--shards 32] [--idle]

Cluster: database `qortex` of scripts/citus.sh (coordinator 28830, workers 28831/28832),
qortex_distribute() done. One node: database `qortex_single` on the coordinator's server
(same PostgreSQL, no citus extension).
Throughput: qortex_select_arms (10 arms) and qortex_observe against the same learner state,
the databases interleaved, median of 3 rounds.
Search: in both databases the `lc` table of bench/workload.py on the 5,183 SciFact abstracts
(LangChain's layout, default storage, 1,000 users, HNSW/GIN/btree indexes, registered); on
the cluster distributed by id over --shards shards before it is loaded. For each scope
(unscoped, one user) and each database in turn: --clients threads run hybrid_search, the
bare pgvector query with the same predicate and the SQL RRF baseline for --search-seconds
while bench/workload.py's writer commits 20 rows a second and searches for each row it
inserted; with --idle, then again with one client and no writer. p50/p95 in ms, ratios to
one node's bare query with the same predicate and, for the cluster, to its own.
All three servers share the machine's cores, so the cluster's figures are a floor.
"""
import argparse
import os
import pathlib
import re
import statistics
import subprocess
import tempfile
import threading

import psycopg

import common
import latency
import workload

ROOT = pathlib.Path(__file__).resolve().parents[1]
RUN = ROOT / ".pg" / "citus" / "coordinator" / "run"
PORT = 28830
PG_CONFIG = subprocess.run([str(ROOT / "scripts" / "pg-config.sh")], capture_output=True,
                           text=True, check=True).stdout.strip()
BIN = subprocess.run([PG_CONFIG, "--bindir"], capture_output=True, text=True,
                     check=True).stdout.strip()
TABLE = "bench_citus_lc"


def connect(db, **kw):
    return psycopg.connect(host=str(RUN), port=PORT, user="postgres", dbname=db, **kw)


def prepare(db, distributed, rows):
    with connect(db, autocommit=True) as c:
        c.execute("SET client_min_messages = warning")
        if distributed:
            c.execute("SELECT qortex_distribute()")
        c.execute("SELECT qortex_reset('bench_citus')")
        c.execute("SELECT qortex_observe('bench_citus', 'a' || i, 'accepted') "
                  "FROM generate_series(0, 9) i")
        workload.build_lc(c, TABLE, rows, distribute=distributed)


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


def dsn(db):
    return f"host={RUN} port={PORT} user=postgres dbname={db}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=10, help="per pgbench run")
    ap.add_argument("--search-seconds", type=float, default=20, help="per scope and database")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--shards", type=int, default=32, help="shards of the distributed table "
                    "(Citus's default: 32)")
    ap.add_argument("--idle", action="store_true",
                    help="then the same searches again with one client and no writer")
    args = ap.parse_args()
    with connect("postgres", autocommit=True) as c:
        if not c.execute("SELECT 1 FROM pg_database WHERE datname = 'qortex_single'").fetchone():
            c.execute("CREATE DATABASE qortex_single")
    with connect("qortex_single", autocommit=True) as c:
        c.execute("CREATE EXTENSION IF NOT EXISTS qortex CASCADE")
        common.require_release(c)
    with connect("qortex", autocommit=True) as c:
        c.execute(f"ALTER DATABASE qortex SET citus.shard_count = {int(args.shards)}")
        shards = c.execute("SELECT count(*) FROM pg_dist_shard "
                           "WHERE logicalrelid = to_regclass(%s)", (TABLE,)).fetchone()[0]
        if shards and shards != args.shards:
            c.execute("SELECT qortex_drop_collection(%s)", (TABLE,))
            c.execute(f"DROP TABLE {TABLE}")
    corpus = latency.load_csv("corpus.csv")
    queries = latency.load_csv("queries-train.csv")
    rows = workload.corpus_rows("5k", 0)
    prepare("qortex", True, rows)
    prepare("qortex_single", False, rows)

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

    search(args, corpus, queries, args.clients, writing=True)
    if args.idle:
        search(args, corpus, queries, 1, writing=False)


def search(args, corpus, queries, clients, writing):
    """Each scope, one database after the other: `clients` threads searching (and the
    writer, if `writing`); p50/p95 per method, ratios to one node's bare query and, for the
    cluster, to its own."""
    load = f"{clients} clients + a writer at 20 rows/s" if writing else "1 client, no writer"
    print(f"search on {TABLE} (SciFact 5k, LangChain layout; cluster: {args.shards} shards), "
          f"{load}, k = 10 (ms)")
    for scope in ("unscoped", "user"):
        results = {}
        for db in ("qortex_single", "qortex"):
            writer = workload.Writer(dsn(db), TABLE, TABLE, False, corpus, 20, None)
            thread = threading.Thread(target=writer.run)
            if writing:
                thread.start()
            results[db] = workload.search_phase(dsn(db), TABLE, TABLE, "tsv", queries, scope,
                                                args.search_seconds, clients)
            if writing:
                writer.stop.set()
                thread.join()
            found = writer.found
            fresh = sum(f[0] and f[1] for f in found) / max(1, len(found))
            results[db] += (writer.writes / args.search_seconds, fresh, len(found))

        def bare(db):
            t = results[db][0]
            return (min(statistics.median(t[m]) for m in ("bare (planner)", "bare (index)")),
                    min(workload.pct(t[m], 0.95) for m in ("bare (planner)", "bare (index)")))
        bare50, bare95 = bare("qortex_single")
        for db in ("qortex_single", "qortex"):
            times, counts, rate, fresh, n = results[db]
            where = "cluster " if db == "qortex" else "one node"
            own50, own95 = bare(db)
            for m in times:
                p50, p95 = statistics.median(times[m]), workload.pct(times[m], 0.95)
                own = f"  ({p50 / own50:5.2f}x / {p95 / own95:5.2f}x its own bare)" \
                    if db == "qortex" else ""
                print(f"  {scope:<9} {where}  {m:<15} p50 {p50:7.2f}  p95 {p95:7.2f}  "
                      f"{p50 / bare50:5.2f}x p50  {p95 / bare95:5.2f}x p95{own}  "
                      f"rows/query {statistics.mean(counts[m]):4.1f}  n {len(times[m])}",
                      flush=True)
            if writing:
                print(f"  {scope:<9} {where}  writer {rate:.1f} rows/s, {n} inserts found at "
                      f"once by term and embedding: {100 * fresh:.0f}%", flush=True)


if __name__ == "__main__":
    main()
