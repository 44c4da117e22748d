"""Every SQL function, called with one bad argument at a time, as an attacker or a careless
caller would: NULL, empty, huge, negative, NaN and infinities, JSON of the wrong shape or
nested too deep, vectors of the wrong dimension or all zeros, quotes and semicolons.
Whatever the value, the call succeeds or fails with a specific SQLSTATE (never XX000, the
internal error), the server survives it, and a failed call changes nothing."""
import math

import psycopg
import pytest
from psycopg.types.json import Jsonb

from conftest import _new_database, connect

DEEP = "[" * 200 + "]" * 200            # beyond serde_json's 128 levels
DEEP_OBJECT = '{"a": ' * 150 + "1" + "}" * 150
HUGE_TEXT = "x" * 200_000
INJECTION = "a'); DROP TABLE qortex.learners; --"

BAD = {
    "text": [None, "", HUGE_TEXT, INJECTION, 'quo"te', "  "],
    "int": [None, 0, -1, 2147483647, -2147483648],
    "bigint": [None, 0, -1, 9223372036854775807],
    "float8": [None, math.nan, math.inf, -math.inf, -1.0, 1e308],
    "jsonb": [None, "[]", '"s"', "3", "{}", DEEP, DEEP_OBJECT, '{"k": [1, {"x": null}]}'],
    "vector": [None, "[1,2]", "[0,0,0]", "[1e30,1e30,1e30]"],
    "text[]": [None, [], [None], ["a"] * 20_000, [INJECTION]],
    "int[]": [None, [], [-1], [None], [2147483647]],
    "regclass": [None, "pg_class", "qortex.learners", "qortex.kb_chunks"],
    "bool": [None],
    "tsvector": [None, "", "'a':1,2,3 'b'", " ".join(f"w{i}" for i in range(20_000))],
    "float8[]": [None, [], [None], [math.nan], [math.inf, -1.0], [1.0] * 20_000],
}

# (function, [(argument type, a valid value)]): each argument in turn gets every bad value
# of its type while the others keep their valid ones
CALLS = [
    ("hybrid_search", [("text", "kb"), ("vector", "[1,0,0]"), ("text", "cats"), ("int", 5),
                       ("jsonb", "{}")]),
    ("interoception_decay", [("float8", 0.9)]),
    ("interoception_flush", [("int", 3), ("float8", 0.75)]),
    ("interoception_record_edges", [("text", "kb"), ("text[]", ["1", "2"]), ("float8", 0.7)]),
    ("interoception_update", [("text[]", ["n1"]), ("text", "accepted"), ("text", "q1")]),
    ("interoception_update", [("jsonb", '{"n1": "accepted"}'), ("text", "q2")]),
    ("qortex.bm25", [("tsvector", "'cat':1,3 'dog':2"), ("text[]", ["cat", "bird"]),
                     ("float8[]", [1.5, 2.0]), ("float8", 2.5), ("float8", 1.2),
                     ("float8", 0.75)]),
    ("qortex_check_recall", [("text", "kb"), ("int", 10), ("int", 5), ("int", None)]),
    ("qortex_check_text_index", [("text", "kb")]),
    ("qortex_context_hash", [("jsonb", '{"task": 1}')]),
    ("qortex_create_collection", [("text", "new_coll"), ("int", 3), ("jsonb", "{}")]),
    ("qortex_decay_arm", [("text", "l"), ("text", "a"), ("float8", 0.9), ("jsonb", "{}")]),
    ("qortex_decay_learner", [("text", "l"), ("float8", 0.9), ("jsonb", "{}")]),
    ("qortex_delete_document", [("text", "kb"), ("bigint", 1)]),
    ("qortex_drop_collection", [("text", "gone"), ("bool", False)]),
    ("qortex_grant", [("text", "abuse_role")]),
    ("qortex_ingest", [("text", "kb"), ("jsonb", '{"user_id": "u"}'),
                       ("jsonb", '[{"content": "c", "embedding": [1, 0, 0]}]'), ("bigint", None)]),
    ("qortex_ingest_batch", [("text", "kb"), ("jsonb", '[{"chunks": [{"content": "c", '
                                                     '"embedding": [1, 0, 0]}]}]'),
                             ("bigint", None)]),
    ("qortex_job_create", [("text", "kb"), ("int", 2), ("jsonb", "{}")]),
    ("qortex_job_status", [("bigint", 1)]),
    ("qortex_learner_configure", [("text", "l"), ("jsonb", '{"prior_alpha": 2}')]),
    ("qortex_memory_history", [("text", "u"), ("bigint", None), ("bigint", None)]),
    ("qortex_memory_history_replace", [("text", "u"), ("bigint", 1), ("bigint", 1),
                                       ("text", "a summary")]),
    ("qortex_metrics", [("text", "l")]),
    ("qortex_observe", [("text", "l"), ("text", "a"), ("text", "accepted"), ("float8", None),
                        ("jsonb", "{}")]),
    ("qortex_observe_batch", [("text", "l"), ("jsonb", '[{"arm_id": "a", "outcome": "accepted"}]')]),
    ("qortex_posteriors", [("text", "l"), ("jsonb", "{}")]),
    ("qortex_recall", [("text", "u")]),
    ("qortex_refresh_text_index", [("text", "kb")]),
    ("qortex_register_collection", [("text", "reg2"), ("regclass", "reg"),
                                    ("jsonb", '{"id": "id", "embedding": "emb"}')]),
    ("qortex_remember", [("text", "u"), ("text", "likes tea"), ("jsonb", "{}")]),
    ("qortex_remember_append", [("text", "u"), ("text", "likes tea"), ("text", "\n")]),
    ("qortex_reset", [("text", "l"), ("text[]", ["a"]), ("jsonb", "{}")]),
    ("qortex_select_arms", [("text", "l"), ("text[]", ["a", "b"]), ("jsonb", "{}"), ("int", 1),
                            ("int[]", None), ("int", None), ("bigint", 7)]),
    ("qortex_top_arms", [("text", "l"), ("int", 10), ("jsonb", "{}")]),
]
CASTS = {"text": "text", "int": "int4", "bigint": "int8", "float8": "float8", "jsonb": "jsonb",
         "vector": "vector", "text[]": "text[]", "int[]": "int4[]", "regclass": "regclass",
         "bool": "bool", "tsvector": "tsvector", "float8[]": "float8[]"}

# SQLSTATE classes a bad argument may get: data exceptions, syntax/access/undefined
# objects, integrity, invalid transaction state, program limits, feature not supported
ALLOWED = ("22", "42", "23", "25", "54", "0A", "55")


@pytest.fixture(scope="module")
def world():
    """One database for the whole sweep: every case runs in a transaction that is rolled
    back (or fails), so each starts from the same state."""
    names = _new_database()
    name = next(names)
    with connect(name, autocommit=True) as db:
        db.execute("CREATE EXTENSION qortex CASCADE")
        yield from _populate(db)
    next(names, None)


def _populate(db):
    db.execute("SELECT qortex_create_collection('kb', 3)")
    db.execute("""SELECT qortex_ingest('kb', '{"user_id": "u"}',
                  '[{"content": "cats and dogs", "embedding": [1, 0, 0]},
                    {"content": "birds", "embedding": [0, 1, 0]}]')""")
    db.execute("CREATE TABLE reg (id text PRIMARY KEY, body text, emb vector(3))")
    db.execute("INSERT INTO reg VALUES ('r1', 'cats', '[1,0,0]')")
    db.execute("""SELECT qortex_register_collection('reg', 'reg',
                  '{"id": "id", "embedding": "emb", "content": "body"}')""")
    db.execute("SELECT * FROM qortex_observe('l', 'a', 'accepted')")
    db.execute("DO $$ BEGIN CREATE ROLE abuse_role NOLOGIN; "
               "EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    yield db
    db.execute("DROP OWNED BY abuse_role")
    db.execute("DROP ROLE abuse_role")


def snapshot(db):
    tables = [r[0] for r in db.execute(
        "SELECT format('%I.%I', schemaname, relname) FROM pg_stat_user_tables "
        "WHERE schemaname IN ('qortex', 'public') ORDER BY 1")]
    return {t: db.execute(f"SELECT md5(coalesce(string_agg(x::text, ',' ORDER BY x::text), '')) "
                          f"FROM {t} x").fetchone()[0] for t in tables}


def call_sql(name, args):
    ph = ", ".join(f"%s::{CASTS[t]}" for t, _ in args)
    return f"SELECT * FROM {name}({ph})"


def adapt(t, v):
    if v is not None and t == "jsonb" and not isinstance(v, str):
        return Jsonb(v)
    return v


def cases():
    for name, args in CALLS:
        for i, (t, _) in enumerate(args):
            for bad in BAD[t]:
                values = [v for _, v in args]
                values[i] = bad
                label = repr(bad)[:30]
                yield pytest.param(name, args, values, id=f"{name}-arg{i + 1}-{label}")


@pytest.mark.parametrize("name, args, values", list(cases()))
def test_bad_argument_gets_a_specific_sqlstate_and_changes_nothing(world, name, args, values):
    db = world
    before = snapshot(db)
    try:
        with db.transaction():
            db.execute(call_sql(name, args), [adapt(t, v) for (t, _), v in zip(args, values)]) \
                .fetchall()
            raise _Rollback()
    except _Rollback:
        pass  # accepted: its effects are rolled back, so the next case starts the same
    except psycopg.errors.Error as e:
        assert e.sqlstate and e.sqlstate[:2] in ALLOWED, (e.sqlstate, str(e)[:300])
        assert e.sqlstate != "XX000"
    assert db.execute("SELECT 1").fetchone() == (1,)  # the server and session survive
    assert snapshot(db) == before


class _Rollback(Exception):
    pass


@pytest.mark.parametrize("sql, params, sqlstate, match", [
    # a huge k used to abort the backend (and reset every session) on a failed allocation
    ("SELECT count(*) FROM hybrid_search('kb', NULL, 'cats', %s)", [2147483647],
     "22023", "between 1 and 10000"),
    ("SELECT count(*) FROM hybrid_search('kb', '[1,0,0]', 'cats', %s)", [100_000_000],
     "22023", "between 1 and 10000"),
    # nesting deeper than serde_json's limit used to be an internal error
    ("SELECT count(*) FROM hybrid_search('kb', NULL, 'cats', 5, %s::jsonb)", [DEEP],
     "54001", "at most 100"),
    ("SELECT qortex_context_hash(%s::jsonb)", [DEEP_OBJECT], "54001", "150 levels"),
    ("SELECT * FROM qortex_observe('l', 'a', 'accepted', NULL, %s::jsonb)", [DEEP],
     "54001", "at most 100"),
    ("SELECT * FROM interoception_update(%s::jsonb)", [DEEP_OBJECT], "54001", "at most 100"),
    # an all-zero query vector has no cosine similarity (it came back as NaN)
    ("SELECT count(*) FROM hybrid_search('kb', %s::vector, NULL)", ["[0,0,0]"],
     "22023", "all zeros"),
    ("SELECT count(*) FROM hybrid_search('kb', %s::vector, NULL)", ["[1,2]"],
     "22000", "has 2 dimensions"),
    ("SELECT * FROM qortex_observe('l', 'a', NULL, %s)", [math.nan], "22023", "reward"),
])
def test_contracted_errors(world, sql, params, sqlstate, match):
    with pytest.raises(psycopg.errors.Error, match=match) as e:
        world.execute(sql, params).fetchall()
    assert e.value.sqlstate == sqlstate


def test_pulls_at_the_integer_limit_raise_instead_of_stopping(db):
    db.execute("SELECT * FROM qortex_observe('l', 'a', 'accepted')")
    db.execute("UPDATE qortex.learning_arm_states SET pulls = 2147483647 WHERE arm_id = 'a'")
    with pytest.raises(psycopg.errors.NumericValueOutOfRange, match="pulls"):
        db.execute("SELECT * FROM qortex_observe('l', 'a', 'accepted')")
    with pytest.raises(psycopg.errors.NumericValueOutOfRange):
        db.execute("""SELECT qortex_observe_batch('l', '[{"arm_id": "a", "outcome": "accepted"}]')""")
    assert db.execute("SELECT pulls FROM qortex.learning_arm_states WHERE arm_id = 'a'") \
        .fetchone() == (2147483647,)


def test_nan_confidence_is_refused_where_it_is_written(db):
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute("INSERT INTO qortex.interoception_edges (src_id, tgt_id, confidence, hit_count) "
                   "VALUES ('1', '2', 'NaN', 3)")
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute("INSERT INTO qortex.interoception_edges (src_id, tgt_id, confidence, hit_count) "
                   "VALUES ('1', '2', 'Infinity', 3)")


def test_a_view_cannot_be_registered(db):
    db.execute("CREATE TABLE reg (id text PRIMARY KEY, body text, emb vector(3))")
    db.execute("CREATE VIEW reg_view AS SELECT * FROM reg")
    with pytest.raises(psycopg.errors.WrongObjectType, match="is a view"):
        db.execute("""SELECT qortex_register_collection('v', 'reg_view',
                      '{"id": "id", "embedding": "emb", "content": "body"}')""")
    assert db.execute("SELECT count(*) FROM qortex.collections WHERE name = 'v'").fetchone() == (0,)


def test_the_first_index_build_says_nothing_about_missing_tables(db):
    notices = []
    db.add_notice_handler(lambda d: notices.append(d.message_primary))
    db.execute("SELECT qortex_create_collection('quiet', 3)")
    assert not [n for n in notices if "does not exist" in n], notices


WRITERS = [
    "SELECT qortex_learner_configure('l', '{}')",
    "SELECT * FROM qortex_observe('l', 'a', 'accepted')",
    """SELECT qortex_observe_batch('l', '[{"arm_id": "a", "outcome": "accepted"}]')""",
    "SELECT * FROM qortex_decay_arm('l', 'a')",
    "SELECT qortex_decay_learner('l', 0.9)",
    "SELECT qortex_reset('l')",
    "SELECT qortex_create_collection('ro', 3)",
    """SELECT qortex_register_collection('ro', 'reg', '{"id": "id", "embedding": "emb"}')""",
    "SELECT qortex_drop_collection('kb', true)",
    """SELECT qortex_ingest('kb', '{}', '[{"content": "c", "embedding": [1, 0, 0]}]')""",
    """SELECT qortex_ingest_batch('kb', '[{"chunks": [{"content": "c", "embedding": [1, 0, 0]}]}]')""",
    "SELECT qortex_job_create('kb', 1)",
    "SELECT qortex_delete_document('kb', 1)",
    "SELECT qortex_refresh_text_index('kb')",
    "SELECT * FROM qortex_remember('u', 'm')",
    "SELECT * FROM qortex_remember_append('u', 'm')",
    "SELECT * FROM qortex_memory_history_replace('u', 1, 1, 'm')",
    "SELECT * FROM qortex_check_recall('kb', 1, 1)",
    """SELECT * FROM interoception_update('{"n": "accepted"}')""",
    "SELECT * FROM interoception_update(ARRAY['n'], 'accepted')",
    "SELECT interoception_decay(0.9)",
    "SELECT interoception_record_edges('kb', ARRAY['1', '2'])",
    "SELECT * FROM interoception_flush()",
    "SELECT qortex_grant('abuse_role')",
]


@pytest.mark.parametrize("sql", WRITERS)
def test_every_writer_refuses_a_read_only_transaction_with_25006(world, sql):
    db = world
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        with db.transaction():
            db.execute("SET TRANSACTION READ ONLY")
            db.execute(sql)


READERS = [
    "SELECT count(*) FROM hybrid_search('kb', '[1,0,0]', 'cats', 5)",
    "SELECT count(*) FROM hybrid_search('reg', '[1,0,0]', 'cats', 5, '{\"graph\": true}')",
    "SELECT count(*) FROM qortex_select_arms('l', ARRAY['a', 'b'])",
    "SELECT count(*) FROM qortex_collections()",
    "SELECT qortex_status()",
    "SELECT qortex_check_text_index('reg')",
    "SELECT qortex_metrics('l')",
    "SELECT count(*) FROM qortex_posteriors('l')",
    "SELECT count(*) FROM qortex_top_arms('l')",
    "SELECT count(*) FROM qortex_recall('u')",
    "SELECT count(*) FROM qortex_memory_history('u')",
    "SELECT qortex_context_hash('{}')",
    "SELECT interoception_summary()",
]


@pytest.mark.parametrize("sql", READERS)
def test_reads_take_no_transaction_id(world, sql):
    """What a hot standby can run: a read that took a transaction id would fail there."""
    db = world
    with db.transaction():
        db.execute(sql).fetchall()
        assert db.execute("SELECT pg_current_xact_id_if_assigned()").fetchone() == (None,)
