"""qortex_client.langchain.QortexRetriever with the real langchain-core, as LangChain users
call a retriever: invoke / ainvoke, in a chain, then feedback that moves later rankings."""
import pytest
from langchain_core.documents import Document
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnablePassthrough

from conftest import ASYNC_DRIVERS, DRIVERS, Opened, embed, run, sql_rows
from fake_models import HashEmbeddings, first_sentence_answer
from qortex_client import DataError, InvalidArgumentError, UndefinedObjectError
from qortex_client.langchain import QortexRetriever

SYNC_DRIVERS = [d for d in DRIVERS if d not in ASYNC_DRIVERS]


async def retrieve(kind, dbname, query, invoke_kw=None, **kw):
    async with Opened(kind, dbname) as conn:
        r = QortexRetriever(connection=conn, embeddings=HashEmbeddings(), **kw)
        if kind in ASYNC_DRIVERS:
            return await r.ainvoke(query, **(invoke_kw or {}))
        return r.invoke(query, **(invoke_kw or {}))


def check_equal(docs, rows, collection="kb"):
    assert [d.id for d in docs] == [r[0] for r in rows]
    for d, r in zip(docs, rows):
        assert isinstance(d, Document)
        q = d.metadata["qortex"]
        assert d.page_content == r[2]
        assert {k: v for k, v in d.metadata.items() if k != "qortex"} == r[3]
        assert (q["id"], q["document_id"], q["score"], q["vector_rank"], q["vector_similarity"],
                q["text_rank"], q["text_score"], q["factor"]) == (r[0], r[1], *r[4:])
        assert q["collection"] == collection


@pytest.mark.parametrize("kind", DRIVERS)
def test_documents_are_the_sql_calls_rows(kind, db, kb):
    d, q = db.info.dbname, "why do cats purr"
    check_equal(run(retrieve(kind, d, q, collection="kb", k=4)), sql_rows(db, "kb", q, 4))
    # the search options, named and passed through
    check_equal(run(retrieve(kind, d, q, collection="kb", k=3, filter={"topic": "food"},
                             fusion="weighted", options={"candidates": 50})),
                sql_rows(db, "kb", q, 3, {"filter": {"topic": "food"}, "fusion": "weighted",
                                          "candidates": 50}))
    check_equal(run(retrieve(kind, d, q, collection="kb", user_id="u2")),
                sql_rows(db, "kb", q, 10, {"user_id": "u2"}))
    # one leg
    check_equal(run(retrieve(kind, d, "brewed", collection="kb", search_type="text")),
                sql_rows(db, "kb", "brewed", 10, vector=False))
    check_equal(run(retrieve(kind, d, q, collection="kb", k=2, search_type="vector")),
                sql_rows(db, "kb", q, 2, text=False))
    # per call: k, filter, user_id, options override the retriever's
    check_equal(run(retrieve(kind, d, q, {"k": 2, "filter": {"topic": "pets"}, "user_id": "u1",
                                          "options": {"rrf_k": 5}},
                             collection="kb", k=8, filter={"topic": "food"})),
                sql_rows(db, "kb", q, 2, {"filter": {"topic": "pets"}, "user_id": "u1", "rrf_k": 5}))


@pytest.mark.parametrize("kind", ["psycopg", "asyncpg-pool"])
def test_feedback_moves_a_later_ranking(kind, db, kb):
    q = "brewed tea"

    async def main(conn):
        r = QortexRetriever(connection=conn, embeddings=HashEmbeddings(), collection="kb", k=3)
        if kind in ASYNC_DRIVERS:
            get, give = r.ainvoke, r.afeedback
        else:
            async def get(query, **kw):
                return r.invoke(query, **kw)

            async def give(*a, **kw):
                return r.feedback(*a, **kw)
        docs = await get(q)
        assert [d.id for d in docs[:2]] == [kb["tea"], kb["coffee"]]
        qid = docs[0].metadata["qortex"]["query_id"]
        assert all(d.metadata["qortex"]["query_id"] == qid for d in docs)
        # the user kept the second result and threw the first away
        res = await give([(docs[1], "accepted"), (docs[0], "rejected")])
        assert {(x.node_id, round(x.weight, 6)) for x in res} == {(kb["coffee"], 1.1), (kb["tea"], 0.95)}
        later = await get(q)
        assert [d.id for d in later[:2]] == [kb["coffee"], kb["tea"]]
        assert later[0].metadata["qortex"]["factor"] == pytest.approx(1.1)
        assert later[0].metadata["qortex"]["query_id"] == qid  # the same question, the same id
        # the same feedback again (the same question asked again) counts once
        await give([(later[0], "accepted"), (later[1], "rejected")])
        again = await get(q)
        assert [d.metadata["qortex"]["factor"] for d in again[:2]] == pytest.approx([1.1, 0.95])
        # changing an outcome applies the difference
        await give([(again[0], "partial")])
        assert (await get(q))[0].metadata["qortex"]["factor"] == pytest.approx(1.03)
        # another question is another query id: its feedback counts as well
        other = await get("hot coffee brewing")
        assert other[0].metadata["qortex"]["query_id"] != qid
        await give({kb["coffee"]: "accepted"}, query_id="my-own-id")
        assert (await get(q))[0].metadata["qortex"]["factor"] == pytest.approx(1.13)
        # documents of two searches in one call: refused (whose query id would it be?)
        with pytest.raises(ValueError, match="different searches"):
            await give([(docs[0], "accepted"), (other[0], "accepted")])
        # feedback=false in the options ranks as if none had been given
        plain = await get(q, options={"feedback": False})
        assert [d.id for d in plain[:2]] == [kb["tea"], kb["coffee"]]

    async def go():
        async with Opened(kind, db.info.dbname) as conn:
            await main(conn)
    run(go())
    assert db.execute("SELECT count(*) FROM qortex.interoception_feedback").fetchone()[0] == 3


@pytest.mark.parametrize("kind", ["psycopg-pool", "psycopg-async"])
def test_errors_are_qortex_errors(kind, db, kb):
    class Small(HashEmbeddings):
        def embed_query(self, text):
            return embed(text)[:8]

        async def aembed_query(self, text):
            return embed(text)[:8]

    async def fails(**kw):
        async with Opened(kind, db.info.dbname) as conn:
            r = QortexRetriever(connection=conn, **{"embeddings": HashEmbeddings(), **kw})
            return await r.ainvoke("cats") if kind in ASYNC_DRIVERS else r.invoke("cats")

    with pytest.raises(DataError, match="has 8 dimensions") as e:
        run(fails(collection="kb", embeddings=Small()))
    assert e.value.sqlstate == "22000"
    with pytest.raises(UndefinedObjectError) as e:
        run(fails(collection="kb2"))
    assert e.value.sqlstate == "42704"
    with pytest.raises(InvalidArgumentError, match="options.fusion") as e:
        run(fails(collection="kb", fusion="borda"))
    with pytest.raises(InvalidArgumentError, match="options.bogus"):
        run(fails(collection="kb", options={"bogus": True}))
    with pytest.raises(ValueError, match="search_type"):
        run(fails(collection="kb", search_type="sparse"))


def test_an_async_connection_beside_a_sync_one(db, kb):
    async def main():
        async with Opened("psycopg", db.info.dbname) as sync, Opened("asyncpg-pool", db.info.dbname) as apool:
            r = QortexRetriever(connection=sync, aconnection=apool, embeddings=HashEmbeddings(),
                                collection="kb", k=2)
            assert [d.id for d in r.invoke("brewed tea")] == [d.id for d in await r.ainvoke("brewed tea")]
            only_async = QortexRetriever(connection=apool, embeddings=HashEmbeddings(), collection="kb")
            with pytest.raises(TypeError, match="asynchronous"):
                only_async.invoke("tea")
    run(main())


def test_in_a_chain_with_the_feedback_loop(db, kb):
    """The retriever in an LCEL chain (a deterministic stand-in for the chat model), and the
    documents the answer came from sent back as feedback."""
    import psycopg

    from conftest import conninfo

    with psycopg.connect(**conninfo(db.info.dbname), autocommit=True) as conn:
        retriever = QortexRetriever(connection=conn, embeddings=HashEmbeddings(), collection="kb", k=2)
        prompt = ChatPromptTemplate.from_template("Context:\n{context}\n\nQuestion: {question}")
        llm = RunnableLambda(lambda p: first_sentence_answer(p.to_string()))
        fetch = RunnablePassthrough.assign(docs=lambda x: retriever.invoke(x["question"]))
        answer = (RunnablePassthrough.assign(
            context=lambda x: "\n".join(d.page_content for d in x["docs"])) | prompt | llm | StrOutputParser())
        chain = fetch.assign(answer=answer)
        out = chain.invoke({"question": "brewed tea"})
        assert out["answer"] == "Answer: Green tea is brewed below the boiling point."
        retriever.feedback([(out["docs"][0], "rejected"), (out["docs"][1], "accepted")])
        out = chain.invoke({"question": "brewed tea"})
        assert out["answer"] == "Answer: Coffee is brewed with water just off the boil."


def test_a_langchain_pgvector_collection(db):
    """Written with langchain-postgres' PGVector, registered as docs/libraries/langchain.md
    says, read with the retriever: LangChain's ids and metadata come back."""
    from langchain_postgres import PGVector

    from conftest import HOST, PORT

    url = f"postgresql+psycopg://postgres@/{db.info.dbname}?host={HOST}&port={PORT}"
    store = PGVector(embeddings=HashEmbeddings(), collection_name="notes", embedding_length=64,
                     connection=url, use_jsonb=True)
    store.add_texts(["Cats purr when content.", "Dogs bark at night.", "Tea is brewed hot."],
                    metadatas=[{"src": "a"}, {"src": "b"}, {"src": "c"}], ids=["n1", "n2", "n3"])
    db.execute("""SELECT qortex_register_collection('notes', 'langchain_pg_embedding', jsonb_build_object(
        'id', 'id', 'embedding', 'embedding', 'content', 'document', 'metadata', 'cmetadata',
        'partition', jsonb_build_object('column', 'collection_id', 'equals',
            (SELECT uuid FROM langchain_pg_collection WHERE name = 'notes'))))""")
    retriever = QortexRetriever(connection=db, embeddings=HashEmbeddings(), collection="notes", k=2,
                                filter={"src": "c"})
    (doc,) = retriever.invoke("brewed tea")
    assert (doc.id, doc.page_content, doc.metadata["src"]) == ("n3", "Tea is brewed hot.", "c")
    theirs = store.similarity_search("brewed tea", k=1, filter={"src": "c"})
    assert theirs[0].id == doc.id and theirs[0].page_content == doc.page_content
