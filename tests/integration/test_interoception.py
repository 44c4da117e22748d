"""Interoception (API.md §4): factors that move rankings, and the edge buffer."""
import math
import threading

import psycopg
import pytest
from psycopg.types.json import Jsonb

from conftest import connect
from test_search import DOCS, search


def update(conn, outcomes):
    return conn.execute("SELECT node_id, weight, delta, clamped FROM interoception_update(%s)",
                        (Jsonb(outcomes),)).fetchall()


def weight(conn, node):
    return conn.execute("SELECT weight FROM qortex.interoception_factors WHERE node_id = %s",
                        (node,)).fetchone()[0]


def test_pinned_factor_updates(db):
    assert update(db, {"a": "accepted"}) == [("a", 1.1, pytest.approx(0.1), False)]
    assert update(db, {"b": "rejected"}) == [("b", 0.95, pytest.approx(-0.05), False)]
    assert update(db, {"c": "partial"}) == [("c", 1.03, pytest.approx(0.03), False)]
    db.execute("UPDATE qortex.interoception_factors SET weight = 4.95 WHERE node_id = 'a'")
    [(n, w, d, c)] = update(db, {"a": "accepted"})
    assert (w, c) == (5.0, True) and d == pytest.approx(0.05)
    db.execute("UPDATE qortex.interoception_factors SET weight = 0.12 WHERE node_id = 'b'")
    [(n, w, d, c)] = update(db, {"b": "rejected"})
    assert (w, c) == (0.1, True) and d == pytest.approx(-0.02)


def test_array_form_and_order_independence(db):
    rows = db.execute("SELECT node_id, weight FROM interoception_update(ARRAY['x', 'y'], "
                      "'accepted')").fetchall()
    assert rows == [("x", 1.1), ("y", 1.1)]
    for o in ["rejected", "partial", "rejected"]:
        db.execute("SELECT * FROM interoception_update(ARRAY['x'], %s)", (o,))
    for o in ["rejected", "rejected", "partial"]:
        db.execute("SELECT * FROM interoception_update(ARRAY['y'], %s)", (o,))
    assert weight(db, "x") == weight(db, "y") == pytest.approx(1.03)


@pytest.mark.parametrize("sql, arg", [
    ("""SELECT * FROM interoception_update('{"a": "accepted", "b": "loved"}')""", "outcomes.b"),
    ("""SELECT * FROM interoception_update('{}')""", "outcomes"),
    ("""SELECT * FROM interoception_update('["a"]')""", "outcomes"),
    ("SELECT * FROM interoception_update(ARRAY['a', NULL], 'accepted')", "node_ids"),
    ("SELECT * FROM interoception_update(ARRAY['a'], 'meh')", "outcome"),
    ("SELECT * FROM interoception_update(ARRAY['a'], 'accepted', '')", "query_id"),
    ("SELECT interoception_decay(0)", "factor"),
    ("SELECT interoception_decay(1.5)", "factor"),
    ("SELECT * FROM interoception_flush(0)", "min_hits"),
])
def test_bad_input_applies_nothing(db, sql, arg):
    update(db, {"a": "accepted"})
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=arg):
        db.execute(sql)
    assert db.execute("SELECT node_id, weight FROM qortex.interoception_factors").fetchall() \
        == [("a", 1.1)]


def test_concurrent_updates_lose_nothing(db):
    name = db.info.dbname

    def work(i):
        with connect(name, autocommit=True) as c:
            for j in range(10):
                o = "rejected" if (i * 10 + j) % 8 == 0 else "partial"
                c.execute("SELECT * FROM interoception_update(ARRAY['hot', %s], %s)",
                          (f"n{j % 3}", o))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 80 updates of "hot": 70 partial (+0.03), 10 rejected (-0.05); in any order the
    # weight stays within [0.5, 3.1], away from the bounds
    assert weight(db, "hot") == pytest.approx(1.0 + 70 * 0.03 - 10 * 0.05)


def test_steps_and_bounds_are_settings(db):
    db.execute("SET qortex.feedback_accepted = 0.5")
    db.execute("SET qortex.factor_max = 1.2")
    assert update(db, {"a": "accepted"})[0][1:] == (1.2, pytest.approx(0.2), True)
    db.execute("SET qortex.factor_min = 2")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="qortex.factor_min"):
        update(db, {"a": "accepted"})


def test_decay_and_summary(db):
    update(db, {"a": "accepted", "b": "rejected", "c": "partial"})
    assert db.execute("SELECT interoception_decay(0.5)").fetchone()[0] == 3
    ws = dict(db.execute("SELECT node_id, weight FROM qortex.interoception_factors"))
    assert ws == pytest.approx({"a": 1.05, "b": 0.975, "c": 1.015})
    s = db.execute("SELECT interoception_summary()").fetchone()[0]
    f = s["factors"]
    total = sum(ws.values())
    entropy = -sum(w / total * math.log2(w / total) for w in ws.values())
    assert (f["count"], f["boosted"], f["penalized"]) == (3, 2, 1)
    assert f["mean"] == pytest.approx(total / 3) and f["min"] == pytest.approx(0.975)
    assert f["entropy"] == pytest.approx(entropy, rel=1e-12)
    assert s["buffer"] == {"buffered_edges": 0, "total_promoted": 0, "max_hits": 0,
                           "avg_hits": 0, "ready_to_promote": 0}


@pytest.fixture
def kb(db):
    db.execute("SELECT qortex_create_collection('kb', 3)")
    for content, emb, meta in DOCS:
        db.execute("SELECT qortex_ingest('kb', %s, %s)",
                   (Jsonb({"metadata": meta}), Jsonb([{"content": content, "embedding": emb}])))
    ids = [r[0] for r in db.execute("SELECT id::text FROM qortex.kb_chunks ORDER BY id")]
    return db, ids


def test_feedback_moves_rankings(kb):
    db, ids = kb
    q, text = [0.8, 0.6, 0], "cats"
    before = [r[0] for r in search(db, q, text)]
    mid = before[2]
    for _ in range(5):
        db.execute("SELECT * FROM interoception_update(ARRAY[%s], 'accepted')", (mid,))
    after = [r[0] for r in search(db, q, text)]
    assert after.index(mid) < before.index(mid)
    top = after[0]
    for _ in range(10):
        db.execute("SELECT * FROM interoception_update(ARRAY[%s], 'rejected')", (top,))
    assert [r[0] for r in search(db, q, text)].index(top) > 0
    assert [r[0] for r in search(db, q, text, feedback=False)] == before
    assert db.execute("SELECT qortex_status()").fetchone()[0]["counters"]["factor_updates"] >= 15


def test_record_edges_and_flush(kb):
    db, ids = kb
    a, b, c = ids[0], ids[1], ids[3]  # [1,0,0], [0.9,0.1,0], [0.7,0.7,0]
    for _ in range(3):
        n = db.execute("SELECT interoception_record_edges('kb', %s, 0.7)",
                       ([a, b, c, ids[4]],)).fetchone()[0]
        assert n == 3  # a-b 0.994, a-c 0.707, b-c 0.78; nothing with [0,0,1]
    rows = db.execute("SELECT src_id, tgt_id, hit_count, jsonb_array_length(scores) "
                      "FROM qortex.interoception_edge_buffer ORDER BY 1, 2").fetchall()
    pairs = {(min(x, y), max(x, y)) for x, y in [(a, b), (a, c), (b, c)]}
    assert {(r[0], r[1]) for r in rows} == pairs and all(r[2] == 3 and r[3] == 3 for r in rows)
    promoted = db.execute("SELECT src_id, tgt_id, hits, avg_score "
                          "FROM interoception_flush(3, 0.75)").fetchall()
    assert {(p[0], p[1]) for p in promoted} == pairs - {(min(a, c), max(a, c))}
    ab = next(p for p in promoted if {p[0], p[1]} == {a, b})
    assert ab[3] == pytest.approx(0.9 / math.sqrt(0.82), abs=1e-6)
    assert db.execute("SELECT count(*) FROM qortex.interoception_edge_buffer").fetchone()[0] == 1
    edges = db.execute("SELECT relation, hit_count FROM qortex.interoception_edges").fetchall()
    assert edges == [("SIMILAR_TO", 3)] * 2
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="not in collection"):
        db.execute("SELECT interoception_record_edges('kb', ARRAY['999999', %s])", (a,))


def test_edge_scores_are_bounded(kb):
    db, ids = kb
    for _ in range(40):
        db.execute("SELECT interoception_record_edges('kb', %s, 0.9)", ([ids[0], ids[1]],))
    assert db.execute("SELECT hit_count, jsonb_array_length(scores) "
                      "FROM qortex.interoception_edge_buffer").fetchone() == (40, 32)


def test_feedback_with_a_query_id_counts_once_per_query_and_node(db):
    def upd(outcome, q):
        return db.execute("SELECT node_id, weight, delta FROM interoception_update("
                          "ARRAY['n'], %s, %s)", (outcome, q)).fetchall()
    assert upd("rejected", "q1") == [("n", 0.95, pytest.approx(-0.05))]
    assert upd("rejected", "q1") == [("n", 0.95, 0.0)]      # repeated: nothing
    assert upd("rejected", "q2") == [("n", 0.9, pytest.approx(-0.05))]  # another query
    assert upd("accepted", "q1") == [("n", 1.05, pytest.approx(0.15))]  # changed: the difference
    assert upd("rejected", None) == [("n", 1.0, pytest.approx(-0.05))]  # no query: counts
    assert db.execute("SELECT query_id, outcome FROM qortex.interoception_feedback "
                      "ORDER BY 1").fetchall() == [("q1", "accepted"), ("q2", "rejected")]


def test_graph_boost_passes_each_seed_along_its_20_strongest_edges(kb):
    db, ids = kb
    cat = ids[0]
    hub = []
    for i in range(25):
        d = db.execute("SELECT qortex_ingest('kb', %s, %s)",
                       (Jsonb({"metadata": {"kind": "pet" if i % 2 else "other"}}),
                        Jsonb([{"content": f"filler {i}", "embedding": [0, 0, 1]}]))).fetchone()[0]
        hub.append(str(db.execute("SELECT id FROM qortex.kb_chunks WHERE document_id = %s",
                                  (d,)).fetchone()[0]))
    edges = [(n, (i + 1) / 100) for i, n in enumerate(hub)]
    # ids that are no rows of this collection: not a bigint, and a bigint with no row
    edges += [("h-not-an-id", 0.99), ("999999999", 0.98)]
    for i, (n, conf) in enumerate(edges):  # stored either way round
        a, b = (cat, n) if i % 2 else (n, cat)
        db.execute("INSERT INTO qortex.interoception_edges (src_id, tgt_id, confidence, hit_count) "
                   "VALUES (%s, %s, %s, 3)", (a, b, conf))
    rows = search(db, None, "purr", k=50, graph=True)
    assert rows[0][0] == cat
    # the cat's 20 strongest edges lead to the 2 non-rows and 18 hub rows; only rows join
    assert [r[0] for r in rows[1:]] == [hub[i] for i in range(24, 6, -1)]
    assert rows[1][4] == pytest.approx(0.5 * rows[0][4] * 0.25)
    assert all(r[2].startswith("filler") for r in rows[1:])
    # a neighbour joins only within the search's filter
    pets = search(db, None, "purr", k=50, graph=True, filter={"kind": "pet"})
    assert [r[0] for r in pets] == [cat] + [hub[i] for i in range(23, 6, -2)]


def test_graph_boost_spreads_over_promoted_edges(kb):
    db, ids = kb
    cat, quantum = ids[0], ids[4]
    plain = search(db, None, "purr")
    assert [r[0] for r in plain] == [cat]
    db.execute("INSERT INTO qortex.interoception_edges (src_id, tgt_id, confidence, hit_count) "
               "VALUES (%s, %s, 0.8, 3)", (min(cat, quantum), max(cat, quantum)))
    assert search(db, None, "purr") == plain  # off by default
    rows = search(db, None, "purr", graph=True)
    assert [r[0] for r in rows] == [cat, quantum]
    assert rows[0][4] == plain[0][4]
    assert rows[1][4] == pytest.approx(0.5 * plain[0][4] * 0.8)
    assert (rows[1][5], rows[1][7]) == (None, None)
    heavier = search(db, None, "purr", graph=True, graph_weight=2)
    assert heavier[0][0] == quantum and heavier[0][4] == pytest.approx(2 * plain[0][4] * 0.8)
