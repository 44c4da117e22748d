#!/usr/bin/env python3
"""What the Python client (clients/python) adds to a hybrid_search call: the LangChain and
LlamaIndex retrievers and QortexClient against the bare SQL call on the same connection,
one client, interleaved query by query in one run; and the driver's round trip (SELECT 1)
for scale.

    .venv/bin/python bench/client_overhead.py [--queries 300] [--k 10] [--allow-debug]

Corpus: the 5,183 SciFact abstracts with their 384-d embeddings ($QORTEX_SCIFACT, as in
bench/quality.py) in table `bench_client` (HNSW, stored tsvector), registered as the
collection of that name (with its qortex_bm25 index); built once, kept. Queries: SciFact's
train queries with their embeddings, cycled. Connects with the libpq environment
(PGHOST, PGPORT, PGUSER, PGDATABASE).

Each query runs every method back to back in rotating order, after a warm-up. The
embedding models of the retrievers return the query's precomputed embedding (a dict
lookup): what is measured is the client, not a model. The bare calls get the embedding as
pgvector's text literal, ready to send; the client formats it from a list of floats.

Sync, one psycopg 3 connection (autocommit):
  SELECT 1; the bare `SELECT * FROM hybrid_search(%s, %s::vector, %s, %s)`;
  QortexClient.search; LangChain QortexRetriever.invoke; LlamaIndex QortexRetriever.retrieve.
Async, one asyncpg pool of one connection:
  SELECT 1; the bare call with $1..$4; LangChain ainvoke; LlamaIndex aretrieve.

Prints p50 and p95 of each (ms), each method's p50 over the bare call's and its overhead:
the median over queries of (method - bare) on the same query, beside the round trip's p50.
For scale, the frameworks' own cost: a LangChain and a LlamaIndex retriever that return 10
fixed results without any I/O, timed the same way (no database).
"""
import argparse
import asyncio
import csv
import os
import pathlib
import statistics
import sys
import time

import psycopg

import common

ROOT = pathlib.Path(__file__).resolve().parents[1]
DATA = pathlib.Path(os.environ.get("QORTEX_SCIFACT", ROOT.parent / "shared" / "data" / "scifact"))
COLL = "bench_client"
BARE = "SELECT * FROM hybrid_search(%s, %s::vector, %s, %s)"
BARE_ASYNCPG = "SELECT * FROM hybrid_search($1, $2::vector, $3, $4)"


def load_csv(name):
    csv.field_size_limit(sys.maxsize)
    with open(DATA / name, newline="") as f:
        return list(csv.DictReader(f))


def ensure_corpus(conn):
    if conn.execute("SELECT count(*) FROM qortex.collections WHERE name = %s", (COLL,)).fetchone()[0]:
        return
    print(f"loading SciFact into {COLL} ...", flush=True)
    conn.execute(f"DROP TABLE IF EXISTS {COLL}")
    conn.execute(f"""CREATE TABLE {COLL} (id bigint PRIMARY KEY, title text, text text NOT NULL,
        embedding vector(384) NOT NULL,
        fts tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED)""")
    with conn.cursor().copy(f"COPY {COLL} (id, title, text, embedding) FROM STDIN") as cp:
        for r in load_csv("corpus.csv"):
            cp.write_row((int(r["id"]), r["title"], r["text"], r["embedding"]))
    conn.execute(f"CREATE INDEX ON {COLL} USING hnsw (embedding vector_cosine_ops)")
    conn.execute(f"CREATE INDEX ON {COLL} USING gin (fts)")
    conn.execute(f"ANALYZE {COLL}")
    conn.execute(f"""SELECT qortex_register_collection('{COLL}', '{COLL}',
        '{{"id": "id", "embedding": "embedding", "content": "text", "tsvector": "fts"}}')""")


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def report(title, times, bare, rtt):
    print(f"\n{title}")
    print(f"{'method':34} {'p50 ms':>8} {'p95 ms':>8} {'p50/bare':>9} {'overhead ms':>12}")
    for name, xs in times.items():
        ratio = statistics.median(xs) / statistics.median(times[bare])
        if name in (bare, rtt) or name.startswith("("):
            over = ""
        else:
            over = f"{statistics.median([a - b for a, b in zip(xs, times[bare])]):12.3f}"
        print(f"{name:34} {statistics.median(xs):8.3f} {pct(xs, 95):8.3f} {ratio:9.2f} {over}")
    print(f"(overhead: median over queries of method - bare on the same query; "
          f"round trip p50 {statistics.median(times[rtt]):.3f} ms)")


def timed(f):
    t = time.perf_counter_ns()
    f()
    return (time.perf_counter_ns() - t) / 1e6


async def atimed(f):
    t = time.perf_counter_ns()
    await f()
    return (time.perf_counter_ns() - t) / 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--allow-debug", action="store_true",
                    help="measure on a debug build too (figures then preliminary)")
    args = ap.parse_args()

    from langchain_core.embeddings import Embeddings
    from llama_index.core.base.embeddings.base import BaseEmbedding

    from qortex_client import QortexClient
    from qortex_client.langchain import QortexRetriever as LangChainRetriever
    from qortex_client.llamaindex import QortexRetriever as LlamaIndexRetriever

    queries = load_csv("queries-train.csv")
    lists = {q["text"]: [float(x) for x in q["embedding"].strip("[]").split(",")] for q in queries}
    literal = {q["text"]: q["embedding"] for q in queries}
    texts = [q["text"] for q in queries]
    texts = [texts[i % len(texts)] for i in range(args.warmup + args.queries)]

    class Lookup(Embeddings):
        def embed_documents(self, ts):
            return [lists[t] for t in ts]

        def embed_query(self, t):
            return lists[t]

        async def aembed_query(self, t):
            return lists[t]

    class LookupLI(BaseEmbedding):
        def _get_query_embedding(self, q):
            return lists[q]

        async def _aget_query_embedding(self, q):
            return lists[q]

        def _get_text_embedding(self, t):
            return lists[t]

    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever as LCBase
    from llama_index.core.base.base_retriever import BaseRetriever as LIBase
    from llama_index.core.schema import NodeWithScore, TextNode

    fixed_docs = [Document(id=str(i), page_content="x", metadata={}) for i in range(10)]
    fixed_nodes = [NodeWithScore(node=TextNode(id_=str(i), text="x"), score=1.0) for i in range(10)]

    class FixedLC(LCBase):
        def _get_relevant_documents(self, query, *, run_manager):
            return fixed_docs

    class FixedLI(LIBase):
        def _retrieve(self, query_bundle):
            return fixed_nodes

    with psycopg.connect(autocommit=True) as conn:
        build = conn.execute("SELECT qortex_status()->'versions'->>'build'").fetchone()[0]
        if args.allow_debug and build != "release":
            print(f"PRELIMINARY: the server runs a {build} build of qortex")
        else:
            common.require_release(conn)
        ensure_corpus(conn)
        version = conn.execute("SELECT qortex_status()->'versions'").fetchone()[0]
        print(f"qortex {version['qortex']} ({build}), PostgreSQL {version['postgres']}, "
              f"{args.queries} queries, k = {args.k}, one client")

        client = QortexClient(conn)
        lc = LangChainRetriever(connection=conn, embeddings=Lookup(), collection=COLL, k=args.k)
        li = LlamaIndexRetriever(conn, COLL, embed_model=LookupLI(), k=args.k)
        k = args.k
        methods = {
            "SELECT 1 (round trip)": lambda t: conn.execute("SELECT 1").fetchall(),
            "bare SQL (psycopg)": lambda t: conn.execute(BARE, (COLL, literal[t], t, k)).fetchall(),
            "QortexClient.search": lambda t: client.search(COLL, lists[t], t, k),
            "LangChain invoke": lambda t: lc.invoke(t),
            "LlamaIndex retrieve": lambda t: li.retrieve(t),
            "(LangChain alone: fixed results)": lambda t, r=FixedLC(): r.invoke(t),
            "(LlamaIndex alone: fixed results)": lambda t, r=FixedLI(): r.retrieve(t),
        }
        names = list(methods)
        times = {n: [] for n in names}
        for i, t in enumerate(texts):
            order = names[i % len(names):] + names[:i % len(names)]
            for n in order:
                ms = timed(lambda: methods[n](t))
                if i >= args.warmup:
                    times[n].append(ms)
        # the same rows, so the comparison is of equal work
        t = texts[0]
        assert [d.id for d in lc.invoke(t)] == [r[0] for r in conn.execute(BARE, (COLL, literal[t], t, k))]
        report("sync: psycopg 3, one connection", times, "bare SQL (psycopg)", "SELECT 1 (round trip)")

    async def run_async():
        import asyncpg

        pool = await asyncpg.create_pool(min_size=1, max_size=1)
        try:
            alc = LangChainRetriever(connection=pool, embeddings=Lookup(), collection=COLL, k=k)
            ali = LlamaIndexRetriever(pool, COLL, embed_model=LookupLI(), k=k)
            amethods = {
                "SELECT 1 (round trip)": lambda t: pool.fetch("SELECT 1"),
                "bare SQL (asyncpg)": lambda t: pool.fetch(BARE_ASYNCPG, COLL, literal[t], t, k),
                "LangChain ainvoke": lambda t: alc.ainvoke(t),
                "LlamaIndex aretrieve": lambda t: ali.aretrieve(t),
            }
            names = list(amethods)
            times = {n: [] for n in names}
            for i, t in enumerate(texts):
                order = names[i % len(names):] + names[:i % len(names)]
                for n in order:
                    ms = await atimed(lambda: amethods[n](t))
                    if i >= args.warmup:
                        times[n].append(ms)
            report("async: asyncpg, a pool of one connection", times, "bare SQL (asyncpg)",
                   "SELECT 1 (round trip)")
        finally:
            await pool.close()

    asyncio.run(run_async())


if __name__ == "__main__":
    main()
