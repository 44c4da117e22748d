#!/usr/bin/env python3
"""The workload agents run, on tables as they come: hybrid_search beside the bare pgvector
query with the same predicate and the SQL RRF baseline, while a writer keeps writing.

    .venv/bin/python bench/workload.py [--corpora 5k,100k] [--layouts lc,managed,lc1536]
                                       [--seconds 20] [--clients 4] [--write-rate 20]
                                       [--writer-only] [--legs]

Corpora (built once, kept): `5k` is the 5,183 SciFact abstracts; `100k` the --rows chunks
bench/latency.py builds from them (halves of two abstracts, their embeddings summed).
Layouts, each in its own table, nothing tuned (default storage: rows over ~2 kB keep their
embeddings and tsvectors in TOAST):
- `lc`: a registered table as LangChain's PGVector keeps one: `id text primary key, content
  text, metadata jsonb, user_id text, is_global bool, embedding vector(384), tsv tsvector
  generated from content`, loaded with COPY, HNSW (cosine, m 16, ef_construction 64), GIN on
  tsv and on metadata (jsonb_path_ops), btree on user_id, ANALYZE.
- `managed`: a qortex collection (qortex_create_collection), loaded with qortex_ingest_batch
  (100 documents a call and transaction); its qortex_bm25 index's size beside a fresh build.
- `lc1536`: `lc` with 1536-d embeddings: the 384-d ones through a fixed seeded random
  projection, normalised (neighbourhoods kept; rows the size real 1536-d rows are).
Scope: 1,000 users own 90% of the rows (`user_id`), 10% are `is_global`; metadata has
`p10` (10% of rows) and `p1` (1%).

For each table and each scope (unscoped, one user, the 10% filter, the 1% filter) --clients
threads search for --seconds, each query (SciFact train queries, cycled) by every method in
rotating order: hybrid_search(k 10), the bare `ORDER BY embedding <=> q LIMIT 10` with the
same predicate as the planner runs it and with its HNSW index forced (iterative scan when
scoped), and the SQL RRF of bench/latency.py. Meanwhile one writer commits --write-rate rows a
second: 70% inserts (a SciFact text plus a unique term, its embedding), 20% content updates,
10% deletes; right after each insert commits, the writer searches for the row on a second
connection, by its unique term and by its embedding, before it writes again (freshness). Then the writer's rate is measured unthrottled on the
table and on a copy without qortex (the same rows and indexes but a qortex_bm25 index; no
triggers).

With --legs, no load: one client runs each of 150 queries through hybrid_search and the bare
queries (prepared, after a warming pass), and once more under qortex.debug_plans for the
time of each of hybrid_search's legs: p50s, and hybrid_search's over the bare query's.

Figures: p50/p95 per method, the ratio of hybrid_search's p50 to the bare query's best p50
with the same predicate (and p95 to p95), rows per query, freshness, the writer's rate.
Connects with the libpq environment. Refuses a debug build.
"""
import argparse
import csv
import json
import math
import os
import pathlib
import random
import statistics
import sys
import threading
import time
import itertools

import numpy as np
import psycopg
from psycopg.types.json import Jsonb

import common
import latency

ROOT = pathlib.Path(__file__).resolve().parents[1]
DATA = pathlib.Path(os.environ.get("QORTEX_SCIFACT", ROOT.parent / "shared" / "data" / "scifact"))
USERS = 1000
ROW_NUMBERS = itertools.count()  # ids of the writer's rows, unique in this run
COLUMNS = ('{"id": "id", "embedding": "embedding", "content": "content", "tsvector": "tsv", '
           '"metadata": "metadata", "user_id": "user_id", "is_global": "is_global"}')
SCOPES = {
    "unscoped": ({}, ""),
    "user": ({"user_id": "u7"}, "(user_id = 'u7' OR is_global)"),
    "filter 10%": ({"filter": {"p10": True}}, "metadata @> '{\"p10\": true}'"),
    "filter 1%": ({"filter": {"p1": True}}, "metadata @> '{\"p1\": true}'"),
}


def lc_ddl(table, dims):
    return f"""
CREATE TABLE {table} (
    id text PRIMARY KEY, content text, metadata jsonb, user_id text, is_global boolean,
    embedding vector({dims}),
    tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED);
"""


def lc_indexes(table):
    return f"""
CREATE INDEX {table}_hnsw ON {table} USING hnsw (embedding vector_cosine_ops)
    WITH (m = 16, ef_construction = 64);
CREATE INDEX {table}_tsv ON {table} USING gin (tsv);
CREATE INDEX {table}_meta ON {table} USING gin (metadata jsonb_path_ops);
CREATE INDEX {table}_user ON {table} (user_id);
ANALYZE {table};
"""


def projection(dims_in=384, dims_out=1536, seed=1536):
    return np.random.default_rng(seed).standard_normal((dims_in, dims_out)).astype(np.float32)


def vec_text(v):
    return "[" + ",".join(f"{x:.6f}" for x in v) + "]"


def project(literals, matrix):
    """pgvector literals → their projections through `matrix`, normalised, as literals."""
    a = np.array([json.loads(e) for e in literals], dtype=np.float32) @ matrix
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    return [vec_text(v) for v in a]


def corpus_rows(name, rows):
    """(id, content, embedding literal) of a corpus."""
    corpus = latency.load_csv("corpus.csv")
    if name == "5k":
        return [(c["id"], f"{c['title']} {c['text']}", c["embedding"]) for c in corpus]
    return [(str(i), t, e) for i, t, e in latency.synthetic(corpus, rows)]


def scope_of(i, rng):
    """user_id, is_global, metadata of the i-th row."""
    glob = rng.random() < 0.1
    user = None if glob else f"u{rng.randrange(USERS)}"
    return user, glob, {"p10": i % 10 == 0, "p1": i % 100 == 0, "source": "scifact"}


def exists(conn, table):
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]


def build_lc(conn, table, rows, matrix=None, distribute=False):
    """The `lc` table, loaded, indexed, registered; `distribute`: spread over a Citus
    cluster by id before it is loaded (bench/citus.py)."""
    if exists(conn, table):
        return
    t0 = time.perf_counter()
    dims = 384 if matrix is None else matrix.shape[1]
    print(f"building {table} ({len(rows):,} rows, {dims}-d) ...", flush=True)
    conn.execute(lc_ddl(table, dims))
    if distribute:
        conn.execute("SELECT create_distributed_table(%s, 'id')", (table,))
    rng = random.Random(11)
    with conn.cursor().copy(f"COPY {table} (id, content, metadata, user_id, is_global, "
                            f"embedding) FROM STDIN") as cp:
        for s in range(0, len(rows), 2000):
            part = rows[s:s + 2000]
            embs = [e for _, _, e in part] if matrix is None else project(
                [e for _, _, e in part], matrix)
            for n, ((i, content, _), e) in enumerate(zip(part, embs)):
                user, glob, meta = scope_of(s + n, rng)
                cp.write_row((i, content, json.dumps(meta), user, glob, e))
    for sql in lc_indexes(table).split(";"):  # (one at a time: Citus sends each to the shards)
        if sql.strip():
            conn.execute(sql)
    conn.execute("SELECT qortex_register_collection(%s, %s, %s)", (table, table, COLUMNS))
    print(f"  built in {time.perf_counter() - t0:.0f} s", flush=True)


def build_managed(conn, name, rows):
    if conn.execute("SELECT count(*) FROM qortex.collections WHERE name = %s",
                    (name,)).fetchone()[0]:
        return
    t0 = time.perf_counter()
    print(f"building collection {name} ({len(rows):,} documents) ...", flush=True)
    conn.execute("SELECT qortex_create_collection(%s, 384)", (name,))
    rng = random.Random(11)
    docs = []
    for n, (i, content, e) in enumerate(rows):
        user, glob, meta = scope_of(n, rng)
        docs.append({"user_id": user, "is_global": glob, "metadata": meta, "external_id": i,
                     "chunks": [{"content": content, "embedding": e}]})
    # the bulk path: 100 documents a call, each call its own transaction
    for s in range(0, len(docs), 100):
        conn.execute("SELECT qortex_ingest_batch(%s, %s)", (name, Jsonb(docs[s:s + 100])),
                     prepare=True)
    conn.execute(f'ANALYZE qortex."{name}_chunks"')
    print(f"  built in {time.perf_counter() - t0:.0f} s", flush=True)
    # its qortex_bm25 index as the ingest left it, beside the same index built afresh
    index, ddl, size = conn.execute(
        "SELECT c.relname, pg_get_indexdef(c.oid), pg_relation_size(c.oid) FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam "
        "WHERE i.indrelid = %s::regclass AND a.amname = 'qortex_bm25'",
        (f'qortex."{name}_chunks"',)).fetchone()
    conn.execute(ddl.replace(f"INDEX {index} ON", "INDEX wl_fresh_bm25 ON", 1))
    fresh = conn.execute("SELECT pg_relation_size('qortex.wl_fresh_bm25')").fetchone()[0]
    conn.execute("DROP INDEX qortex.wl_fresh_bm25")
    print(f"  qortex_bm25 index after the ingest {size / 2**20:.1f} MB, a fresh build "
          f"{fresh / 2**20:.1f} MB: {size / fresh:.2f}x", flush=True)


def methods(coll, table, opts, pred, tsv):
    where = f"WHERE {pred}" if pred else ""
    rrf_where = f"AND {pred}" if pred else ""
    emb = "embedding"
    return {
        "hybrid_search": (f"SELECT id FROM hybrid_search('{coll}', %(emb)s::vector, %(text)s, "
                          f"10, '{json.dumps(opts)}')", None),
        "bare (planner)": (f"SELECT id FROM {table} {where} "
                           f"ORDER BY {emb} <=> %(emb)s::vector LIMIT 10", None),
        # (its own text: a prepared statement keeps the plan made under its own settings)
        "bare (index)": (f"SELECT id FROM {table} {where} "
                         f"ORDER BY {emb} <=> %(emb)s::vector LIMIT 10 /* index */", "index"),
        "SQL RRF": (latency.RRF.replace("fts", tsv).format(t=table, where=rrf_where), None),
    }


def timed(conn, method, params, pred):
    """One run of a method's statement (prepared): its ms and rows. The bare query "as the
    index runs it" gets the index forced (iterative scan when scoped) for that statement."""
    sql, how = method
    if how == "index":
        conn.execute("SET enable_seqscan = off")
        conn.execute("SET enable_bitmapscan = off")
        if pred:
            conn.execute("SET hnsw.iterative_scan = relaxed_order")
    t0 = time.perf_counter()
    rows = conn.execute(sql, params, prepare=True).fetchall()
    dt = 1000 * (time.perf_counter() - t0)
    if how == "index":
        conn.execute("RESET enable_seqscan")
        conn.execute("RESET enable_bitmapscan")
        conn.execute("RESET hnsw.iterative_scan")
    return dt, rows


def search_phase(dsn, coll, table, tsv, queries, scope, seconds, clients):
    opts, pred = SCOPES[scope]
    ms = methods(coll, table, opts, pred, tsv)
    names = list(ms)
    times = {n: [] for n in names}
    counts = {n: [] for n in names}
    lock = threading.Lock()
    counter = iter(range(10 ** 9))
    deadline = time.perf_counter() + seconds

    def client():
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SET enable_seqscan = on")
            for q in queries[:3]:  # warm this connection's caches
                for sql, _ in ms.values():
                    conn.execute(sql, {"emb": q["embedding"], "text": q["text"]}).fetchall()
            while time.perf_counter() < deadline:
                with lock:
                    i = next(counter)
                q = queries[i % len(queries)]
                params = {"emb": q["embedding"], "text": q["text"]}
                order = names[i % len(names):] + names[:i % len(names)]
                for name in order:
                    dt, rows = timed(conn, ms[name], params, pred)
                    with lock:
                        times[name].append(dt)
                        counts[name].append(len(rows))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return times, counts


class Writer:
    """Commits `rate` rows a second until stopped: 70% inserts, 20% content updates, 10%
    deletes; searches for each row it inserted right after the commit (`probe`)."""

    def __init__(self, dsn, coll, table, managed, corpus, rate, matrix):
        self.dsn, self.coll, self.table, self.managed = dsn, coll, table, managed
        self.corpus, self.rate, self.matrix = corpus, rate, matrix
        self.stop = threading.Event()
        self.found = []
        self.prober = None
        self.writes = 0
        self.rng = random.Random(99)

    def run(self):
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            mine = []
            while not self.stop.is_set():
                n = next(ROW_NUMBERS)
                t0 = time.perf_counter()
                r = self.rng.random()
                if r < 0.7 or len(mine) < 5:
                    mine.append(self.insert(conn, n))
                elif r < 0.9:
                    self.update(conn, self.rng.choice(mine))
                else:
                    self.delete(conn, mine.pop(self.rng.randrange(len(mine))))
                self.writes += 1
                time.sleep(max(0.0, 1.0 / self.rate - (time.perf_counter() - t0)))
        if self.prober is not None:
            self.prober.close()

    def row(self, n):
        c = self.corpus[self.rng.randrange(len(self.corpus))]
        # a word no text has, all letters (digits would split it into tokens of their own)
        term = "zq" + "".join(chr(97 + int(d)) for d in f"{os.getpid()}{n:07d}")
        emb = json.loads(c["embedding"])
        noise = [x + self.rng.gauss(0, 0.01) for x in emb]
        norm = math.sqrt(sum(x * x for x in noise))
        e = vec_text([x / norm for x in noise])
        if self.matrix is not None:
            e = project([e], self.matrix)[0]
        return term, f"{c['title']} {c['text']} {term}", e

    def insert(self, conn, n):
        term, content, e = self.row(n)
        user = f"u{self.rng.randrange(USERS)}"
        meta = {"p10": False, "p1": False, "source": "writer"}
        if self.managed:
            doc = conn.execute("SELECT qortex_ingest(%s, %s, %s)",
                               (self.coll, Jsonb({"user_id": user, "metadata": meta}),
                                Jsonb([{"content": content, "embedding": e}]))).fetchone()[0]
            key = ("doc", doc)
        else:
            i = f"w{os.getpid()}-{time.time_ns()}-{n}"
            conn.execute(f"INSERT INTO {self.table} (id, content, metadata, user_id, is_global, "
                         f"embedding) VALUES (%s, %s, %s, %s, false, %s)",
                         (i, content, Jsonb(meta), user, e))
            key = ("id", i)
        self.probe(term, e, user, key)
        return key

    def probe(self, term, e, user, key):
        """Search for the row just committed, at once: by its unique term (text only, in its
        user's scope) and by its embedding (vector only); found means its id came back."""
        if self.prober is None:
            self.prober = psycopg.connect(self.dsn, autocommit=True)
        col = "document_id" if key[0] == "doc" else "id"
        by_text = self.prober.execute(
            f"SELECT count(*) FROM hybrid_search(%s, NULL, %s, 10, %s) WHERE {col} = %s",
            (self.coll, term, Jsonb({"user_id": user}), str(key[1]))).fetchone()[0]
        by_vector = self.prober.execute(
            f"SELECT count(*) FROM hybrid_search(%s, %s::vector, NULL, 10) WHERE {col} = %s",
            (self.coll, e, str(key[1]))).fetchone()[0]
        self.found.append((by_text > 0, by_vector > 0))

    def update(self, conn, key):
        _, content, _ = self.row(self.rng.randrange(10 ** 6))
        if key[0] == "doc":
            conn.execute(f"UPDATE {self.table} SET content = %s WHERE document_id = %s",
                         (content, key[1]))
        else:
            conn.execute(f"UPDATE {self.table} SET content = %s WHERE id = %s", (content, key[1]))

    def delete(self, conn, key):
        if key[0] == "doc":
            conn.execute("SELECT qortex_delete_document(%s, %s)", (self.coll, key[1]))
        else:
            conn.execute(f"DELETE FROM {self.table} WHERE id = %s", (key[1],))


def plain_copy(conn, table, managed):
    """A copy of `table` without qortex: its columns and rows, and its indexes but qortex's
    (qortex_bm25), built after the rows are in; no triggers."""
    copy = f"{table.replace('.', '_').replace(chr(34), '')}_plain"
    conn.execute(f"DROP TABLE IF EXISTS {copy}")
    conn.execute(f"CREATE TABLE {copy} (LIKE {table} INCLUDING ALL EXCLUDING INDEXES)")
    cols = ("id, document_id, chunk_index, content, embedding, metadata, user_id, is_global"
            if managed else "id, content, metadata, user_id, is_global, embedding")
    conn.execute(f"INSERT INTO {copy} ({cols}) SELECT {cols} FROM {table}")
    for (ddl,) in conn.execute(
            "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam "
            "WHERE i.indrelid = %s::regclass AND a.amname <> 'qortex_bm25'", (table,)).fetchall():
        on = ddl.index(" ON ")
        using = ddl.index(" USING ")
        conn.execute(ddl[:ddl.index(" INDEX ") + 7] + ddl[on:on + 4] + copy + ddl[using:])
    conn.execute(f"ANALYZE {copy}")
    return copy


def writer_rate(dsn, table, managed, coll, corpus, matrix, n=800):
    """Unthrottled single-row insert commits per second into `table`, and into a copy of it
    without qortex (same rows, same indexes but qortex_bm25, no triggers)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        copy = plain_copy(conn, table, managed)
        w = Writer(dsn, coll, table, managed, corpus, 1e9, matrix)
        done = {copy: [0, 0.0], table: [0, 0.0]}
        # four rounds, the two tables alternating first, so drift falls on both alike
        for r in range(4):
            for target in [copy, table] if r % 2 == 0 else [table, copy]:
                cols = ("document_id, chunk_index, content, embedding, metadata, user_id"
                        if managed else "id, content, metadata, user_id, is_global, embedding")
                t0 = time.perf_counter()
                for j in range(r * n // 4, (r + 1) * n // 4):
                    _, content, e = w.row(j)
                    if managed:
                        vals = (0, j, content, e, Jsonb({}), "u1")
                        if target == copy:
                            conn.execute(f"INSERT INTO {copy} ({cols}) "
                                         "VALUES (%s, %s, %s, %s, %s, %s)", vals, prepare=True)
                        else:
                            conn.execute("SELECT qortex_ingest(%s, %s, %s)",
                                         (coll, Jsonb({"user_id": "u1"}),
                                          Jsonb([{"content": content, "embedding": e}])),
                                         prepare=True)
                    else:
                        conn.execute(f"INSERT INTO {target} ({cols}) "
                                     "VALUES (%s, %s, %s, %s, false, %s)",
                                     (f"r{os.getpid()}-{target}-{j}", content, Jsonb({}), "u1",
                                      e), prepare=True)
                done[target][0] += (r + 1) * n // 4 - r * n // 4
                done[target][1] += time.perf_counter() - t0
        rates = {t: rows / secs for t, (rows, secs) in done.items()}
        conn.execute(f"DROP TABLE {copy}")
        if not managed:
            conn.execute(f"DELETE FROM {table} WHERE id LIKE %s", (f"r{os.getpid()}-%",))
        return rates[table], rates[copy]


def legs_phase(dsn, coll, table, tsv, queries, scope, n=150):
    """One client, no writer: hybrid_search and the bare queries (prepared), then the same
    hybrid_search under qortex.debug_plans for its legs' times. p50s in ms."""
    import re
    opts, pred = SCOPES[scope]
    ms = methods(coll, table, opts, pred, tsv)
    times = {m: [] for m in ("hybrid_search", "bare (planner)", "bare (index)",
                             "vector leg", "text leg")}
    counts = {m: [] for m in times}
    with psycopg.connect(dsn, autocommit=True) as conn:
        notes = []
        conn.add_notice_handler(lambda d: notes.append(d.message_detail or ""))
        for rep in range(2):  # the first pass warms the caches and the prepared plans
            for q in queries[:n]:
                params = {"emb": q["embedding"], "text": q["text"]}
                for name in ("hybrid_search", "bare (planner)", "bare (index)"):
                    dt, rows = timed(conn, ms[name], params, pred)
                    if rep:
                        times[name].append(dt)
                        counts[name].append(len(rows))
                if rep:
                    conn.execute("SET qortex.debug_plans = on")
                    notes.clear()
                    conn.execute(ms["hybrid_search"][0], params).fetchall()
                    conn.execute("RESET qortex.debug_plans")
                    for leg in ("vector leg", "text leg"):
                        found = re.search(leg + r" \(([\d.]+) ms", notes[-1])
                        times[leg].append(float(found.group(1)))
    p50 = {m: statistics.median(v) for m, v in times.items()}
    # the bare query at its best: the faster of its plans that return k rows
    full = [m for m in ("bare (planner)", "bare (index)")
            if statistics.mean(counts[m]) >= 9.9] or ["bare (index)"]
    p50["bare"] = min(p50[m] for m in full)
    return p50


def pct(t, p):
    t = sorted(t)
    return t[min(len(t) - 1, int(p * (len(t) - 1)))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpora", default="5k,100k")
    ap.add_argument("--layouts", default="lc,managed,lc1536")
    ap.add_argument("--scopes", default=",".join(SCOPES))
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--write-rate", type=float, default=20)
    ap.add_argument("--writer-only", action="store_true",
                    help="only the unthrottled writer's rates (tables built or kept)")
    ap.add_argument("--legs", action="store_true",
                    help="one client and no writer: hybrid_search's p50 beside the bare "
                         "query's, and its vector and text legs' (qortex.debug_plans)")
    args = ap.parse_args()
    dsn = ""
    with psycopg.connect(dsn) as conn:
        common.require_release(conn)
    corpus = latency.load_csv("corpus.csv")
    queries = latency.load_csv("queries-train.csv")
    matrix = projection()
    print(f"{args.clients} search clients, 1 writer at {args.write_rate:g} rows/s, "
          f"{args.seconds:g} s per scope; k = 10; times in ms")
    for cname in args.corpora.split(","):
        rows = corpus_rows(cname, args.rows)
        for layout in args.layouts.split(","):
            coll = f"wl_{cname}_{layout}"
            with psycopg.connect(dsn, autocommit=True) as conn:
                if layout == "managed":
                    build_managed(conn, coll, rows)
                    table = f'qortex."{coll}_chunks"'
                else:
                    build_lc(conn, coll, rows, matrix if layout == "lc1536" else None)
                    table = coll
                heap, toast = conn.execute(
                    "SELECT pg_relation_size(c.oid), pg_relation_size(c.reltoastrelid) "
                    "FROM pg_class c WHERE c.oid = %s::regclass", (table,)).fetchone()
            q = queries
            if layout == "lc1536":
                q = [dict(x, embedding=e) for x, e in
                     zip(queries, project([x["embedding"] for x in queries], matrix))]
            print(f"\n{coll}: heap {heap / 2**20:.0f} MB, TOAST {toast / 2**20:.0f} MB", flush=True)
            if args.legs:
                for scope in args.scopes.split(","):
                    p = legs_phase(dsn, coll, table, "fts" if layout == "managed" else "tsv",
                                   q, scope)
                    bare = p["bare"]
                    print(f"  {scope:<11} one client p50: hybrid_search {p['hybrid_search']:.2f} "
                          f"({p['hybrid_search'] / bare:.2f}x the bare query's {bare:.2f}); "
                          f"its vector leg {p['vector leg']:.2f}, text leg {p['text leg']:.2f}",
                          flush=True)
                continue
            for scope in [] if args.writer_only else args.scopes.split(","):
                writer = Writer(dsn, coll, table, layout == "managed", corpus, args.write_rate,
                                matrix if layout == "lc1536" else None)
                threads = [threading.Thread(target=writer.run)]
                for t in threads:
                    t.start()
                times, counts = search_phase(dsn, coll, table,
                                             "fts" if layout == "managed" else "tsv", q, scope,
                                             args.seconds, args.clients)
                writer.stop.set()
                for t in threads:
                    t.join()
                # the bare query at its best: the faster of its two plans that return k rows
                full = [m for m in ("bare (planner)", "bare (index)")
                        if statistics.mean(counts[m]) >= 9.9] or ["bare (index)"]
                bare50 = min(statistics.median(times[m]) for m in full)
                bare95 = min(pct(times[m], 0.95) for m in full)
                for m in times:
                    p50, p95 = statistics.median(times[m]), pct(times[m], 0.95)
                    print(f"  {scope:<11} {m:<15} p50 {p50:7.2f}  p95 {p95:7.2f}  "
                          f"{p50 / bare50:5.2f}x p50  {p95 / bare95:5.2f}x p95  "
                          f"rows/query {statistics.mean(counts[m]):5.1f}  n {len(times[m])}",
                          flush=True)
                found = writer.found
                fresh_t = sum(f[0] for f in found) / max(1, len(found))
                fresh_v = sum(f[1] for f in found) / max(1, len(found))
                print(f"  {scope:<11} writer {writer.writes / args.seconds:.1f} rows/s; fresh "
                      f"{len(found)} inserts: found by term {100 * fresh_t:.0f}%, by embedding "
                      f"{100 * fresh_v:.0f}%", flush=True)
            with_q, without_q = writer_rate(dsn, table, layout == "managed", coll, corpus,
                                            matrix if layout == "lc1536" else None)
            print(f"  writer unthrottled: {with_q:.0f} rows/s with qortex, {without_q:.0f} "
                  f"without ({with_q / without_q:.2f}x)", flush=True)


if __name__ == "__main__":
    main()
