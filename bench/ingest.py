#!/usr/bin/env python3
"""Ingest the SciFact corpus through qortex_ingest, beside plain INSERT and COPY of the same
rows into an equivalent table, measured in one run.

    .venv/bin/python bench/ingest.py [--rounds 2] [--clients 4] [--corpus 5k|100k] [--rows N]
                                     [--only WORD,...]

Data: $QORTEX_SCIFACT (default ../shared/data/scifact next to the repo), corpus.csv:
5,183 abstracts with 384-d embeddings; one chunk per document (`title text`).
--corpus 100k: instead, the --rows (100,000) chunks bench/latency.py builds from them (the
first half of one abstract's sentences and the second half of another's, the embedding the
normalised sum of theirs; bench/workload.py's corpus_rows), one per document, metadata {};
and only qortex_ingest with vector literals (1 client), qortex_ingest_batch, the procedure,
INSERT and COPY run (the JSON-array and --clients forms are left out: they take long there).
- qortex_ingest: a managed collection (HNSW m=16/ef_construction=64 cosine, GIN full text);
  one call per document (a documents row and a chunks row), 100 documents per commit; with
  1 client and with --clients threads on their own connections; embeddings sent as JSON
  arrays of numbers, or as pgvector literals (strings "[x,...]", as the CSV holds them).
- qortex_ingest_batch: 100 documents per call and commit (vector literals), 1 client; and
  CALL qortex_ingest_batches with the whole corpus in one call, committed every 100 (at
  100k, 10,000 documents a call: a jsonb value holds at most 256 MB, 100k exceed it).
- INSERT: multi-row INSERT (100 rows per statement and commit) into a table like the
  chunks table (same vector, jsonb, generated tsvector, HNSW, GIN and qortex_bm25 indexes).
- COPY: COPY of the same rows into that table.
--only COPY,batch: only the methods whose label has one of the words (the INSERT baseline
always runs). Index maintenance is included everywhere. Each run starts from empty tables. Figures are
chunks per second; the ratio is against the plain INSERT of the same round. After each run,
the size of the table (with TOAST) and of its qortex_bm25 index; at the end, that index
built afresh on the plain table's rows, for reference.
Connects with the libpq environment (PGHOST, PGPORT, PGDATABASE, PGUSER).
"""
import argparse
import csv
import json
import os
import pathlib
import statistics
import sys
import threading
import time

import psycopg
from psycopg.types.json import Jsonb

import common

ROOT = pathlib.Path(__file__).resolve().parents[1]
DATA = pathlib.Path(os.environ.get("QORTEX_SCIFACT", ROOT.parent / "shared" / "data" / "scifact"))
BATCH = 100
CALL_DOCS = 10_000  # documents a CALL of the procedure (jsonb's 256 MB limit)

PLAIN_DDL = """
DROP TABLE IF EXISTS bench_plain;
CREATE TABLE bench_plain (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    document_id bigint NOT NULL, chunk_index int NOT NULL, content text NOT NULL,
    embedding vector(384) NOT NULL, metadata jsonb NOT NULL DEFAULT '{}',
    user_id text, is_global boolean NOT NULL DEFAULT false,
    fts tsvector GENERATED ALWAYS AS (to_tsvector('english'::regconfig, content)) STORED);
CREATE INDEX ON bench_plain USING hnsw (embedding vector_cosine_ops)
    WITH (m = 16, ef_construction = 64);
CREATE INDEX ON bench_plain USING gin (fts);
CREATE INDEX ON bench_plain (user_id, is_global);
CREATE INDEX ON bench_plain USING qortex_bm25
    (fts, (CASE WHEN is_global THEN ''::text ELSE user_id END));
"""


def load(corpus="5k", n=100_000):
    """(external id, title or None, text, embedding literal) of each document."""
    if corpus == "100k":
        import workload  # (its corpus_rows: bench/latency.py's synthetic chunks)
        return [(i, None, text, emb) for i, text, emb in workload.corpus_rows("100k", n)]
    csv.field_size_limit(sys.maxsize)
    with open(DATA / "corpus.csv", newline="") as f:
        return [(r["id"], r["title"], f'{r["title"]} {r["text"]}', r["embedding"])
                for r in csv.DictReader(f)]


def meta(title):
    return {} if title is None else {"title": title}


def sizes(conn, table):
    """MB of `table` (heap and TOAST) and of its qortex_bm25 index."""
    heap, bm25 = conn.execute(
        "SELECT pg_table_size(%s::regclass), (SELECT sum(pg_relation_size(i.indexrelid)) "
        "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = "
        "c.relam WHERE i.indrelid = %s::regclass AND a.amname = 'qortex_bm25')",
        (table, table)).fetchone()
    return heap / 2**20, bm25 / 2**20


def fresh_collection(conn):
    conn.execute("SELECT qortex_drop_collection(name, drop_data => true) "
                 "FROM qortex.collections WHERE name = 'bench_ingest'")
    conn.execute("SELECT qortex_create_collection('bench_ingest', 384)")


def qortex_ingest(rows, clients, literal):
    with psycopg.connect(autocommit=True) as conn:
        fresh_collection(conn)
    parts = [rows[i::clients] for i in range(clients)]

    def worker(part):
        with psycopg.connect() as conn:
            for i, (ext, title, text, emb) in enumerate(part):
                doc = {"external_id": ext, "content": text, "metadata": meta(title)}
                chunks = [{"content": text, "embedding": emb if literal else json.loads(emb)}]
                conn.execute("SELECT qortex_ingest('bench_ingest', %s, %s)",
                             (Jsonb(doc), Jsonb(chunks)), prepare=True)
                if i % BATCH == BATCH - 1:
                    conn.commit()
            conn.commit()

    threads = [threading.Thread(target=worker, args=(p,)) for p in parts]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    with psycopg.connect() as conn:
        n = conn.execute("SELECT count(*) FROM qortex.bench_ingest_chunks").fetchone()[0]
        assert n == len(rows), (n, len(rows))
    return len(rows) / elapsed


def batch_documents(rows):
    return [{"external_id": ext, "content": text, "metadata": meta(title),
             "chunks": [{"content": text, "embedding": emb}]} for ext, title, text, emb in rows]


def qortex_batch(rows):
    with psycopg.connect(autocommit=True) as conn:
        fresh_collection(conn)
    docs = batch_documents(rows)
    with psycopg.connect() as conn:
        t0 = time.perf_counter()
        for s in range(0, len(docs), BATCH):
            conn.execute("SELECT qortex_ingest_batch('bench_ingest', %s)",
                         (Jsonb(docs[s:s + BATCH]),), prepare=True)
            conn.commit()
        elapsed = time.perf_counter() - t0
        n = conn.execute("SELECT count(*) FROM qortex.bench_ingest_chunks").fetchone()[0]
        assert n == len(rows), (n, len(rows))
    return len(rows) / elapsed


def qortex_batches(rows):
    with psycopg.connect(autocommit=True) as conn:
        fresh_collection(conn)
        docs = batch_documents(rows)
        t0 = time.perf_counter()
        for s in range(0, len(docs), CALL_DOCS):
            conn.execute("CALL qortex_ingest_batches('bench_ingest', %s, NULL, %s)",
                         (Jsonb(docs[s:s + CALL_DOCS]), BATCH))
        elapsed = time.perf_counter() - t0
        n = conn.execute("SELECT count(*) FROM qortex.bench_ingest_chunks").fetchone()[0]
        assert n == len(rows), (n, len(rows))
    return len(rows) / elapsed


def plain_insert(rows):
    with psycopg.connect() as conn:
        conn.execute(PLAIN_DDL)
        conn.commit()
        t0 = time.perf_counter()
        for s in range(0, len(rows), BATCH):
            batch = rows[s:s + BATCH]
            values = ", ".join(["(%s, 0, %s, %s::vector, %s)"] * len(batch))
            args = []
            for ext, title, text, emb in batch:
                args += [int(ext), text, emb, Jsonb(meta(title))]
            conn.execute("INSERT INTO bench_plain (document_id, chunk_index, content, embedding, "
                         f"metadata) VALUES {values}", args)
            conn.commit()
        return len(rows) / (time.perf_counter() - t0)


def plain_copy(rows):
    with psycopg.connect() as conn:
        conn.execute(PLAIN_DDL)
        conn.commit()
        t0 = time.perf_counter()
        with conn.cursor().copy("COPY bench_plain (document_id, chunk_index, content, embedding, "
                                "metadata) FROM STDIN") as cp:
            for ext, title, text, emb in rows:
                cp.write_row((int(ext), 0, text, emb, json.dumps(meta(title))))
        conn.commit()
        return len(rows) / (time.perf_counter() - t0)


def fresh_bm25(conn, table):
    """MB of the table's qortex_bm25 index built afresh on its rows."""
    index, ddl = conn.execute(
        "SELECT c.relname, pg_get_indexdef(c.oid) FROM pg_index i JOIN pg_class c ON c.oid = "
        "i.indexrelid JOIN pg_am a ON a.oid = c.relam WHERE i.indrelid = %s::regclass AND "
        "a.amname = 'qortex_bm25'", (table,)).fetchone()
    conn.execute(ddl.replace(f"INDEX {index} ON", "INDEX bench_fresh_bm25 ON", 1))
    size = conn.execute("SELECT pg_relation_size('bench_fresh_bm25')").fetchone()[0]
    conn.execute("DROP INDEX bench_fresh_bm25")
    return size / 2**20


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--corpus", choices=["5k", "100k"], default="5k")
    ap.add_argument("--rows", type=int, default=100_000, help="chunks of the 100k corpus")
    ap.add_argument("--only", default="",
                    help="comma-separated words: only the methods whose label has one")
    args = ap.parse_args()
    with psycopg.connect() as conn:
        common.require_release(conn)
    rows = load(args.corpus, args.rows)
    if args.corpus == "100k":
        print(f"synthetic corpus from SciFact: {len(rows):,} documents, one 384-d chunk each "
              f"({DATA})", flush=True)
    else:
        print(f"SciFact corpus: {len(rows)} documents, one 384-d chunk each ({DATA})")
    n = args.clients
    coll, plain = "qortex.bench_ingest_chunks", "bench_plain"
    # label, run, the table it fills (INSERT first, COPY last, as before)
    runs = [
        ("plain multi-row INSERT, 1 client", lambda: plain_insert(rows), plain),
        ("qortex_ingest, 1 client, JSON arrays", lambda: qortex_ingest(rows, 1, False), coll),
        ("qortex_ingest, 1 client, vector literals", lambda: qortex_ingest(rows, 1, True), coll),
        (f"qortex_ingest, {n} clients, JSON arrays", lambda: qortex_ingest(rows, n, False), coll),
        (f"qortex_ingest, {n} clients, literals", lambda: qortex_ingest(rows, n, True), coll),
        ("qortex_ingest_batch, 100 a call, 1 client", lambda: qortex_batch(rows), coll),
        ("CALL qortex_ingest_batches, by 100", lambda: qortex_batches(rows), coll),
        ("COPY, 1 client", lambda: plain_copy(rows), plain)]
    if args.corpus == "100k":
        runs = [r for r in runs if "JSON arrays" not in r[0] and f"{n} clients" not in r[0]]
    only = [w.strip().lower() for w in args.only.split(",") if w.strip()]
    if only:
        runs = runs[:1] + [r for r in runs[1:] if any(w in r[0].lower() for w in only)]
    order = [r[0] for r in runs[1:-1]] + [runs[0][0], runs[-1][0]]  # (printed as before)
    results = {k: [] for k in order}
    size = {}
    for r in range(args.rounds):
        for k, run, table in runs:
            results[k].append(run())
            with psycopg.connect() as conn:
                size[k] = sizes(conn, table)
            if args.corpus == "100k":
                print(f"  {k}: {results[k][-1]:,.0f}/s ({len(rows) / results[k][-1]:.0f} s), "
                      f"table {size[k][0]:.0f} MB, qortex_bm25 index {size[k][1]:.1f} MB",
                      flush=True)
        print(f"round {r + 1}: " + ", ".join(f"{results[k][-1]:,.0f}/s" for k in order),
              flush=True)
    med = {k: statistics.median(v) for k, v in results.items()}
    base = med["plain multi-row INSERT, 1 client"]
    for k, v in med.items():
        print(f"  {k:<42} {v:8,.0f} chunks/s   {v / base:4.2f}x INSERT   "
              f"{base / v:4.2f}x its time   qortex_bm25 {size[k][1]:6.1f} MB")
    print("target: ingestion within 1.5x the time of 100-row INSERTs (>= 0.67x their rate)")
    with psycopg.connect(autocommit=True) as conn:
        print(f"qortex_bm25 index built afresh on the plain table's rows: "
              f"{fresh_bm25(conn, plain):.1f} MB")
        conn.execute("DROP TABLE IF EXISTS bench_plain")
        if any(table == coll for _, _, table in runs):
            conn.execute("SELECT qortex_drop_collection('bench_ingest', drop_data => true)")


if __name__ == "__main__":
    main()
