#!/usr/bin/env python3
"""qortex beside pg_textsearch (BM25 index access method, timescale) on PostgreSQL 18: the
same table, one run.

    PG_MAJOR=18 make install && bench/pg_textsearch.sh   # builds it, preloads both
    PGHOST=$PWD/.pg/dev-18/run PGPORT=28818 PGUSER=postgres PGDATABASE=qortex \\
        .venv/bin/python bench/peer.py [--corpora 5k,100k] [--rows 100000] [--latency-queries 300]
        [--am-only] [--am-parts build,latency,quality,writes,writer,stream] [--inserts 3000]
        [--writer-seconds 20]

Tables as users have them (default storage; `id text primary key, content text, metadata
jsonb, embedding vector(384), tsv tsvector generated from content`), loaded with COPY, with
HNSW (cosine, m 16, ef_construction 64), GIN on tsv, pg_textsearch's `bm25(content) WITH
(text_config = 'english')`, a qortex_bm25 index on tsv, registered with qortex (whose text
leg reads that index): `5k` the
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

The `qortex_bm25` index access method beside them (--am-parts; --am-only runs only these):
- build: `CREATE INDEX t_qbm25 ON t USING qortex_bm25 (tsv)` on each table, made anew each
  run; its build time beside GIN's and pg_textsearch's (second copies of theirs built on the
  same table, then dropped), and pg_relation_size of every index; qortex_bm25_info.
- latency: text-only top 10, p50/p95 in rotating order: pg_textsearch (`ORDER BY content <@>
  to_bm25query(q, 'idx') LIMIT 10`), qortex_bm25 (`ORDER BY tsv <@>
  qortex_bm25_query('english', q) LIMIT 10`), GIN + ts_rank_cd (`WHERE tsv @@
  plainto_tsquery(...) ORDER BY ts_rank_cd(...) DESC LIMIT 10`, every word required), GIN
  with any word + ts_rank_cd (the tsquery's `&` made `|`: what gets k rows) and bare HNSW
  for scale,
  each one-off (psycopg's unnamed statement, planned with the value) and prepared (a named
  statement on a session with `plan_cache_mode = force_generic_plan`, as drivers get after
  a few executions). Plans of both forms are printed once (EXPLAIN ANALYZE; the prepared form
  as PREPARE + EXPLAIN EXECUTE) and checked to use the text indexes; each form's ids are
  compared query by query.
- quality (5k): nDCG@10 of those top 10s, and how far qortex_bm25's and pg_textsearch's
  top 10s agree.
- writes (5k): a copy of the table with HNSW, GIN, pg_textsearch and qortex_bm25
  (autovacuum off on it), then --inserts one-row INSERT transactions: each index's size
  fresh, after them, after `VACUUM`, and after qortex_bm25_merge / bm25_force_merge;
  qortex_bm25_info at each step.
- writer (5k): one client, one-row INSERT transactions, --writer-seconds per table in ten
  slices (tables in rotating order, CHECKPOINT before each) into copies of the table with
  (a) HNSW + GIN, (b) + qortex_bm25, (c) + pg_textsearch instead; rows/s and b/a, c/a.
- stream (100k; not in the default parts): every row of the corpus table written again one
  INSERT transaction at a time (a procedure that commits after each row) into an empty table
  with GIN, qortex_bm25 and pg_textsearch and autovacuum off, with a `VACUUM` each time the
  rows inserted since the last one pass autovacuum's insert threshold (1,000 + 0.2 x the
  table's rows, the defaults): each index's size after the writes, after a last VACUUM and
  after four more, against each rebuilt over the same rows; text-only top 10 p50 / p95
  (one-off) as written and rebuilt.
New rows (writes, writer) are bench/latency.py's synthetic chunks (new text, new vectors).
Without pg_textsearch (PostgreSQL 15), --am-only runs the same parts beside GIN +
ts_rank_cd alone, and ratios are against GIN + ts_rank_cd's one-off p50.
Connects with the libpq environment. Refuses a debug build.
"""
import argparse
import json
import statistics
import time

import psycopg
import psycopg.sql

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
ANALYZE {t};
"""
PGTS_INDEX = """
CREATE INDEX {t}_bm25 ON {t} USING bm25 (content) WITH (text_config = 'english');
"""
# whether pg_textsearch is here (PostgreSQL 15 has none: --am-only runs beside GIN alone)
PGTS = [True]
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
    t0 = latency.load(conn, table, rows, DDL, INDEXES + (PGTS_INDEX if PGTS[0] else ""))
    # the qortex_bm25 index the collection's text leg reads (registration would make one);
    # the build part below makes it anew under the same name
    conn.execute(AM_INDEX.format(t=table))
    conn.execute("SELECT qortex_register_collection(%s, %s, %s)", (table, table, COLUMNS))
    print(f"  built in {time.perf_counter() - t0:.0f} s", flush=True)


def sizes(conn, table):
    def size(rel):
        return conn.execute("SELECT pg_total_relation_size(%s)", (rel,)).fetchone()[0] / 2**20
    # the collection's qortex_bm25 index
    ours = conn.execute(
        "SELECT pg_relation_size((details->'text_leg'->'bm25_index'->>'name')::regclass)::float8 "
        "FROM qortex_collections() WHERE name = %s", (table,)).fetchone()[0]
    peer = f"pg_textsearch {size(f'{table}_bm25'):.1f} MB, " if PGTS[0] else ""
    print(f"  index sizes: {peer}qortex BM25 "
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


# ---- the qortex_bm25 index access method beside pg_textsearch and GIN ----------------------

AM_INDEX = "CREATE INDEX {t}_qbm25 ON {t} USING qortex_bm25 (tsv)"
AM_PARTS = "build,latency,quality,writes,writer"
LAST = [""]  # the statement an error came from
FIGURES = {}


def ex(conn, sql, params=None, **kw):
    LAST[0] = sql
    return conn.execute(sql, params, **kw)


def relsize(conn, rel):
    return ex(conn, "SELECT pg_relation_size(%s)", (rel,)).fetchone()[0]


def am_info(conn, index):
    cur = ex(conn, "SELECT * FROM qortex_bm25_info(%s::regclass)", (index,))
    return dict(zip([d.name for d in cur.description], cur.fetchone()))


ANY_WORD = "replace(plainto_tsquery('english', %(text)s)::text, ' & ', ' | ')::tsquery"


def text_methods(t):
    """Text-only top 10, and the bare HNSW query for scale; `k` written in."""
    ms = {
        "pg_textsearch":
            f"SELECT id FROM {t} ORDER BY content <@> to_bm25query(%(text)s, '{t}_bm25') LIMIT 10",
        "qortex_bm25":
            f"SELECT id FROM {t} ORDER BY tsv <@> qortex_bm25_query('english', %(text)s) LIMIT 10",
        "GIN + ts_rank_cd":
            f"SELECT id FROM {t} WHERE tsv @@ plainto_tsquery('english', %(text)s) "
            f"ORDER BY ts_rank_cd(tsv, plainto_tsquery('english', %(text)s)) DESC LIMIT 10",
        # what a user writes to get k rows: any of the words, ranked
        "GIN any word + ts_rank_cd":
            f"SELECT id FROM {t} WHERE tsv @@ {ANY_WORD} ORDER BY ts_rank_cd(tsv, {ANY_WORD}) "
            "DESC LIMIT 10",
        "HNSW (vector only)":
            f"SELECT id FROM {t} ORDER BY embedding <=> %(emb)s::vector LIMIT 10",
    }
    if not PGTS[0]:
        del ms["pg_textsearch"]
    return ms


def param_of(sql, q):
    return {"emb": q["embedding"]} if "%(emb)s" in sql else {"text": q["text"]}


def am_build(conn, t):
    """qortex_bm25 built anew; GIN's and pg_textsearch's build times from second copies."""
    ex(conn, f"DROP INDEX IF EXISTS {t}_qbm25")
    builds = {}
    for name, idx, sql in [
            ("qortex_bm25", f"{t}_qbm25", AM_INDEX.format(t=t)),
            ("GIN", f"{t}_gin_copy", f"CREATE INDEX {t}_gin_copy ON {t} USING gin (tsv)"),
            ("pg_textsearch", f"{t}_bm25_copy", f"CREATE INDEX {t}_bm25_copy ON {t} USING bm25 "
                                                "(content) WITH (text_config = 'english')")]:
        if name == "pg_textsearch" and not PGTS[0]:
            continue
        ex(conn, f"DROP INDEX IF EXISTS {t}_gin_copy")
        ex(conn, f"DROP INDEX IF EXISTS {t}_bm25_copy")
        t0 = time.perf_counter()
        ex(conn, sql)
        builds[name] = (time.perf_counter() - t0, relsize(conn, idx))
        if idx.endswith("_copy"):
            ex(conn, f"DROP INDEX {idx}")
    ex(conn, f"ANALYZE {t}")
    sz = {n: relsize(conn, f"{t}_{s}") for n, s in
          [("pg_textsearch", "bm25"), ("qortex_bm25", "qbm25"), ("GIN", "gin"), ("HNSW", "hnsw")]
          if PGTS[0] or n != "pg_textsearch"}
    mwm, pmw = (ex(conn, f"SHOW {g}").fetchone()[0]
                for g in ("maintenance_work_mem", "max_parallel_maintenance_workers"))
    print(f"  {t}: index builds (maintenance_work_mem {mwm}, "
          f"max_parallel_maintenance_workers {pmw}):", flush=True)
    for name, (secs, b) in builds.items():
        print(f"    {name:<14} {secs:7.2f} s  {b / 2**20:7.1f} MB", flush=True)
    print("  pg_relation_size: " + ", ".join(f"{n} {b / 2**20:.1f} MB" for n, b in sz.items()))
    info = am_info(conn, f"{t}_qbm25")
    print(f"  qortex_bm25_info: {info}", flush=True)
    FIGURES.setdefault(t, {})["build"] = {"builds": builds, "sizes": sz, "info": info}


def explain(conn, pconn, t, ms, q):
    """Prints each statement's plan in both forms once; True where the text indexes are used."""
    ok = True
    for i, (name, sql) in enumerate(ms.items()):
        p = param_of(sql, q)
        one = [r[0] for r in ex(conn, "EXPLAIN (ANALYZE, BUFFERS) " + sql, p, prepare=False)]
        ex(pconn, f"PREPARE am_{i} AS " + sql.replace("%(text)s", "$1").replace("%(emb)s", "$1"))
        arg = psycopg.sql.Literal(next(iter(p.values()))).as_string(pconn)
        gen = [r[0] for r in ex(pconn, f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE am_{i}({arg})")]
        ex(pconn, f"DEALLOCATE am_{i}")
        for form, plan in [("one-off", one), ("prepared, generic plan", gen)]:
            shown = [line if len(line) < 200 else line[:200] + " ..." for line in plan]
            print(f"  --- {t} {name}, {form}: {sql}\n      " + "\n      ".join(shown))
            want = {"pg_textsearch": f"{t}_bm25", "qortex_bm25": f"{t}_qbm25"}.get(name)
            if want and not any(f"Index Scan using {want} " in line for line in plan):
                print(f"  !!! PLAN CHECK FAILED: {name} ({form}) does not scan {want}")
                ok = False
    return ok


def am_latency(conn, pconn, t, queries, n):
    ms = text_methods(t)
    ok = explain(conn, pconn, t, ms, queries[0])
    forms = [("one-off", conn, False), ("prepared", pconn, True)]
    names = [(m, f) for m in ms for f, _, _ in forms]
    times = {k: [] for k in names}
    rows = {k: [] for k in names}
    ids = {}
    for q in queries[:20]:  # warm caches (and prepare)
        for m, sql in ms.items():
            for _, c, prep in forms:
                ex(c, sql, param_of(sql, q), prepare=prep).fetchall()
    for i in range(n):
        q = queries[i % len(queries)]
        order = names[i % len(names):] + names[:i % len(names)]
        for m, f in order:
            sql = ms[m]
            _, c, prep = next(x for x in forms if x[0] == f)
            t0 = time.perf_counter()
            got = [r[0] for r in ex(c, sql, param_of(sql, q), prepare=prep)]
            times[(m, f)].append(1000 * (time.perf_counter() - t0))
            rows[(m, f)].append(len(got))
            ids[(m, f, i)] = got
    out = {}
    peer = "pg_textsearch" if PGTS[0] else "GIN + ts_rank_cd"
    base = statistics.median(times[(peer, "one-off")])
    for m, f in names:
        tt = sorted(times[(m, f)])
        p50, p95 = statistics.median(tt), tt[int(0.95 * (len(tt) - 1))]
        out[f"{m} | {f}"] = (p50, p95, statistics.mean(rows[(m, f)]))
        print(f"  {t:<9} k=10 {m:<25} {f:<9} p50 {p50:7.2f} ms  p95 {p95:7.2f} ms  "
              f"{p50 / base:5.2f}x {peer} one-off  rows/query "
              f"{statistics.mean(rows[(m, f)]):4.1f}", flush=True)
    for m in ms:
        diff = sum(ids[(m, "one-off", i)] != ids[(m, "prepared", i)] for i in range(n))
        if diff:
            print(f"  !!! {m}: one-off and prepared ids differ on {diff} of {n} queries")
    FIGURES.setdefault(t, {})["latency"] = {"p50_p95_rows": out, "plans_ok": ok}


def am_quality(conn, t, queries, rel):
    ms = text_methods(t)
    per = {m: {} for m in ms}
    for q in queries:
        if q["id"] not in rel:
            continue
        for m, sql in ms.items():
            per[m][q["id"]] = [r[0] for r in ex(conn, sql, param_of(sql, q), prepare=False)]
    out = {}
    for m in ms:
        nd = statistics.mean(quality.ndcg10(r, rel[qid]) for qid, r in per[m].items())
        out[m] = nd
        print(f"  {t} nDCG@10 (top 10, {len(per[m])} queries) {m:<25} {nd:.4f}", flush=True)
    if not PGTS[0]:
        FIGURES.setdefault(t, {})["quality"] = {"ndcg10": out}
        return
    a, b = per["qortex_bm25"], per["pg_textsearch"]
    same = sum(a[q] == b[q] for q in a)
    overlap = statistics.mean(len(set(a[q]) & set(b[q])) / max(1, len(b[q])) for q in a)
    print(f"  qortex_bm25 vs pg_textsearch top 10: identical lists {same}/{len(a)}, "
          f"mean overlap {overlap:.3f}", flush=True)
    FIGURES.setdefault(t, {})["quality"] = {"ndcg10": out, "identical": same,
                                            "queries": len(a), "overlap": overlap}


def copy_table(conn, src, dst, text_indexes):
    """dst: src's rows, HNSW + GIN + the named text indexes, autovacuum off."""
    ex(conn, f"DROP TABLE IF EXISTS {dst}")
    ex(conn, DDL.format(t=dst))
    ex(conn, f"ALTER TABLE {dst} SET (autovacuum_enabled = off)")
    ex(conn, f"INSERT INTO {dst} (id, content, metadata, embedding) "
             f"SELECT id, content, metadata, embedding FROM {src}")
    ex(conn, f"CREATE INDEX {dst}_hnsw ON {dst} USING hnsw (embedding vector_cosine_ops) "
             "WITH (m = 16, ef_construction = 64)")
    ex(conn, f"CREATE INDEX {dst}_gin ON {dst} USING gin (tsv)")
    if "pg_textsearch" in text_indexes and PGTS[0]:
        ex(conn, f"CREATE INDEX {dst}_bm25 ON {dst} USING bm25 (content) "
                 "WITH (text_config = 'english')")
    if "qortex_bm25" in text_indexes:
        ex(conn, AM_INDEX.format(t=dst))
    ex(conn, f"VACUUM ANALYZE {dst}")


def new_rows(corpus, n, seed):
    """n new rows as bench/latency.py's synthetic chunks: text from two SciFact abstracts, the
    normalised sum of their embeddings (a SciFact row's own embedding again would be a
    duplicate vector, which HNSW only adds a heap TID to instead of inserting a node)."""
    return [(t, e) for _, t, e in latency.synthetic(corpus, n, seed=seed)]


def am_writes(conn, src, corpus, n):
    w = f"{src}_w"
    copy_table(conn, src, w, ("pg_textsearch", "qortex_bm25"))
    idx = {"pg_textsearch": f"{w}_bm25", "qortex_bm25": f"{w}_qbm25", "GIN": f"{w}_gin",
           "HNSW": f"{w}_hnsw"}
    if not PGTS[0]:
        del idx["pg_textsearch"]
    steps = {}
    def step(label):
        steps[label] = ({n_: relsize(conn, i) for n_, i in idx.items()},
                        am_info(conn, idx["qortex_bm25"]))
    step("fresh")
    ins = f"INSERT INTO {w} (id, content, embedding) VALUES (%s, %s, %s::vector)"
    rows = new_rows(corpus, n, seed=11)
    t0 = time.perf_counter()
    for i, (text, emb) in enumerate(rows):
        ex(conn, ins, (f"w{i}", text, emb))
    secs = time.perf_counter() - t0
    step(f"after {n:,} inserts")
    ex(conn, f"VACUUM {w}")
    step("after VACUUM")
    ex(conn, f"SELECT qortex_bm25_merge('{idx['qortex_bm25']}')")
    if PGTS[0]:
        ex(conn, f"SELECT bm25_force_merge('{idx['pg_textsearch']}')")
    step("after merges")
    # the criterion's baseline: each index built anew over the same (final) rows
    for i in idx.values():
        ex(conn, f"REINDEX INDEX {i}")
    step("rebuilt (same rows)")
    print(f"  {w}: {n:,} one-row INSERT transactions in {secs:.1f} s ({n / secs:.0f} rows/s, "
          f"all four indexes); autovacuum off on the table", flush=True)
    fresh, rebuilt = steps["fresh"][0], steps["rebuilt (same rows)"][0]
    for label, (sz, info) in steps.items():
        print(f"    {label:<20} " + ", ".join(
            f"{k} {v / 2**20:.2f} MB ({v / fresh[k]:.2f}x the first, {v / rebuilt[k]:.2f}x rebuilt)"
            for k, v in sz.items()))
        print(f"    {'':<20} qortex_bm25_info {info}", flush=True)
    FIGURES["writes"] = {"inserts": n, "seconds": secs, "steps": steps}


STREAM_PROC = """
CREATE OR REPLACE PROCEDURE pg_temp.stream_rows(src regclass, dst regclass, lo bigint, hi bigint)
LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
    FOR r IN EXECUTE format('SELECT id, content FROM %s ORDER BY id::bigint OFFSET $1 LIMIT $2',
                            src) USING lo, hi - lo LOOP
        EXECUTE format('INSERT INTO %s (id, content) VALUES ($1, $2)', dst) USING r.id, r.content;
        COMMIT;
    END LOOP;
END $$
"""


def stream_latency(conn, t, queries, n=200):
    """Text-only top 10 p50 / p95 (one-off, rotating order) of the text indexes on `t`."""
    ms = {m: sql for m, sql in text_methods(t).items() if m in ("qortex_bm25", "pg_textsearch")}
    times = {m: [] for m in ms}
    for i in range(n + 20):
        q = queries[i % len(queries)]
        for m in list(ms)[i % len(ms):] + list(ms)[:i % len(ms)]:
            t0 = time.perf_counter()
            ex(conn, ms[m], {"text": q["text"]}, prepare=False).fetchall()
            if i >= 20:  # the first 20 warm the caches
                times[m].append(1000 * (time.perf_counter() - t0))
    return {m: (statistics.median(v), sorted(v)[int(0.95 * (len(v) - 1))])
            for m, v in times.items()}


def am_stream(conn, src, queries):
    """src's rows one transaction each into an empty table, VACUUMed as autovacuum would."""
    w = f"{src}_stream"
    ex(conn, f"DROP TABLE IF EXISTS {w}")
    ex(conn, f"CREATE TABLE {w} (id text PRIMARY KEY, content text NOT NULL, tsv tsvector "
             "GENERATED ALWAYS AS (to_tsvector('english', content)) STORED) "
             "WITH (autovacuum_enabled = off)")
    ex(conn, f"CREATE INDEX {w}_gin ON {w} USING gin (tsv)")
    ex(conn, AM_INDEX.format(t=w))
    idx = {"qortex_bm25": f"{w}_qbm25", "GIN": f"{w}_gin"}
    if PGTS[0]:
        ex(conn, f"CREATE INDEX {w}_bm25 ON {w} USING bm25 (content) "
                 "WITH (text_config = 'english')")
        idx["pg_textsearch"] = f"{w}_bm25"
    ex(conn, STREAM_PROC)
    n = ex(conn, f"SELECT count(*) FROM {src}").fetchone()[0]
    done, vacuums, t0 = 0, 0, time.perf_counter()
    while done < n:
        upto = min(n, done + 1000 + int(0.2 * done))
        ex(conn, "CALL pg_temp.stream_rows(%s, %s, %s, %s)", (src, w, done, upto))
        done = upto
        if done < n:
            ex(conn, f"VACUUM {w}")
            vacuums += 1
    secs = time.perf_counter() - t0
    steps = {"after the writes": {k: relsize(conn, i) for k, i in idx.items()}}
    info = {"after the writes": am_info(conn, idx["qortex_bm25"])}
    ex(conn, f"VACUUM {w}")
    steps["after a last VACUUM"] = {k: relsize(conn, i) for k, i in idx.items()}
    info["after a last VACUUM"] = am_info(conn, idx["qortex_bm25"])
    lat = {"as written": stream_latency(conn, w, queries)}
    for _ in range(4):
        ex(conn, f"VACUUM {w}")
    steps["after 4 more VACUUMs"] = {k: relsize(conn, i) for k, i in idx.items()}
    info["after 4 more VACUUMs"] = am_info(conn, idx["qortex_bm25"])
    for i in idx.values():
        ex(conn, f"REINDEX INDEX {i}")
    rebuilt = {k: relsize(conn, i) for k, i in idx.items()}
    lat["rebuilt"] = stream_latency(conn, w, queries)
    print(f"  {w}: {n:,} one-row INSERT transactions in {secs:.0f} s with {vacuums} VACUUMs "
          f"at autovacuum's insert threshold", flush=True)
    for label, sz in steps.items():
        print(f"    {label:<20} " + ", ".join(
            f"{k} {v / 2**20:.2f} MB ({v / rebuilt[k]:.2f}x rebuilt)" for k, v in sz.items()))
        print(f"    {'':<20} qortex_bm25_info {info[label]}", flush=True)
    print(f"    {'rebuilt':<20} " + ", ".join(f"{k} {v / 2**20:.2f} MB"
                                              for k, v in rebuilt.items()), flush=True)
    for label, per in lat.items():
        print(f"    text-only top 10, one-off, {label:<10} " + ", ".join(
            f"{m} p50 {a:.2f} / p95 {b:.2f} ms" for m, (a, b) in per.items()), flush=True)
    FIGURES["stream"] = {"rows": n, "seconds": secs, "vacuums": vacuums, "steps": steps,
                         "info": info, "rebuilt": rebuilt, "latency": lat}
    ex(conn, f"DROP TABLE {w}")


def am_writer(conn, src, corpus, seconds, slices=10):
    """`seconds` a table in `slices` slices, the tables in rotating order (a b c, b c a, ...)
    so that load from elsewhere on the machine falls on all three alike; every table gets
    the same rows in the same order."""
    variants = {"a": ("HNSW + GIN", ()), "b": ("+ qortex_bm25", ("qortex_bm25",)),
                "c": ("+ pg_textsearch", ("pg_textsearch",))}
    if not PGTS[0]:
        del variants["c"]
    for v, (_, text) in variants.items():
        copy_table(conn, src, f"{src}_writer_{v}", text)
    rows = new_rows(corpus, int(seconds * 600) + 1000, seed=13)
    done = {v: [0, 0.0] for v in variants}
    per_slice = {v: [] for v in variants}
    names = list(variants)
    for s_ in range(slices):
        for v in names[s_ % len(names):] + names[:s_ % len(names)]:
            t = f"{src}_writer_{v}"
            ins = f"INSERT INTO {t} (id, content, embedding) VALUES (%s, %s, %s::vector)"
            ex(conn, "CHECKPOINT")
            i, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds / slices:
                text, emb = rows[(done[v][0] + i) % len(rows)]
                ex(conn, ins, (f"r{done[v][0] + i}", text, emb))
                i += 1
            dt = time.perf_counter() - t0
            done[v][0] += i
            done[v][1] += dt
            per_slice[v].append(i / dt)
    rate = {v: r / s for v, (r, s) in done.items()}
    for v, (label, _) in variants.items():
        print(f"  writer (one client, one-row INSERT transactions) {v} {label:<16} "
              f"{rate[v]:7.1f} rows/s ({done[v][0]:,} rows in {done[v][1]:.1f} s; slices "
              f"{min(per_slice[v]):.0f}..{max(per_slice[v]):.0f})  {rate[v] / rate['a']:.2f}x a",
              flush=True)
    FIGURES["writer"] = {"rates": rate, "rows_seconds": done, "per_slice": per_slice}


def attempt(db, label, fn):
    """One part; an error is printed with its statement and the run goes on."""
    try:
        fn()
    except psycopg.Error as e:
        print(f"  !!! ERROR in {label}: SQLSTATE {e.sqlstate}: {str(e).strip()}\n"
              f"      statement: {LAST[0]}", flush=True)
        FIGURES.setdefault("errors", []).append(
            {"part": label, "sqlstate": e.sqlstate, "error": str(e), "statement": LAST[0]})
        db.reconnect()


class Db:
    """The one-off session and the prepared-statement one (force_generic_plan)."""
    def __init__(self):
        self.conn = self.pconn = None
        self.reconnect()

    def reconnect(self):
        for c in (self.conn, self.pconn):
            if c is not None and not c.closed:
                c.close()
        self.conn = psycopg.connect(autocommit=True)
        self.pconn = psycopg.connect(autocommit=True)
        for c in (self.conn, self.pconn):
            c.execute("SET hnsw.ef_search = 100")  # the SQL RRF's 100 candidates need it
        self.pconn.execute("SET plan_cache_mode = force_generic_plan")


def peer_methods(conn, table, args, queries, rel):
    """The qortex collection methods beside pg_textsearch: quality (5k) and latency."""
    if table == "peer_5k":
        print(f"  {'method':<32} {'nDCG@10':>8} {'R@100':>7}")
        for name, m in methods(table, 100).items():
            per_query = {}
            for q in queries:
                if q["id"] in rel:
                    ranked, _ = run(conn, m, {"emb": q["embedding"], "text": q["text"]})
                    per_query[q["id"]] = (quality.ndcg10(ranked, rel[q["id"]]),
                                          quality.recall(ranked, rel[q["id"]], 100),
                                          quality.recall(ranked, rel[q["id"]], 10))
            nd, rc = quality.summary(per_query)[:2]
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpora", default="5k,100k")
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--latency-queries", type=int, default=300)
    ap.add_argument("--am-only", action="store_true",
                    help="only the qortex_bm25 parts, not the qortex collection methods")
    ap.add_argument("--am-parts", default=AM_PARTS,
                    help=f"the qortex_bm25 parts to run ({AM_PARTS}; '' for none)")
    ap.add_argument("--inserts", type=int, default=3000)
    ap.add_argument("--writer-seconds", type=float, default=20)
    ap.add_argument("--json", help="also write the qortex_bm25 parts' figures to this file")
    args = ap.parse_args()
    parts = set(filter(None, args.am_parts.split(",")))
    queries = latency.load_csv("queries-train.csv")
    rel = quality.qrels()
    corpus = latency.load_csv("corpus.csv")
    db = Db()
    conn = db.conn
    common.require_release(conn)
    PGTS[0] = conn.execute("SELECT count(*) FROM pg_available_extensions "
                           "WHERE name = 'pg_textsearch'").fetchone()[0] > 0
    if PGTS[0]:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_textsearch")
    elif not args.am_only:
        raise SystemExit("pg_textsearch is not installed: only --am-only runs without it")
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
        build(db.conn, table, rows)
        sizes(db.conn, table)
        if not args.am_only:
            peer_methods(db.conn, table, args, queries, rel)
        if "build" in parts:
            attempt(db, f"build {table}", lambda: am_build(db.conn, table))
        if "latency" in parts:
            attempt(db, f"latency {table}", lambda: am_latency(db.conn, db.pconn, table, queries,
                                                               args.latency_queries))
        if "stream" in parts and cname != "5k":
            attempt(db, f"stream {table}", lambda: am_stream(db.conn, table, queries))
        if cname != "5k":
            continue
        if "quality" in parts:
            attempt(db, "quality", lambda: am_quality(db.conn, table, queries, rel))
        if "writes" in parts:
            attempt(db, "writes", lambda: am_writes(db.conn, table, corpus, args.inserts))
        if "writer" in parts:
            attempt(db, "writer", lambda: am_writer(db.conn, table, corpus, args.writer_seconds))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(FIGURES, f, indent=1, default=str)


if __name__ == "__main__":
    main()
