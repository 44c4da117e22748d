"""hybrid_search's text leg over a registered table that has a qortex_bm25 index on its
tsvector column: the index is read from Rust (its top-k of TIDs), then the rows the caller
may see. The leg must give what `ORDER BY tsv <@> qortex_bm25_query(...) LIMIT k` gives, with
the same scores, under a user scope (the index's scope column), with rows not yet committed,
deleted, or hidden by row-level security, and say in qortex.debug_plans what it read."""
import random

import psycopg
import pytest
from psycopg.types.json import Jsonb

from conftest import connect

WORDS = [f"w{i}" for i in range(150)]
QUERIES = ["w1 w7 w30", "w2", "w5 w9 w100 w140", "w3 w4", "w149 w0 w12", "w60 w61 w62 w63"]
COLUMNS = {"id": "id", "embedding": "emb", "content": "body", "tsvector": "tsv",
           "user_id": "owner"}


def make(db, scope=True, rows=800, extra=""):
    """t: rows of random words (Zipf-like, so scores rarely tie), owners u0..u9, a
    qortex_bm25 index on (tsv, owner) or (tsv), registered as collection t."""
    db.execute(f"""CREATE TABLE t (id int PRIMARY KEY, body text NOT NULL, owner text,
                   emb vector(3) NOT NULL,
                   tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', body)) STORED{extra})""")
    rnd = random.Random(7)
    weights = [1 / (i + 1) for i in range(len(WORDS))]
    with db.cursor() as c:
        c.executemany("INSERT INTO t (id, body, owner, emb) VALUES (%s, %s, %s, '[1,0,0]')",
                      [(i, " ".join(rnd.choices(WORDS, weights, k=rnd.randint(3, 60))),
                        f"u{i % 10}") for i in range(1, rows + 1)])
    db.execute("CREATE INDEX t_bm25 ON t USING qortex_bm25 (tsv{})".format(
        ", owner" if scope else ""))
    db.execute("SELECT qortex_register_collection('t', 't', %s)", (Jsonb(COLUMNS),))


def leg(conn, text, k=10, **opts):
    """The text leg's rows (id, score) in its order, and the debug_plans lines."""
    return leg_of(conn, "t", text, k, **opts)


def leg_of(conn, coll, text, k=10, **opts):
    notices = []
    handler = lambda d: notices.append(d.message_detail or "")  # noqa: E731
    conn.add_notice_handler(handler)
    conn.execute("SET qortex.debug_plans = on")
    try:
        rows = conn.execute(
            "SELECT id, text_rank, text_score FROM hybrid_search(%s, NULL, %s, %s, %s)",
            (coll, text, k, Jsonb(opts))).fetchall()
    finally:
        conn.remove_notice_handler(handler)
    conn.execute("SET qortex.debug_plans = off")
    rows.sort(key=lambda r: r[1])
    return [(r[0], r[2]) for r in rows], "\n".join(notices)


def exact(conn, text, k=10, where=""):
    """What the index scan gives from SQL: (id, score), best first."""
    return [(str(i), s) for i, s in conn.execute(
        f"SELECT id, -(tsv <@> qortex_bm25_query('english', %s)) FROM t {where} "
        f"ORDER BY tsv <@> qortex_bm25_query('english', %s) LIMIT %s", (text, text, k))]


def same(got, want):
    """Equal scores in order, and equal ids but among rows tied at the last score."""
    assert len(got) == len(want), (got, want)
    assert [round(s, 9) for _, s in got] == [round(s, 9) for _, s in want], (got, want)
    last = want[-1][1] if want else None
    assert {i for i, s in got if round(s, 9) != round(last, 9)} == \
        {i for i, s in want if round(s, 9) != round(last, 9)}, (got, want)


def bm25_index(db):
    return db.execute("SELECT details->'text_leg'->'bm25_index' FROM qortex_collections() "
                      "WHERE name = 't'").fetchone()[0]


def test_the_text_leg_reads_the_tables_qortex_bm25_index_and_gives_its_top_k(db):
    make(db)
    assert bm25_index(db) == {"name": "t_bm25", "scope_column": "owner", "user_scope": True,
                              "global_rows": False}
    for q in QUERIES:
        for k in (1, 10, 50):
            got, plan = leg(db, q, k)
            same(got, exact(db, q, k))
            assert "qortex_bm25 index t_bm25" in plan, plan
            assert "GIN" not in plan, plan


def test_refreshing_a_collection_on_its_qortex_bm25_index_reindexes_it(db):
    """qortex_refresh_text_index on a collection its qortex_bm25 index serves: a REINDEX of
    that index, no triggers made; searches give what they gave."""
    make(db)
    db.execute("DELETE FROM t WHERE id % 3 = 0")
    before = {q: leg(db, q, 10)[0] for q in QUERIES}
    out = db.execute("SELECT qortex_refresh_text_index('t')").fetchone()[0]
    assert out["method"] == "qortex_bm25" and out["index"] == "t_bm25", out
    assert db.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 't'::regclass "
                      "AND NOT tgisinternal").fetchone()[0] == 0
    info = db.execute("SELECT segments, dead_docs, docs FROM qortex_bm25_info('t_bm25')"
                      ).fetchone()
    assert info[1] == 0 and info[2] == 534, info  # the 534 rows left, no dead ones
    for q in QUERIES:
        # (the rebuilt index's statistics are the live rows': scores change, rows do not
        # beyond ties) the leg equals the index scan's
        same(leg(db, q, 10)[0], exact(db, q, 10))
        assert before[q]


def test_a_user_scope_is_bounded_inside_the_index(db):
    make(db)
    for q in QUERIES:
        for u in ("u0", "u3", "u9"):
            got, plan = leg(db, q, 10, user_id=u)
            same(got, exact(db, q, 10, f"WHERE owner = '{u}'"))
            assert "within the user (owner)" in plan, plan
    # a user with no rows: nothing, not other users' rows
    assert leg(db, "w1", 10, user_id="nobody")[0] == []


def test_rows_not_committed_deleted_or_hidden_by_a_policy_are_not_returned(db, empty_db):
    make(db)
    q = "w1 w7 w30"
    best = exact(db, q, 5)
    # every row visible: the leg's pool (10 for k 5) and one more, read once (the 11th
    # scores below the 10th, so no unread row can tie with it)
    plan = leg(db, q, 5)[1]
    assert "best 11 of the index, 11 of them visible" in plan, plan
    assert plan.count("WHERE ctid = ANY") == 1, plan
    # another session's uncommitted row with the best score there is
    with connect(empty_db) as other:
        other.execute("INSERT INTO t (id, body, owner, emb) VALUES (100000, "
                      "repeat('w1 w7 w30 ', 50), 'u0', '[1,0,0]')")
        got, _ = leg(db, q, 5)
        # (the index's statistics count it, as the scan's do: same scores as the scan now)
        same(got, exact(db, q, 5))
        assert [i for i, _ in got] == [i for i, _ in best]
        other.rollback()
    # deleted rows (not vacuumed: still in the index) give way to the next ones, k of them
    db.execute("DELETE FROM t WHERE id = ANY(%s)", ([int(i) for i, _ in best[:3]],))
    got, plan = leg(db, q, 5)
    same(got, exact(db, q, 5))
    assert len(got) == 5 and not {i for i, _ in got} & {i for i, _ in best[:3]}
    # the leg's pool (10 for k 5) and one more asked first, 7 of them visible (three
    # deleted, one rolled back), then twice as many
    assert "best 22 of the index, 18 of them visible" in plan, plan
    assert plan.count("WHERE ctid = ANY") == 2, plan
    # row-level security: a role that sees only u1's rows gets u1's best
    db.execute("DROP ROLE IF EXISTS qortex_am_reader")
    db.execute("CREATE ROLE qortex_am_reader")
    db.execute("GRANT SELECT ON t TO qortex_am_reader")
    db.execute("GRANT USAGE ON SCHEMA qortex TO qortex_am_reader")
    db.execute("GRANT SELECT ON ALL TABLES IN SCHEMA qortex TO qortex_am_reader")
    db.execute("ALTER TABLE t ENABLE ROW LEVEL SECURITY")
    db.execute("CREATE POLICY mine ON t FOR SELECT TO qortex_am_reader USING (owner = 'u1')")
    try:
        db.execute("SET ROLE qortex_am_reader")
        got, _ = leg(db, q, 10)
        db.execute("RESET ROLE")
        same(got, exact(db, q, 10, "WHERE owner = 'u1'"))
        # and a role without SELECT is refused before anything is read
        db.execute("REVOKE SELECT ON t FROM qortex_am_reader")
        db.execute("SET ROLE qortex_am_reader")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            leg(db, q, 10)
    finally:
        db.execute("RESET ROLE")
        db.execute("DROP OWNED BY qortex_am_reader")
        db.execute("DROP ROLE qortex_am_reader")


def test_searches_the_index_cannot_bound_read_the_other_paths(db):
    """A user scope on an index without a scope column, and a search switched off from the
    text index: the leg reads the collection's other path (GIN), and says so."""
    make(db, scope=False)
    assert bm25_index(db) == {"name": "t_bm25", "scope_column": None, "user_scope": False,
                              "global_rows": False}
    got, plan = leg(db, "w1 w7", 10)
    assert "qortex_bm25 index t_bm25" in plan
    got, plan = leg(db, "w1 w7", 10, user_id="u2")
    assert "qortex_bm25" not in plan, plan
    assert got and all(int(i) % 10 == 2 for i, _ in got), got
    db.execute("SET qortex.use_text_index = off")
    got, plan = leg(db, "w1 w7", 10)
    db.execute("RESET qortex.use_text_index")
    assert "qortex_bm25" not in plan, plan
    db.execute("DROP INDEX t_bm25")
    assert bm25_index(db)["name"] is None
    assert "qortex_bm25" not in leg(db, "w1 w7", 10)[1]


def test_a_user_value_no_row_of_an_integer_scope_column_can_have_finds_nothing(db):
    """The scope compares the user column as text (`owner::text = '7'`), on every path: a
    value that is no integer's text ('seven', '007') finds no row, and is no error."""
    db.execute("""CREATE TABLE t (id int PRIMARY KEY, body text NOT NULL, owner int,
                  emb vector(3) NOT NULL,
                  tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', body)) STORED)""")
    db.execute("INSERT INTO t VALUES (1, 'w1 w2', 7, '[1,0,0]'), (2, 'w1', 8, '[1,0,0]')")
    db.execute("CREATE INDEX t_bm25 ON t USING qortex_bm25 (tsv, owner)")
    db.execute("SELECT qortex_register_collection('t', 't', %s)", (Jsonb(COLUMNS),))
    got, plan = leg(db, "w1", 10, user_id="7")
    assert [i for i, _ in got] == ["1"] and "within the user (owner)" in plan, plan
    for value in ("seven", "007", "99999999999"):
        got, plan = leg(db, "w1", 10, user_id=value)
        assert got == [] and "can exist" in plan, plan
        db.execute("SET qortex.use_text_index = off")
        assert leg(db, "w1", 10, user_id=value)[0] == []
        db.execute("RESET qortex.use_text_index")


def registered(db, columns, notices):
    db.add_notice_handler(lambda d: notices.append((d.message_primary, d.message_hint)))
    return db.execute("SELECT qortex_register_collection('r', 'r', %s)",
                      (Jsonb(columns),)).fetchone()[0]


def triggers(db):
    return db.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'r'::regclass "
                      "AND NOT tgisinternal").fetchone()[0]


R = """CREATE TABLE r (id int PRIMARY KEY, body text NOT NULL, owner {owner}, shared boolean,
       emb vector(3) NOT NULL,
       tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', body)) STORED)"""


@pytest.mark.parametrize("owner", ["text", "varchar(20)", "bigint", "uuid"])
def test_registering_a_table_creates_its_qortex_bm25_index_scoped_by_the_user_column(
        db, owner):
    """No qortex_bm25 index on the table: registration creates one on (tsvector, user
    column) and says so (no triggers on the table): rows written
    after are found at once, scoped searches bounded by the index."""
    db.execute(R.format(owner=owner))
    value = {"text": "u{}", "varchar(20)": "u{}", "bigint": "{}",
             "uuid": "00000000-0000-0000-0000-00000000000{}"}[owner]
    db.execute("INSERT INTO r SELECT i, 'w' || (i %% 7) || ' w' || (i %% 3), %s::text::"
               + owner.split("(")[0] + ", false, '[1,0,0]' FROM generate_series(1, 300) i",
               (value.format(0),))
    notices = []
    d = registered(db, dict(COLUMNS, user_id="owner"), notices)
    made = [n for n in notices if "created the qortex_bm25 index" in n[0]]
    assert len(made) == 1 and "bm25_index = false" in made[0][1], notices
    idx = d["text_leg"]["bm25_index"]
    assert idx["scope_column"] == "owner" and idx["user_scope"], d["text_leg"]
    assert db.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s",
                      (idx["name"],)).fetchone()[0].endswith("USING qortex_bm25 (tsv, owner)")
    assert triggers(db) == 0
    db.execute("INSERT INTO r VALUES (1000, 'zebra w1', %s, false, '[1,0,0]')",
               (value.format(1),))
    for user, want in ((value.format(1), ["1000"]), (value.format(0), [])):
        got = db.execute("SELECT id FROM hybrid_search('r', NULL, 'zebra', 5, %s)",
                         (Jsonb({"user_id": user}),)).fetchall()
        assert [g[0] for g in got] == want
    assert [g[0] for g in db.execute(
        "SELECT id FROM hybrid_search('r', NULL, 'zebra', 5)").fetchall()] == ["1000"]


def test_registering_with_bm25_index_false_reads_gin(db):
    db.execute(R.format(owner="text"))
    db.execute("INSERT INTO r VALUES (1, 'w1', 'u1', false, '[1,0,0]')")
    notices = []
    d = registered(db, dict(COLUMNS, user_id="owner", bm25_index=False), notices)
    assert d["text_leg"]["bm25_index"]["name"] is None, d["text_leg"]
    assert "USING qortex_bm25 (tsv, owner)" in d["text_leg"]["bm25_index"]["hint"]
    assert triggers(db) == 0 and not notices
    got, plan = leg_of(db, "r", "w1", 5)
    assert got and "GIN" in plan, plan
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="columns.bm25_index"):
        db.execute("SELECT qortex_register_collection('r2', 'r', %s)",
                   (Jsonb(dict(COLUMNS, bm25_index="yes")),))


@pytest.mark.parametrize("owner", ["text", "varchar(20)", "bigint", "uuid"])
def test_a_table_with_global_rows_gets_an_index_whose_scope_admits_them(db, owner):
    """is_global mapped: the index's scope is the user id as text, '' for global rows, and a
    user's search reads both scopes: the best of the user's rows and the global ones, as SQL
    ranks them."""
    db.execute(R.format(owner=owner))
    value = {"text": "u{}", "varchar(20)": "u{}", "bigint": "{}",
             "uuid": "00000000-0000-0000-0000-00000000000{}"}[owner]
    rnd = random.Random(5)
    weights = [1 / (i + 1) for i in range(len(WORDS))]
    with db.cursor() as c:
        c.executemany(
            f"INSERT INTO r VALUES (%s, %s, %s::{owner}, %s, '[1,0,0]')",
            [(i, " ".join(rnd.choices(WORDS, weights, k=rnd.randint(3, 50))),
              value.format(i % 4), i % 7 == 0) for i in range(1, 501)])
    notices = []
    d = registered(db, dict(COLUMNS, user_id="owner", is_global="shared"), notices)
    idx = d["text_leg"]["bm25_index"]
    assert idx["user_scope"] and idx["global_rows"], d["text_leg"]
    assert any("created the qortex_bm25 index" in n[0] for n in notices), notices
    assert triggers(db) == 0
    for q in QUERIES:
        for u in (value.format(1), value.format(3), "nobody"):
            got, plan = leg_of(db, "r", q, 10, user_id=u)
            want = [(str(i), s) for i, s in db.execute(
                "SELECT id, -(tsv <@> qortex_bm25_query('english', %s)) FROM r "
                "WHERE owner::text = %s OR shared "
                "ORDER BY tsv <@> qortex_bm25_query('english', %s) LIMIT 10", (q, u, q))]
            same(got, want)
            assert "and the global rows" in plan and "qortex_bm25 index" in plan, plan


def test_a_managed_collections_chunks_are_searched_through_its_qortex_bm25_index(db):
    """A managed collection gets a qortex_bm25 index on its chunks, scoped by user with the
    global rows under a scope of their own (no triggers): a user's
    search is the best of their chunks and the global ones, as SQL ranks them."""
    d = db.execute("SELECT qortex_create_collection('m', 3)").fetchone()[0]
    assert d["text_leg"]["bm25_index"] == {
        "name": "m_chunks_bm25", "user_scope": True, "global_rows": True, "scope_column": None}
    assert db.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'qortex.m_chunks'"
                      "::regclass AND NOT tgisinternal").fetchone()[0] == 0
    rnd = random.Random(3)
    weights = [1 / (i + 1) for i in range(len(WORDS))]
    for i in range(120):
        doc = {"user_id": f"u{i % 4}", "is_global": i % 10 == 0}
        chunks = [{"content": " ".join(rnd.choices(WORDS, weights, k=rnd.randint(3, 40))),
                   "embedding": [1, 0, 0]} for _ in range(3)]
        db.execute("SELECT qortex_ingest('m', %s, %s)", (Jsonb(doc), Jsonb(chunks)))

    def sql(q, where, k=10):
        return [(str(i), s) for i, s in db.execute(
            f"SELECT id, -(fts <@> qortex_bm25_query('english', %s)) FROM qortex.m_chunks "
            f"{where} ORDER BY fts <@> qortex_bm25_query('english', %s) LIMIT %s",
            (q, q, k))]

    for q in QUERIES:
        got, plan = leg_of(db, "m", q, 10)
        same(got, sql(q, ""))
        assert "qortex_bm25 index m_chunks_bm25" in plan, plan
        for u in ("u1", "u3", "nobody", ""):
            got, plan = leg_of(db, "m", q, 10, user_id=u)
            same(got, sql(q, f"WHERE user_id = '{u}' OR is_global"))
            assert "and the global rows" in plan or u == "", plan
            assert "qortex_bm25 index m_chunks_bm25" in plan, plan


def test_a_filter_admitting_many_rows_reads_the_index_a_narrow_one_reads_gin(db):
    """Under a filter the index's best rows of the whole collection are checked against
    the filter, asked for about k / share of them at first: that is the filter's top k
    exactly, as SQL ranks it. A filter the planner expects to admit fewer than
    qortex.text_index_min_share of the rows reads GIN within it; so does a filter with a
    user scope."""
    make(db, scope=False, extra=", half int GENERATED ALWAYS AS (id % 2) STORED, "
                                "tenth int GENERATED ALWAYS AS (id % 10) STORED")
    db.execute("SELECT qortex_register_collection('t', 't', %s, replace => true)",
               (Jsonb(dict(COLUMNS, filters=["half", "tenth"])),))
    db.execute("ANALYZE t")
    for q in QUERIES:
        got, plan = leg(db, q, 10, filter={"half": 1})
        same(got, exact(db, q, 10, "WHERE half = 1"))
        assert "qortex_bm25 index t_bm25" in plan and "admit 50%" in plan, plan
        got, plan = leg(db, q, 10, filter={"tenth": 3})
        assert "qortex_bm25" not in plan and "GIN" in plan, plan
        assert {i for i, _ in got} <= {str(i) for i in range(3, 801, 10)}
        # the setting moves the line: at 5% the narrow filter reads the index too
        db.execute("SET qortex.text_index_min_share = 0.05")
        got, plan = leg(db, q, 10, filter={"tenth": 3})
        db.execute("RESET qortex.text_index_min_share")
        same(got, exact(db, q, 10, "WHERE tenth = 3"))
        assert "qortex_bm25 index t_bm25" in plan and "admit 10%" in plan, plan
    got, plan = leg(db, "w1 w7", 10, filter={"half": 1}, user_id="u3")
    assert "qortex_bm25" not in plan, plan
    assert all(int(i) % 10 == 3 and int(i) % 2 == 1 for i, _ in got), got
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        db.execute("SET qortex.text_index_min_share = 1.5")


def test_rows_tied_at_the_kth_score_are_broken_by_id_as_on_the_gin_path(db):
    """Rows tied at the k-th score: the index orders them by where they lie, hybrid_search
    by id; the leg reads on while the index's next rows tie, so it keeps the same rows as
    the GIN path (ties by id), not the first ones written."""
    db.execute("""CREATE TABLE t (id int PRIMARY KEY, body text NOT NULL, owner text,
                  emb vector(3) NOT NULL,
                  tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', body)) STORED)""")
    # written in descending id order: the index meets the highest ids first
    db.execute("INSERT INTO t SELECT i, 'w1 w2', 'u1', '[1,0,0]' FROM generate_series(40, 1, -1) i")
    db.execute("INSERT INTO t SELECT i, 'w3 w4 w5', 'u1', '[1,0,0]' FROM generate_series(41, 60) i")
    db.execute("CREATE INDEX t_bm25 ON t USING qortex_bm25 (tsv)")
    db.execute("SELECT qortex_register_collection('t', 't', %s)", (Jsonb(COLUMNS),))
    for k in (1, 5, 12):
        got, plan = leg(db, "w1", k)
        assert "qortex_bm25 index t_bm25" in plan, plan
        assert [i for i, _ in got] == sorted((str(i) for i in range(1, 41)))[:k]
        db.execute("SET qortex.use_text_index = off")
        assert [i for i, _ in leg(db, "w1", k)[0]] == [i for i, _ in got]
        db.execute("RESET qortex.use_text_index")
