-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION qortex UPDATE TO '0.3.0'" to load this file. \quit

-- qortex 0.2.0 -> 0.3.0
-- (the CREATE FUNCTION statements are what `cargo pgrx schema` generates for 0.3.0)

-- qortex_select_arms and qortex_observe return SETOF a row type instead of TABLE(...):
-- same columns, cheaper calls.
DROP FUNCTION qortex_select_arms(text, text[], jsonb, int, int[], int, bigint);
DROP FUNCTION qortex_observe(text, text, text, double precision, jsonb);
-- Row types of the two hot learning calls. `qortex_select_arms` and `qortex_observe` return
-- SETOF these rather than RETURNS TABLE(...): the columns are the same, but PostgreSQL
-- then takes the row shape from its type cache instead of rebuilding it from the
-- function's argument lists on every call, which is a good part of a call's cost.
CREATE TYPE qortex.arm_pick AS (
    arm_id   TEXT,
    rank     INT,
    score    DOUBLE PRECISION,
    explored BOOLEAN,
    alpha    DOUBLE PRECISION,
    beta     DOUBLE PRECISION,
    pulls    INT
);
CREATE TYPE qortex.arm_posterior AS (
    alpha        DOUBLE PRECISION,
    beta         DOUBLE PRECISION,
    pulls        INT,
    total_reward DOUBLE PRECISION,
    mean         DOUBLE PRECISION
);

CREATE FUNCTION qortex_select_arms(
    learner TEXT, arms TEXT[], context jsonb DEFAULT NULL, k INT DEFAULT 1,
    token_costs INT[] DEFAULT NULL, token_budget INT DEFAULT NULL, seed bigint DEFAULT NULL
) RETURNS SETOF qortex.arm_pick
VOLATILE PARALLEL SAFE ROWS 10
LANGUAGE c AS 'MODULE_PATHNAME', 'qortex_select_arms_wrapper';

CREATE FUNCTION qortex_observe(
    learner TEXT, arm_id TEXT, outcome TEXT DEFAULT NULL,
    reward double precision DEFAULT NULL, context jsonb DEFAULT NULL
) RETURNS SETOF qortex.arm_posterior
VOLATILE ROWS 1
LANGUAGE c AS 'MODULE_PATHNAME', 'qortex_observe_wrapper';


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

-- The collection functions of API.md §2 (as cargo pgrx schema generates them for 0.3.0).
CREATE  FUNCTION "qortex_collections"() RETURNS TABLE (
	"name" TEXT,  /* String */
	"kind" TEXT,  /* String */
	"source" TEXT,  /* Option < String > */
	"dimensions" INT,  /* i32 */
	"rows" bigint,  /* Option < i64 > */
	"distance" TEXT,  /* Option < String > */
	"vector_index" TEXT,  /* Option < String > */
	"text_index" TEXT,  /* Option < String > */
	"details" jsonb  /* JsonB */
)
STRICT STABLE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'qortex_collections_wrapper';

CREATE  FUNCTION "qortex_create_collection"(
	"name" TEXT, /* Option < String > */
	"dimensions" INT, /* Option < i32 > */
	"options" jsonb DEFAULT '{}' /* Option < JsonB > */
) RETURNS jsonb /* JsonB */
VOLATILE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'qortex_create_collection_wrapper';

CREATE  FUNCTION "qortex_delete_document"(
	"collection" TEXT, /* Option < String > */
	"document_id" bigint /* Option < i64 > */
) RETURNS bool /* bool */
VOLATILE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'qortex_delete_document_wrapper';

CREATE  FUNCTION "qortex_drop_collection"(
	"name" TEXT, /* Option < String > */
	"drop_data" bool DEFAULT false /* Option < bool > */
) RETURNS void
VOLATILE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'qortex_drop_collection_wrapper';

CREATE  FUNCTION "qortex_ingest"(
	"collection" TEXT, /* Option < String > */
	"document" jsonb, /* Option < JsonB > */
	"chunks" jsonb, /* Option < JsonB > */
	"job_id" bigint DEFAULT NULL /* Option < i64 > */
) RETURNS bigint /* Option < i64 > */
VOLATILE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'qortex_ingest_wrapper';

CREATE  FUNCTION "qortex_job_create"(
	"collection" TEXT, /* Option < String > */
	"total_documents" INT, /* Option < i32 > */
	"metadata" jsonb DEFAULT '{}' /* Option < JsonB > */
) RETURNS bigint /* i64 */
VOLATILE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'qortex_job_create_wrapper';

CREATE  FUNCTION "qortex_job_status"(
	"job_id" bigint /* Option < i64 > */
) RETURNS jsonb /* JsonB */
STABLE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'qortex_job_status_wrapper';

CREATE  FUNCTION "qortex_recall"(
	"user_id" TEXT /* Option < String > */
) RETURNS TABLE (
	"user_id" TEXT,  /* String */
	"memory" TEXT,  /* String */
	"metadata" jsonb,  /* JsonB */
	"updated_at" timestamp with time zone  /* pgrx :: datum :: TimestampWithTimeZone */
)
STABLE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'qortex_recall_wrapper';

CREATE FUNCTION qortex_register_collection(name TEXT, source regclass, columns jsonb)
RETURNS jsonb VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'qortex_register_collection_wrapper';

CREATE  FUNCTION "qortex_remember"(
	"user_id" TEXT, /* Option < String > */
	"memory" TEXT, /* Option < String > */
	"metadata" jsonb DEFAULT '{}' /* Option < JsonB > */
) RETURNS TABLE (
	"user_id" TEXT,  /* String */
	"memory" TEXT,  /* String */
	"metadata" jsonb,  /* JsonB */
	"updated_at" timestamp with time zone  /* pgrx :: datum :: TimestampWithTimeZone */
)
VOLATILE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'qortex_remember_wrapper';

-- The text index of a collection (qortex_refresh_text_index).
CREATE  FUNCTION "qortex_refresh_text_index"(
	"collection" TEXT /* Option < String > */
) RETURNS jsonb /* JsonB */
VOLATILE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'qortex_refresh_text_index_wrapper';

-- hybrid_search (API.md §3).
CREATE FUNCTION hybrid_search(
    collection TEXT, query_embedding vector, query_text TEXT, k INT DEFAULT 10,
    options jsonb DEFAULT '{}'
) RETURNS TABLE (
    id TEXT, document_id TEXT, content TEXT, metadata jsonb, score double precision,
    vector_rank INT, vector_similarity double precision, text_rank INT,
    text_score double precision, factor double precision
)
STABLE LANGUAGE c AS 'MODULE_PATHNAME', 'hybrid_search_wrapper';

-- Interoception (API.md §4): edges promoted from the buffer.
CREATE TABLE qortex.interoception_edges (
    src_id      TEXT NOT NULL,
    tgt_id      TEXT NOT NULL,
    relation    TEXT NOT NULL DEFAULT 'SIMILAR_TO',
    confidence  DOUBLE PRECISION NOT NULL,
    hit_count   INT NOT NULL,
    promoted_at TIMESTAMPTZ NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (src_id, tgt_id, relation)
);
CREATE INDEX idx_interoception_edges_tgt ON qortex.interoception_edges (tgt_id);
SELECT pg_catalog.pg_extension_config_dump('qortex.interoception_edges', '');

-- Feedback given with a query_id counts once per (query, node): repeating it changes
-- nothing, changing it applies the difference. Without a query_id every call counts.
CREATE TABLE qortex.interoception_feedback (
    query_id   TEXT NOT NULL,
    node_id    TEXT NOT NULL,
    outcome    TEXT NOT NULL CHECK (outcome IN ('accepted', 'rejected', 'partial')),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (query_id, node_id)
);
SELECT pg_catalog.pg_extension_config_dump('qortex.interoception_feedback', '');

-- The interoception functions of API.md §4.
CREATE  FUNCTION "interoception_decay"(
	"factor" double precision /* Option < f64 > */
) RETURNS bigint /* i64 */
VOLATILE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'interoception_decay_wrapper';

CREATE  FUNCTION "interoception_flush"(
	"min_hits" INT DEFAULT 3, /* Option < i32 > */
	"min_avg_score" double precision DEFAULT 0.75 /* Option < f64 > */
) RETURNS TABLE (
	"src_id" TEXT,  /* String */
	"tgt_id" TEXT,  /* String */
	"hits" INT,  /* i32 */
	"avg_score" double precision  /* f64 */
)
VOLATILE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'interoception_flush_wrapper';

CREATE  FUNCTION "interoception_record_edges"(
	"collection" TEXT, /* Option < String > */
	"node_ids" TEXT[], /* :: std :: option :: Option < Vec < Option < String > > > */
	"min_similarity" double precision DEFAULT 0.7 /* Option < f64 > */
) RETURNS INT /* i32 */
VOLATILE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'interoception_record_edges_wrapper';

CREATE  FUNCTION "interoception_summary"() RETURNS jsonb /* JsonB */
STRICT STABLE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'interoception_summary_wrapper';

CREATE  FUNCTION "interoception_update"(
	"node_ids" TEXT[], /* :: std :: option :: Option < Vec < Option < String > > > */
	"outcome" TEXT, /* Option < String > */
	"query_id" TEXT DEFAULT NULL /* Option < String > */
) RETURNS TABLE (
	"node_id" TEXT,  /* String */
	"weight" double precision,  /* f64 */
	"delta" double precision,  /* f64 */
	"clamped" bool  /* bool */
)
VOLATILE 
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'interoception_update_ids_wrapper';

CREATE  FUNCTION "interoception_update"(
	"outcomes" jsonb, /* Option < JsonB > */
	"query_id" TEXT DEFAULT NULL /* Option < String > */
) RETURNS TABLE (
	"node_id" TEXT,  /* String */
	"weight" double precision,  /* f64 */
	"delta" double precision,  /* f64 */
	"clamped" bool  /* bool */
)
VOLATILE 
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'interoception_update_map_wrapper';

-- Learner configs and collection layouts are cached per backend; changes invalidate them.
CREATE FUNCTION "qortex_state_changed"()
	RETURNS TRIGGER
	LANGUAGE c
	AS 'MODULE_PATHNAME', 'qortex_state_changed_wrapper';

-- Backends cache learner configs and collection layouts; every change to these tables
-- (through qortex's functions or plain SQL) invalidates those caches (see src/cache.rs).
CREATE TRIGGER learners_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON qortex.learners
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.qortex_state_changed();
CREATE TRIGGER collections_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON qortex.collections
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.qortex_state_changed();
