"""A collection's text index, through the collection's functions: the qortex_bm25 index its
registration finds or creates (on the stored tsvector column, or on to_tsvector(config,
content) for a table without one), kept current by the writer's own statement (INSERT,
UPDATE, DELETE, COPY, TRUNCATE, rollback), MVCC-correct, exact BM25, used under user scopes
and row-level security (a filter reads GIN within the filter);
qortex_refresh_text_index rebuilds or creates it, qortex_check_text_index compares it with
the table; a collection that cannot have one reads GIN and says why."""
import random

import psycopg
import pytest
from psycopg.types.json import Jsonb

from conftest import connect
from test_search import bm25_reference, search

WORDS = ("cat dog bird fish mouse horse cow sheep goat duck owl fox wolf bear deer frog "
         "toad newt crab seal whale shark eel squid clam snail slug worm bee ant wasp moth").split()


def make_docs(db, n=600, seed=1, table="docs", start=1, tsvector=True, register=True):
    """A table of n rows of random words, ids start.., users u0..u9, 10% global; registered
    (with a stored tsvector column, or with the content alone)."""
    rng = random.Random(seed)
    if start == 1:
        fts = (", fts tsvector GENERATED ALWAYS AS (to_tsvector('english', body)) STORED"
               if tsvector else "")
        db.execute(f"""CREATE TABLE {table} (id int PRIMARY KEY, body text, emb vector(3),
                       owner text, shared boolean, meta jsonb{fts})""")
    rows = []
    for i in range(start, start + n):
        words = rng.choices(WORDS[:8], k=3) + rng.choices(WORDS, k=rng.randrange(3, 30))
        rows.append((i, " ".join(words), "[1,0,0]", f"u{i % 10}", i % 10 == 0,
                     Jsonb({"p": i % 7 == 0})))
    with db.cursor() as cur:
        cur.executemany(f"INSERT INTO {table} VALUES (%s, %s, %s, %s, %s, %s)", rows)
    if start == 1 and register:
        spec = {"id": "id", "embedding": "emb", "content": "body", "user_id": "owner",
                "is_global": "shared", "metadata": "meta"}
        if tsvector:
            spec["tsvector"] = "fts"
        db.execute("SELECT qortex_register_collection(%s, %s, %s)", (table, table, Jsonb(spec)))


def text_leg(db, coll="docs"):
    return db.execute("SELECT details->'text_leg' FROM qortex_collections() WHERE name = %s",
                      (coll,)).fetchone()[0]


def check(db, coll="docs"):
    report = db.execute("SELECT qortex_check_text_index(%s)", (coll,)).fetchone()[0]
    assert report["ok"], report
    return report


def exact(db, query, table="docs"):
    ref = bm25_reference(db, table, query)
    return sorted(ref, key=lambda i: (-ref[i], i)), ref


def same_as_reference(db, query, k=10, coll="docs", table="docs", **opts):
    rows = search(db, None, query, k=k, coll=coll, **opts)
    order, ref = exact(db, query, table)
    assert [r[0] for r in rows] == order[:k]
    for r in rows:
        assert r[8] == pytest.approx(ref[r[0]], rel=1e-9)
    return rows


def plans(db):
    notes = []
    db.add_notice_handler(lambda d: notes.append(d.message_detail or ""))
    db.execute("SET qortex.debug_plans = on")
    return notes


@pytest.mark.parametrize("tsvector", [True, False], ids=["tsvector column", "content only"])
def test_registration_creates_the_index_and_searches_are_exact(db, tsvector):
    notices = []
    db.add_notice_handler(lambda d: notices.append(d.message_primary))
    make_docs(db, tsvector=tsvector)
    assert any("created the qortex_bm25 index" in n for n in notices), notices
    leg = text_leg(db)
    index = leg["bm25_index"]["name"]
    assert leg["bm25_index"]["user_scope"] is True and leg["bm25_index"]["global_rows"] is True
    key = "fts" if tsvector else "to_tsvector('english'::regconfig, body)"
    assert key in db.execute("SELECT pg_get_indexdef(%s::regclass)", (index,)).fetchone()[0]
    assert db.execute("SELECT text_index FROM qortex_collections() WHERE name = 'docs'"
                      ).fetchone()[0] == index
    table = "docs" if tsvector else \
        "(SELECT id, to_tsvector('english', body) AS fts FROM docs) AS d"
    notes = plans(db)
    for q in ["cat dog", "whale shark squid", "bee ant wasp moth worm", "owl"]:
        same_as_reference(db, q, k=20, table=table)
        assert f"qortex_bm25 index {index}" in notes[-1], notes[-1]
    # the GIN path (or to_tsvector on every row) ranks the same rows
    db.execute("SET qortex.use_text_index = off")
    off = search(db, None, "cat whale moth", k=20, coll="docs")
    assert "qortex_bm25" not in notes[-1]
    db.execute("RESET qortex.use_text_index")
    on = search(db, None, "cat whale moth", k=20, coll="docs")
    assert [r[0] for r in on] == [r[0] for r in off]
    report = check(db)
    assert report["index"] == index and report["rows"] == report["indexed"] == 600
    # a refresh is a REINDEX of that index: the same index, the same results
    out = db.execute("SELECT qortex_refresh_text_index('docs')").fetchone()[0]
    assert out["built"] is True and out["created"] is False and out["index"] == index
    assert search(db, None, "cat whale moth", k=20, coll="docs") == on
    # no triggers on the user's table, no tables of qortex's own
    assert db.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'docs'::regclass "
                      "AND NOT tgisinternal").fetchone()[0] == 0
    assert db.execute("SELECT to_regnamespace('qortex_internal')").fetchone()[0] is None


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
    db.execute("DELETE FROM docs WHERE id = 1001")
    assert search(db, None, "giraffe", coll="docs") == []
    db.execute("VACUUM docs")
    for q in ["cat", "stripes zebra dog", "fish"]:
        same_as_reference(db, q, k=15)
    check(db)
    db.execute("TRUNCATE docs")
    assert search(db, None, "cat", coll="docs") == []
    assert check(db)["indexed"] == 0
    db.execute("INSERT INTO docs VALUES (1, 'cat', '[1,0,0]')")
    assert [r[0] for r in search(db, None, "cat", coll="docs")] == ["1"]


def test_a_search_sees_its_snapshot(db):
    make_docs(db, n=100)
    index = text_leg(db)["bm25_index"]["name"]
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
        # the write buffer into a segment, under the reader's snapshot
        writer.execute("SELECT qortex_bm25_flush(%s)", (index,))
        assert [r[0] for r in search(db, None, "quokka", coll="docs")] == ["500"]
        assert "1" not in [r[0] for r in search(db, None, word, k=200, coll="docs")]
        # the repeatable-read reader still sees the table as it was
        assert search(reader, None, "quokka", coll="docs") == []
        assert "1" in [r[0] for r in search(reader, None, word, k=200, coll="docs")]
        reader.rollback()
    check(db)


def test_user_scope_and_row_level_security_read_the_index_a_filter_reads_gin(db):
    make_docs(db, n=600)
    notices = plans(db)
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
        assert ("qortex_bm25 index" in notices[-1]) != filtered, notices[-1]
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
            assert "qortex_bm25 index" in notices[-1]
            assert rows and all(int(r[0]) % 10 == 3 for r in rows)
    finally:
        db.execute("DROP POLICY IF EXISTS mine ON docs")
        db.execute("DROP OWNED BY qortex_it_u3")
        db.execute("DROP ROLE qortex_it_u3")


def test_writers_need_no_rights_beyond_the_table(db):
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


def test_a_table_its_registrant_does_not_own_reads_gin_until_its_owner_adds_the_index(db):
    make_docs(db, n=120, register=False)
    db.execute("DROP ROLE IF EXISTS qortex_it_reg")
    db.execute("CREATE ROLE qortex_it_reg")
    db.execute("GRANT SELECT ON docs TO qortex_it_reg")
    db.execute("SELECT qortex_grant('qortex_it_reg')")
    # (registering writes qortex's catalog, which qortex_grant does not open)
    db.execute("GRANT INSERT, UPDATE, DELETE ON qortex.collections TO qortex_it_reg")
    notices = []
    db.add_notice_handler(lambda d: notices.append((d.message_primary, d.message_hint)))
    try:
        with db.transaction():
            db.execute("SET LOCAL ROLE qortex_it_reg")
            db.execute("""SELECT qortex_register_collection('docs', 'docs', '{"id": "id",
                          "embedding": "emb", "content": "body", "tsvector": "fts",
                          "user_id": "owner"}')""")
            msg, hint = notices[-1]
            assert "no qortex_bm25 index on public.docs" in msg and "owner" in msg, msg
            assert hint == "as the table's owner: CREATE INDEX ON public.docs USING qortex_bm25 " \
                           "(fts, owner)", hint
            with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as e:
                with db.transaction():
                    db.execute("SELECT qortex_refresh_text_index('docs')")
            assert "CREATE INDEX ON public.docs USING qortex_bm25" in e.value.diag.message_hint
            with pytest.raises(psycopg.errors.UndefinedObject) as e:
                with db.transaction():
                    db.execute("SELECT qortex_check_text_index('docs')")
            assert "qortex_refresh_text_index('docs')" in e.value.diag.message_hint
        leg = text_leg(db)
        assert leg["bm25_index"]["name"] is None and "qortex_bm25" in leg["bm25_index"]["hint"]
        notes = plans(db)
        gin = search(db, None, "cat owl", k=10, coll="docs", user_id="u3")
        assert "GIN" in notes[-1], notes[-1]
        # the owner creates it; searches read it at once
        out = db.execute("SELECT qortex_refresh_text_index('docs')").fetchone()[0]
        assert out["created"] is True
        assert search(db, None, "cat owl", k=10, coll="docs", user_id="u3") == gin
        assert f"qortex_bm25 index {out['index']}" in notes[-1], notes[-1]
        assert text_leg(db)["bm25_index"]["name"] == out["index"]
        check(db)
    finally:
        db.execute("DROP OWNED BY qortex_it_reg")
        db.execute("DROP ROLE qortex_it_reg")


def test_bm25_index_false_registers_without_it(db):
    make_docs(db, n=60, register=False)
    notices = []
    db.add_notice_handler(lambda d: notices.append(d.message_primary))
    db.execute("""SELECT qortex_register_collection('docs', 'docs', '{"id": "id",
                  "embedding": "emb", "content": "body", "tsvector": "fts",
                  "bm25_index": false}')""")
    assert not any("qortex_bm25" in n for n in notices), notices
    assert db.execute("SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                      "JOIN pg_am a ON a.oid = c.relam WHERE i.indrelid = 'docs'::regclass "
                      "AND a.amname = 'qortex_bm25'").fetchone()[0] == 0
    leg = text_leg(db)
    assert leg["bm25_index"]["name"] is None and leg["bm25_index"]["reason"].startswith(
        "none on the table")
    assert 'CREATE INDEX ON public.docs USING gin ("fts")' in leg["hint"], leg["hint"]
    notes = plans(db)
    assert search(db, None, "cat", k=5, coll="docs") and "GIN" in notes[-1]


def test_dropping_a_registered_collection_keeps_its_tables_index_and_says_so(db):
    make_docs(db, n=20)
    index = text_leg(db)["bm25_index"]["name"]
    notices = []
    db.add_notice_handler(lambda d: notices.append((d.message_primary, d.message_hint)))
    db.execute("SELECT qortex_drop_collection('docs')")
    assert (f"qortex_drop_collection: the qortex_bm25 index public.{index} stays on public.docs",
            "DROP INDEX it if nothing else reads it") in notices, notices
    db.execute("INSERT INTO docs VALUES (100, 'aardvark', '[1,0,0]')")
    # registered again, it is found, not made twice
    db.execute("""SELECT qortex_register_collection('docs', 'docs', '{"id": "id",
                  "embedding": "emb", "content": "body", "tsvector": "fts",
                  "user_id": "owner", "is_global": "shared"}')""")
    assert text_leg(db)["bm25_index"]["name"] == index
    assert [r[0] for r in search(db, None, "aardvark", coll="docs")] == ["100"]
