"""Collections, ingestion, jobs and memories (API.md §2), called the way users do."""
import json
import os

import psycopg
import pytest
from psycopg.types.json import Jsonb

from conftest import connect


def one(conn, sql, *args):
    return conn.execute(sql, args).fetchone()[0]


def chunk(content, emb, **meta):
    c = {"content": content, "embedding": emb}
    if meta:
        c["metadata"] = meta
    return c


def ingest(conn, coll, doc, chunks, job=None):
    return one(conn, "SELECT qortex_ingest(%s, %s, %s, %s)", coll, Jsonb(doc), Jsonb(chunks), job)


def counts(conn, coll):
    return (one(conn, f'SELECT count(*) FROM qortex."{coll}_documents"'),
            one(conn, f'SELECT count(*) FROM qortex."{coll}_chunks"'))


def columns(conn, table):
    return conn.execute(
        """SELECT attname::text, format_type(atttypid, atttypmod), attnotnull
             FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0
              AND NOT attisdropped ORDER BY attnum""", (table,)).fetchall()


def indexdefs(conn, table):
    return [r[0] for r in conn.execute(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'qortex' AND tablename = %s "
        "ORDER BY indexname", (table,))]


# ---- managed collections ------------------------------------------------------------------

def test_create_collection_makes_the_seed_tables_and_indexes(db):
    d = one(db, "SELECT qortex_create_collection('docs', 3)")
    assert (d["name"], d["kind"], d["dimensions"], d["distance"], d["text_config"], d["rows"]) \
        == ("docs", "managed", 3, "cosine", "english", 0)
    assert d["vector_leg"]["indexed"] and d["text_leg"]["indexed"]
    assert columns(db, "qortex.docs_documents") == [
        ("id", "bigint", True), ("user_id", "text", False), ("document_type", "text", True),
        ("is_global", "boolean", True), ("content", "text", False), ("metadata", "jsonb", True),
        ("external_id", "text", False), ("created_at", "timestamp with time zone", True)]
    assert columns(db, "qortex.docs_chunks") == [
        ("id", "bigint", True), ("document_id", "bigint", True), ("chunk_index", "integer", True),
        ("content", "text", True), ("embedding", "vector(3)", True), ("metadata", "jsonb", True),
        ("user_id", "text", False), ("is_global", "boolean", True), ("fts", "tsvector", False)]
    docs = " ".join(indexdefs(db, "docs_documents"))
    assert "(user_id)" in docs and "(is_global)" in docs and "(created_at DESC)" in docs
    chunks = indexdefs(db, "docs_chunks")
    hnsw = [i for i in chunks if "USING hnsw" in i]
    assert len(hnsw) == 1 and "vector_cosine_ops" in hnsw[0]
    assert "m='16'" in hnsw[0] and "ef_construction='64'" in hnsw[0]
    assert any("USING gin (fts)" in i for i in chunks)
    fk = one(db, """SELECT pg_get_constraintdef(oid) FROM pg_constraint
                     WHERE conrelid = 'qortex.docs_chunks'::regclass AND contype = 'f'""")
    assert "REFERENCES qortex.docs_documents(id) ON DELETE CASCADE" in fk


def test_create_collection_options(db):
    d = one(db, """SELECT qortex_create_collection('Ip-Docs', 4,
                   '{"m": 8, "ef_construction": 32, "distance": "ip", "text_config": "simple"}')""")
    assert (d["distance"], d["text_config"]) == ("ip", "simple")
    hnsw = [i for i in indexdefs(db, "Ip-Docs_chunks") if "hnsw" in i][0]
    assert "vector_ip_ops" in hnsw and "m='8'" in hnsw and "ef_construction='32'" in hnsw
    gen = one(db, """SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d
                      JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
                     WHERE d.adrelid = 'qortex."Ip-Docs_chunks"'::regclass AND a.attname = 'fts'""")
    assert "'simple'::regconfig" in gen


@pytest.mark.parametrize("sql, arg", [
    ("SELECT qortex_create_collection('bad name', 3)", "name"),
    ("SELECT qortex_create_collection('x;drop', 3)", "name"),
    ("SELECT qortex_create_collection('1x', 3)", "name"),
    (f"SELECT qortex_create_collection('{'a' * 41}', 3)", "name"),
    ("SELECT qortex_create_collection(NULL, 3)", "name"),
    ("SELECT qortex_create_collection('x', 0)", "dimensions"),
    ("SELECT qortex_create_collection('x', 2001)", "dimensions"),
    ("""SELECT qortex_create_collection('x', 3, '{"m": 1}')""", "options.m"),
    ("""SELECT qortex_create_collection('x', 3, '{"m": 40}')""", "options.ef_construction"),
    ("""SELECT qortex_create_collection('x', 3, '{"distance": "dot"}')""", "options.distance"),
    ("""SELECT qortex_create_collection('x', 3, '{"text_config": "klingon"}')""",
     "options.text_config"),
    ("""SELECT qortex_create_collection('x', 3, '{"lists": 100}')""", "options.lists"),
])
def test_create_collection_bad_input_is_22023_and_creates_nothing(db, sql, arg):
    before = one(db, "SELECT count(*) FROM pg_class WHERE relnamespace = 'qortex'::regnamespace")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=arg):
        db.execute(sql)
    assert one(db, "SELECT count(*) FROM pg_class WHERE relnamespace = 'qortex'::regnamespace") \
        == before
    assert one(db, "SELECT count(*) FROM qortex.collections") == 0


def test_duplicate_collection_is_42710(db):
    db.execute("SELECT qortex_create_collection('dup', 3)")
    with pytest.raises(psycopg.errors.DuplicateObject, match='"dup" already exists'):
        db.execute("SELECT qortex_create_collection('dup', 3)")


def test_unknown_collection_is_42704(db):
    for sql in ["SELECT qortex_ingest('nope', '{}', '[]')", "SELECT qortex_job_create('nope', 1)",
                "SELECT qortex_delete_document('nope', 1)", "SELECT qortex_drop_collection('nope')"]:
        with pytest.raises(psycopg.errors.UndefinedObject, match='"nope" does not exist'):
            db.execute(sql)


# ---- ingestion ----------------------------------------------------------------------------

def test_ingest_stores_a_document_with_its_chunks(db):
    db.execute("SELECT qortex_create_collection('kb', 3)")
    doc = {"user_id": "u1", "is_global": False, "document_type": "markdown",
           "content": "# Cats", "metadata": {"lang": "en", "topic": "pets"}, "external_id": "e1"}
    did = ingest(db, "kb", doc, [chunk("Cats purr when content.", [1, 0, 0], topic="cats"),
                                 chunk("Cats sleep a lot.", [0, 1, 0])])
    assert isinstance(did, int)
    assert db.execute("SELECT user_id, document_type, content, metadata, external_id "
                      "FROM qortex.kb_documents WHERE id = %s", (did,)).fetchone() \
        == ("u1", "markdown", "# Cats", {"lang": "en", "topic": "pets"}, "e1")
    rows = db.execute("SELECT chunk_index, content, embedding::text, metadata, user_id, is_global, "
                      "fts @@ to_tsquery('english', 'purrs') FROM qortex.kb_chunks "
                      "WHERE document_id = %s ORDER BY chunk_index", (did,)).fetchall()
    assert rows == [
        (0, "Cats purr when content.", "[1,0,0]", {"lang": "en", "topic": "cats"}, "u1", False,
         True),
        (1, "Cats sleep a lot.", "[0,1,0]", {"lang": "en", "topic": "pets"}, "u1", False, False)]


@pytest.mark.parametrize("chunks, arg", [
    ([chunk("ok", [1, 2, 3]), chunk("short", [1, 2])], r"chunks\[1\]\.embedding"),
    ([chunk("ok", [1, 2, 3]), chunk("word", [1, "x", 3])], r"chunks\[1\]\.embedding"),
    ([chunk("nan", ["NaN", 1, 2])], r"chunks\[0\]\.embedding"),
    ([chunk("overflow", [1e39, 1, 2])], r"chunks\[0\]\.embedding"),
    ([chunk("ok", [1, 2, 3]), chunk("ok", [1, 2, 3]), chunk("  ", [1, 2, 3])],
     r"chunks\[2\]\.content"),
    ([{"embedding": [1, 2, 3]}], r"chunks\[0\]\.content"),
    ([chunk("ok", [1, 2, 3])] * 10_001, "at most 10000"),
    ([], "chunks"),
])
def test_a_bad_chunk_fails_the_whole_document(db, chunks, arg):
    db.execute("SELECT qortex_create_collection('kb', 3)")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=arg):
        ingest(db, "kb", {"content": "d"}, chunks)
    assert counts(db, "kb") == (0, 0)


def test_bad_documents_are_22023(db):
    db.execute("SELECT qortex_create_collection('kb', 3)")
    for doc, arg in [({"document_type": "docx"}, "document.document_type"),
                     ({"title": "x"}, "document.title"), ({"metadata": []}, "document.metadata")]:
        with pytest.raises(psycopg.errors.InvalidParameterValue, match=arg):
            ingest(db, "kb", doc, [chunk("a", [1, 2, 3])])
    assert counts(db, "kb") == (0, 0)


def test_an_interrupted_ingest_leaves_nothing(db):
    """Cancel a big ingest mid-statement: no document without its chunks, nothing at all."""
    db.execute("SELECT qortex_create_collection('big', 8)")
    chunks = [chunk(f"chunk number {i}", [float((i * 7 + j) % 13) for j in range(8)])
              for i in range(10_000)]
    db.execute("SET statement_timeout = '150ms'")
    with pytest.raises(psycopg.errors.QueryCanceled):
        ingest(db, "big", {"content": "big"}, chunks)
    db.execute("RESET statement_timeout")
    assert counts(db, "big") == (0, 0)
    ingest(db, "big", {"content": "big"}, chunks[:50])
    assert counts(db, "big") == (1, 50)
    assert one(db, "SELECT count(*) FROM qortex.big_documents d WHERE NOT EXISTS "
                   "(SELECT 1 FROM qortex.big_chunks c WHERE c.document_id = d.id)") == 0


def test_ingest_into_a_registered_collection_is_refused(db):
    db.execute("CREATE TABLE mine (id int PRIMARY KEY, body text, emb vector(3))")
    db.execute("""SELECT qortex_register_collection('mine', 'mine',
                  '{"id": "id", "embedding": "emb", "content": "body"}')""")
    with pytest.raises(psycopg.errors.FeatureNotSupported, match="registered"):
        ingest(db, "mine", {}, [chunk("a", [1, 2, 3])])


# ---- jobs ---------------------------------------------------------------------------------

def test_job_goes_on_past_a_bad_document_and_records_it(db):
    db.execute("SELECT qortex_create_collection('kb', 3)")
    job = one(db, """SELECT qortex_job_create('kb', 3, '{"source": "upload"}')""")
    st = one(db, "SELECT qortex_job_status(%s)", job)
    assert (st["status"], st["total_documents"], st["progress_percent"], st["errors"]) \
        == ("queued", 3, 0.0, [])
    notices = []
    db.add_notice_handler(lambda d: notices.append((d.severity_nonlocalized, d.message_primary)))
    assert ingest(db, "kb", {"external_id": "a"}, [chunk("one", [1, 0, 0])], job) is not None
    st = one(db, "SELECT qortex_job_status(%s)", job)
    assert (st["status"], st["processed_documents"], st["progress_percent"]) \
        == ("processing", 1, 33.3)
    assert ingest(db, "kb", {"external_id": "b"}, [chunk("two", [1, 0])], job) is None
    assert notices and notices[-1][0] == "WARNING" and "chunks[0].embedding" in notices[-1][1]
    assert ingest(db, "kb", {}, [chunk("three", [0, 0, 1])], job) is not None
    st = one(db, "SELECT qortex_job_status(%s)", job)
    assert (st["status"], st["processed_documents"], st["failed_documents"],
            st["progress_percent"]) == ("partial", 2, 1, 100.0)
    assert st["completed_at"] is not None and st["metadata"] == {"source": "upload"}
    [err] = st["errors"]
    assert err["document"] == "b" and "has 2 dimensions" in err["error"] and err["timestamp"]
    assert counts(db, "kb") == (2, 2)


def test_job_completed_and_failed(db):
    db.execute("SELECT qortex_create_collection('kb', 3)")
    ok = one(db, "SELECT qortex_job_create('kb', 2)")
    for _ in range(2):
        ingest(db, "kb", {}, [chunk("x", [1, 1, 1])], ok)
    assert one(db, "SELECT qortex_job_status(%s)", ok)["status"] == "completed"
    bad = one(db, "SELECT qortex_job_create('kb', 1)")
    assert ingest(db, "kb", {}, [chunk("", [1, 1, 1])], bad) is None
    st = one(db, "SELECT qortex_job_status(%s)", bad)
    assert (st["status"], st["errors"][0]["document"]) == ("failed", 1)


def test_job_errors(db):
    db.execute("SELECT qortex_create_collection('kb', 3)")
    db.execute("SELECT qortex_create_collection('other', 3)")
    job = one(db, "SELECT qortex_job_create('other', 1)")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="job_id"):
        ingest(db, "kb", {}, [chunk("x", [1, 1, 1])], job)
    with pytest.raises(psycopg.errors.UndefinedObject, match="no ingestion job"):
        ingest(db, "kb", {}, [chunk("x", [1, 1, 1])], 999_999)
    with pytest.raises(psycopg.errors.UndefinedObject, match="no ingestion job"):
        db.execute("SELECT qortex_job_status(999999)")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="total_documents"):
        db.execute("SELECT qortex_job_create('kb', -1)")


# ---- delete, drop, list -------------------------------------------------------------------

def test_delete_document_takes_its_chunks(db):
    db.execute("SELECT qortex_create_collection('kb', 3)")
    a = ingest(db, "kb", {}, [chunk("a", [1, 0, 0]), chunk("b", [0, 1, 0])])
    ingest(db, "kb", {}, [chunk("c", [0, 0, 1])])
    assert one(db, "SELECT qortex_delete_document('kb', %s)", a) is True
    assert one(db, "SELECT qortex_delete_document('kb', %s)", a) is False
    assert counts(db, "kb") == (1, 1)


def test_drop_collection_keeps_data_unless_asked(db):
    db.execute("SELECT qortex_create_collection('kb', 3)")
    ingest(db, "kb", {}, [chunk("a", [1, 0, 0])])
    with pytest.raises(psycopg.errors.DependentObjectsStillExist, match="drop_data"):
        db.execute("SELECT qortex_drop_collection('kb')")
    assert counts(db, "kb") == (1, 1)
    db.execute("SELECT qortex_drop_collection('kb', drop_data => true)")
    assert one(db, "SELECT to_regclass('qortex.kb_chunks')") is None
    assert one(db, "SELECT count(*) FROM qortex.collections") == 0
    db.execute("SELECT qortex_create_collection('empty', 3)")
    db.execute("SELECT qortex_drop_collection('empty')")
    assert one(db, "SELECT to_regclass('qortex.empty_documents')") is None


def test_collections_lists_rows_and_indexes(db):
    db.execute("SELECT qortex_create_collection('kb', 3)")
    ingest(db, "kb", {}, [chunk("a", [1, 0, 0]), chunk("b", [0, 1, 0])])
    rows = db.execute("SELECT name, kind, source, dimensions, rows, distance, vector_index, "
                      "text_index, details->'documents' FROM qortex_collections()").fetchall()
    assert rows == [("kb", "managed", "qortex.kb_chunks", 3, 2, "cosine", "kb_chunks_hnsw",
                     "kb_chunks_bm25", 1)]
    status = one(db, "SELECT qortex_status()")["collections"]
    assert [(c["name"], c["rows"], sorted(i["method"] for i in c["indexes"])) for c in status] \
        == [("kb", 2, ["btree", "btree", "btree", "gin", "hnsw", "qortex_bm25"])]
    assert all(i["size_bytes"] > 0 for i in status[0]["indexes"])
    with db.transaction():
        db.execute("SET TRANSACTION READ ONLY")
        assert len(db.execute("SELECT * FROM qortex_collections()").fetchall()) == 1


# ---- bring your own table -----------------------------------------------------------------

LAYOUTS = {
    # langchain-postgres (PGVector): one table for every collection, vectors with a dimension
    "langchain": ("""
        CREATE TABLE langchain_pg_collection (uuid uuid PRIMARY KEY, name varchar NOT NULL,
                                              cmetadata json);
        CREATE TABLE langchain_pg_embedding (
            id varchar PRIMARY KEY,
            collection_id uuid REFERENCES langchain_pg_collection (uuid) ON DELETE CASCADE,
            embedding vector(3), document varchar, cmetadata jsonb);
        CREATE INDEX ix_cmetadata_gin ON langchain_pg_embedding USING gin (cmetadata jsonb_path_ops);
        """, "langchain_pg_embedding",
        {"id": "id", "embedding": "embedding", "content": "document", "metadata": "cmetadata"}),
    # LlamaIndex PGVectorStore (hybrid_search=True): data_<table_name>
    "llamaindex": ("""
        CREATE TABLE data_docs (
            id bigserial PRIMARY KEY, text varchar NOT NULL, metadata_ json, node_id varchar,
            embedding vector(3),
            text_search_tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED);
        CREATE INDEX data_docs_idx_1 ON data_docs ((metadata_->>'ref_doc_id'));
        CREATE INDEX data_docs_embedding_idx ON data_docs USING hnsw (embedding vector_l2_ops);
        CREATE INDEX data_docs_tsv_idx ON data_docs USING gin (text_search_tsv);
        """, "data_docs",
        {"id": "id", "embedding": "embedding", "content": "text", "tsvector": "text_search_tsv",
         "metadata": "metadata_"}),
    # Supabase's vector guide: documents with a generated fts column
    "supabase": ("""
        CREATE TABLE documents (
            id bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY, content text,
            metadata jsonb, embedding vector(3),
            fts tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED);
        CREATE INDEX ON documents USING gin (fts);
        CREATE INDEX ON documents USING hnsw (embedding vector_ip_ops);
        """, "documents",
        {"id": "id", "embedding": "embedding", "content": "content", "tsvector": "fts",
         "metadata": "metadata"}),
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_register_popular_layouts_in_place(db, layout):
    ddl, table, cols = LAYOUTS[layout]
    db.execute(ddl)
    d = one(db, "SELECT qortex_register_collection(%s, %s, %s)", layout, table, Jsonb(cols))
    assert (d["kind"], d["source"], d["dimensions"]) == ("registered", f"public.{table}", 3)
    assert d["columns"] == cols
    assert d["distance"] == {"langchain": "cosine", "llamaindex": "l2", "supabase": "ip"}[layout]
    assert d["vector_leg"]["indexed"] == (layout != "langchain")
    assert d["text_leg"]["indexed"] == (layout != "langchain")
    if layout == "langchain":
        hint = d["text_leg"]["hint"]
        assert "ALTER TABLE public.langchain_pg_embedding ADD COLUMN fts tsvector" in hint
        assert "USING gin (fts)" in hint
        status = one(db, "SELECT qortex_status()")["collections"][0]
        assert status["text_leg"] == d["text_leg"]
    # The table stays the application's: nothing about it changed, and dropping the
    # collection leaves it.
    db.execute("SELECT qortex_drop_collection(%s, drop_data => true)", (layout,))
    assert one(db, "SELECT to_regclass(%s)", table) is not None


def test_registration_follows_renamed_columns(db):
    db.execute("CREATE TABLE t (id int PRIMARY KEY, body text, emb vector(2))")
    db.execute("""SELECT qortex_register_collection('t', 't',
                  '{"id": "id", "embedding": "emb", "content": "body"}')""")
    db.execute("ALTER TABLE t RENAME COLUMN body TO \"Body Text\"")
    d = one(db, "SELECT details FROM qortex_collections()")
    assert d["columns"]["content"] == '"Body Text"'


@pytest.mark.parametrize("table_ddl, cols, err, match", [
    ("CREATE TABLE t (id int, emb vector(3), body text)",
     {"id": "id", "embedding": "nope", "content": "body"}, psycopg.errors.UndefinedColumn,
     "columns.embedding"),
    ("CREATE TABLE t (id int, emb real[], body text)",
     {"id": "id", "embedding": "emb", "content": "body"}, psycopg.errors.InvalidParameterValue,
     "columns.embedding"),
    ("CREATE TABLE t (id int, emb vector, body text)",
     {"id": "id", "embedding": "emb", "content": "body"}, psycopg.errors.InvalidParameterValue,
     "without a fixed dimension"),
    ("CREATE TABLE t (id int, emb vector(3), body int)",
     {"id": "id", "embedding": "emb", "content": "body"}, psycopg.errors.InvalidParameterValue,
     "columns.content"),
    ("CREATE TABLE t (id int, emb vector(3), body text, m text)",
     {"id": "id", "embedding": "emb", "content": "body", "metadata": "m"},
     psycopg.errors.InvalidParameterValue, "columns.metadata"),
    ("CREATE TABLE t (id int, emb vector(3), body text)",
     {"embedding": "emb", "content": "body"}, psycopg.errors.InvalidParameterValue, "columns.id"),
    ("CREATE TABLE t (id int, emb vector(3), body text)",
     {"id": "id", "embedding": "emb"}, psycopg.errors.InvalidParameterValue, "columns.content"),
    ("CREATE TABLE t (id int, emb vector(3), body text)",
     {"id": "id", "embedding": "emb", "content": "body", "vector": "emb"},
     psycopg.errors.InvalidParameterValue, "columns.vector"),
    ("CREATE TABLE t (id int, emb vector(3), body text)",
     {"id": "id", "embedding": "emb", "content": "body", "text_config": "nope"},
     psycopg.errors.InvalidParameterValue, "columns.text_config"),
    ("CREATE TABLE t (id int, emb vector(3), body text); "
     "CREATE INDEX ON t USING hnsw (emb vector_l2_ops)",
     {"id": "id", "embedding": "emb", "content": "body", "distance": "cosine"},
     psycopg.errors.InvalidParameterValue, "columns.distance"),
])
def test_register_rejects_what_cannot_work(db, table_ddl, cols, err, match):
    db.execute(table_ddl)
    with pytest.raises(err, match=match):
        db.execute("SELECT qortex_register_collection('t', 't', %s)", (Jsonb(cols),))
    assert one(db, "SELECT count(*) FROM qortex.collections") == 0


def test_register_needs_select_privilege_and_warns_on_non_unique_ids(db):
    db.execute("CREATE TABLE t (id int, emb vector(3), body text)")
    cols = Jsonb({"id": "id", "embedding": "emb", "content": "body"})
    db.execute("DROP ROLE IF EXISTS qortex_it_nobody")
    db.execute("CREATE ROLE qortex_it_nobody")
    try:
        db.execute("GRANT USAGE ON SCHEMA qortex TO qortex_it_nobody")
        db.execute("GRANT SELECT, INSERT ON qortex.collections TO qortex_it_nobody")
        with db.transaction():
            db.execute("SET LOCAL ROLE qortex_it_nobody")
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="SELECT"):
                db.execute("SELECT qortex_register_collection('t', 't', %s)", (cols,))
    finally:
        db.execute("DROP OWNED BY qortex_it_nobody")
        db.execute("DROP ROLE qortex_it_nobody")
    notices = []
    db.add_notice_handler(lambda d: notices.append(d.message_primary))
    db.execute("SELECT qortex_register_collection('t', 't', %s)", (cols,))
    assert any("unique" in n for n in notices)


# ---- memories -----------------------------------------------------------------------------

def test_remember_upserts_one_row_per_user_and_recall_reads_it(db):
    assert db.execute("SELECT * FROM qortex_recall('u1')").fetchall() == []
    db.execute("""SELECT * FROM qortex_remember('u1', 'likes tea', '{"src": "chat"}')""")
    r = db.execute("SELECT user_id, memory, metadata FROM qortex_remember('u1', 'likes coffee')")
    assert r.fetchone() == ("u1", "likes coffee", {})
    assert db.execute("SELECT user_id, memory FROM qortex_recall('u1')").fetchall() \
        == [("u1", "likes coffee")]
    assert one(db, "SELECT count(*) FROM qortex.user_memories") == 1


def test_memory_size_is_limited_not_truncated(db):
    db.execute("SELECT * FROM qortex_remember('u', repeat('x', 65536))")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="at most 65536"):
        db.execute("SELECT * FROM qortex_remember('u', repeat('y', 65537))")
    assert one(db, "SELECT length(memory) FROM qortex.user_memories") == 65536


def test_memory_bound_is_the_setting(db):
    db.execute("SET qortex.memory_max_chars = 100")
    db.execute("SELECT * FROM qortex_remember('u', repeat('x', 100))")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="at most 100") as e:
        db.execute("SELECT * FROM qortex_remember('u', repeat('y', 101))")
    assert "qortex_remember_append" in e.value.diag.message_hint
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        db.execute("SET qortex.memory_max_chars = 10")


def history(conn, user, *seqs):
    return conn.execute("SELECT seq, memory, written_from, written_to, pieces, summarized "
                        "FROM qortex_memory_history(%s, %s, %s)",
                        (user, *(seqs or (None, None)))).fetchall()


def test_append_keeps_the_newest_characters_and_moves_the_rest_to_history(db):
    db.execute("SET qortex.memory_max_chars = 64")
    r = db.execute("SELECT memory_chars, pushed_out_chars, history_seq "
                   "FROM qortex_remember_append('u', repeat('a', 40))").fetchone()
    assert r == (40, 0, None)
    t1 = one(db, "SELECT updated_at FROM qortex.user_memories")
    r = db.execute("SELECT memory_chars, pushed_out_chars, history_seq, updated_at "
                   "FROM qortex_remember_append('u', repeat('b', 40))").fetchone()
    # 'a' x 40, the separator '\n', 'b' x 40: 81 characters, the oldest 17 go
    assert r[:3] == (64, 17, 1)
    t2 = r[3]
    r = db.execute("SELECT memory_chars, pushed_out_chars, history_seq "
                   "FROM qortex_remember_append('u', repeat('c', 40), ' | ')").fetchone()
    assert r == (64, 43, 2)
    memory = db.execute("SELECT memory FROM qortex_recall('u')").fetchall()
    assert memory == [("b" * 21 + " | " + "c" * 40,)]
    h = history(db, "u")
    assert [(s, m) for s, m, *_ in h] == [(1, "a" * 17), (2, "a" * 23 + "\n" + "b" * 19)]
    # when the text pushed out was appended: seq 1 in the first call, seq 2 in both
    assert [(f, t) for _, _, f, t, _, _ in h] == [(t1, t1), (t1, t2)]
    assert all(p == 1 and not s for *_, p, s in h)
    # nothing was lost: the history, then the memory, is everything appended
    assert "".join(m for _, m, *_ in h) + memory[0][0] == \
        "a" * 40 + "\n" + "b" * 40 + " | " + "c" * 40
    assert [s for s, *_ in history(db, "u", 2, None)] == [2]
    assert history(db, "u", 3, None) == [] and history(db, "nobody") == []


def test_an_append_after_remember_dates_the_old_memory_by_remember(db):
    db.execute("SET qortex.memory_max_chars = 64")
    db.execute("SELECT * FROM qortex_remember_append('u', repeat('a', 60))")
    at = one(db, "SELECT updated_at FROM qortex_remember('u', repeat('r', 60))")
    assert one(db, "SELECT segments FROM qortex.user_memories") is None
    db.execute("SELECT * FROM qortex_remember_append('u', 'newest', '')")
    [(seq, text, first, last, _, _)] = history(db, "u")
    assert (seq, text, first, last) == (1, "rr", at, at)


def test_a_summary_replaces_a_range_of_history(db):
    db.execute("SET qortex.memory_max_chars = 64")
    for i in range(5):
        db.execute("SELECT * FROM qortex_remember_append('u', %s)", (str(i) * 60,))
    before = history(db, "u")
    assert [s for s, *_ in before] == [1, 2, 3, 4]
    r = db.execute("SELECT seq, memory, written_from, written_to, pieces, summarized "
                   "FROM qortex_memory_history_replace('u', 2, 3, 'the 1s and 2s')").fetchone()
    assert r == (2, "the 1s and 2s", before[1][2], before[2][3], 2, True)
    assert [(s, m[:4], p) for s, m, _, _, p, _ in history(db, "u")] == \
        [(1, "0000", 1), (2, "the ", 2), (4, before[3][1][:4], 1)]
    # a summary of summaries stands for every piece; appends go on after the last seq
    r = db.execute("SELECT seq, pieces FROM qortex_memory_history_replace('u', 1, 4, 's')")
    assert r.fetchone() == (1, 4)
    assert one(db, "SELECT history_seq FROM qortex_remember_append('u', repeat('z', 60))") == 2
    for sql, args in [
            ("SELECT * FROM qortex_memory_history_replace('u', 5, 9, 'x')", "no history"),
            ("SELECT * FROM qortex_memory_history_replace('u', 3, 2, 'x')", "before from_seq"),
            ("SELECT * FROM qortex_memory_history_replace('u', 1, 1, NULL)", "memory"),
            ("SELECT * FROM qortex_remember_append('u', '')", "empty"),
            ("SELECT * FROM qortex_remember_append('u', 'x', NULL)", "separator")]:
        with pytest.raises(psycopg.errors.InvalidParameterValue, match=args):
            db.execute(sql)
    assert [s for s, *_ in history(db, "u")] == [1, 2]


def test_concurrent_appends_for_one_user_lose_nothing_and_keep_their_order(db):
    """8 clients append 40 entries each to one memory (never there before) that holds a few:
    every entry is in the history or the memory once, each client's in its order."""
    import threading
    name = db.info.dbname
    errors = []

    def client(c):
        try:
            with connect(name, autocommit=True) as conn:
                conn.execute("SET qortex.memory_max_chars = 200")
                for i in range(40):
                    conn.execute("SELECT * FROM qortex_remember_append('u', %s, ';')",
                                 (f"c{c}-{i:02d}",))
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    h = history(db, "u")
    assert [s for s, *_ in h] == list(range(1, len(h) + 1))
    assert all(f <= t for _, _, f, t, _, _ in h)
    whole = "".join(m for _, m, *_ in h) + one(db, "SELECT memory FROM qortex_recall('u')")
    entries = whole.split(";")
    assert sorted(entries) == sorted(f"c{c}-{i:02d}" for c in range(8) for i in range(40))
    for c in range(8):
        mine = [e for e in entries if e.startswith(f"c{c}-")]
        assert mine == sorted(mine)
    assert one(db, "SELECT length(memory) FROM qortex.user_memories") <= 200
    assert one(db, "SELECT count(*) FROM qortex.user_memories") == 1


def test_a_role_qortex_grant_gave_appends_summarises_and_checks_recall(db):
    role = f"qortex_it_mem_{os.getpid()}"
    db.execute(f"DROP ROLE IF EXISTS {role}")
    db.execute(f"CREATE ROLE {role}")
    db.execute("SELECT qortex_create_collection('kb', 3)")
    ingest(db, "kb", {}, [chunk("a", [1, 0, 0]), chunk("b", [0, 1, 0])])
    db.execute("SELECT qortex_grant(%s)", (role,))
    try:
        db.execute(f"SET ROLE {role}")
        db.execute("SET qortex.memory_max_chars = 64")
        for _ in range(3):
            db.execute("SELECT * FROM qortex_remember_append('u', repeat('m', 40))")
        assert one(db, "SELECT seq FROM qortex_memory_history_replace('u', 1, 2, 's')") == 1
        assert one(db, "SELECT queries FROM qortex_check_recall('kb', 2, 1)") == 2
    finally:
        db.execute("RESET ROLE")
        db.execute(f"DROP OWNED BY {role}")
        db.execute(f"DROP ROLE {role}")


def test_drop_extension_keeps_collections_unless_cascade(db):
    """Managed collections are user data: DROP EXTENSION refuses, CASCADE removes them."""
    db.execute("SELECT qortex_create_collection('kb', 3)")
    with pytest.raises(psycopg.errors.DependentObjectsStillExist, match="kb_documents"):
        db.execute("DROP EXTENSION qortex")
    db.execute("DROP EXTENSION qortex CASCADE")
    assert one(db, "SELECT to_regnamespace('qortex')") is None


def test_errors_carry_a_specific_sqlstate_and_their_advice_as_a_hint(db):
    """What to do about an error is its HINT (facts go into the DETAIL), not message text."""
    def caught(sql, params=()):
        with pytest.raises(psycopg.Error) as e:
            db.execute(sql, params)
        return e.value.sqlstate, e.value.diag.message_primary, e.value.diag.message_hint, \
            e.value.diag.message_detail

    code, msg, hint, _ = caught("SELECT * FROM hybrid_search('nope', NULL, 'x')")
    assert (code, msg) == ("42704", 'hybrid_search: collection "nope" does not exist')
    assert "qortex_collections()" in hint
    db.execute("SELECT qortex_create_collection('kb', 3)")
    ingest(db, "kb", {}, [chunk("a", [1, 0, 0])])
    code, msg, hint, _ = caught("SELECT qortex_drop_collection('kb')")
    assert code == "2BP01" and msg.endswith("holds 1 documents")
    assert hint.startswith("SELECT qortex_drop_collection('kb', drop_data => true)")
    db.execute("CREATE TABLE t (id int PRIMARY KEY, emb vector, body text)")
    code, msg, hint, detail = caught(
        "SELECT qortex_register_collection('t', 't', %s)",
        (Jsonb({"id": "id", "embedding": "emb", "content": "body"}),))
    assert code == "22023" and "without a fixed dimension" in msg
    assert hint == 'give it one: ALTER TABLE public.t ALTER COLUMN emb TYPE vector(<n>)'
    assert "HNSW" in detail
    db.execute("ALTER TABLE t ALTER COLUMN emb TYPE vector(3)")
    db.execute("SELECT qortex_register_collection('t', 't', %s)",
               (Jsonb({"id": "id", "embedding": "emb", "content": "body"}),))
    code, msg, hint, _ = caught(
        "SELECT qortex_ingest('t', '{}', %s)", (Jsonb([chunk("a", [1, 0, 0])]),))
    assert code == "0A000" and msg.endswith("is registered, not managed") and hint


@pytest.mark.parametrize("cols, err, match", [
    ({"partition": {"column": "tenant", "equals": "not-a-uuid"}},
     psycopg.errors.InvalidTextRepresentation, "uuid"),
    ({"partition": {"column": "tenant"}}, psycopg.errors.InvalidParameterValue,
     "columns.partition"),
    ({"partition": {"column": "nope", "equals": "x"}}, psycopg.errors.UndefinedColumn,
     "columns.partition.column"),
    ({"filters": "topic"}, psycopg.errors.InvalidParameterValue, "columns.filters"),
    ({"filters": ["emb"]}, psycopg.errors.InvalidParameterValue,
     "columns.filters.*type vector"),
    ({"filters": ["nope"]}, psycopg.errors.UndefinedColumn, "columns.filters"),
    ({"document_id": {"metadata_key": "doc"}}, psycopg.errors.InvalidParameterValue,
     "columns.document_id.*no column"),
    ({"document_id": {"key": "doc"}}, psycopg.errors.InvalidParameterValue,
     "columns.document_id"),
])
def test_registration_options_are_checked(db, cols, err, match):
    db.execute("CREATE TABLE t (id int PRIMARY KEY, emb vector(2), body text, tenant uuid, "
               "topic text)")
    with pytest.raises(err, match=match):
        db.execute("SELECT qortex_register_collection('t', 't', %s)",
                   (Jsonb({"id": "id", "embedding": "emb", "content": "body", **cols}),))
    assert db.execute("SELECT count(*) FROM qortex.collections").fetchone()[0] == 0


def test_replace_changes_a_registration_and_only_a_registered_one(db):
    db.execute("CREATE TABLE t (id int PRIMARY KEY, emb vector(2), body text, tenant int)")
    db.execute("INSERT INTO t VALUES (1, '[1,0]', 'cats purr', 1), (2, '[0,1]', 'cats nap', 2)")
    cols = {"id": "id", "embedding": "emb", "content": "body"}
    # replace of a name not taken registers
    d = one(db, "SELECT qortex_register_collection('t', 't', %s, replace => true)", Jsonb(cols))
    made = d["text_leg"]["bm25_index"]["name"]
    assert d["rows"] == 2 and made is not None
    d = one(db, "SELECT qortex_register_collection('t', 't', %s, replace => true)",
            Jsonb({**cols, "partition": {"column": "tenant", "equals": 2}}))
    assert (d["rows"], d["partition"]) == (1, {"column": "tenant", "equals": "2"})
    # a partition reads GIN within it; the table keeps the index the first one made
    assert "partition" in d["text_leg"]["bm25_index"]["reason"], d["text_leg"]
    assert db.execute("SELECT count(*) FROM pg_indexes WHERE indexname = %s",
                      (made,)).fetchone()[0] == 1
    assert [r[0] for r in db.execute(
        "SELECT id FROM hybrid_search('t', NULL, 'cats', 10)").fetchall()] == ["2"]
    # a failed replace keeps the registration it would have replaced
    with pytest.raises(psycopg.errors.UndefinedColumn):
        db.execute("SELECT qortex_register_collection('t', 't', %s, replace => true)",
                   (Jsonb({**cols, "content": "nope"}),))
    assert one(db, "SELECT details FROM qortex_collections()")["partition"]["equals"] == "2"
    db.execute("SELECT qortex_create_collection('kb', 2)")
    with pytest.raises(psycopg.errors.WrongObjectType, match="managed"):
        db.execute("SELECT qortex_register_collection('kb', 't', %s, replace => true)",
                   (Jsonb(cols),))
