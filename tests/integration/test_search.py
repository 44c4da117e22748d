"""hybrid_search (API.md §3) on small hand-made collections with known answers."""
import math
import random
import re

import psycopg
import pytest
from psycopg.types.json import Jsonb

from conftest import connect

COLS = ("id, document_id, content, metadata, score, vector_rank, vector_similarity, "
        "text_rank, text_score, factor")

DOCS = [
    ("Cats purr when they are content.", [1, 0, 0], {"kind": "pet", "n": 1}),
    ("Dogs bark at cats and at the mail carrier.", [0.9, 0.1, 0], {"kind": "pet", "n": 2}),
    ("The stock market fell sharply today.", [0, 1, 0], {"kind": "news", "n": 3}),
    ("Cats and dogs can live together peacefully; cats sleep a lot.", [0.7, 0.7, 0],
     {"kind": "pet", "n": 4}),
    ("Quantum computers use qubits.", [0, 0, 1], {"kind": "science", "n": 5}),
]


def vec(v):
    return "[" + ",".join(str(float(x)) for x in v) + "]"


def search(conn, emb, text, k=10, coll="kb", **opts):
    return conn.execute(
        f"SELECT {COLS} FROM hybrid_search(%s, %s::vector, %s, %s, %s)",
        (coll, None if emb is None else vec(emb), text, k, Jsonb(opts))).fetchall()


@pytest.fixture
def kb(db):
    db.execute("SELECT qortex_create_collection('kb', 3)")
    ids = []
    for content, emb, meta in DOCS:
        d = db.execute("SELECT qortex_ingest('kb', %s, %s)",
                       (Jsonb({"metadata": meta}),
                        Jsonb([{"content": content, "embedding": emb}]))).fetchone()[0]
        ids.append(str(db.execute("SELECT id FROM qortex.kb_chunks WHERE document_id = %s",
                                  (d,)).fetchone()[0]))
    return db, ids


def cosine(a, b):
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) *
                                                        sum(y * y for y in b))


def bm25_reference(conn, table, query, k1=1.2, b=0.75):
    """BM25 computed independently, from the stored tsvectors, over the whole table."""
    docs = {}
    for i, lexeme, npos in conn.execute(
            f"SELECT id::text, lexeme, coalesce(array_length(positions, 1), 1) "
            f"FROM {table}, unnest(fts)"):
        docs.setdefault(i, {})[lexeme] = npos
    terms = [r[0] for r in conn.execute(
        "SELECT DISTINCT lexeme FROM unnest(to_tsvector('english', %s))", (query,))]
    n = len(docs)
    avgdl = sum(sum(d.values()) for d in docs.values()) / n
    scores = {}
    for i, d in docs.items():
        dl = sum(d.values())
        s = 0.0
        for t in terms:
            if t in d:
                df = sum(1 for x in docs.values() if t in x)
                idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
                s += idf * d[t] * (k1 + 1) / (d[t] + k1 * (1 - b + b * dl / avgdl))
        if s > 0:
            scores[i] = s
    return scores


def test_vector_leg_ranks_by_cosine_and_explains(kb):
    db, ids = kb
    q = [1, 0.1, 0]
    rows = search(db, q, None, k=5)
    want = sorted(range(5), key=lambda i: (-cosine(DOCS[i][1], q), ids[i]))
    assert [r[0] for r in rows] == [ids[i] for i in want]
    for rank, (r, i) in enumerate(zip(rows, want), 1):
        assert r[5] == rank and r[7] is None and r[8] is None and r[9] == 1.0
        assert r[6] == pytest.approx(cosine(DOCS[i][1], q), abs=1e-6)
        assert r[4] == pytest.approx(1 / (60 + rank))
    assert (rows[0][2], rows[0][3]["kind"]) == (DOCS[want[0]][0], "pet")


def test_text_leg_is_bm25_with_or_semantics_and_stop_words_removed(kb):
    db, ids = kb
    rows = search(db, None, "the cats barking", k=10)
    ref = bm25_reference(db, "qortex.kb_chunks", "the cats barking")
    assert {r[0] for r in rows} == set(ref)  # OR: any of cat / bark
    assert [r[0] for r in rows] == sorted(ref, key=lambda i: (-ref[i], i))
    for rank, r in enumerate(rows, 1):
        assert r[8] == pytest.approx(ref[r[0]], rel=1e-9)
        assert (r[5], r[6], r[7]) == (None, None, rank)
    # a doc matching one word only ("bark") is found
    assert ids[1] in {r[0] for r in rows}
    assert search(db, None, "the and of", k=10) == []


def test_bm25_function_scores_each_row_as_the_text_leg_does(kb):
    """qortex.bm25 (what a distributed table's shards score with) gives the same score as
    the reference, for every row, from the same statistics; rows without a term score 0."""
    db, _ = kb
    ref = bm25_reference(db, "qortex.kb_chunks", "the cats barking")
    lexemes = ["cat", "bark"]
    n, avgdl = db.execute("""SELECT count(*), avg((SELECT sum(coalesce(array_length(positions,
                                    1), 1)) FROM unnest(fts))) FROM qortex.kb_chunks""").fetchone()
    idf = []
    for lexeme in lexemes:
        df = db.execute("SELECT count(*) FROM qortex.kb_chunks WHERE fts @@ %s::tsquery",
                        (lexeme,)).fetchone()[0]
        idf.append(math.log(1 + (n - df + 0.5) / (df + 0.5)))
    rows = db.execute("SELECT id::text, qortex.bm25(fts, %s, %s, %s) FROM qortex.kb_chunks",
                      (lexemes, idf, float(avgdl))).fetchall()
    assert len(rows) == len(DOCS)
    for i, score in rows:
        assert score == pytest.approx(ref.get(i, 0.0), rel=1e-12, abs=1e-12)
    # k1 and b as given; NULL lexemes count for nothing; one idf per lexeme
    assert db.execute("SELECT qortex.bm25('cat:1,2', '{cat}', '{1}', 2, 1.0, 0)").fetchone()[0] \
        == pytest.approx(2 * 2.0 / (2 + 1.0))
    assert db.execute("SELECT qortex.bm25('cat:1', '{cat,NULL}', '{1,5}', 1)").fetchone()[0] \
        == pytest.approx(1.0)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="one idf per lexeme"):
        db.execute("SELECT qortex.bm25('cat:1', '{cat,dog}', '{1}', 1)")


def test_hybrid_rrf_and_weighted_fuse_both_legs(kb):
    db, ids = kb
    q, text = [0, 1, 0], "cats"
    rows = search(db, q, text, k=5)
    for r in rows:
        want = sum(1 / (60 + x) for x in (r[5], r[7]) if x is not None)
        assert r[4] == pytest.approx(want)
    assert rows == sorted(rows, key=lambda r: (-r[4], r[0]))
    both = [r for r in rows if r[5] is not None and r[7] is not None]
    assert both, "some rows come from both legs"
    w = search(db, q, text, k=5, fusion="weighted", vector_weight=0.3, text_weight=0.7)
    vs = [r[6] for r in w if r[6] is not None]
    ts = [r[8] for r in w if r[8] is not None]
    for r in w:
        want = 0.0
        if r[6] is not None:
            want += 0.3 * (r[6] - min(vs)) / (max(vs) - min(vs))
        if r[8] is not None:
            want += 0.7 * ((r[8] - min(ts)) / (max(ts) - min(ts)) if max(ts) > min(ts) else 1.0)
        assert r[4] == pytest.approx(want)


def test_text_modes(kb):
    db, ids = kb
    assert {r[0] for r in search(db, None, "cats dogs", text_mode="and")} == {ids[1], ids[3]}
    assert {r[0] for r in search(db, None, "cats -dogs", text_mode="websearch")} == {ids[0]}
    assert len(search(db, None, "cats dogs")) == 3


def test_filter_and_user_scope_apply_inside_both_legs(db):
    db.execute("SELECT qortex_create_collection('kb', 3)")
    for i, (user, glob, kind) in enumerate([("u1", False, "a"), ("u2", False, "a"),
                                            (None, True, "a"), ("u2", False, "b")]):
        db.execute("SELECT qortex_ingest('kb', %s, %s)", (
            Jsonb({"user_id": user, "is_global": glob, "metadata": {"kind": kind}}),
            Jsonb([{"content": f"shared words {i}", "embedding": [1, i, 0]}])))
    contents = lambda rows: sorted(r[2] for r in rows)  # noqa: E731
    for emb, text in [([1, 0, 0], None), (None, "shared words")]:
        assert contents(search(db, emb, text, user_id="u1")) == ["shared words 0",
                                                                 "shared words 2"]
        assert contents(search(db, emb, text, filter={"kind": "b"})) == ["shared words 3"]
        assert contents(search(db, emb, text, user_id="u2", filter={"kind": "a"})) \
            == ["shared words 1", "shared words 2"]


def test_a_filter_matching_one_percent_still_returns_k_rows(db):
    db.execute("SELECT qortex_create_collection('big', 8)")
    rng = random.Random(5)
    chunks = []
    for i in range(3000):
        zebra = " zebra" if 1 <= i <= 5 else ""  # a rare word, only in rows the filter drops
        chunks.append({"content": f"row {i} text{zebra}",
                       "embedding": [rng.gauss(0, 1) for _ in range(8)],
                       "metadata": {"rare": i % 100 == 0}})
    for s in range(0, 3000, 500):
        db.execute("SELECT qortex_ingest('big', '{}', %s)", (Jsonb(chunks[s:s + 500]),))
    db.execute("ANALYZE qortex.big_chunks")
    q = [rng.gauss(0, 1) for _ in range(8)]
    rows = search(db, q, None, k=10, coll="big", filter={"rare": True})
    assert len(rows) == 10 and all(r[3]["rare"] for r in rows)
    rows = search(db, q, "row text", k=10, coll="big", filter={"rare": True})
    assert len(rows) == 10 and all(r[3]["rare"] for r in rows)
    # text only: the rare word's rows are all filtered out; the common word's rows fill k
    rows = search(db, None, "zebra text", k=10, coll="big", filter={"rare": True})
    assert len(rows) == 10 and all(r[3]["rare"] for r in rows)
    # unfiltered: the 5 zebra rows rank first, the common word fills the rest
    rows = search(db, None, "zebra text", k=10, coll="big")
    assert len(rows) == 10 and {r[2] for r in rows[:5]} == {f"row {i} text zebra"
                                                             for i in range(1, 6)}
    # k beyond the row budget: the leg reads the pool, not the budget
    db.execute("SET qortex.text_row_budget = 100")
    assert len(search(db, None, "text", k=150, coll="big")) == 150
    db.execute("RESET qortex.text_row_budget")


def test_offset_pages_never_repeat_or_skip(kb):
    db, ids = kb
    everything = search(db, [0.5, 0.5, 0.1], "cats dogs market", k=5)
    pages = []
    for off in range(0, 5, 2):
        pages += search(db, [0.5, 0.5, 0.1], "cats dogs market", k=2, offset=off)
    assert [r[0] for r in pages] == [r[0] for r in everything]
    assert len({r[0] for r in everything}) == len(everything) == 5


def test_min_similarity_and_ef_search(kb):
    db, ids = kb
    rows = search(db, [1, 0, 0], None, min_similarity=0.6)
    assert all(r[6] >= 0.6 for r in rows) and {ids[0], ids[1], ids[3]} == {r[0] for r in rows}
    assert len(search(db, [1, 0, 0], None, ef_search=10)) == 5


def test_settings_are_restored_and_search_is_read_only(kb):
    db, ids = kb
    db.execute("SET hnsw.ef_search = 17")
    with db.transaction():
        db.execute("SET TRANSACTION READ ONLY")
        assert len(search(db, [1, 0, 0], "cats", filter={"kind": "pet"}, ef_search=300)) == 3
        assert db.execute("SHOW hnsw.ef_search").fetchone()[0] == "17"
        assert db.execute("SHOW hnsw.iterative_scan").fetchone()[0] == "off"
        assert db.execute("SHOW enable_seqscan").fetchone()[0] == "on"
        assert db.execute("SHOW enable_sort").fetchone()[0] == "on"


def test_feedback_factors_multiply_scores_unless_disabled(kb):
    db, ids = kb
    before = {r[0]: r[4] for r in search(db, [1, 0, 0], None)}
    db.execute("INSERT INTO qortex.interoception_factors (node_id, weight) VALUES (%s, 2.5)",
               (ids[4],))
    after = search(db, [1, 0, 0], None)
    row = next(r for r in after if r[0] == ids[4])
    assert row[9] == 2.5 and row[4] == pytest.approx(before[ids[4]] * 2.5)
    off = search(db, [1, 0, 0], None, feedback=False)
    assert {r[0]: r[4] for r in off} == pytest.approx(before)
    assert all(r[9] == 1.0 for r in off)


def test_registered_table_without_tsvector_and_with_rls(db):
    db.execute("""CREATE TABLE langchain_pg_embedding (
                      id varchar PRIMARY KEY, collection_id uuid, embedding vector(3),
                      document varchar, cmetadata jsonb, owner text)""")
    for i, (content, emb, meta) in enumerate(DOCS):
        db.execute("INSERT INTO langchain_pg_embedding VALUES (%s, NULL, %s, %s, %s, %s)",
                   (f"doc-{i}", vec(emb), content, Jsonb(meta), "alice" if i % 2 else "bob"))
    db.execute("""SELECT qortex_register_collection('lc', 'langchain_pg_embedding',
                  '{"id": "id", "embedding": "embedding", "content": "document",
                    "metadata": "cmetadata"}')""")
    rows = search(db, [1, 0, 0], "cats", coll="lc")
    assert rows[0][0] == "doc-0" and rows[0][2] == DOCS[0][0]
    assert {r[0] for r in rows if r[7] is not None} == {"doc-0", "doc-1", "doc-3"}
    db.execute("ALTER TABLE langchain_pg_embedding ENABLE ROW LEVEL SECURITY")
    db.execute("CREATE POLICY mine ON langchain_pg_embedding USING (owner = current_user)")
    # built from every row, the qortex_bm25 index must not rank rows the policy hides
    db.execute("SELECT qortex_refresh_text_index('lc')")
    db.execute("DROP ROLE IF EXISTS alice")
    db.execute("CREATE ROLE alice")
    try:
        db.execute("GRANT SELECT ON langchain_pg_embedding TO alice")
        db.execute("GRANT USAGE ON SCHEMA qortex TO alice")
        db.execute("GRANT SELECT ON ALL TABLES IN SCHEMA qortex TO alice")
        with db.transaction():
            db.execute("SET LOCAL ROLE alice")
            seen = {r[0] for r in search(db, [1, 0, 0], "cats dogs market qubits", coll="lc")}
            assert seen == {"doc-1", "doc-3"}
    finally:
        db.execute("DROP OWNED BY alice")
        db.execute("DROP ROLE alice")


@pytest.mark.parametrize("sql, err, match", [
    ("SELECT * FROM hybrid_search('kb', NULL, NULL)", psycopg.errors.InvalidParameterValue,
     "query_embedding"),
    ("SELECT * FROM hybrid_search('kb', NULL, '  ')", psycopg.errors.InvalidParameterValue,
     "query_embedding"),
    ("SELECT * FROM hybrid_search('kb', NULL, 'cats', 0)", psycopg.errors.InvalidParameterValue,
     "invalid k"),
    # a huge k is refused before anything is sized from it (it used to abort the backend
    # on a failed allocation, resetting every session)
    ("SELECT * FROM hybrid_search('kb', NULL, 'cats', 2147483647)",
     psycopg.errors.InvalidParameterValue, "between 1 and 10000"),
    ("SELECT * FROM hybrid_search('kb', '[1,0,0]', 'cats', 100000000)",
     psycopg.errors.InvalidParameterValue, "between 1 and 10000"),
    ("""SELECT * FROM hybrid_search('kb', NULL, 'cats', 5, '{"offset": 2000000000}')""",
     psycopg.errors.InvalidParameterValue, "options.offset"),
    ("""SELECT * FROM hybrid_search('kb', NULL, 'cats', 5, '{"fusion": "max"}')""",
     psycopg.errors.InvalidParameterValue, "options.fusion"),
    ("""SELECT * FROM hybrid_search('kb', NULL, 'cats', 5, '{"colour": 1}')""",
     psycopg.errors.InvalidParameterValue, "options.colour"),
    ("""SELECT * FROM hybrid_search('kb', NULL, 'cats', 5, '{"ef_search": 5000}')""",
     psycopg.errors.InvalidParameterValue, "options.ef_search"),
    ("""SELECT * FROM hybrid_search('kb', NULL, 'cats', 5, '{"candidates": -3}')""",
     psycopg.errors.InvalidParameterValue, "options.candidates"),
    ("SELECT * FROM hybrid_search('nope', NULL, 'cats')", psycopg.errors.UndefinedObject,
     '"nope" does not exist'),
    ("SELECT * FROM hybrid_search('kb', '[1,2]', NULL)", psycopg.errors.DataException,
     "query_embedding has 2 dimensions"),
])
def test_bad_input(kb, sql, err, match):
    db, ids = kb
    with pytest.raises(err, match=match):
        db.execute(sql)


def test_filter_needs_a_metadata_column(db):
    db.execute("CREATE TABLE t (id int PRIMARY KEY, body text, emb vector(3))")
    db.execute("""SELECT qortex_register_collection('t', 't',
                  '{"id": "id", "embedding": "emb", "content": "body"}')""")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="options.filter"):
        search(db, [1, 0, 0], None, coll="t", filter={"a": 1})
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="options.user_id"):
        search(db, [1, 0, 0], None, coll="t", user_id="u")


def test_toasted_embeddings_are_searched_through_the_hnsw_index(db):
    """A registered table as LangChain and LlamaIndex keep one: 1536-d embeddings, default
    storage, so they live in TOAST. The planner alone reads it with a sequential scan (it
    does not price detoasting); hybrid_search uses the HNSW index, and an exact scan only
    where the scope admits few rows, with the exact answer there."""
    db.execute("CREATE TABLE lc (id text PRIMARY KEY, content text, metadata jsonb, "
               "embedding vector(1536))")
    db.execute("SELECT setseed(0.42)")
    # 3,000 rows around 30 centres, as embeddings of real text cluster
    db.execute("""CREATE TEMP TABLE centres AS
                  SELECT c, (SELECT array_agg(random() - 0.5) FROM generate_series(1, 1536)
                              WHERE c >= 0) AS v
                    FROM generate_series(0, 29) c""")
    db.execute("""INSERT INTO lc SELECT i::text, 'row ' || i, jsonb_build_object('few', i % 300 = 0),
                         (SELECT array_agg(x + 0.4 * (random() - 0.5)) FROM unnest(v) x)::vector
                    FROM generate_series(1, 3000) i JOIN centres ON c = i % 30""")
    db.execute("CREATE INDEX lc_hnsw ON lc USING hnsw (embedding vector_cosine_ops)")
    db.execute("CREATE INDEX ON lc USING gin (metadata jsonb_path_ops)")
    db.execute("ANALYZE lc")
    heap, toast = db.execute("SELECT pg_relation_size(oid), pg_relation_size(reltoastrelid) "
                             "FROM pg_class WHERE oid = 'lc'::regclass").fetchone()
    assert toast > 10 * heap, (heap, toast)  # the embeddings are in TOAST
    db.execute("""SELECT qortex_register_collection('lc', 'lc', '{"id": "id", "embedding":
                  "embedding", "content": "content", "metadata": "metadata"}')""")
    q = db.execute("""SELECT (SELECT array_agg(x + 0.2 * (random() - 0.5)) FROM unnest(v) x)
                        FROM centres WHERE c = 3""").fetchone()[0]
    plan = "\n".join(r[0] for r in db.execute(
        "EXPLAIN SELECT id FROM lc ORDER BY embedding <=> %s::vector LIMIT 100", (vec(q),)))
    assert "Seq Scan" in plan, plan  # what the planner would do on its own

    def exact(where=""):
        with db.transaction():
            db.execute("SET LOCAL enable_indexscan = off")
            return [r[0] for r in db.execute(
                f"SELECT id FROM lc {where} ORDER BY embedding <=> %s::vector LIMIT 10",
                (vec(q),))]

    def index_scans():
        db.execute("SELECT pg_stat_force_next_flush()")
        return db.execute("SELECT idx_scan FROM pg_stat_user_indexes "
                          "WHERE indexrelname = 'lc_hnsw'").fetchone()[0]

    notices = []
    db.add_notice_handler(lambda d: notices.append(d.message_detail or ""))
    db.execute("SET qortex.debug_plans = on")
    before = index_scans()
    rows = search(db, q, None, k=10, coll="lc")
    assert index_scans() > before
    assert re.match(r"vector leg \([0-9.]+ ms\): index lc_hnsw \(ef_search 40\)", notices[-1]), notices
    recall = len({r[0] for r in rows} & set(exact())) / 10
    assert recall >= 0.8, recall
    assert db.execute("SHOW enable_seqscan").fetchone()[0] == "on"  # put back after the call
    # a filter admitting 10 of 3,000 rows: read exactly, through the metadata index
    rows = search(db, q, None, k=10, coll="lc", filter={"few": True})
    assert re.match(r"vector leg \([0-9.]+ ms\): exact;", notices[-1]), notices
    assert [r[0] for r in rows] == exact("WHERE metadata @> '{\"few\": true}'")
    assert all(r[3]["few"] for r in rows)


def plan_notice(conn, *args, **opts):
    """The rows of a search and its qortex.debug_plans NOTICE (detail) as lines."""
    notices = []
    handler = lambda d: notices.append(d.message_detail or "")  # noqa: E731
    conn.add_notice_handler(handler)
    try:
        conn.execute("SET qortex.debug_plans = on")
        rows = search(conn, *args, **opts)
        conn.execute("SET qortex.debug_plans = off")
    finally:
        conn.remove_notice_handler(handler)
    assert len(notices) == 1, notices
    return rows, notices[0].splitlines()


def statements(lines):
    """The statements a traced search ran: (rows, sql), in order."""
    start = lines.index(next(x for x in lines if x.startswith("statements (")))
    out = []
    for x in lines[start + 1:]:
        m = re.match(r"\s+[0-9.]+ ms, (?:(\d+) rows|planned only[^:]*): (.*)", x)
        assert m, x
        out.append((None if m.group(1) is None else int(m.group(1)), m.group(2)))
    assert len(out) == int(re.match(r"statements \((\d+)\):", lines[start]).group(1))
    return out


@pytest.fixture
def indexed(db):
    """6,000 rows at 8 dimensions with an HNSW index the vector leg reads unscoped, 100 users
    of 60 rows, a filter admitting 1%, a stored tsvector with GIN."""
    db.execute("""CREATE TABLE t (id int PRIMARY KEY, body text, meta jsonb, owner text,
                                   embedding vector(8), fts tsvector GENERATED ALWAYS AS
                                   (to_tsvector('english', body)) STORED)""")
    db.execute("SELECT setseed(0.3)")
    db.execute("""INSERT INTO t SELECT i, 'row ' || i || ' words', jsonb_build_object(
                         'rare', i % 100 = 0), 'u' || (i % 100),
                         (SELECT array_agg(random() - 0.5) FROM generate_series(1, 8)
                           WHERE i > 0)::vector
                    FROM generate_series(1, 6000) i""")
    db.execute("CREATE INDEX t_hnsw ON t USING hnsw (embedding vector_cosine_ops)")
    db.execute("CREATE INDEX ON t (owner)")
    db.execute("CREATE INDEX ON t USING gin (meta jsonb_path_ops)")
    db.execute("CREATE INDEX ON t USING gin (fts)")
    db.execute("ANALYZE t")
    db.execute("""SELECT qortex_register_collection('t', 't', '{"id": "id", "embedding":
                  "embedding", "content": "body", "metadata": "meta", "user_id": "owner",
                  "tsvector": "fts"}')""")
    return db


def test_the_default_pool_and_ef_search_follow_k(indexed):
    """The pool is k + offset, at least 10, with RRF; 4 x (k + offset), at least 40, weighted;
    ef_search the pool, at least 40; `candidates` asks for another pool; the vector leg
    returns the pool."""
    db = indexed
    q = [0.1, -0.2, 0.3, 0.1, 0, 0.2, -0.1, 0.05]
    weighted = {"fusion": "weighted"}
    for k, opts, pool in [(10, {}, 10), (1, {}, 10), (60, {}, 60), (10, {"offset": 50}, 60),
                          (100, {}, 100), (10, weighted, 40), (20, weighted, 80),
                          (5, {**weighted, "offset": 15}, 80),
                          (10, {"candidates": 300}, 300), (10, {"candidates": 5}, 10),
                          (5, {"candidates": 7}, 7)]:
        rows, lines = plan_notice(db, q, None, k=k, coll="t", **opts)
        assert len(rows) == k
        m = re.match(r"vector leg \([0-9.]+ ms\): index t_hnsw \(ef_search (\d+)\)", lines[0])
        assert m, lines
        assert int(m.group(1)) == max(40, pool), (k, opts, lines)
        vector = [n for n, sql in statements(lines) if "ORDER BY embedding" in sql]
        assert vector == [pool], (k, opts, lines)
    # ef_search asked for is kept when above the pool
    _, lines = plan_notice(db, q, None, k=10, coll="t", ef_search=123)
    assert "(ef_search 123)" in lines[0], lines


def test_k_rows_under_a_user_scope_and_a_one_percent_filter(indexed):
    db = indexed
    q = [0.3, 0.1, -0.2, 0.1, 0.4, 0, -0.3, 0.2]
    for opts, check in [({"user_id": "u7"}, lambda r: r[0] % 100 == 7),
                        ({"filter": {"rare": True}}, lambda r: r[0] % 100 == 0),
                        ({"user_id": "u0", "filter": {"rare": True}},
                         lambda r: r[0] % 100 == 0)]:
        for text in (None, "words"):
            rows = search(db, q, text, k=10, coll="t", **opts)
            assert len(rows) == 10, (opts, text)
            assert all(check((int(r[0]),)) for r in rows), (opts, rows)
            exact = [str(r[0]) for r in db.execute(
                "SELECT id FROM t WHERE id %% 100 = %s ORDER BY embedding <=> %s::vector, id "
                "LIMIT 10", (7 if "user_id" in opts and opts["user_id"] == "u7" else 0,
                             vec(q)))]
            if text is None:
                assert [r[0] for r in rows] == exact, (opts, rows)


def test_a_search_without_factors_reads_none(indexed, empty_db):
    """No factor written: no factors statement. Once another connection's first
    interoception_update commits, the next search reads and applies it, also inside a
    transaction block that began before the commit."""
    db = indexed
    q = [0.1, 0.1, 0.1, -0.1, 0.2, 0.3, 0, -0.2]
    search(db, q, None, k=10, coll="t")  # (the first reads the collection's catalog rows)
    rows, lines = plan_notice(db, q, None, k=10, coll="t")
    # the vector leg and the page's rows: nothing else
    assert [sql.split(" FROM ")[0] for _, sql in statements(lines)] == [
        "SELECT id::text", "SELECT id::text, NULL::text, body::text, meta, embedding "
        "OPERATOR(public.<=>) $2"], lines
    assert "factors: none written yet, not read" in lines
    assert all(r[9] == 1.0 for r in rows)
    rows, lines = plan_notice(db, q, "words", k=10, coll="t")
    assert not [s for _, s in statements(lines) if "interoception_factors" in s], lines
    first, second = rows[-1][0], rows[0][0]
    with db.transaction():
        assert all(r[9] == 1.0 for r in search(db, q, "words", k=10, coll="t"))
        with connect(empty_db, autocommit=True) as other:
            other.execute("SELECT * FROM interoception_update(%s)",
                          (Jsonb({first: "accepted"}),))
        rows, lines = plan_notice(db, q, "words", k=10, coll="t")
        assert [s for _, s in statements(lines) if "interoception_factors" in s], lines
        assert {r[0]: r[9] for r in rows}[first] == pytest.approx(1.1), rows
    with connect(empty_db, autocommit=True) as other:
        other.execute("SELECT * FROM interoception_update(%s)", (Jsonb({second: "rejected"}),))
    again = {r[0]: r[9] for r in search(db, q, "words", k=10, coll="t")}
    assert again[second] == pytest.approx(0.95) and again[first] == pytest.approx(1.1), again


# ---- recall of the vector index ------------------------------------------------------------

@pytest.fixture
def points(db):
    """3,000 random 16-dimensional points, half of them 'even', under an HNSW index built as
    poorly as pgvector allows (m = 2), registered as 'pts' and, the even ones, 'pts_even'."""
    db.execute("CREATE TABLE pts (id int PRIMARY KEY, emb vector(16), part text, body text)")
    db.execute("SELECT setseed(0.42)")
    db.execute("""INSERT INTO pts SELECT i, (SELECT array_agg(random()::real - 0.5)
                                               FROM generate_series(1, 16) WHERE i > 0)::vector,
                                         CASE WHEN i % 2 = 0 THEN 'even' ELSE 'odd' END, 'x'
                    FROM generate_series(1, 3000) i""")
    db.execute("CREATE INDEX pts_hnsw ON pts USING hnsw (emb vector_l2_ops) "
               "WITH (m = 2, ef_construction = 4)")
    db.execute("""SELECT qortex_register_collection('pts', 'pts',
                  '{"id": "id", "embedding": "emb", "content": "body"}')""")
    db.execute("""SELECT qortex_register_collection('pts_even', 'pts',
                  '{"id": "id", "embedding": "emb", "content": "body",
                    "partition": {"column": "part", "equals": "even"}}')""")
    return db


def check(db, coll, *args):
    cur = db.execute(f"SELECT * FROM qortex_check_recall(%s{', %s' * len(args)})",
                     (coll, *args))
    return dict(zip([c.name for c in cur.description], cur.fetchone()))


def test_check_recall_measures_the_index_against_exact_search(points):
    db = points
    low = check(db, "pts", 100, 10)
    assert (low["collection"], low["index_name"], low["k"], low["queries"]) == \
        ("pts", "pts_hnsw", 10, 100)
    # hybrid_search's breadth for 10 rows: pgvector's default 40
    assert low["ef_search"] == 40 and low["table_rows"] == 3000
    # a poor graph misses neighbours an exact scan finds; a wider search finds more
    assert 0 < low["recall"] < 0.9
    high = check(db, "pts", 100, 10, 1000)
    assert high["ef_search"] == 1000 and high["recall"] > low["recall"]
    for s in (low, high):
        assert 0 <= s["recall_min"] <= s["recall_p10"] <= s["recall"] <= 1
        assert s["recall_stddev"] > 0 and 0 < s["recall_ci95"] < s["recall_stddev"]
        assert s["elapsed_ms"] > 0
    # k beyond ef_search widens it, as hybrid_search does for its pool
    assert check(db, "pts", 5, 60, 10)["ef_search"] == 60
    # a good index finds (nearly) all of them
    db.execute("DROP INDEX pts_hnsw")
    db.execute("CREATE INDEX pts_good ON pts USING hnsw (emb vector_l2_ops)")
    assert check(db, "pts", 50, 10)["recall"] >= 0.95
    # only the latest result is kept, and the settings are the caller's again
    assert db.execute("SELECT count(*), min(index_name) FROM qortex.recall_checks") \
        .fetchone() == (1, "pts_good")
    assert db.execute("SHOW enable_seqscan").fetchone()[0] == "on"
    assert db.execute("SHOW hnsw.ef_search").fetchone()[0] == "40"


def test_check_recall_of_a_partition_samples_and_searches_its_rows(points):
    db = points
    s = check(db, "pts_even", 50, 10)
    assert s["table_rows"] == 1500 and s["queries"] == 50 and 0 < s["recall"] < 1


def test_the_latest_check_shows_in_collections_status_and_goes_with_the_collection(points):
    db = points
    assert db.execute("SELECT details->'vector_leg'->'recall' FROM qortex_collections() "
                      "WHERE name = 'pts'").fetchone()[0] is None
    s = check(db, "pts", 20, 5)
    shown = db.execute("SELECT details->'vector_leg'->'recall' FROM qortex_collections() "
                       "WHERE name = 'pts'").fetchone()[0]
    assert shown["recall"] == s["recall"] and shown["k"] == 5 and shown["sample"] == 20
    status = db.execute("SELECT qortex_status()").fetchone()[0]
    assert status["tables"]["recall_checks"] == 1
    [pts] = [c for c in status["collections"] if c["name"] == "pts"]
    assert pts["vector_leg"]["recall"]["recall_min"] == s["recall_min"]
    db.execute("SELECT qortex_drop_collection('pts')")
    assert db.execute("SELECT count(*) FROM qortex.recall_checks").fetchone()[0] == 0


@pytest.mark.parametrize("sql, error, match", [
    ("SELECT * FROM qortex_check_recall('pts', 0)", "22023", "sample: must be within 1 and 1000"),
    ("SELECT * FROM qortex_check_recall('pts', 1001)", "22023", "sample"),
    ("SELECT * FROM qortex_check_recall('pts', 10, 0)", "22023", "k: must be within 1 and 1000"),
    ("SELECT * FROM qortex_check_recall('pts', 10, 1001)", "22023", "k"),
    ("SELECT * FROM qortex_check_recall('pts', 10, 10, 0)", "22023", "ef_search"),
    ("SELECT * FROM qortex_check_recall('pts', NULL)", "22023", "sample"),
    ("SELECT * FROM qortex_check_recall(NULL)", "22023", "collection"),
    ("SELECT * FROM qortex_check_recall('nope')", "42704", "nope"),
    ("SELECT * FROM qortex_check_recall('bare')", "55000", "no vector index"),
    ("SELECT * FROM qortex_check_recall('empty')", "55000", "no row with an embedding"),
])
def test_check_recall_refuses_what_it_cannot_check(points, sql, error, match):
    db = points
    db.execute("CREATE TABLE bare (id int PRIMARY KEY, emb vector(3), body text)")
    db.execute("INSERT INTO bare VALUES (1, '[1,0,0]', 'x')")
    db.execute("""SELECT qortex_register_collection('bare', 'bare',
                  '{"id": "id", "embedding": "emb", "content": "body"}')""")
    db.execute("SELECT qortex_create_collection('empty', 3)")
    with pytest.raises(psycopg.errors.Error, match=match) as e:
        db.execute(sql)
    assert e.value.sqlstate == error
    assert db.execute("SELECT count(*) FROM qortex.recall_checks").fetchone()[0] == 0
