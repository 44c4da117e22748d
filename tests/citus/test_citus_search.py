"""hybrid_search over a distributed table on the cluster beside one node: the per-call
HNSW settings reach the shards, and on SciFact (../shared/data/scifact, or
$QORTEX_SCIFACT) the cluster ranks as well as one node does."""
import csv
import math
import os
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCIFACT = pathlib.Path(os.environ.get("QORTEX_SCIFACT",
                                      ROOT.parent / "shared" / "data" / "scifact"))


def one(conn, sql, *args):
    return conn.execute(sql, args).fetchone()[0]


def test_per_call_hnsw_settings_reach_the_shards(cluster):
    """Each shard's HNSW scan returns at most hnsw.ef_search rows (40 by default): without
    the call's settings on the workers, k = 150 over 2 shards would find 80 rows."""
    c = cluster
    c.execute("""CREATE TABLE t (id bigint PRIMARY KEY, u text, body text, emb vector(3))""")
    c.execute("SELECT create_distributed_table('t', 'id', shard_count => 2)")
    c.execute("""INSERT INTO t SELECT i, 'u' || (i % 10), 'row ' || i,
                        ARRAY[sin(i), cos(i), sin(3 * i)]::vector
                   FROM generate_series(1, 2000) i""")
    c.execute("CREATE INDEX ON t USING hnsw (emb vector_l2_ops)")
    c.execute("""SELECT qortex_register_collection('t', 't',
                 '{"id": "id", "embedding": "emb", "content": "body", "user_id": "u"}')""")
    bare = "SELECT count(*) FROM (SELECT id FROM t ORDER BY emb <-> '[0.5,0.5,0.5]' LIMIT 150) s"
    search = "SELECT count(*) FROM hybrid_search('t', '[0.5,0.5,0.5]', NULL, 150, %s::jsonb)"
    assert one(c, bare) == 80  # the workers' own ef_search, per shard
    assert one(c, search, "{}") == 150
    # in scope (200 rows of u1): the iterative scan on the shards, not the exact fallback
    c.execute("SET client_min_messages = notice")
    c.execute("SET qortex.debug_plans = on")
    notices = []
    c.add_notice_handler(lambda d: notices.append(d.message_detail or ""))
    assert one(c, search, '{"user_id": "u1"}') == 150
    c.execute("SET qortex.debug_plans = off")
    c.execute("SET client_min_messages = warning")
    plan = [n for n in notices if "vector leg" in n]
    assert plan and "iterative" in plan[0] and "then exact" not in plan[0], notices
    # within a bigger transaction the settings end with the call: the next statement on the
    # same worker connections searches with the workers' own settings again (in a function
    # called by an autocommit statement, and in a transaction block)
    c.execute(f"""CREATE FUNCTION search_then_bare() RETURNS int[] LANGUAGE plpgsql AS $$
                  DECLARE a int; b int;
                  BEGIN
                      SELECT count(*) INTO a FROM hybrid_search('t', '[0.5,0.5,0.5]', NULL, 150);
                      EXECUTE $q${bare}$q$ INTO b;
                      RETURN ARRAY[a, b];
                  END $$""")
    assert one(c, "SELECT search_then_bare()") == [150, 80]
    c.autocommit = False
    try:
        assert one(c, bare) == 80
        assert one(c, search, "{}") == 150
        assert one(c, bare) == 80
        assert one(c, "SHOW hnsw.ef_search") == "40"
    finally:
        c.rollback()
        c.autocommit = True


def _rows(name):
    csv.field_size_limit(sys.maxsize)
    with open(SCIFACT / name, newline="") as f:
        return list(csv.DictReader(f))


def _ndcg10(ranked, relevant):
    dcg = sum(1 / math.log2(i + 2) for i, d in enumerate(ranked[:10]) if d in relevant)
    return dcg / sum(1 / math.log2(i + 2) for i in range(min(10, len(relevant))))


@pytest.mark.skipif(not (SCIFACT / "corpus.csv").exists(),
                    reason=f"SciFact is not at {SCIFACT} (set QORTEX_SCIFACT)")
def test_scifact_ranks_on_the_cluster_as_on_one_node(cluster, single):
    corpus = _rows("corpus.csv")
    rel = {}
    with open(SCIFACT / "qrels-train.tsv") as f:
        next(f)
        for line in f:
            q, d, s = line.split()
            if int(s) > 0:
                rel.setdefault(q, set()).add(d)
    queries = [q for q in _rows("queries-train.csv") if q["id"] in rel]
    for conn in (cluster, single):
        conn.execute("""CREATE TABLE sf (id bigint PRIMARY KEY, title text, body text,
                        emb vector(384), fts tsvector GENERATED ALWAYS AS
                        (to_tsvector('english', title || ' ' || body)) STORED)""")
        if conn is cluster:
            conn.execute("SELECT create_distributed_table('sf', 'id', shard_count => 4)")
        with conn.cursor().copy("COPY sf (id, title, body, emb) FROM STDIN") as cp:
            for r in corpus:
                cp.write_row((int(r["id"]), r["title"], r["text"], r["embedding"]))
        conn.execute("CREATE INDEX ON sf USING hnsw (emb vector_cosine_ops)")
        conn.execute("CREATE INDEX ON sf USING gin (fts)")
        conn.execute("ANALYZE sf")
        conn.execute("""SELECT qortex_register_collection('sf', 'sf', '{"id": "id",
                        "embedding": "emb", "content": "body", "tsvector": "fts"}')""")
    scores = {}
    for label, emb in (("hybrid", True), ("text", False)):
        sql = f"""SELECT id FROM hybrid_search('sf', {'%s::vector' if emb else 'NULL'}, %s, 10)"""
        for name, conn in (("cluster", cluster), ("single", single)):
            total = 0.0
            for q in queries:
                args = (q["embedding"], q["text"]) if emb else (q["text"],)
                ranked = [r[0] for r in conn.execute(sql, args)]
                total += _ndcg10(ranked, rel[q["id"]])
            scores[label, name] = total / len(queries)
    print(f"nDCG@10: {scores}")
    for label in ("hybrid", "text"):
        assert scores[label, "single"] > 0.6, scores
        assert abs(scores[label, "cluster"] - scores[label, "single"]) <= 0.005, scores
