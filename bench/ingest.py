#!/usr/bin/env python3
"""Ingest the SciFact corpus through qortex_ingest, beside plain INSERT and COPY of the same
rows into an equivalent table, measured in one run.

    .venv/bin/python bench/ingest.py [--rounds 2] [--clients 4]

Data: $QORTEX_SCIFACT (default ../shared/data/scifact next to the repo), corpus.csv:
5,183 abstracts with 384-d embeddings; one chunk per document (`title text`).
- qortex_ingest: a managed collection (HNSW m=16/ef_construction=64 cosine, GIN full text);
  one call per document (a documents row and a chunks row), 100 documents per commit; with
  1 client and with --clients threads on their own connections; embeddings sent as JSON
  arrays of numbers, or as pgvector literals (strings "[x,...]", as the CSV holds them).
- qortex_ingest_batch: 100 documents per call and commit (vector literals), 1 client; and
  CALL qortex_ingest_batches with the whole corpus in one call, committed every 100.
- INSERT: multi-row INSERT (100 rows per statement and commit) into a table like the
  chunks table (same vector, jsonb, generated tsvector, HNSW, GIN and qortex_bm25 indexes).
- COPY: COPY of the same rows into that table.
Index maintenance is included everywhere. Each run starts from empty tables. Figures are
chunks per second; the ratio is against the plain INSERT of the same round.
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


def load():
    csv.field_size_limit(sys.maxsize)
    with open(DATA / "corpus.csv", newline="") as f:
        return [(r["id"], r["title"], f'{r["title"]} {r["text"]}', r["embedding"])
                for r in csv.DictReader(f)]


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
                doc = {"external_id": ext, "content": text, "metadata": {"title": title}}
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
    return [{"external_id": ext, "content": text, "metadata": {"title": title},
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
        conn.execute("CALL qortex_ingest_batches('bench_ingest', %s, NULL, %s)",
                     (Jsonb(docs), BATCH))
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
                args += [int(ext), text, emb, Jsonb({"title": title})]
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
                cp.write_row((int(ext), 0, text, emb, json.dumps({"title": title})))
        conn.commit()
        return len(rows) / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--clients", type=int, default=4)
    args = ap.parse_args()
    with psycopg.connect() as conn:
        common.require_release(conn)
    rows = load()
    print(f"SciFact corpus: {len(rows)} documents, one 384-d chunk each ({DATA})")
    n = args.clients
    results = {k: [] for k in [
        "qortex_ingest, 1 client, JSON arrays", "qortex_ingest, 1 client, vector literals",
        f"qortex_ingest, {n} clients, JSON arrays", f"qortex_ingest, {n} clients, literals",
        "qortex_ingest_batch, 100 a call, 1 client", "CALL qortex_ingest_batches, by 100",
        "plain multi-row INSERT, 1 client", "COPY, 1 client"]}
    for r in range(args.rounds):
        ins = plain_insert(rows)
        figures = [qortex_ingest(rows, 1, False), qortex_ingest(rows, 1, True),
                   qortex_ingest(rows, n, False), qortex_ingest(rows, n, True),
                   qortex_batch(rows), qortex_batches(rows), ins, plain_copy(rows)]
        for k, v in zip(results, figures):
            results[k].append(v)
        print(f"round {r + 1}: " + ", ".join(f"{v:,.0f}/s" for v in figures))
    med = {k: statistics.median(v) for k, v in results.items()}
    base = med["plain multi-row INSERT, 1 client"]
    for k, v in med.items():
        print(f"  {k:<42} {v:8,.0f} chunks/s   {v / base:4.2f}x INSERT")
    print("target: ingestion within 1.5x the time of 100-row INSERTs (>= 0.67x their rate)")
    with psycopg.connect(autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_plain")
        conn.execute("SELECT qortex_drop_collection('bench_ingest', drop_data => true)")


if __name__ == "__main__":
    main()
