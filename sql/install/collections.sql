-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION qortex" to load this file. \quit

-- Collections (API.md §2): where hybrid search looks, ingestion jobs, user memories.

-- One row per collection. `source` is the chunks table of a managed collection or the
-- user's own table; `columns` maps each role (id, embedding, content, tsvector, metadata,
-- user_id, is_global, document_id) to an attribute number of `source`, so renaming a
-- column does not break the mapping and no column name is ever stored as SQL text.
CREATE TABLE qortex.collections (
    name        TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('managed', 'registered')),
    source      REGCLASS NOT NULL,
    documents   REGCLASS,
    dimensions  INT NOT NULL CHECK (dimensions > 0),
    distance    TEXT NOT NULL CHECK (distance IN ('cosine', 'l2', 'ip')),
    text_config REGCONFIG NOT NULL,
    columns     JSONB NOT NULL,
    options     JSONB NOT NULL DEFAULT '{}',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT pg_catalog.now(),
    -- The impact-ordered text index (qortex_refresh_text_index): its table, the BM25
    -- parameters and average length it was built with, and whether rows changed since.
    text_index       REGCLASS,
    text_index_stats JSONB,
    text_index_stale BOOLEAN NOT NULL DEFAULT true
);
SELECT pg_catalog.pg_extension_config_dump('qortex.collections', '');

-- Marks a collection's text index stale when its table changes. SECURITY DEFINER so that
-- whoever writes the table need not write qortex.collections; it only sets the flag, and
-- only the first time (no row lock once stale, so concurrent writers do not queue).
CREATE FUNCTION qortex.text_index_stale() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    -- Checked first: an UPDATE that changes nothing would still fire collections_changed
    -- and flush every backend's caches on each write.
    IF EXISTS (SELECT 1 FROM qortex.collections
                WHERE name = TG_ARGV[0] AND NOT text_index_stale) THEN
        UPDATE qortex.collections SET text_index_stale = true
         WHERE name = TG_ARGV[0] AND NOT text_index_stale;
    END IF;
    RETURN NULL;
END $$;

-- Ids of managed documents and chunks come from one sequence each, shared by every managed
-- collection: an id names one chunk across collections (interoception factors key on it).
CREATE SEQUENCE qortex.document_ids;
CREATE SEQUENCE qortex.chunk_ids;
SELECT pg_catalog.pg_extension_config_dump('qortex.document_ids', '');
SELECT pg_catalog.pg_extension_config_dump('qortex.chunk_ids', '');

CREATE TABLE qortex.ingestion_jobs (
    id                  BIGSERIAL PRIMARY KEY,
    collection          TEXT NOT NULL,
    status              TEXT NOT NULL DEFAULT 'queued'
                        CHECK (status IN ('queued', 'processing', 'completed', 'partial', 'failed')),
    total_documents     INT NOT NULL CHECK (total_documents >= 0),
    processed_documents INT NOT NULL DEFAULT 0,
    failed_documents    INT NOT NULL DEFAULT 0,
    errors              JSONB NOT NULL DEFAULT '[]',
    metadata            JSONB NOT NULL DEFAULT '{}',
    created_at          TIMESTAMPTZ NOT NULL DEFAULT pg_catalog.now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT pg_catalog.now(),
    completed_at        TIMESTAMPTZ
);
CREATE INDEX idx_ingestion_jobs_collection ON qortex.ingestion_jobs (collection);
SELECT pg_catalog.pg_extension_config_dump('qortex.ingestion_jobs', '');
SELECT pg_catalog.pg_extension_config_dump('qortex.ingestion_jobs_id_seq', '');

-- One free-text memory per user, upserted (qortex_remember / qortex_recall).
CREATE TABLE qortex.user_memories (
    user_id    TEXT PRIMARY KEY,
    memory     TEXT NOT NULL,
    metadata   JSONB NOT NULL DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL DEFAULT pg_catalog.now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT pg_catalog.now()
);
SELECT pg_catalog.pg_extension_config_dump('qortex.user_memories', '');
