"""qortex's own BM25 index in tables (what a collection registered with "bm25_index": false,
or without a stored tsvector column, gets; see test_search_bm25_am.py for the qortex_bm25
index collections get otherwise): built with it, kept current by the writer's own
transaction (INSERT, UPDATE, DELETE, COPY, TRUNCATE, rollback), MVCC-correct, exact BM25
over the current statistics, used under user scopes and row-level security (a filter reads
GIN within the filter), and checked against the table by qortex_check_text_index."""
import random

import psycopg
import pytest
from psycopg.types.json import Jsonb

from conftest import connect
from test_search import bm25_reference, search

WORDS = ("cat dog bird fish mouse horse cow sheep goat duck owl fox wolf bear deer frog "
         "toad newt crab seal whale shark eel squid clam snail slug worm bee ant wasp moth").split()


def make_docs(db, n=600, seed=1, table="docs", start=1):
    """A registered table of n rows of random words, ids start.., users u0..u9, 10% global."""
    rng = random.Random(seed)
    if start == 1:
        db.execute(f"""CREATE TABLE {table} (id int PRIMARY KEY, body text, emb vector(3),
                       owner text, shared boolean, meta jsonb,
                       fts tsvector GENERATED ALWAYS AS (to_tsvector('english', body)) STORED)""")
    rows = []
    for i in range(start, start + n):
        words = rng.choices(WORDS[:8], k=3) + rng.choices(WORDS, k=rng.randrange(3, 30))
        rows.append((i, " ".join(words), "[1,0,0]", f"u{i % 10}", i % 10 == 0,
                     Jsonb({"p": i % 7 == 0})))
    with db.cursor() as cur:
        cur.executemany(f"INSERT INTO {table} VALUES (%s, %s, %s, %s, %s, %s)", rows)
    if start == 1:
        db.execute(f"""SELECT qortex_register_collection('{table}', '{table}', '{{"id": "id",
                       "embedding": "emb", "content": "body", "tsvector": "fts",
                       "user_id": "owner", "is_global": "shared", "metadata": "meta",
                       "bm25_index": false}}')""")


def index_state(db, coll="docs"):
    return db.execute("SELECT details->'text_leg'->'text_index' FROM qortex_collections() "
                      "WHERE name = %s", (coll,)).fetchone()[0]


def check(db, coll="docs"):
    report = db.execute("SELECT qortex_check_text_index(%s)", (coll,)).fetchone()[0]
    assert report["ok"], report
    return report


def exact(db, query, table="docs"):
    ref = bm25_reference(db, table, query)
    return sorted(ref, key=lambda i: (-ref[i], i)), ref


def same_as_reference(db, query, k=10, coll="docs", **opts):
    rows = search(db, None, query, k=k, coll=coll, **opts)
    order, ref = exact(db, query, coll)
    assert [r[0] for r in rows] == order[:k]
    for r in rows:
        assert r[8] == pytest.approx(ref[r[0]], rel=1e-9)
    return rows


def test_built_with_the_collection_and_exact(db):
    make_docs(db)
    state = index_state(db)
    assert state["built"] is True and state["rows"] == 600 and state["size_bytes"] > 0
    for q in ["cat dog", "whale shark squid", "bee ant wasp moth worm", "owl"]:
        same_as_reference(db, q, k=20)
    # the GIN path ranks the same rows
    db.execute("SET qortex.use_text_index = off")
    off = search(db, None, "cat whale moth", k=20, coll="docs")
    db.execute("RESET qortex.use_text_index")
    on = search(db, None, "cat whale moth", k=20, coll="docs")
    assert [r[0] for r in on] == [r[0] for r in off]
    check(db)
    # the build leaves its blocks packed: no page space held by versions it rewrote
    for _ in range(2):
        packed = db.execute(
            "SELECT pg_relation_size('qortex_internal.docs__blocks')::float8"
            "       / sum(pg_column_size(b.*)) FROM qortex_internal.docs__blocks b").fetchone()[0]
        assert packed < 1.25, packed
        db.execute("SELECT qortex_refresh_text_index('docs')")


def test_every_write_is_indexed_in_the_writers_transaction(db):
    make_docs(db, n=200)
    db.execute("INSERT INTO docs VALUES (1001, 'okapi cat', '[1,0,0]', 'u1', false, '{}')")
    assert [r[0] for r in search(db, None, "okapi", coll="docs")] == ["1001"]
    with db.cursor().copy("COPY docs (id, body, emb) FROM STDIN") as cp:
        for i in range(1002, 1010):
            cp.write_row((i, f"zebra stripes {i}", "[1,0,0]"))
    assert len(search(db, None, "stripes", coll="docs")) == 8
    # rolled back: no trace
    with pytest.raises(psycopg.errors.DivisionByZero):
        with db.transaction():
            db.execute("INSERT INTO docs VALUES (1100, 'unicorn', '[1,0,0]')")
            db.execute("SELECT 1 / 0")
    assert search(db, None, "unicorn", coll="docs") == []
    # an update of the text moves the row from the old words to the new
    db.execute("UPDATE docs SET body = 'giraffe neck' WHERE id = 1001")
    assert search(db, None, "okapi", coll="docs") == []
    assert [r[0] for r in search(db, None, "giraffe", coll="docs")] == ["1001"]
    # an update of something else touches nothing in the index
    before = db.execute("SELECT count(*) FROM qortex_internal.docs__docs").fetchone()[0]
    db.execute("UPDATE docs SET emb = '[0,1,0]' WHERE id < 50")
    assert db.execute("SELECT count(*) FROM qortex_internal.docs__docs").fetchone()[0] == before
    db.execute("DELETE FROM docs WHERE id = 1001")
    assert search(db, None, "giraffe", coll="docs") == []
    for q in ["cat", "stripes zebra dog", "fish"]:
        same_as_reference(db, q, k=15)
    check(db)
    db.execute("TRUNCATE docs")
    assert search(db, None, "cat", coll="docs") == []
    assert index_state(db)["rows"] == 0
    check(db)
    db.execute("INSERT INTO docs VALUES (1, 'cat', '[1,0,0]')")
    assert [r[0] for r in search(db, None, "cat", coll="docs")] == ["1"]


def test_merges_fold_rows_into_blocks_and_lose_nothing(db):
    db.execute("SET qortex.text_index_merge_rows = 16")
    make_docs(db, n=400)
    for start in range(401, 1001, 100):
        make_docs(db, n=100, seed=start, start=start)
    state = index_state(db)
    assert state["rows"] == 1000 and state["unmerged"] < 16, state
    # 'cat' is in several blocks now
    assert db.execute("SELECT count(*) FROM qortex_internal.docs__blocks WHERE lexeme = 'cat'"
                      ).fetchone()[0] > 2
    db.execute("DELETE FROM docs WHERE id % 3 = 0")
    db.execute("UPDATE docs SET body = body || ' phoenix' WHERE id % 5 = 0")
    state = index_state(db)
    assert state["deleted"] < 16 and state["unmerged"] < 16, state
    for q in ["cat dog", "phoenix", "eel squid clam", "moth"]:
        same_as_reference(db, q, k=25)
    report = check(db)
    assert report["rows"] == report["indexed"] == 667


def test_a_search_sees_its_snapshot(db):
    make_docs(db, n=100)
    with connect(db.info.dbname, autocommit=True) as writer, \
            connect(db.info.dbname, autocommit=False) as reader:
        writer.execute("BEGIN")
        writer.execute("INSERT INTO docs VALUES (500, 'quokka', '[1,0,0]')")
        writer.execute("DELETE FROM docs WHERE id = 1")
        first = db.execute("SELECT body FROM docs WHERE id = 1").fetchone()[0]
        word = first.split()[0]
        assert search(db, None, "quokka", coll="docs") == []
        assert "1" in [r[0] for r in search(db, None, word, k=200, coll="docs")]
        reader.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        assert search(reader, None, "quokka", coll="docs") == []
        writer.execute("COMMIT")
        writer.execute("SET qortex.text_index_merge_rows = 16")
        writer.execute("INSERT INTO docs SELECT i, 'filler cat', '[1,0,0]' "
                       "FROM generate_series(600, 640) i")  # merges
        assert [r[0] for r in search(db, None, "quokka", coll="docs")] == ["500"]
        assert "1" not in [r[0] for r in search(db, None, word, k=200, coll="docs")]
        # the repeatable-read reader still sees the table as it was
        assert search(reader, None, "quokka", coll="docs") == []
        assert "1" in [r[0] for r in search(reader, None, word, k=200, coll="docs")]
        reader.rollback()
    check(db)


def test_user_scope_and_row_level_security_read_the_index_a_filter_reads_gin(db):
    make_docs(db, n=600)
    notices = []
    db.add_notice_handler(lambda d: notices.append(d.message_detail or ""))
    db.execute("SET qortex.debug_plans = on")
    rows = {r[0]: r for r in db.execute("SELECT id::text, owner, shared, meta FROM docs")}
    order, ref = exact(db, "cat dog owl")
    for opts in [{"user_id": "u3"}, {"filter": {"p": True}},
                 {"user_id": "u4", "filter": {"p": True}}]:
        def admitted(i, opts=opts):
            _, owner, shared, meta = rows[i]
            return ((shared or owner == opts.get("user_id", owner))
                    and meta["p"] >= opts.get("filter", {}).get("p", False))
        got = search(db, None, "cat dog owl", k=30, coll="docs", **opts)
        # a filter is read within the filter, through GIN; a user scope from the index
        filtered = "filter" in opts
        assert ("BM25 index" in notices[-1]) != filtered, notices[-1]
        assert ("GIN" in notices[-1]) == filtered, notices[-1]
        want = [i for i in order if admitted(i)][:30]
        if filtered:
            # GIN's statistics are ANALYZE's estimates: only rows the filter admits, nearly
            # the exact ranking
            assert len(got) == len(want) and all(admitted(r[0]) for r in got), opts
            assert len({r[0] for r in got} & set(want)) >= 0.8 * len(want), opts
            db.execute("SET qortex.use_text_index = off")
            assert search(db, None, "cat dog owl", k=30, coll="docs", **opts) == got
            db.execute("RESET qortex.use_text_index")
            continue
        # the exact BM25 of the whole collection, within the scope
        assert [r[0] for r in got] == want, opts
        for r in got:
            assert r[8] == pytest.approx(ref[r[0]], rel=1e-9)
    # row-level security: a reader sees only the rows policies let it see
    db.execute("DROP ROLE IF EXISTS qortex_it_u3")
    db.execute("CREATE ROLE qortex_it_u3")
    try:
        db.execute("GRANT SELECT ON docs TO qortex_it_u3")
        db.execute("GRANT USAGE ON SCHEMA qortex TO qortex_it_u3")
        db.execute("GRANT SELECT ON ALL TABLES IN SCHEMA qortex TO qortex_it_u3")
        db.execute("ALTER TABLE docs ENABLE ROW LEVEL SECURITY")
        db.execute("CREATE POLICY mine ON docs TO qortex_it_u3 USING (owner = 'u3')")
        with db.transaction():
            db.execute("SET LOCAL ROLE qortex_it_u3")
            rows = search(db, None, "cat dog owl", k=30, coll="docs")
            assert "BM25 index" in notices[-1]
            assert rows and all(int(r[0]) % 10 == 3 for r in rows)
            # the index's own tables are not readable
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                with db.transaction():
                    db.execute("SELECT * FROM qortex_internal.docs__docs")
    finally:
        db.execute("DROP POLICY IF EXISTS mine ON docs")
        db.execute("DROP OWNED BY qortex_it_u3")
        db.execute("DROP ROLE qortex_it_u3")


def test_writers_need_no_rights_on_the_index(db):
    make_docs(db, n=50)
    db.execute("DROP ROLE IF EXISTS qortex_it_writer")
    db.execute("CREATE ROLE qortex_it_writer")
    try:
        db.execute("GRANT INSERT, UPDATE, DELETE, SELECT ON docs TO qortex_it_writer")
        with db.transaction():
            db.execute("SET LOCAL ROLE qortex_it_writer")
            db.execute("INSERT INTO docs VALUES (900, 'wombat', '[1,0,0]')")
            db.execute("UPDATE docs SET body = 'wombat burrow' WHERE id = 900")
            db.execute("DELETE FROM docs WHERE id = 1")
    finally:
        db.execute("DROP OWNED BY qortex_it_writer")
        db.execute("DROP ROLE qortex_it_writer")
    assert [r[0] for r in search(db, None, "burrow", coll="docs")] == ["900"]
    check(db)


def test_check_says_what_differs(db):
    make_docs(db, n=80)
    check(db)
    # damage it behind qortex's back: a row's postings go missing, a row appears twice
    db.execute("DELETE FROM qortex_internal.docs__docs WHERE id = '5'")
    db.execute("SET session_replication_role = replica")  # triggers off
    db.execute("INSERT INTO docs VALUES (81, 'ghost row', '[1,0,0]')")
    db.execute("RESET session_replication_role")
    report = db.execute("SELECT qortex_check_text_index('docs')").fetchone()[0]
    assert report["ok"] is False
    assert report["rows_missing"] == 2
    problems = {p.get("row"): p["problem"] for p in report["problems"] if "row" in p}
    assert problems["5"] == problems["81"] == "not in the index"
    db.execute("SELECT qortex_refresh_text_index('docs')")
    check(db)


def test_tables_without_a_unique_id_read_the_gin_index(db):
    db.execute("CREATE TABLE loose (id int, body text, emb vector(3))")
    db.execute("INSERT INTO loose VALUES (1, 'cat', '[1,0,0]'), (2, 'cat dog', '[1,0,0]')")
    db.execute("""SELECT qortex_register_collection('loose', 'loose', '{"id": "id",
                  "embedding": "emb", "content": "body"}')""")
    state = index_state(db, "loose")
    assert state["built"] is False and "unique index" in state["hint"]
    assert len(search(db, None, "cat", coll="loose")) == 2
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as e:
        db.execute("SELECT qortex_refresh_text_index('loose')")
    assert "CREATE UNIQUE INDEX" in e.value.diag.message_hint


def test_drop_collection_drops_the_index_and_its_triggers(db):
    make_docs(db, n=20)
    db.execute("SELECT qortex_drop_collection('docs')")
    assert db.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'docs'::regclass "
                      "AND NOT tgisinternal").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM pg_class c JOIN pg_namespace n "
                      "ON n.oid = c.relnamespace WHERE n.nspname = 'qortex_internal'"
                      ).fetchone()[0] == 0
    db.execute("INSERT INTO docs VALUES (100, 'after', '[1,0,0]')")  # no trigger left
