#!/usr/bin/env python3
"""Latency of hybrid_search beside the bare pgvector query and the SQL RRF baseline,
interleaved query by query in one run, on SciFact and on a >= 100,000-chunk corpus built
from it.

    .venv/bin/python bench/latency.py [--queries 300] [--rows 100000] [--parts]

Corpora (built once, kept; $QORTEX_SCIFACT as in bench/quality.py):
- `bench_lat_5k`: the 5,183 SciFact abstracts.
- `bench_lat_100k`: --rows synthetic chunks. Chunk j joins the first half of the sentences
  of one random SciFact abstract with the second half of another's (seeded), and its
  embedding is the normalised sum of the two abstracts' embeddings, so text and vector
  still agree the way real chunks do.
Both: id bigint, content, embedding vector(384) with HNSW (m=16, ef_construction=64,
cosine), fts with GIN, metadata {"p10": id % 10 = 0, "p1": id % 100 = 0} for filtered
runs (10% and 1% of rows), registered as collections of the same names (registration
creates their qortex_bm25 indexes).
For each query (SciFact train queries, cycled) the methods run back to back in rotating
order; p50/p95 over all queries, k = 10. Connects with the libpq environment.
--text-filter: instead, the text leg alone under filters admitting 1%, 10%, 90% and 99%,
through the qortex_bm25 index and through GIN within the filter.
--parts: instead, where hybrid_search's time goes (SciFact; 100k, and with the 10% filter): each
leg alone, the bare query at the pool's size (LIMIT 100 at ef_search 100), and a SELECT of
the two parameters.
"""
import argparse
import csv
import json
import math
import os
import pathlib
import random
import re
import statistics
import sys
import time

import psycopg

import common
import quality

ROOT = pathlib.Path(__file__).resolve().parents[1]
DATA = pathlib.Path(os.environ.get("QORTEX_SCIFACT", ROOT.parent / "shared" / "data" / "scifact"))

DDL = """
CREATE TABLE {t} (
    id bigint PRIMARY KEY, content text NOT NULL, embedding vector(384) NOT NULL,
    fts tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED,
    metadata jsonb GENERATED ALWAYS AS (('{{"p10": ' || (id % 10 = 0)::text || ', "p1": '
                                          || (id % 100 = 0)::text || '}}')::jsonb) STORED)
    WITH (toast_tuple_target = 8160);
"""
INDEXES = """
CREATE INDEX ON {t} USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64);
CREATE INDEX ON {t} USING gin (fts);
CREATE INDEX ON {t} USING gin (metadata jsonb_path_ops);
ANALYZE {t};
"""
RRF = """
WITH full_text AS (
    SELECT id, row_number() OVER (ORDER BY ts_rank_cd(fts, websearch_to_tsquery('english', %(text)s))
                                  DESC) AS rank_ix
      FROM {t} WHERE fts @@ websearch_to_tsquery('english', %(text)s) {where}
     ORDER BY rank_ix LIMIT 50),
semantic AS (
    SELECT id, row_number() OVER (ORDER BY embedding <=> %(emb)s::vector) AS rank_ix
      FROM {t} WHERE true {where} ORDER BY rank_ix LIMIT 50)
SELECT COALESCE(f.id, s.id) FROM full_text f FULL OUTER JOIN semantic s ON f.id = s.id
 ORDER BY COALESCE(1.0 / (50 + f.rank_ix), 0.0) + COALESCE(1.0 / (50 + s.rank_ix), 0.0) DESC
 LIMIT 10"""


def load_csv(name):
    csv.field_size_limit(sys.maxsize)
    with open(DATA / name, newline="") as f:
        return list(csv.DictReader(f))


def build(conn, table, rows):
    if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0]:
        if not conn.execute("SELECT count(*) FROM qortex.collections WHERE name = %s",
                            (table,)).fetchone()[0]:
            register(conn, table)
        quality.refresh(conn, table)
        return
    t0 = load(conn, table, rows, DDL, INDEXES)
    register(conn, table)
    quality.refresh(conn, table)
    print(f"  built in {time.perf_counter() - t0:.0f} s", flush=True)


def load(conn, table, rows, ddl, indexes):
    """Create `table` by `ddl`, COPY (id, content, embedding) rows in, then `indexes`;
    returns when it started (time.perf_counter)."""
    t0 = time.perf_counter()
    print(f"building {table} ({len(rows):,} rows) ...", flush=True)
    conn.execute(ddl.format(t=table))
    with conn.cursor().copy(f"COPY {table} (id, content, embedding) FROM STDIN") as cp:
        for r in rows:
            cp.write_row(r)
    conn.execute(indexes.format(t=table))
    return t0


def register(conn, table):
    conn.execute("""SELECT qortex_register_collection(%s, %s, '{"id": "id", "embedding":
                    "embedding", "content": "content", "tsvector": "fts",
                    "metadata": "metadata"}')""", (table, table))


def synthetic(corpus, n, seed=7):
    rng = random.Random(seed)
    sents = [re.split(r"(?<=[.!?])\s+", f"{c['title']}. {c['text']}") for c in corpus]
    embs = [json.loads(c["embedding"]) for c in corpus]
    for j in range(n):
        a, b = rng.randrange(len(corpus)), rng.randrange(len(corpus))
        sa, sb = sents[a], sents[b]
        text = " ".join(sa[: max(1, len(sa) // 2)] + sb[len(sb) // 2:])
        e = [x + y for x, y in zip(embs[a], embs[b])]
        norm = math.sqrt(sum(x * x for x in e)) or 1.0
        yield (j + 1, text, "[" + ",".join(f"{x / norm:.6f}" for x in e) + "]")


def methods(table, where_filter):
    where = f"AND metadata @> '{json.dumps(where_filter)}'" if where_filter else ""
    opts = json.dumps({"filter": where_filter} if where_filter else {})
    return {
        "bare pgvector": f"SELECT id FROM {table} WHERE true {where} "
                         f"ORDER BY embedding <=> %(emb)s::vector LIMIT 10",
        "hybrid_search": f"SELECT id FROM hybrid_search('{table}', %(emb)s::vector, %(text)s, "
                         f"10, '{opts}')",
        "SQL RRF": RRF.format(t=table, where=where),
    }


def parts(table, where_filter):
    where = f"WHERE metadata @> '{json.dumps(where_filter)}'" if where_filter else ""
    opts = json.dumps({"filter": where_filter} if where_filter else {})
    def hybrid(emb, text):
        return f"SELECT id FROM hybrid_search('{table}', {emb}, {text}, 10, '{opts}')"
    return {
        "bare pgvector": f"SELECT id FROM {table} {where} "
                         f"ORDER BY embedding <=> %(emb)s::vector LIMIT 10",
        "bare, 100 at ef 100": f"/*ef100*/ SELECT id FROM {table} {where} "
                               f"ORDER BY embedding <=> %(emb)s::vector LIMIT 100",
        "hybrid_search": hybrid("%(emb)s::vector", "%(text)s"),
        "vector leg only": hybrid("%(emb)s::vector", "NULL"),
        "text leg only": hybrid("NULL", "%(text)s"),
        "parameters only": "SELECT %(emb)s::vector IS NULL, %(text)s::text IS NULL",
    }


def run(conn, table, queries, n, where_filter, ms=None):
    ms = ms or methods(table, where_filter)
    names = list(ms)
    times = {k: [] for k in names}
    counts = {k: [] for k in names}
    for i in range(n):
        q = queries[i % len(queries)]
        params = {"emb": q["embedding"], "text": q["text"]}
        order = names[i % len(names):] + names[: i % len(names)]
        for name in order:
            ef100 = ms[name].startswith("/*ef100*/")
            if ef100:
                conn.execute("SET hnsw.ef_search = 100")
            t0 = time.perf_counter()
            rows = conn.execute(ms[name], params, prepare=True).fetchall()
            times[name].append(1000 * (time.perf_counter() - t0))
            counts[name].append(len(rows))
            if ef100:
                conn.execute("RESET hnsw.ef_search")
    label = "unfiltered" if not where_filter else f"filter {where_filter}"
    bare = statistics.median(times["bare pgvector"])
    for name in names:
        t = sorted(times[name])
        p50, p95 = statistics.median(t), t[int(0.95 * (len(t) - 1))]
        print(f"  {table:<15} {label:<22} {name:<19} p50 {p50:7.2f} ms  p95 {p95:7.2f} ms  "
              f"{p50 / bare:5.1f}x bare   rows/query {statistics.mean(counts[name]):5.1f}",
              flush=True)


def text_paths(conn, table, queries, n):
    """The text leg alone under filters admitting 1%, 10%, 90% and 99% of the rows, read
    through the qortex_bm25 index (qortex.text_index_min_share 0) and through GIN within the
    filter (1), alternating per query: where the two paths cross."""
    sql = (f"SELECT id FROM hybrid_search('{table}', NULL, %(text)s, 10, %(opts)s::jsonb)")
    for f in [{"p1": True}, {"p10": True}, {"p10": False}, {"p1": False}]:
        opts = json.dumps({"filter": f})
        times = {"index": [], "GIN": []}
        for i in range(n):
            q = queries[i % len(queries)]
            order = ["index", "GIN"] if i % 2 else ["GIN", "index"]
            for path in order:
                conn.execute("SET qortex.text_index_min_share = %s" % ("0" if path == "index"
                                                                        else "1"))
                t0 = time.perf_counter()
                conn.execute(sql, {"text": q["text"], "opts": opts}, prepare=True).fetchall()
                times[path].append(1000 * (time.perf_counter() - t0))
        conn.execute("RESET qortex.text_index_min_share")
        gin = statistics.median(times["GIN"])
        for path, t in times.items():
            t = sorted(t)
            p50, p95 = statistics.median(t), t[int(0.95 * (len(t) - 1))]
            print(f"  {table:<15} text leg, filter {json.dumps(f):<14} {path:<6} p50 {p50:7.2f} ms"
                  f"  p95 {p95:7.2f} ms  {p50 / gin:5.2f}x GIN", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--parts", action="store_true")
    ap.add_argument("--text-filter", action="store_true",
                    help="only the text leg under filters, through the index and through GIN")
    args = ap.parse_args()
    with psycopg.connect() as conn:
        common.require_release(conn)
    corpus = load_csv("corpus.csv")
    queries = load_csv("queries-train.csv")
    with psycopg.connect(autocommit=True) as conn:
        build(conn, "bench_lat_5k", [(int(c["id"]), f"{c['title']} {c['text']}", c["embedding"])
                                     for c in corpus])
        if args.text_filter:
            build(conn, "bench_lat_100k", list(synthetic(corpus, args.rows)))
            for table in ["bench_lat_5k", "bench_lat_100k"]:
                text_paths(conn, table, queries, args.queries)
            return
        if args.parts:
            for table, f in [("bench_lat_5k", None), ("bench_lat_100k", None),
                             ("bench_lat_100k", {"p10": True})]:
                if not conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0]:
                    continue  # built by a full run
                for q in queries[:20]:  # warm caches
                    for m in parts(table, f).values():
                        conn.execute(m, {"emb": q["embedding"], "text": q["text"]}).fetchall()
                run(conn, table, queries, args.queries, f, parts(table, f))
            return
        build(conn, "bench_lat_100k", list(synthetic(corpus, args.rows)))
        for table in ["bench_lat_5k", "bench_lat_100k"]:
            for _ in range(2):  # warm caches
                run_quiet = [conn.execute(m, {"emb": queries[0]["embedding"],
                                              "text": queries[0]["text"]}).fetchall()
                             for m in methods(table, None).values()]
                del run_quiet
            for f in [None, {"p10": True}, {"p1": True}]:
                run(conn, table, queries, args.queries, f)


if __name__ == "__main__":
    main()
