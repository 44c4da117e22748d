-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION qortex" to load this file. \quit

-- Collections (API.md §2): where hybrid search looks, ingestion jobs, user memories.

-- One row per collection. `source` is the chunks table of a managed collection or the
-- user's own table; `columns` maps each role (id, embedding, content, tsvector, metadata,
-- user_id, is_global, document_id) to a column of `source` as {"name", "attnum"}. While
-- `source` is the table registered (its OID is `source_oid`) the attribute number decides,
-- so renaming a column keeps working; once it is another table of that name (pg_dump and
-- restore, which do not keep dropped columns and so renumber them) the name decides.
-- Names are quoted wherever they go into SQL, never stored as SQL text.
CREATE TABLE qortex.collections (
    name        TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('managed', 'registered')),
    source      REGCLASS NOT NULL,
    documents   REGCLASS,
    dimensions  INT NOT NULL CHECK (dimensions > 0),
    distance    TEXT NOT NULL CHECK (distance IN ('cosine', 'l2', 'ip')),
    -- a text search configuration, qualified unless in pg_catalog (text, not regconfig:
    -- pg_upgrade refuses tables with reg* columns other than regclass, regtype, regrole)
    text_config TEXT NOT NULL,
    columns     JSONB NOT NULL,
    options     JSONB NOT NULL DEFAULT '{}',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT pg_catalog.now(),
    -- the OID `source` had when the collection was made (0.4.0; see `columns`)
    source_oid       OID
);
SELECT pg_catalog.pg_extension_config_dump('qortex.collections', '');

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
