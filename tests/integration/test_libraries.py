"""The libraries users already store with, as PyPI ships them (pinned in tests/requirements.txt):
each writes with its own API and qortex reads what it wrote (and, for bandit state, the other
way round). Embeddings are deterministic fakes: nothing is downloaded.

The registrations here are the ones docs/libraries/ gives.
"""
import asyncio
import math
import os
import random

import psycopg
import pytest
from psycopg.types.json import Jsonb

from conftest import HOST, PORT, connect

DIM = 16


def one(conn, sql, *args):
    return conn.execute(sql, args).fetchone()[0]


def url(dbname, driver):
    return f"postgresql+{driver}://postgres@/{dbname}?host={HOST}&port={PORT}"


def vec(text):
    """A fixed unit vector per text (what a fake embedding model returns)."""
    r = random.Random(text)
    v = [r.gauss(0, 1) for _ in range(DIM)]
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


def literal(v):
    return "[" + ",".join(map(str, v)) + "]"


class Fake:
    """LangChain's Embeddings interface over `vec`."""

    def embed_documents(self, texts):
        return [vec(t) for t in texts]

    def embed_query(self, text):
        return vec(text)

    async def aembed_documents(self, texts):
        return self.embed_documents(texts)

    async def aembed_query(self, text):
        return self.embed_query(text)


def search(db, collection, text=None, embedding=None, k=10, **filter):
    """hybrid_search's (id, document_id, content), the keywords as its filter."""
    return db.execute(
        "SELECT id, document_id, content FROM hybrid_search(%s, %s::vector, %s, %s, %s)",
        (collection, embedding and literal(embedding), text, k,
         Jsonb({"filter": filter} if filter else {})),
    ).fetchall()


CATS = ["cats purr when they are content", "a cat sleeps most of the day",
        "kittens chase string", "the cat sat on the mat"]
DOGS = ["dogs bark at the mailman", "a dog fetches the ball", "puppies chew shoes"]


# ---- LangChain: PGVector (one table for every collection) --------------------------------

@pytest.fixture
def pgvector_store(db):
    from langchain_postgres import PGVector

    def store(name):
        return PGVector(embeddings=Fake(), collection_name=name, embedding_length=DIM,
                        connection=url(db.info.dbname, "psycopg"), use_jsonb=True)
    yield store


def register_langchain(db, name, collection, replace=False):
    return one(db, """
        SELECT qortex_register_collection(%s, 'langchain_pg_embedding', jsonb_build_object(
            'id', 'id', 'embedding', 'embedding', 'content', 'document', 'metadata', 'cmetadata',
            'partition', jsonb_build_object('column', 'collection_id', 'equals',
                (SELECT uuid FROM langchain_pg_collection WHERE name = %s))), replace => %s)""",
               name, collection, replace)


def test_langchain_pgvector_collections_stay_apart(db, pgvector_store):
    cats, dogs = pgvector_store("cats"), pgvector_store("dogs")
    cat_ids = cats.add_texts(CATS, metadatas=[{"lang": "en", "n": i} for i in range(len(CATS))],
                             ids=[f"c{i}" for i in range(len(CATS))])
    dogs.add_texts(DOGS, metadatas=[{"lang": "en"} for _ in DOGS],
                   ids=[f"d{i}" for i in range(len(DOGS))])
    d = register_langchain(db, "lc_cats", "cats")
    assert d["rows"] == len(CATS)
    assert d["partition"]["column"] == "collection_id"
    assert d["text_leg"]["bm25_index"]["name"] is None  # a partition: GIN within it
    assert "partition" in d["text_leg"]["bm25_index"]["reason"]

    # every leg stays inside the collection, whatever the other one holds
    got = search(db, "lc_cats", "the dog and the cat", vec("dogs bark at the mailman"), k=10)
    assert {r[0] for r in got} == set(cat_ids)
    assert {r[0] for r in search(db, "lc_cats", embedding=vec(DOGS[0]))} == set(cat_ids)
    assert search(db, "lc_cats", "dog bark mailman") == []

    # the vector leg ranks as LangChain's own similarity search does
    q = vec("sleepy cat")
    theirs = [doc.id for doc, _ in cats.similarity_search_with_score_by_vector(q, k=4)]
    assert [r[0] for r in search(db, "lc_cats", embedding=q, k=4)] == theirs

    # metadata filters are LangChain's cmetadata
    assert [r[0] for r in search(db, "lc_cats", "cat", n=1)] == ["c1"]

    # LangChain's adds and deletes show up at once
    cats.add_texts(["a cat naps on the sofa"], ids=["c9"])
    cats.delete(["c1"])
    ids = {r[0] for r in search(db, "lc_cats", "cat")}
    assert "c9" in ids and "c1" not in ids


def test_langchain_pgvector_registration_can_be_replaced(db, pgvector_store):
    pgvector_store("cats").add_texts(CATS[:2], ids=["c0", "c1"])
    pgvector_store("dogs").add_texts(DOGS[:1], ids=["d0"])
    register_langchain(db, "lc", "cats")
    with pytest.raises(psycopg.errors.DuplicateObject):
        register_langchain(db, "lc", "dogs")
    d = register_langchain(db, "lc", "dogs", replace=True)
    assert d["rows"] == 1
    assert [r[0] for r in search(db, "lc", embedding=vec(CATS[0]))] == ["d0"]


# ---- LangChain: PGVectorStore (metadata in real columns) ---------------------------------

def test_langchain_pgvectorstore_filters_on_metadata_columns(db):
    from langchain_postgres import Column, PGEngine, PGVectorStore

    engine = PGEngine.from_connection_string(url(db.info.dbname, "psycopg"))
    engine.init_vectorstore_table("notes", DIM, metadata_columns=[Column("topic", "TEXT")])
    store = PGVectorStore.create_sync(engine, embedding_service=Fake(), table_name="notes",
                                      metadata_columns=["topic"])
    topics = ["cats"] * len(CATS) + ["dogs"] * len(DOGS)
    ids = store.add_texts(CATS + DOGS, metadatas=[{"topic": t, "lang": "en"} for t in topics])
    d = one(db, """SELECT qortex_register_collection('notes', 'notes', '{
        "id": "langchain_id", "embedding": "embedding", "content": "content",
        "metadata": "langchain_metadata", "filters": ["topic"]}')""")
    # no tsvector column: the index is on to_tsvector of the content
    assert d["filters"] == ["topic"] and d["text_leg"]["bm25_index"]["name"] is not None
    assert "to_tsvector('english'::regconfig, content)" in one(
        db, "SELECT pg_get_indexdef(%s::regclass)", d["text_leg"]["bm25_index"]["name"])
    cat_ids = {i for i, t in zip(ids, topics) if t == "cats"}
    # a filter on the column, on a metadata key, and on both
    assert {r[0] for r in search(db, "notes", "cat dog", topic="cats")} <= cat_ids
    assert {r[0] for r in search(db, "notes", embedding=vec("x"), topic="cats")} == cat_ids
    assert len(search(db, "notes", embedding=vec("x"), lang="en")) == len(ids)
    assert {r[0] for r in search(db, "notes", embedding=vec("x"), lang="en", topic="dogs")} \
        == set(ids) - cat_ids
    # the same filter through LangChain's own search
    theirs = {doc.id for doc in store.similarity_search("x", k=10, filter={"topic": "cats"})}
    assert theirs == cat_ids


def test_a_filter_never_matches_nothing_silently(db):
    db.execute("""CREATE TABLE notes (id int PRIMARY KEY, body text, emb vector(2),
                                      meta jsonb, topic text)""")
    db.execute("""INSERT INTO notes VALUES (1, 'cats purr', '[1,0]', '{"lang": "en"}', 'cats'),
                                           (2, 'dogs bark', '[0,1]', '{"lang": "de"}', 'dogs')""")
    db.execute("""SELECT qortex_register_collection('n', 'notes',
                  '{"id": "id", "embedding": "emb", "content": "body", "metadata": "meta"}')""")
    # a column that is not a filter column: refused, with the registration that fixes it
    with pytest.raises(psycopg.errors.UndefinedColumn) as e:
        search(db, "n", "cats", topic="cats")
    assert '"filters": ["topic"]' in e.value.diag.message_hint
    # a metadata key no row has: nothing found, and a WARNING says why
    notices = []
    db.add_notice_handler(lambda d: notices.append((d.severity, d.message_primary)))
    assert search(db, "n", "cats", lnag="en") == []
    assert notices == [("WARNING", 'hybrid_search: options.filter.lnag: no row of collection '
                                   '"n" has metadata key "lnag"')]
    # a key rows have, a value none has: no warning
    notices.clear()
    assert search(db, "n", "cats", lang="fr") == []
    assert notices == []
    # registered as a filter column, the column filters (typed: 22P02 for a bad value)
    db.execute("""SELECT qortex_register_collection('n', 'notes', '{"id": "id",
                  "embedding": "emb", "content": "body", "metadata": "meta",
                  "filters": ["topic", "id"]}', replace => true)""")
    assert [r[0] for r in search(db, "n", "cats dogs", topic="dogs")] == ["2"]
    assert [r[0] for r in search(db, "n", embedding=[1, 0], id=2)] == ["2"]
    with pytest.raises(psycopg.errors.InvalidTextRepresentation):
        search(db, "n", "cats", id="two")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="options.filter.topic"):
        search(db, "n", "cats", topic=["cats"])


# ---- LlamaIndex: PGVectorStore (hybrid) ----------------------------------------------------

def test_llamaindex_pgvectorstore_hybrid(db):
    from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
    from llama_index.vector_stores.postgres import PGVectorStore

    store = PGVectorStore.from_params(
        connection_string=url(db.info.dbname, "psycopg2"),
        async_connection_string=url(db.info.dbname, "asyncpg"),
        table_name="docs", embed_dim=DIM, hybrid_search=True, text_search_config="english")
    texts = CATS + DOGS
    nodes = [TextNode(text=t, id_=f"n{i}", embedding=vec(t), metadata={"lang": "en"},
                      relationships={NodeRelationship.SOURCE: RelatedNodeInfo(
                          node_id="cats.md" if t in CATS else "dogs.md")})
             for i, t in enumerate(texts)]
    store.add(nodes)
    # node ids as qortex's ids: unique (hybrid_search pages by id)
    db.execute("CREATE UNIQUE INDEX ON data_docs (node_id)")
    d = one(db, """SELECT qortex_register_collection('li', 'data_docs', '{
        "id": "node_id", "embedding": "embedding", "content": "text",
        "tsvector": "text_search_tsv", "metadata": "metadata_",
        "document_id": {"metadata_key": "ref_doc_id"}}')""")
    assert d["columns"]["document_id"] == {"metadata_key": "ref_doc_id"}
    assert d["rows"] == len(texts) and d["text_leg"]["indexed"] is True
    # a stored tsvector and no user column: registration gave the table a qortex_bm25 index
    assert d["text_leg"]["bm25_index"]["name"] == "data_docs_text_search_tsv_idx"
    got = search(db, "li", "cat", vec(CATS[1]), k=3)
    assert got[0][:2] == ("n1", "cats.md")
    assert {r[1] for r in got} == {"cats.md"}
    # LlamaIndex's own hybrid query finds the same best node
    from llama_index.core.vector_stores.types import VectorStoreQuery
    theirs = store.query(VectorStoreQuery(query_embedding=vec(CATS[1]), query_str="cat",
                                          similarity_top_k=3, mode="hybrid"))
    assert theirs.ids[0] == "n1"
    # deleting a document through LlamaIndex removes its nodes from qortex's results
    store.delete("cats.md")
    assert {r[1] for r in search(db, "li", "cat dog", vec(CATS[1]))} == {"dogs.md"}


# ---- qortex-learning: PostgresLearningStore on qortex's table ------------------------------

def learning_store(dbname, name, user="postgres"):
    """The Python store on qortex.learning_arm_states: search_path set to qortex on its pool,
    and no DDL (its CREATE TABLE/INDEX IF NOT EXISTS need the table's owner)."""
    import asyncpg
    from qortex.learning.pg_store import PostgresLearningStore

    class QortexStore(PostgresLearningStore):
        async def _ensure_schema(self):
            pass

    async def make():
        pool = await asyncpg.create_pool(host=HOST, port=PORT, user=user, database=dbname,
                                         server_settings={"search_path": "qortex"})
        return pool, QortexStore(name, pool)
    return make


@pytest.fixture
def app(db):
    """A login role that qortex_grant gave what an application needs, and nothing else."""
    role = f"qortex_it_app_{os.getpid()}"
    db.execute(f"DROP ROLE IF EXISTS {role}")
    db.execute(f"CREATE ROLE {role} LOGIN")
    db.execute("SELECT qortex_grant(%s)", (role,))
    yield role
    db.execute(f"DROP OWNED BY {role}")
    db.execute(f"DROP ROLE {role}")


def test_qortex_learning_store_reads_and_writes_qortex_state(db, app):
    from qortex.learning import ArmOutcome, Learner, LearnerConfig

    async def python_side():
        pool, store = await learning_store(db.info.dbname, "prompts", user=app)()
        learner = await Learner.create(LearnerConfig(name="prompts"), store=store)
        await learner.observe(ArmOutcome(arm_id="a", reward=1.0, outcome=""), {"task": "x"})
        await learner.observe(ArmOutcome(arm_id="b", reward=0.0, outcome="rejected"),
                              {"task": "x"})
        # what SQL observed shows up in Python
        db.execute("""SELECT qortex_observe('prompts', 'a', 'accepted',
                                             context => '{"task": "x"}')""")
        state = await store.get("a", {"task": "x"})
        await pool.close()
        return state

    state = asyncio.run(python_side())
    assert (state.alpha, state.beta, state.pulls) == (3.0, 1.0, 2)
    rows = db.execute("""SELECT arm_id, alpha, beta, pulls FROM
                         qortex_posteriors('prompts', '{"task": "x"}') ORDER BY arm_id""").fetchall()
    assert rows == [("a", 3.0, 1.0, 2), ("b", 1.0, 2.0, 1)]
    # nothing went to a second table
    assert one(db, "SELECT to_regclass('public.learning_arm_states')") is None


def test_qortex_learning_store_without_the_override_needs_the_owner(db, app):
    """What docs/libraries/qortex-learning.md warns of: the stock store runs DDL."""
    import asyncpg
    from qortex.learning.pg_store import PostgresLearningStore

    async def stock():
        pool = await asyncpg.create_pool(host=HOST, port=PORT, user=app,
                                         database=db.info.dbname,
                                         server_settings={"search_path": "qortex"})
        try:
            await PostgresLearningStore("p", pool).get("a")
        finally:
            await pool.close()

    with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
        asyncio.run(stock())


def test_qortex_learning_decay_as_python_does(db):
    """Python's decay_arm multiplies alpha and beta; qortex's default shrinks toward the prior;
    `toward => 'zero'` does what Python does, on the same row."""
    from qortex.learning import Learner, LearnerConfig

    db.execute("""SELECT qortex_observe('p', 'a', reward => r)
                    FROM unnest(ARRAY[1, 1, 1, 0]::float8[]) r""")

    async def python_decay():
        pool, store = await learning_store(db.info.dbname, "p")()
        learner = await Learner.create(LearnerConfig(name="p"), store=store)
        state = await learner.decay_arm("a", 0.5)
        await pool.close()
        return state

    db.execute("BEGIN")
    ours = db.execute("SELECT alpha, beta, total_reward FROM "
                      "qortex_decay_arm('p', 'a', 0.5, toward => 'zero')").fetchone()
    db.execute("ROLLBACK")
    theirs = asyncio.run(python_decay())
    assert ours == pytest.approx((theirs.alpha, theirs.beta, theirs.total_reward))
    assert (theirs.alpha, theirs.beta) == (2.0, 1.0)
