#!/usr/bin/env python3
"""qortex beside pg_textsearch (BM25 index access method, timescale) on PostgreSQL 18: the
same table, one run.

    PG_MAJOR=18 make install && bench/pg_textsearch.sh   # builds it, preloads both
    PGHOST=$PWD/.pg/dev-18/run PGPORT=28818 PGUSER=postgres PGDATABASE=qortex \\
        .venv/bin/python bench/peer.py [--corpora 5k,100k] [--rows 100000] [--latency-queries 300]

Tables as users have them (default storage; `id text primary key, content text, metadata
jsonb, embedding vector(384), tsv tsvector generated from content`), loaded with COPY, with
HNSW (cosine, m 16, ef_construction 64), GIN on tsv, pg_textsearch's `bm25(content) WITH
(text_config = 'english')`, registered with qortex (which builds its BM25 index): `5k` the
5,183 SciFact abstracts (title and text), `100k` bench/latency.py's synthetic chunks.

Methods, each at k = 100 for quality (nDCG@10 and recall@100 over the 809 labelled train
queries, trec_eval semantics; 5k only) and at k = 10 for latency (p50/p95, one client,
rotating order):
- pg_textsearch: `ORDER BY content <@> to_bm25query(q, index) LIMIT k`
- qortex text leg, BM25 index / GIN exact: `hybrid_search(c, NULL, q, k)`
  (`qortex.use_text_index` on / off)
- pg_textsearch + HNSW, RRF (k 60, 100 candidates a leg, ef_search 100) in one statement
- qortex hybrid_search (RRF, 100 candidates a leg)
- pgvector HNSW alone (`ORDER BY embedding <=> q LIMIT k`), for scale
Connects with the libpq environment. Refuses a debug build.
"""
import argparse
import statistics
import time

import psycopg

import common
import latency
import quality

DDL = """
CREATE TABLE {t} (id text PRIMARY KEY, content text NOT NULL, metadata jsonb NOT NULL DEFAULT '{{}}',
                  embedding vector(384) NOT NULL,
                  tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED)
"""
INDEXES = """
CREATE INDEX {t}_hnsw ON {t} USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64);
CREATE INDEX {t}_gin ON {t} USING gin (tsv);
CREATE INDEX {t}_bm25 ON {t} USING bm25 (content) WITH (text_config = 'english');
ANALYZE {t};
"""
COLUMNS = '{"id": "id", "embedding": "embedding", "content": "content", "tsvector": "tsv", ' \
          '"metadata": "metadata"}'


def methods(t, k):
    """The statements, `k` written in (a LIMIT bound as a parameter gets a generic plan
    that need not use the index)."""
    bm25 = f"to_bm25query(%(text)s, '{t}_bm25')"
    return {
        "pg_textsearch": (f"SELECT id FROM {t} ORDER BY content <@> {bm25} LIMIT {k}", None),
        "qortex text (BM25 index)": (
            f"SELECT id FROM hybrid_search('{t}', NULL, %(text)s, {k})", "on"),
        "qortex text (GIN, exact)": (
            f"SELECT id FROM hybrid_search('{t}', NULL, %(text)s, {k}) /* gin */", "off"),
        "pg_textsearch + HNSW, SQL RRF": (f"""
            WITH t AS (SELECT id, row_number() OVER () AS r
                         FROM (SELECT id FROM {t} ORDER BY content <@> {bm25} LIMIT 100) s),
                 v AS (SELECT id, row_number() OVER () AS r
                         FROM (SELECT id FROM {t} ORDER BY embedding <=> %(emb)s::vector
                                LIMIT 100) s)
            SELECT COALESCE(t.id, v.id) AS id FROM t FULL JOIN v ON t.id = v.id
             ORDER BY COALESCE(1.0 / (60 + t.r), 0) + COALESCE(1.0 / (60 + v.r), 0) DESC, 1
             LIMIT {k}""", None),
        "qortex hybrid_search (RRF)": (
            f"SELECT id FROM hybrid_search('{t}', %(emb)s::vector, %(text)s, {k})", "on"),
        "pgvector HNSW alone": (
            f"SELECT id FROM {t} ORDER BY embedding <=> %(emb)s::vector LIMIT {k}", None),
    }


def build(conn, table, rows):
    if conn.execute("SELECT count(*) FROM qortex.collections WHERE name = %s",
                    (table,)).fetchone()[0]:
        return
    conn.execute(f"DROP TABLE IF EXISTS {table}")  # left by an interrupted build
    t0 = latency.load(conn, table, rows, DDL, INDEXES)
    conn.execute("SELECT qortex_register_collection(%s, %s, %s)", (table, table, COLUMNS))
    print(f"  built in {time.perf_counter() - t0:.0f} s", flush=True)


def sizes(conn, table):
    def size(rel):
        return conn.execute("SELECT pg_total_relation_size(%s)", (rel,)).fetchone()[0] / 2**20
    ours = conn.execute("SELECT (details->'text_leg'->'text_index'->>'size_bytes')::float8 "
                        "FROM qortex_collections() WHERE name = %s", (table,)).fetchone()[0]
    print(f"  index sizes: pg_textsearch {size(f'{table}_bm25'):.1f} MB, qortex BM25 "
          f"{ours / 2**20:.1f} MB, GIN {size(f'{table}_gin'):.1f} MB, "
          f"HNSW {size(f'{table}_hnsw'):.1f} MB", flush=True)


def run(conn, ms, params):
    """One execution of a method: its ids and milliseconds."""
    sql, gin = ms
    if gin is not None:
        conn.execute(f"SET qortex.use_text_index = {gin}")
    # planned with each call's values (a prepared statement's generic plan may not use the
    # index for `ORDER BY col <op> $1`: that measured a sequential scan, not the peer)
    t0 = time.perf_counter()
    ids = [r[0] for r in conn.execute(sql, params, prepare=False)]
    return ids, 1000 * (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpora", default="5k,100k")
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--latency-queries", type=int, default=300)
    args = ap.parse_args()
    queries = latency.load_csv("queries-train.csv")
    rel = quality.qrels()
    corpus = latency.load_csv("corpus.csv")
    with psycopg.connect(autocommit=True) as conn:
        common.require_release(conn)
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_textsearch")
        conn.execute("SET hnsw.ef_search = 100")  # the SQL RRF's 100 candidates need it
        print(conn.execute("SELECT version()").fetchone()[0].split(" on ")[0] + "; "
              + ", ".join(f"{n} {v}" for n, v in conn.execute(
                  "SELECT extname, extversion FROM pg_extension "
                  "WHERE extname IN ('vector', 'pg_textsearch', 'qortex') ORDER BY 1")))
        for cname in args.corpora.split(","):
            table = f"peer_{cname}"
            if cname == "5k":
                rows = [(c["id"], f"{c['title']} {c['text']}", c["embedding"]) for c in corpus]
            else:
                rows = [(str(i), t, e) for i, t, e in latency.synthetic(corpus, args.rows)]
            build(conn, table, rows)
            sizes(conn, table)
            if cname == "5k":
                print(f"  {'method':<32} {'nDCG@10':>8} {'R@100':>7}")
                for name, m in methods(table, 100).items():
                    per_query = {}
                    for q in queries:
                        if q["id"] in rel:
                            ranked, _ = run(conn, m, {"emb": q["embedding"], "text": q["text"]})
                            per_query[q["id"]] = (quality.ndcg10(ranked, rel[q["id"]]),
                                                  quality.recall100(ranked, rel[q["id"]]))
                    nd, rc, _, _ = quality.summary(per_query)
                    print(f"  {name:<32} {nd:8.3f} {rc:7.3f}", flush=True)
            ms = methods(table, 10)
            names = list(ms)
            times = {n: [] for n in names}
            for i in range(args.latency_queries):
                q = queries[i % len(queries)]
                order = names[i % len(names):] + names[:i % len(names)]
                for name in order:
                    _, ms_ = run(conn, ms[name], {"emb": q["embedding"], "text": q["text"]})
                    times[name].append(ms_)
            base = statistics.median(times["pg_textsearch"])
            for name in names:
                t = sorted(times[name])
                p50 = statistics.median(t)
                print(f"  {table:<9} k=10 {name:<32} p50 {p50:6.2f} ms  "
                      f"p95 {t[int(0.95 * (len(t) - 1))]:6.2f} ms  {p50 / base:5.2f}x "
                      f"pg_textsearch", flush=True)


if __name__ == "__main__":
    main()
