-- An agent's loop, end to end, in psql:
--   psql -v ON_ERROR_STOP=1 -d yourdb -f examples/agent_loop.sql
-- Creates the collection "example_kb" (dropped first if it exists) and the learner
-- "example_styles" (reset first).
\set QUIET on
\o /dev/null
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS qortex CASCADE;
SELECT qortex_drop_collection(name, drop_data => true)
  FROM qortex_collections() WHERE name = 'example_kb';
SELECT qortex_reset('example_styles');
\o

-- 1. A collection for 4-dimensional embeddings (real ones have 384 to 1536).
SELECT details->>'name' AS collection FROM (SELECT qortex_create_collection('example_kb', 4) AS details) c;

-- 2. Documents with their chunks and embeddings, each in one statement.
SELECT qortex_ingest('example_kb',
    '{"external_id": "cats", "metadata": {"topic": "pets"}}',
    '[{"content": "Cats purr when they are content and sleep most of the day.",
       "embedding": [0.9, 0.1, 0.0, 0.0]}]') AS cats_document;
SELECT qortex_ingest('example_kb',
    '{"external_id": "dogs", "metadata": {"topic": "pets"}}',
    '[{"content": "Dogs bark at strangers and love long walks.",
       "embedding": [0.1, 0.9, 0.0, 0.0]}]') AS dogs_document;
SELECT qortex_ingest('example_kb',
    '{"external_id": "tea", "metadata": {"topic": "food"}}',
    '[{"content": "Green tea is brewed below boiling point.",
       "embedding": [0.0, 0.0, 0.9, 0.1]}]') AS tea_document;

-- 3. Search: the query's embedding and its text, fused in one call.
SELECT id, content, round(score::numeric, 4) AS score, vector_rank, text_rank
  FROM hybrid_search('example_kb', '[0.8, 0.2, 0.0, 0.0]', 'why do cats purr', 2);

-- 4. Feedback: the user kept the first result. Later searches rank it higher.
SELECT node_id, weight FROM interoception_update(
    (SELECT jsonb_build_object(id, 'accepted')
       FROM hybrid_search('example_kb', '[0.8, 0.2, 0.0, 0.0]', 'why do cats purr', 1)),
    query_id => 'example-q1');
SELECT id, round(factor::numeric, 2) AS factor
  FROM hybrid_search('example_kb', '[0.8, 0.2, 0.0, 0.0]', 'why do cats purr', 1);

-- 5. Choose how to answer with a bandit, then record how it went.
SELECT arm_id AS chosen_style
  FROM qortex_select_arms('example_styles', ARRAY['terse', 'detailed'], seed => 7) \gset
\echo chosen style: :chosen_style
SELECT pulls, round(mean::numeric, 3) AS mean
  FROM qortex_observe('example_styles', :'chosen_style', 'accepted');
SELECT arm_id, pulls FROM qortex_posteriors('example_styles');
