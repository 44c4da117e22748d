"""A LangChain chain over qortex's hybrid_search, learning from the user's feedback.

    pip install ./clients/python[langchain] "psycopg[binary]"
    PGHOST=... PGPORT=... PGUSER=... PGDATABASE=... python examples/langchain_feedback.py

Creates the collection "example_lc" (dropped first if it exists). The embedding model and the
chat model are deterministic stand-ins (fake_models.py) so this runs offline: put your own
(OpenAIEmbeddings, ChatOpenAI, ...) in their place.
"""
import json

import psycopg
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnablePassthrough

from fake_models import DIM, HashEmbeddings, first_sentence_answer
from qortex_client.langchain import QortexRetriever

DOCS = [
    ("green-tea", "Green tea is brewed below the boiling point, at about 80 degrees."),
    ("black-tea", "Black tea is brewed with water at the boil for three to five minutes."),
    ("coffee", "Coffee is brewed with water just off the boil."),
    ("cats", "Cats purr when they are content."),
]


def main():
    embeddings = HashEmbeddings()
    with psycopg.connect(autocommit=True) as conn:
        conn.execute("SET client_min_messages = warning")
        conn.execute("CREATE EXTENSION IF NOT EXISTS qortex CASCADE")
        conn.execute("SELECT qortex_drop_collection(name, drop_data => true) "
                     "FROM qortex_collections() WHERE name = 'example_lc'")
        conn.execute("SELECT qortex_create_collection('example_lc', %s)", (DIM,))
        for external_id, text in DOCS:
            conn.execute("SELECT qortex_ingest('example_lc', %s, %s)",
                         (json.dumps({"external_id": external_id}),
                          json.dumps([{"content": text, "embedding": embeddings.embed_query(text)}])))

        # 1. The retriever: hybrid_search (vector + BM25, fused) on the collection.
        retriever = QortexRetriever(connection=conn, embeddings=embeddings,
                                    collection="example_lc", k=2)

        # 2. A chain: retrieve, answer from the context, keep the documents for feedback.
        prompt = ChatPromptTemplate.from_template(
            "Answer from the context.\n\nContext:\n{context}\n\nQuestion: {question}")
        llm = RunnableLambda(lambda p: first_sentence_answer(p.to_string()))  # your chat model
        answer = (RunnablePassthrough.assign(
            context=lambda x: "\n".join(d.page_content for d in x["docs"]))
            | prompt | llm | StrOutputParser())
        chain = RunnablePassthrough.assign(
            docs=lambda x: retriever.invoke(x["question"])).assign(answer=answer)

        question = "how is tea brewed at the boil"
        out = chain.invoke({"question": question})
        print(out["answer"])
        for d in out["docs"]:
            q = d.metadata["qortex"]
            print(f"  source {d.id}: score={q['score']:.4f} vector_rank={q['vector_rank']} "
                  f"text_rank={q['text_rank']} factor={q['factor']:.2f}")

        # 3. Feedback: the user says the second source answered the question, the first did
        #    not. Sent with the search's query id: sending it again would change nothing.
        retriever.feedback([(out["docs"][0], "rejected"), (out["docs"][1], "accepted")])

        out = chain.invoke({"question": question})
        print("after feedback:", out["answer"])
        for d in out["docs"]:
            q = d.metadata["qortex"]
            print(f"  source {d.id}: score={q['score']:.4f} factor={q['factor']:.2f}")


if __name__ == "__main__":
    main()
