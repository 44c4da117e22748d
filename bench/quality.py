#!/usr/bin/env python3
"""Retrieval quality of hybrid_search on SciFact (train split) beside the SQL baselines,
one harness, one run.

    .venv/bin/python bench/quality.py [--methods all] [--options '{"fusion": "weighted"}']
    .venv/bin/python bench/quality.py --sweep     # the candidate pool (BENCHMARKS.md)

Data: $QORTEX_SCIFACT (default ../shared/data/scifact next to the repo). The corpus goes
into a table `bench_scifact` (id, title, text, embedding vector(384), fts tsvector of
title || ' ' || text, HNSW m=16/ef_construction=64 cosine, GIN), registered as the
collection `bench_scifact`; it is loaded once and kept. Metrics: nDCG@10 and recall@100
with trec_eval semantics (binary relevance from qrels-train.tsv), over all 809 queries and
over two halves split by query id (A: even ids, used for tuning; B: odd ids, held out).
hybrid_search is called as users call it for a page, k = 10 (nDCG@10, R@10), and with
k = 100 for R@100 (its default pool grows with k: 2 x (k + offset), at least 20).

--sweep: hybrid_search(..., 10, {"candidates": pool, ...}) for each pool, fusion and rrf_k,
so the default pool is chosen on half A and checked on half B.
Connects with the libpq environment (PGHOST, PGPORT, PGDATABASE, PGUSER).
"""
import argparse
import csv
import json
import math
import os
import pathlib
import sys
import time

import psycopg

import common

ROOT = pathlib.Path(__file__).resolve().parents[1]
DATA = pathlib.Path(os.environ.get("QORTEX_SCIFACT", ROOT.parent / "shared" / "data" / "scifact"))
COLL = "bench_scifact"

SETUP = """
CREATE TABLE bench_scifact (
    id bigint PRIMARY KEY, title text NOT NULL, text text NOT NULL,
    embedding vector(384) NOT NULL,
    fts tsvector GENERATED ALWAYS AS (to_tsvector('english', title || ' ' || text)) STORED)
    WITH (toast_tuple_target = 8160);
"""
INDEXES = """
CREATE INDEX bench_scifact_hnsw ON bench_scifact USING hnsw (embedding vector_cosine_ops)
    WITH (m = 16, ef_construction = 64);
CREATE INDEX bench_scifact_fts ON bench_scifact USING gin (fts);
ANALYZE bench_scifact;
"""

# The ways people query pgvector + full text by hand today.
BASELINES = {
    "pgvector HNSW (bare ORDER BY <=> LIMIT)":
        "SELECT id::text FROM bench_scifact ORDER BY embedding <=> %(emb)s::vector LIMIT 100",
    "plainto_tsquery (AND) + ts_rank_cd":
        """SELECT id::text FROM bench_scifact, plainto_tsquery('english', %(text)s) q
            WHERE fts @@ q ORDER BY ts_rank_cd(fts, q) DESC, id LIMIT 100""",
    "OR-of-lexemes + ts_rank(tsv, q, 1)":
        """WITH q AS (SELECT to_tsquery('english', string_agg(quote_literal(lexeme), ' | ')) q
                        FROM unnest(to_tsvector('english', %(text)s)))
           SELECT id::text FROM bench_scifact, q WHERE fts @@ q.q
            ORDER BY ts_rank(fts, q.q, 1) DESC, id LIMIT 100""",
    "SQL RRF (websearch_to_tsquery + HNSW, k=50)":
        """WITH full_text AS (
               SELECT id, row_number() OVER (ORDER BY ts_rank_cd(fts, websearch_to_tsquery(
                          'english', %(text)s)) DESC) AS rank_ix
                 FROM bench_scifact WHERE fts @@ websearch_to_tsquery('english', %(text)s)
                ORDER BY rank_ix LIMIT 200),
           semantic AS (
               SELECT id, row_number() OVER (ORDER BY embedding <=> %(emb)s::vector) AS rank_ix
                 FROM bench_scifact ORDER BY rank_ix LIMIT 200)
           SELECT COALESCE(f.id, s.id)::text FROM full_text f FULL OUTER JOIN semantic s
               ON f.id = s.id
            ORDER BY COALESCE(1.0 / (50 + f.rank_ix), 0.0) + COALESCE(1.0 / (50 + s.rank_ix), 0.0)
                     DESC LIMIT 100""",
}


def load_csv(name):
    csv.field_size_limit(sys.maxsize)
    with open(DATA / name, newline="") as f:
        return list(csv.DictReader(f))


def qrels():
    rel = {}
    with open(DATA / "qrels-train.tsv") as f:
        next(f)
        for line in f:
            q, d, s = line.split()
            if int(s) > 0:
                rel.setdefault(q, set()).add(d)
    return rel


def ensure_corpus(conn):
    n = conn.execute("SELECT count(*) FROM pg_class WHERE relname = 'bench_scifact'").fetchone()[0]
    if not n:
        print("loading the corpus into bench_scifact ...", flush=True)
        conn.execute(SETUP)
        with conn.cursor().copy("COPY bench_scifact (id, title, text, embedding) FROM STDIN") as cp:
            for r in load_csv("corpus.csv"):
                cp.write_row((int(r["id"]), r["title"], r["text"], r["embedding"]))
        conn.execute(INDEXES)
    if conn.execute("SELECT count(*) FROM qortex.collections WHERE name = %s",
                    (COLL,)).fetchone()[0]:
        refresh(conn, COLL)
        return
    conn.execute("""SELECT qortex_register_collection(%s, 'bench_scifact',
                    '{"id": "id", "embedding": "embedding", "content": "text",
                      "tsvector": "fts"}')""", (COLL,))
    refresh(conn, COLL)


def refresh(conn, coll):
    """Give the collection its qortex_bm25 index if it has none (registration creates it;
    a collection registered by an earlier qortex may have none)."""
    index = conn.execute("SELECT details->'text_leg'->'bm25_index'->>'name' "
                         "FROM qortex_collections() WHERE name = %s", (coll,)).fetchone()[0]
    if index is None:
        conn.execute("SELECT qortex_refresh_text_index(%s)", (coll,))
    conn.commit()


def ndcg10(ranked, relevant):
    dcg = sum(1 / math.log2(i + 2) for i, d in enumerate(ranked[:10]) if d in relevant)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(10, len(relevant))))
    return dcg / ideal


def recall(ranked, relevant, n):
    return len(set(ranked[:n]) & relevant) / len(relevant)


def evaluate(conn, queries, rel, sql, params_of):
    per_query, times = {}, []
    for q in queries:
        if q["id"] not in rel:
            continue
        t0 = time.perf_counter()
        ranked = [r[0] for r in conn.execute(sql, params_of(q), prepare=True)]
        times.append(time.perf_counter() - t0)
        per_query[q["id"]] = (ndcg10(ranked, rel[q["id"]]), recall(ranked, rel[q["id"]], 100),
                              recall(ranked, rel[q["id"]], 10))
    return per_query, times


def summary(per_query):
    def mean(ids, i):
        v = [per_query[q][i] for q in ids]
        return sum(v) / len(v)
    ids = list(per_query)
    a = [q for q in ids if int(q) % 2 == 0]
    b = [q for q in ids if int(q) % 2 == 1]
    return (mean(ids, 0), mean(ids, 1), mean(a, 0), mean(b, 0), mean(ids, 2))


def hybrid(options, k=100):
    return ("SELECT id FROM hybrid_search(%(coll)s, %(emb)s::vector, %(text)s, "
            f"{k}, %(opts)s)", options)


SWEEP_POOLS = [10, 20, 30, 40, 60, 100, 200]
SWEEP_FUSIONS = [("rrf k=60", {}), ("rrf k=30", {"rrf_k": 30}), ("rrf k=10", {"rrf_k": 10}),
                 ("weighted 0.4/0.6", {"fusion": "weighted"})]


def sweep(conn, queries, rel):
    """nDCG@10 (all, A, B), R@10 and p50 of k = 10 searches for each pool and fusion."""
    print(f"{'fusion':<18} {'pool':>5} {'nDCG@10':>8} {'nDCG A':>7} {'nDCG B':>7} "
          f"{'R@10':>6} {'p50 ms':>7}")
    conn.execute("SET qortex.use_text_index = on")
    for fname, fopts in SWEEP_FUSIONS:
        for pool in SWEEP_POOLS:
            sql, _ = hybrid({}, k=10)
            opts = json.dumps({**fopts, "candidates": pool})
            per_query, times = evaluate(
                conn, queries, rel, sql,
                lambda q: {"coll": COLL, "emb": q["embedding"], "text": q["text"], "opts": opts})
            nd, _, a, b, r10 = summary(per_query)
            times.sort()
            print(f"{fname:<18} {pool:>5} {nd:8.3f} {a:7.3f} {b:7.3f} {r10:6.3f} "
                  f"{1000 * times[len(times) // 2]:7.2f}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default="all", help="all | qortex | baselines")
    ap.add_argument("--sweep", action="store_true",
                    help="the candidate pool: pools x fusions at k = 10, nothing else")
    ap.add_argument("--options", action="append", default=[],
                    help="extra hybrid_search options JSON to evaluate (repeatable)")
    args = ap.parse_args()
    with psycopg.connect() as conn:
        common.require_release(conn)
    rel = qrels()
    queries = load_csv("queries-train.csv")
    methods = {}
    if args.sweep:
        with psycopg.connect(autocommit=True) as conn:
            ensure_corpus(conn)
            print(f"{len(rel)} queries with labels; halves A (even ids) / B (odd ids)")
            sweep(conn, queries, rel)
        return
    if args.methods in ("all", "qortex"):
        methods.update({
            "qortex vector only": (
                "SELECT id FROM hybrid_search(%(coll)s, %(emb)s::vector, NULL, 100)", {}),
            "qortex text only (BM25 index)": (
                "SELECT id FROM hybrid_search(%(coll)s, NULL, %(text)s, 100)", {}),
            "qortex text only (BM25, GIN, exact)": (
                "SELECT id FROM hybrid_search(%(coll)s, NULL, %(text)s, 100)", {}),
            "qortex hybrid rrf (default), k=10": hybrid({}, k=10),
            "qortex hybrid weighted, k=10": hybrid({"fusion": "weighted"}, k=10),
            "qortex hybrid rrf (default)": hybrid({}),
            "qortex hybrid weighted": hybrid({"fusion": "weighted"}),
            "qortex hybrid rrf (GIN, exact)": hybrid({}),
            "qortex hybrid weighted (GIN, exact)": hybrid({"fusion": "weighted"}),
        })
        for o in args.options:
            methods[f"qortex hybrid {o}"] = hybrid(json.loads(o))
    if args.methods in ("all", "baselines"):
        methods.update({k: (v, None) for k, v in BASELINES.items()})
    with psycopg.connect(autocommit=True) as conn:
        ensure_corpus(conn)
        print(f"{len(rel)} queries with labels; halves A (even ids) / B (odd ids)")
        print(f"{'method':<46} {'nDCG@10':>8} {'R@100':>7} {'nDCG A':>7} {'nDCG B':>7} "
              f"{'R@10':>6} {'p50 ms':>7}")
        for name, (sql, opts) in methods.items():
            conn.execute("SET qortex.use_text_index = %s" % ("off" if "GIN" in name else "on"))
            def params_of(q, opts=opts):
                p = {"coll": COLL, "emb": q["embedding"], "text": q["text"]}
                if opts is not None:
                    p["opts"] = json.dumps(opts)
                return p
            per_query, times = evaluate(conn, queries, rel, sql, params_of)
            nd, rc, a, b, r10 = summary(per_query)
            times.sort()
            print(f"{name:<46} {nd:8.3f} {rc:7.3f} {a:7.3f} {b:7.3f} {r10:6.3f} "
                  f"{1000 * times[len(times) // 2]:7.2f}", flush=True)


if __name__ == "__main__":
    main()
