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
    updated_at TIMESTAMPTZ NOT NULL DEFAULT pg_catalog.now(),
    -- (0.4.0) when each part of a memory grown by qortex_remember_append was appended:
    -- [[end character, first, last], ...] in microseconds since 1970; NULL after
    -- qortex_remember (the whole memory was written then)
    segments   JSONB
);
SELECT pg_catalog.pg_extension_config_dump('qortex.user_memories', '');

-- (0.4.0) The text qortex_remember_append pushed out of a user's memory, oldest first by
-- seq, with when it was appended; an outside summariser may replace a range of rows by one
-- (qortex_memory_history_replace), which then stands for their pieces.
CREATE TABLE qortex.user_memory_history (
    user_id      TEXT NOT NULL,
    seq          BIGINT NOT NULL CHECK (seq > 0),
    memory       TEXT NOT NULL,
    written_from TIMESTAMPTZ NOT NULL,
    written_to   TIMESTAMPTZ NOT NULL,
    pieces       INT NOT NULL DEFAULT 1 CHECK (pieces > 0),
    summarized   BOOLEAN NOT NULL DEFAULT false,
    archived_at  TIMESTAMPTZ NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (user_id, seq),
    CHECK (written_from <= written_to)
);
SELECT pg_catalog.pg_extension_config_dump('qortex.user_memory_history', '');

-- (0.4.0) The latest qortex_check_recall of each collection: recall@k of its vector index
-- against exact search, on a sample of its own embeddings.
CREATE TABLE qortex.recall_checks (
    collection    TEXT PRIMARY KEY,
    checked_at    TIMESTAMPTZ NOT NULL DEFAULT pg_catalog.now(),
    index_name    TEXT NOT NULL,
    k             INT NOT NULL,
    ef_search     INT NOT NULL,
    sample        INT NOT NULL,
    queries       INT NOT NULL,
    recall        DOUBLE PRECISION NOT NULL,
    recall_stddev DOUBLE PRECISION NOT NULL,
    recall_ci95   DOUBLE PRECISION NOT NULL,
    recall_min    DOUBLE PRECISION NOT NULL,
    recall_p10    DOUBLE PRECISION NOT NULL,
    table_rows    BIGINT NOT NULL,
    elapsed_ms    DOUBLE PRECISION NOT NULL
);
SELECT pg_catalog.pg_extension_config_dump('qortex.recall_checks', '');
