"""qortex_client.llamaindex.QortexRetriever with the real llama-index-core: retrieve /
aretrieve, a query engine over it, feedback from its source nodes."""
import pytest
from llama_index.core.llms.mock import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import MetadataMode, NodeRelationship, NodeWithScore, QueryBundle

from conftest import ASYNC_DRIVERS, DRIVERS, Opened, embed, run, sql_rows
from fake_models import HashEmbedding
from qortex_client import DataError, InvalidArgumentError
from qortex_client.llamaindex import QortexRetriever


async def retrieve(kind, dbname, query, **kw):
    async with Opened(kind, dbname) as conn:
        r = QortexRetriever(conn, kw.pop("collection", "kb"), embed_model=HashEmbedding(), **kw)
        if kind in ASYNC_DRIVERS:
            return await r.aretrieve(query)
        return r.retrieve(query)


def check_equal(nodes, rows):
    assert [n.node.node_id for n in nodes] == [r[0] for r in rows]
    for n, r in zip(nodes, rows):
        assert isinstance(n, NodeWithScore)
        assert n.score == r[4]
        assert n.node.get_content() == r[2]
        q = n.node.metadata["qortex"]
        assert (q["id"], q["document_id"], q["score"], q["vector_rank"], q["vector_similarity"],
                q["text_rank"], q["text_score"], q["factor"]) == (r[0], r[1], *r[4:])
        assert {k: v for k, v in n.node.metadata.items() if k != "qortex"} == r[3]
        assert n.node.relationships[NodeRelationship.SOURCE].node_id == r[1]
        # what the LLM sees: the content and the row's metadata, not qortex's bookkeeping
        assert "qortex" not in n.node.get_content(metadata_mode=MetadataMode.LLM)


@pytest.mark.parametrize("kind", DRIVERS)
def test_nodes_are_the_sql_calls_rows(kind, db, kb):
    d, q = db.info.dbname, "why do cats purr"
    check_equal(run(retrieve(kind, d, q, k=4)), sql_rows(db, "kb", q, 4))
    check_equal(run(retrieve(kind, d, q, k=3, filter={"topic": "pets"}, user_id="u1",
                             fusion="weighted")),
                sql_rows(db, "kb", q, 3, {"filter": {"topic": "pets"}, "user_id": "u1",
                                          "fusion": "weighted"}))
    check_equal(run(retrieve(kind, d, "brewed", search_type="text")),
                sql_rows(db, "kb", "brewed", 10, vector=False))


def test_a_query_bundle_with_its_embedding(db, kb):
    r = QortexRetriever(db, "kb", k=3)  # no embedding model: the bundle brings the embedding
    got = r.retrieve(QueryBundle("why do cats purr", embedding=embed("why do cats purr")))
    check_equal(got, sql_rows(db, "kb", "why do cats purr", 3))
    with pytest.raises(ValueError, match="embed_model"):
        r.retrieve("why do cats purr")


@pytest.mark.parametrize("kind", ["psycopg-pool", "asyncpg-pool"])
def test_a_query_engine_with_the_feedback_loop(kind, db, kb):
    async def main():
        async with Opened(kind, db.info.dbname) as conn:
            r = QortexRetriever(conn, "kb", embed_model=HashEmbedding(), k=2)
            engine = RetrieverQueryEngine.from_args(r, llm=MockLLM())  # echoes its prompt
            ask = engine.aquery if kind in ASYNC_DRIVERS else engine.query
            give = r.afeedback if kind in ASYNC_DRIVERS else r.feedback

            async def call(f, *a, **kw):
                out = f(*a, **kw)
                return await out if kind in ASYNC_DRIVERS else out

            response = await call(ask, "brewed tea")
            ids = [n.node.node_id for n in response.source_nodes]
            assert ids == [kb["tea"], kb["coffee"]]
            assert str(response).index("Green tea") < str(response).index("Coffee")
            await call(give, [(response.source_nodes[0], "rejected"),
                              (response.source_nodes[1].node, "accepted")])
            response = await call(ask, "brewed tea")
            assert [n.node.node_id for n in response.source_nodes] == [kb["coffee"], kb["tea"]]
            assert str(response).index("Coffee") < str(response).index("Green tea")
            # sent again: counts once
            await call(give, [(n, o) for n, o in zip(response.source_nodes, ["accepted", "rejected"])])
            factors = [n.node.metadata["qortex"]["factor"]
                       for n in (await call(ask, "brewed tea")).source_nodes]
            assert factors == pytest.approx([1.1, 0.95])
    run(main())


def test_errors_are_qortex_errors(db, kb):
    r = QortexRetriever(db, "kb", embed_model=HashEmbedding(embed_batch_size=1), k=2)
    with pytest.raises(DataError, match="has 3 dimensions"):
        r.retrieve(QueryBundle("x", embedding=[1.0, 0.0, 0.0]))
    with pytest.raises(InvalidArgumentError, match="options.text_mode"):
        QortexRetriever(db, "kb", embed_model=HashEmbedding(), options={"text_mode": "fuzzy"}).retrieve("x")


def test_a_llamaindex_pgvectorstore_table(db):
    """Nodes written with LlamaIndex's PGVectorStore, registered as docs/libraries/llamaindex.md
    says: the retriever gives back LlamaIndex's own nodes (ids, metadata, source document)."""
    from llama_index.core.schema import RelatedNodeInfo, TextNode
    from llama_index.vector_stores.postgres import PGVectorStore

    from conftest import HOST, PORT

    url = f"postgres@/{db.info.dbname}?host={HOST}&port={PORT}"
    store = PGVectorStore.from_params(connection_string="postgresql+psycopg2://" + url,
                                      async_connection_string="postgresql+asyncpg://" + url,
                                      table_name="docs", embed_dim=64, hybrid_search=True)
    nodes = []
    for i, (text, lang) in enumerate([("Cats purr when content.", "en"), ("Tea is brewed hot.", "en"),
                                      ("Der Tee ist heiss.", "de")]):
        n = TextNode(id_=f"node-{i}", text=text, metadata={"lang": lang},
                     embedding=embed(text))
        n.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=f"doc-{i // 2}")
        nodes.append(n)
    store.add(nodes)
    db.execute("CREATE UNIQUE INDEX ON data_docs (node_id)")
    db.execute("""SELECT qortex_register_collection('li', 'data_docs', '{
        "id": "node_id", "embedding": "embedding", "content": "text",
        "tsvector": "text_search_tsv", "metadata": "metadata_",
        "document_id": {"metadata_key": "ref_doc_id"}}')""")
    got = QortexRetriever(db, "li", embed_model=HashEmbedding(), k=1,
                          filter={"lang": "en"}).retrieve("brewed tea")
    (n,) = got
    assert n.node.node_id == "node-1" and n.node.get_content() == "Tea is brewed hot."
    assert n.node.metadata["lang"] == "en" and "_node_content" not in n.node.metadata
    assert n.node.ref_doc_id == "doc-0" and n.node.metadata["qortex"]["document_id"] == "doc-0"
