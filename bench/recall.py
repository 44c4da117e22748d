#!/usr/bin/env python3
"""Recall of a collection's HNSW index as it ages: after the build, after inserting 50% more
rows one at a time (the index maintained row by row), and after a REINDEX, measured by
qortex_check_recall against exact search.

    .venv/bin/python bench/recall.py [--corpora 5k,100k] [--rows 100000] [--sample 200] [--k 10]

Corpora: `5k` is the 5,183 SciFact abstracts (their 384-d embeddings); `100k` the --rows
chunks of bench/latency.py (halves of two abstracts, their embeddings summed). The rows
inserted one at a time are more of bench/latency.py's synthetic chunks (another seed). Each
corpus gets its own table `recall_<corpus>` (id, content, embedding vector(384)), loaded with
COPY, then HNSW (cosine, pgvector's defaults m 16, ef_construction 64), registered as a
collection of that name. Each check samples --sample rows as queries at k --k and the
ef_search hybrid_search uses for k rows (40), and at ef_search 100.

Connects with the libpq environment. Refuses a debug build. Writes a table of figures.
"""
import argparse
import csv
import os
import pathlib
import sys
import time

import psycopg

import common
import latency

ROOT = pathlib.Path(__file__).resolve().parents[1]
DATA = pathlib.Path(os.environ.get("QORTEX_SCIFACT", ROOT.parent / "shared" / "data" / "scifact"))


def corpus():
    csv.field_size_limit(sys.maxsize)
    with open(DATA / "corpus.csv", newline="") as f:
        return list(csv.DictReader(f))


def build(conn, table, rows):
    conn.execute(f"SELECT qortex_drop_collection('{table}') "
                 f"FROM qortex_collections() WHERE name = '{table}'")
    conn.execute(f"DROP TABLE IF EXISTS {table}")
    conn.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, content text, "
                 f"embedding vector(384))")
    with conn.cursor().copy(f"COPY {table} (id, content, embedding) FROM STDIN") as cp:
        for r in rows:
            cp.write_row(r)
    t0 = time.perf_counter()
    conn.execute(f"CREATE INDEX {table}_hnsw ON {table} USING hnsw (embedding vector_cosine_ops)")
    built = time.perf_counter() - t0
    conn.execute(f"ANALYZE {table}")
    conn.execute(f"""SELECT qortex_register_collection('{table}', '{table}',
                     '{{"id": "id", "embedding": "embedding", "content": "content"}}')""")
    return built


def check(conn, table, sample, k, ef=None):
    return conn.execute(
        "SELECT recall, recall_ci95, recall_p10, recall_min, table_rows, elapsed_ms "
        "FROM qortex_check_recall(%s, %s, %s, %s)", (table, sample, k, ef)).fetchone()


def stage(conn, table, name, sample, k, out):
    for ef in (None, 100):
        r = check(conn, table, sample, k, ef)
        row = (table, name, r[4], ef or 40, *r[:4], r[5] / 1000)
        out.append(row)
        print("{:14} {:28} rows {:>7}  ef {:>3}  recall {:.4f} ±{:.4f}  p10 {:.2f}  "
              "min {:.2f}  ({:.1f} s)".format(*row), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpora", default="5k,100k")
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--sample", type=int, default=200)
    ap.add_argument("--k", type=int, default=10)
    args = ap.parse_args()
    docs = corpus()
    out = []
    with psycopg.connect(autocommit=True) as conn:
        common.require_release(conn)
        conn.execute("SET maintenance_work_mem = '1GB'")
        for name in args.corpora.split(","):
            table = f"recall_{name}"
            if name == "5k":
                base = [(i + 1, f"{d['title']}. {d['text']}", d["embedding"])
                        for i, d in enumerate(docs)]
            else:
                base = list(latency.synthetic(docs, args.rows))
            built = build(conn, table, base)
            print(f"{table}: {len(base)} rows, HNSW built in {built:.1f} s", flush=True)
            stage(conn, table, "after the build", args.sample, args.k, out)
            more = len(base) // 2
            t0 = time.perf_counter()
            for j, text, emb in latency.synthetic(docs, more, seed=8):
                conn.execute(f"INSERT INTO {table} VALUES (%s, %s, %s)",
                             (len(base) + j, text, emb))
            took = time.perf_counter() - t0
            print(f"{table}: {more} rows inserted one at a time in {took:.1f} s", flush=True)
            conn.execute(f"ANALYZE {table}")
            stage(conn, table, "after +50% one at a time", args.sample, args.k, out)
            t0 = time.perf_counter()
            conn.execute(f"REINDEX INDEX {table}_hnsw")
            print(f"{table}: REINDEX in {time.perf_counter() - t0:.1f} s", flush=True)
            stage(conn, table, "after REINDEX", args.sample, args.k, out)
    print("\n| corpus | when | rows | ef_search | recall@%d (± 95%% CI) | p10 | min | check (s) |"
          % args.k)
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for t, when, rows, ef, rec, ci, p10, mn, s in out:
        print(f"| {t} | {when} | {rows:,} | {ef} | {rec:.3f} ± {ci:.3f} | {p10:.2f} | "
              f"{mn:.2f} | {s:.1f} |")


if __name__ == "__main__":
    main()
