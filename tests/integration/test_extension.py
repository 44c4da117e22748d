"""The extension's life cycle and qortex_status(), as a client sees them."""
import psycopg
import pytest
from psycopg.types.json import Jsonb

from conftest import ROOT, VERSION, connect

# The Python qortex stores' layout: (column, type, not null, default), in order.
SEED_COLUMNS = {
    "learning_arm_states": [
        ("learner_name", "text", True, None),
        ("context_hash", "text", True, None),
        ("arm_id", "text", True, None),
        ("alpha", "double precision", True, "1.0"),
        ("beta", "double precision", True, "1.0"),
        ("pulls", "integer", True, "0"),
        ("total_reward", "double precision", True, "0.0"),
        ("last_updated", "timestamp with time zone", False, "now()"),
    ],
    "interoception_factors": [
        ("node_id", "text", True, None),
        ("weight", "double precision", True, "1.0"),
        ("updated_at", "timestamp with time zone", False, "now()"),
    ],
    "interoception_edge_buffer": [
        ("src_id", "text", True, None),
        ("tgt_id", "text", True, None),
        ("hit_count", "integer", True, "0"),
        ("scores", "jsonb", True, "'[]'::jsonb"),
        ("last_seen", "timestamp with time zone", False, "now()"),
    ],
}
SEED_PRIMARY_KEYS = {
    "learning_arm_states": ["learner_name", "context_hash", "arm_id"],
    "interoception_factors": ["node_id"],
    "interoception_edge_buffer": ["src_id", "tgt_id"],
}


def scalar(conn, sql, *args):
    return conn.execute(sql, args).fetchone()[0]


def test_create_extension_cascade_pulls_in_vector(empty_db):
    with connect(empty_db, autocommit=True) as conn:
        assert scalar(conn, "SELECT count(*) FROM pg_extension WHERE extname = 'vector'") == 0
        conn.execute("CREATE EXTENSION qortex CASCADE")
        rows = dict(conn.execute("SELECT extname, extversion FROM pg_extension").fetchall())
        assert "vector" in rows
        assert rows["qortex"] == VERSION


def test_create_extension_without_vector_and_without_cascade_fails(empty_db):
    with connect(empty_db, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.UndefinedObject, match='"vector"'):
            conn.execute("CREATE EXTENSION qortex")


@pytest.mark.parametrize("table", sorted(SEED_COLUMNS))
def test_state_tables_have_the_seed_layout(db, table):
    cols = db.execute(
        """SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                  pg_get_expr(d.adbin, d.adrelid)
             FROM pg_attribute a
             LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
            WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum""",
        (f"qortex.{table}",),
    ).fetchall()
    assert [tuple(c) for c in cols] == SEED_COLUMNS[table]
    pk = db.execute(
        """SELECT array_agg(a.attname ORDER BY k.ord)
             FROM pg_index i
             CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
            WHERE i.indrelid = %s::regclass AND i.indisprimary""",
        (f"qortex.{table}",),
    ).fetchone()[0]
    assert pk == SEED_PRIMARY_KEYS[table]


def test_learning_context_index_exists(db):
    indexdef = scalar(
        db,
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'qortex' "
        "AND indexname = 'idx_learning_arm_states_context'",
    )
    assert indexdef.endswith("USING btree (learner_name, context_hash)")


def test_drop_extension_removes_schema_and_every_object(db):
    db.execute("INSERT INTO qortex.learning_arm_states (learner_name, context_hash, arm_id) "
               "VALUES ('l', 'default', 'a')")
    db.execute("DROP EXTENSION qortex")
    assert scalar(db, "SELECT count(*) FROM pg_namespace WHERE nspname = 'qortex'") == 0
    assert scalar(db, "SELECT count(*) FROM pg_proc WHERE proname LIKE 'qortex%%'") == 0
    assert scalar(db, "SELECT count(*) FROM pg_class WHERE relname LIKE '%%arm_states%%'") == 0
    assert scalar(db, "SELECT count(*) FROM pg_class WHERE relname = 'learners'") == 0
    # pgvector was pulled in by CASCADE but is its own extension: it stays.
    assert scalar(db, "SELECT count(*) FROM pg_extension WHERE extname = 'vector'") == 1
    # ...and the extension can be created again from scratch.
    db.execute("CREATE EXTENSION qortex")
    assert scalar(db, "SELECT count(*) FROM qortex.learning_arm_states") == 0


def test_install_into_another_schema_and_call_with_empty_search_path(empty_db):
    with connect(empty_db, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA tools")
        conn.execute("CREATE EXTENSION qortex SCHEMA tools CASCADE")
        assert scalar(conn, "SELECT extnamespace::regnamespace::text FROM pg_extension "
                            "WHERE extname = 'qortex'") == "tools"
        assert scalar(conn, "SELECT count(*) FROM pg_proc p JOIN pg_namespace n "
                            "ON n.oid = p.pronamespace WHERE p.proname = 'qortex_status' "
                            "AND n.nspname = 'public'") == 0
        conn.execute("SET search_path = ''")
        status = scalar(conn, "SELECT tools.qortex_status()")
        assert status["extension_schema"] == "tools"
        assert status["versions"]["qortex"] == VERSION
        assert status["tables"]["learning_arm_states"] == 0


def test_status_values(db):
    db.execute("INSERT INTO qortex.interoception_factors (node_id, weight) "
               "VALUES ('a', 1.1), ('b', 0.95)")
    status = scalar(db, "SELECT qortex_status()")
    server_version = scalar(db, "SHOW server_version")
    pgvector = scalar(db, "SELECT extversion FROM pg_extension WHERE extname = 'vector'")
    assert status["versions"].pop("build") in ("debug", "release")  # make test: debug
    assert status["versions"] == {
        "qortex": VERSION,
        "qortex_schema": VERSION,
        "pgvector": pgvector,
        "postgres": server_version,
        "postgres_num": int(scalar(db, "SHOW server_version_num")),
    }
    assert tuple(int(x) for x in pgvector.split(".")[:2]) >= (0, 8)
    assert status["extension_schema"] == "public"
    assert status["tables"] == {
        "learning_arm_states": 0,
        "interoception_factors": 2,
        "interoception_edge_buffer": 0,
        "interoception_edges": 0,
        "learners": 0,
        "collections": 0,
        "ingestion_jobs": 0,
        "user_memories": 0,
        "user_memory_history": 0,
        "recall_checks": 0,
    }
    assert status["learners"] == {"stored": 0, "arms": 0, "pulls": 0}
    assert status["collections"] == []


def test_status_works_in_a_read_only_transaction(db):
    with db.transaction():
        db.execute("SET TRANSACTION READ ONLY")
        assert scalar(db, "SELECT qortex_status()")["versions"]["qortex"] == VERSION


def test_state_survives_pg_dump_config(db):
    """The state tables are marked for pg_dump, so backups keep learners and factors."""
    marked = scalar(
        db,
        "SELECT array_agg(c::regclass::text ORDER BY c::regclass::text) "
        "FROM pg_extension, unnest(extconfig) AS c WHERE extname = 'qortex'",
    )
    assert marked == sorted([f"qortex.{t}" for t in SEED_COLUMNS] + [
        "qortex.learners", "qortex.collections", "qortex.ingestion_jobs",
        "qortex.ingestion_jobs_id_seq", "qortex.user_memories", "qortex.document_ids",
        "qortex.user_memory_history", "qortex.recall_checks",
        "qortex.chunk_ids", "qortex.interoception_edges", "qortex.interoception_feedback"])


def catalog(conn):
    """Everything the extension defines, in comparable form."""
    funcs = conn.execute(
        """SELECT p.proname, pg_get_function_identity_arguments(p.oid),
                  pg_get_function_result(p.oid), p.provolatile, p.proisstrict,
                  p.proparallel, p.prorows, p.prosecdef
             FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.deptype = 'e'
             JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'qortex'
            ORDER BY 1, 2""").fetchall()
    cols = conn.execute(
        """SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                  pg_get_expr(ad.adbin, ad.adrelid)
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'qortex'
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
             LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
            ORDER BY 1, 2""").fetchall()
    indexes = conn.execute("SELECT indexdef FROM pg_indexes WHERE schemaname = 'qortex' "
                           "ORDER BY 1").fetchall()
    triggers = conn.execute("""SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t
                                 JOIN pg_class c ON c.oid = t.tgrelid
                                 JOIN pg_namespace n ON n.oid = c.relnamespace
                                WHERE n.nspname = 'qortex' AND NOT t.tgisinternal
                                ORDER BY 1""").fetchall()
    return funcs, cols, indexes, triggers


ARCHIVED = sorted(p.name.removeprefix("qortex--").removesuffix(".sql")
                  for p in (ROOT / "sql" / "released").glob("qortex--*.sql"))


def test_every_earlier_version_is_archived():
    """Each release's install script is frozen in sql/released before the version moves on."""
    assert ARCHIVED and VERSION not in ARCHIVED
    assert (ROOT / "sql" / "upgrade" / f"qortex--{ARCHIVED[-1]}--{VERSION}.sql").exists()


def test_every_sql_script_refuses_to_run_in_psql():
    """Each script starts with pgvector's guard: sourced in psql it stops at once."""
    scripts = sorted((ROOT / "sql").glob("*/*.sql"))
    assert {p.parent.name for p in scripts} == {"install", "upgrade", "released"}
    for p in scripts:
        guard = [l for l in p.read_text().splitlines() if l.startswith("\\echo")]
        assert guard and guard[0].startswith("\\echo Use ") and guard[0].endswith("\\quit"), p
        first = next(l for l in p.read_text().splitlines() if l and not l.startswith("--"))
        assert first == guard[0], p


@pytest.mark.parametrize("old_version", ARCHIVED)
def test_update_keeps_data_and_equals_a_fresh_install(db, another_db, old_version):
    with connect(another_db, autocommit=True) as old:
        old.execute(f"CREATE EXTENSION qortex VERSION '{old_version}' CASCADE")
        old.execute("INSERT INTO qortex.learning_arm_states (learner_name, context_hash, arm_id, "
                    "alpha, beta, pulls) VALUES ('l', 'default', 'a', 3, 2, 3)")
        old.execute("INSERT INTO qortex.interoception_factors (node_id, weight) VALUES ('n', 1.2)")
        if old_version != "0.1.0":
            old.execute("""SELECT qortex_learner_configure('l', '{"baseline_rate": 0.25}')""")
        old.execute("ALTER EXTENSION qortex UPDATE")
        assert scalar(old, "SELECT extversion FROM pg_extension WHERE extname = 'qortex'") == VERSION
        assert old.execute("SELECT alpha, beta, pulls FROM qortex_posteriors('l')").fetchall() \
            == [(3.0, 2.0, 3)]
        assert scalar(old, "SELECT weight FROM qortex.interoception_factors") == 1.2
        if old_version != "0.1.0":
            assert scalar(old, "SELECT qortex_metrics('l')")["config"]["baseline_rate"] == 0.25
        assert catalog(old) == catalog(db)


UPGRADE_WORDS = "cat dog owl fox bee ant eel emu yak gnu elk".split()


def upgrade_table(conn):
    """A table of 200 rows as a registered collection has it: users, global rows, a stored
    tsvector."""
    conn.execute("""CREATE TABLE docs (id int PRIMARY KEY, body text, emb vector(3), owner text,
                    shared boolean, meta jsonb,
                    tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', body)) STORED)""")
    conn.execute("""INSERT INTO docs SELECT i, w[1 + i %% 11] || ' ' || w[1 + (i * 7) %% 11] || ' '
                        || w[1 + (i * i) %% 11], ARRAY[1, i %% 5, i %% 3]::float4[]::vector,
                        'u' || i %% 4, i %% 9 = 0, jsonb_build_object('p', i %% 2 = 0)
                      FROM generate_series(1, 200) i, (SELECT %s::text[] AS w) x""",
                 (UPGRADE_WORDS,))


def test_update_from_0_3_0_gives_collections_a_qortex_bm25_index_and_the_same_searches(
        db, another_db):
    """A collection registered under 0.3.0 (its row as 0.3.0 wrote it, with its impact-ordered
    text index's table) is, after ALTER EXTENSION UPDATE, on a qortex_bm25 index scoped by its
    user column, the old index gone, and every search gives what the same table registered
    under this version gives. (0.3.0's library is not installed beside this one, so the
    searches of before run under the new library: the comparison is with a fresh install.)"""
    with connect(another_db, autocommit=True) as old:
        old.execute("CREATE EXTENSION qortex VERSION '0.3.0' CASCADE")
        upgrade_table(old)
        attnum = dict(old.execute("SELECT attname::text, attnum FROM pg_attribute "
                                  "WHERE attrelid = 'docs'::regclass AND attnum > 0"))
        columns = {role: attnum[col] for role, col in (
            ("id", "id"), ("embedding", "emb"), ("content", "body"), ("tsvector", "tsv"),
            ("user_id", "owner"), ("is_global", "shared"), ("metadata", "meta"))}
        old.execute("CREATE TABLE qortex.docs_postings (lexeme text, id text, impact real)")
        old.execute("""INSERT INTO qortex.collections (name, kind, source, dimensions, distance,
                       text_config, columns, options, text_index)
                       VALUES ('docs', 'registered', 'docs', 3, 'cosine', 'english', %s,
                               '{"distance": "cosine", "text_config": "english"}',
                               'qortex.docs_postings')""", (Jsonb(columns),))
        old.execute("ALTER EXTENSION qortex UPDATE")
        assert scalar(old, "SELECT to_regclass('qortex.docs_postings')") is None
        upgrade_table(db)
        db.execute("""SELECT qortex_register_collection('docs', 'docs', '{"id": "id",
                      "embedding": "emb", "content": "body", "tsvector": "tsv",
                      "user_id": "owner", "is_global": "shared", "metadata": "meta"}')""")
        leg = "SELECT details->'text_leg'->'bm25_index' FROM qortex_collections()"
        assert scalar(old, leg) == scalar(db, leg)
        assert scalar(old, leg)["user_scope"] and scalar(old, leg)["global_rows"]
        assert scalar(old, "SELECT qortex_check_text_index('docs')")["ok"]
        for text, emb in (("cat owl", None), ("yak", None), (None, "[1,2,1]"),
                          ("dog bee", "[1,0,2]")):
            for opts in ({}, {"user_id": "u1"}, {"filter": {"p": True}}):
                sql = ("SELECT id, score, text_rank, vector_rank FROM hybrid_search('docs', "
                       "%s::vector, %s, 20, %s)")
                args = (emb, text, Jsonb(opts))
                got = old.execute(sql, args).fetchall()
                assert got and got == db.execute(sql, args).fetchall(), (text, emb, opts)


def test_prometheus_queries_run(db):
    """The postgres_exporter query file's SQL runs and yields its metric columns."""
    import yaml
    db.execute("SELECT * FROM qortex_select_arms('prom', ARRAY['a'])")
    db.execute("SELECT * FROM qortex_observe('prom', 'a', 'accepted')")
    db.execute("SELECT qortex_create_collection('prom', 3)")
    db.execute("""SELECT qortex_ingest('prom', '{}', '[{"content": "c", "embedding": [1, 0, 0]},
                                                     {"content": "d", "embedding": [0, 1, 0]}]')""")
    db.execute("SELECT * FROM qortex_check_recall('prom', 2, 1)")
    spec = yaml.safe_load((ROOT / "monitoring" / "postgres_exporter_queries.yaml").read_text())
    for name, q in spec.items():
        cur = db.execute(q["query"])
        assert [c.name for c in cur.description] == [next(iter(m)) for m in q["metrics"]], name
        rows = cur.fetchall()
        assert rows and all(v is not None for row in rows for v in row), name
