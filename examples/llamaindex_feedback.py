"""A LlamaIndex query engine over qortex's hybrid_search (asyncpg pool, async), learning from
the user's feedback.

    pip install ./clients/python[llamaindex] asyncpg
    PGHOST=... PGPORT=... PGUSER=... PGDATABASE=... python examples/llamaindex_feedback.py

Creates the collection "example_li" (dropped first if it exists). The embedding model is a
deterministic stand-in (fake_models.py) and the LLM LlamaIndex's MockLLM (it echoes its
prompt), so this runs offline: put your own models in their place.
"""
import asyncio
import json

import asyncpg
from llama_index.core.llms.mock import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine

from fake_models import DIM, HashEmbedding
from qortex_client.llamaindex import QortexRetriever

DOCS = [
    ("green-tea", "Green tea is brewed below the boiling point, at about 80 degrees."),
    ("black-tea", "Black tea is brewed with water at the boil for three to five minutes."),
    ("coffee", "Coffee is brewed with water just off the boil."),
    ("cats", "Cats purr when they are content."),
]


async def main():
    embed_model = HashEmbedding()
    pool = await asyncpg.create_pool(min_size=1, max_size=4)  # PG* variables
    try:
        async with pool.acquire() as conn:
            await conn.execute("SET client_min_messages = warning")
            await conn.execute("CREATE EXTENSION IF NOT EXISTS qortex CASCADE")
            await conn.execute("SELECT qortex_drop_collection(name, drop_data => true) "
                               "FROM qortex_collections() WHERE name = 'example_li'")
            await conn.execute("SELECT qortex_create_collection('example_li', $1)", DIM)
            for external_id, text in DOCS:
                emb = await embed_model.aget_text_embedding(text)
                await conn.execute("SELECT qortex_ingest('example_li', $1::jsonb, $2::jsonb)",
                                   json.dumps({"external_id": external_id}),
                                   json.dumps([{"content": text, "embedding": emb}]))

        # 1. The retriever and a query engine over it.
        retriever = QortexRetriever(pool, "example_li", embed_model=embed_model, k=2)
        engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM())

        question = "how is tea brewed at the boil"
        response = await engine.aquery(question)
        for n in response.source_nodes:
            q = n.node.metadata["qortex"]
            print(f"source {n.node.node_id}: {n.node.get_content()!r} score={n.score:.4f} "
                  f"vector_rank={q['vector_rank']} text_rank={q['text_rank']} factor={q['factor']:.2f}")

        # 2. Feedback on the sources: the second one answered the question, the first did not.
        await retriever.afeedback([(response.source_nodes[0], "rejected"),
                                   (response.source_nodes[1], "accepted")])

        response = await engine.aquery(question)
        print("after feedback:")
        for n in response.source_nodes:
            q = n.node.metadata["qortex"]
            print(f"source {n.node.node_id}: {n.node.get_content()!r} score={n.score:.4f} "
                  f"factor={q['factor']:.2f}")
    finally:
        await pool.close()


if __name__ == "__main__":
    asyncio.run(main())
