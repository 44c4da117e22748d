"""An agent's loop, end to end, from Python with psycopg 3.

    pip install "psycopg[binary]"
    PGHOST=... PGPORT=... PGUSER=... PGDATABASE=... python examples/agent_loop.py

Creates the collection "example_kb" (dropped first if it exists) and the learner
"example_styles" (reset first). Connection settings come from the usual PG* variables.
"""
import psycopg
from psycopg.types.json import Jsonb

DOCS = [
    ("cats", "pets", "Cats purr when they are content and sleep most of the day.", [0.9, 0.1, 0.0, 0.0]),
    ("dogs", "pets", "Dogs bark at strangers and love long walks.", [0.1, 0.9, 0.0, 0.0]),
    ("tea", "food", "Green tea is brewed below boiling point.", [0.0, 0.0, 0.9, 0.1]),
]


def main():
    with psycopg.connect(autocommit=True) as db:
        db.execute("SET client_min_messages = warning")
        db.execute("CREATE EXTENSION IF NOT EXISTS qortex CASCADE")
        db.execute("SELECT qortex_drop_collection(name, drop_data => true) "
                   "FROM qortex_collections() WHERE name = 'example_kb'")
        db.execute("SELECT qortex_reset('example_styles')")

        # 1. A collection for 4-dimensional embeddings (real ones have 384 to 1536).
        db.execute("SELECT qortex_create_collection('example_kb', 4)")

        # 2. Documents with their chunks and embeddings, each in one statement.
        for external_id, topic, content, embedding in DOCS:
            doc_id = db.execute(
                "SELECT qortex_ingest('example_kb', %s, %s)",
                (Jsonb({"external_id": external_id, "metadata": {"topic": topic}}),
                 Jsonb([{"content": content, "embedding": embedding}])),
            ).fetchone()[0]
            print(f"ingested {external_id} as document {doc_id}")

        # 3. Search: the query's embedding and its text, fused in one call.
        query = ("[0.8, 0.2, 0.0, 0.0]", "why do cats purr")
        rows = db.execute(
            "SELECT id, content, score, vector_rank, text_rank "
            "FROM hybrid_search('example_kb', %s::vector, %s, 2)", query).fetchall()
        for id_, content, score, vrank, trank in rows:
            print(f"result {id_}: {content!r} score={score:.4f} vector_rank={vrank} text_rank={trank}")

        # 4. Feedback: the user kept the first result. Later searches rank it higher.
        top = rows[0][0]
        db.execute("SELECT * FROM interoception_update(%s, query_id => 'example-q1')",
                   (Jsonb({top: "accepted"}),))
        factor = db.execute(
            "SELECT factor FROM hybrid_search('example_kb', %s::vector, %s, 1)", query).fetchone()[0]
        print(f"factor of {top} after feedback: {factor:.2f}")

        # 5. Choose how to answer with a bandit, then record how it went.
        style = db.execute(
            "SELECT arm_id FROM qortex_select_arms('example_styles', ARRAY['terse', 'detailed'], "
            "seed => 7)").fetchone()[0]
        print(f"chosen style: {style}")
        pulls, mean = db.execute(
            "SELECT pulls, mean FROM qortex_observe('example_styles', %s, 'accepted')",
            (style,)).fetchone()
        print(f"observed {style}: pulls={pulls} mean={mean:.3f}")


if __name__ == "__main__":
    main()
