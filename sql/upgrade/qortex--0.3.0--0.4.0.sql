-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION qortex UPDATE TO '0.4.0'" to load this file. \quit

-- qortex 0.3.0 -> 0.4.0
-- (the CREATE FUNCTION statements are what `cargo pgrx schema` generates for 0.4.0)

-- Every collection's text leg reads a qortex_bm25 index on its table (created at the end
-- of this script), which the server keeps current on every write; it replaces 0.3.0's
-- impact-ordered text index, which had to be rebuilt by hand and went stale on any write.
-- The old text index: its tables and the triggers that marked it stale.
DO $$
DECLARE c record;
BEGIN
    FOR c IN SELECT name, source FROM qortex.collections LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE oid = c.source) THEN
            EXECUTE pg_catalog.format('DROP TRIGGER IF EXISTS %I ON %s',
                                      'qortex_stale_' || c.name, c.source);
        END IF;
        EXECUTE pg_catalog.format('DROP TABLE IF EXISTS qortex.%I', c.name || '_postings');
    END LOOP;
END $$;
DROP FUNCTION qortex.text_index_stale();

-- Columns of a collection's table as {"name", "attnum"}, and the table's OID then: pg_dump
-- does not keep dropped columns, so after a restore attribute numbers name other columns;
-- names decide once the table is another one. (A mapped column that no longer exists drops
-- out of the mapping, as it no longer worked.)
ALTER TABLE qortex.collections ADD COLUMN source_oid OID;
UPDATE qortex.collections c
   SET source_oid = c.source::oid,
       columns = COALESCE(
       (SELECT pg_catalog.jsonb_object_agg(m.key, pg_catalog.jsonb_build_object(
                   'name', a.attname::text, 'attnum', a.attnum))
          FROM pg_catalog.jsonb_each_text(c.columns) m
          JOIN pg_catalog.pg_attribute a
            ON a.attrelid = c.source AND a.attnum = m.value::int2 AND NOT a.attisdropped),
       '{}');

-- Edges with a confidence that is not a finite number (NaN sorts above everything in
-- PostgreSQL and broke every graph search) go; none can be written again.
DELETE FROM qortex.interoception_edges
 WHERE NOT (confidence > '-Infinity' AND confidence < 'Infinity');
ALTER TABLE qortex.interoception_edges
    ADD CONSTRAINT interoception_edges_confidence_finite
    CHECK (confidence > '-Infinity' AND confidence < 'Infinity');

-- text_config as its name, not regconfig, so pg_upgrade can carry the table (it refuses
-- reg* columns whose OIDs it does not keep)
ALTER TABLE qortex.collections ALTER COLUMN text_config TYPE text
    USING text_config::oid::text;
UPDATE qortex.collections x
   SET text_config = CASE WHEN n.nspname = 'pg_catalog' THEN pg_catalog.quote_ident(c.cfgname)
                          ELSE pg_catalog.format('%I.%I', n.nspname, c.cfgname) END
  FROM pg_catalog.pg_ts_config c JOIN pg_catalog.pg_namespace n ON n.oid = c.cfgnamespace
 WHERE c.oid = x.text_config::oid;
ALTER TABLE qortex.collections
    DROP COLUMN text_index_stale, DROP COLUMN text_index, DROP COLUMN text_index_stats;

CREATE  FUNCTION "qortex_check_text_index"(
	"collection" TEXT /* Option < String > */
) RETURNS jsonb /* JsonB */
STABLE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'qortex_check_text_index_wrapper';

-- What a role needs to use qortex, granted in one call (docs/operations.md, Security).
CREATE  FUNCTION "qortex_grant"(
	"role" TEXT /* Option < String > */
) RETURNS TEXT[] /* Vec < String > */
VOLATILE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'qortex_grant_wrapper';

-- Registration takes `replace` (change a registration in place) and, in `columns`, a
-- partition of a shared table, filter columns and a document id from a metadata key.
DROP FUNCTION qortex_register_collection(TEXT, regclass, jsonb);
CREATE FUNCTION qortex_register_collection(
    name TEXT, source regclass, columns jsonb, replace boolean DEFAULT false
) RETURNS jsonb VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'qortex_register_collection_wrapper';

-- Decay takes `toward`: 'prior' (as before) or 'zero' (qortex-learning's decay_arm).
DROP FUNCTION qortex_decay_arm(TEXT, TEXT, double precision, jsonb);
CREATE  FUNCTION "qortex_decay_arm"(
	"learner" TEXT, /* Option < String > */
	"arm_id" TEXT, /* Option < String > */
	"factor" double precision DEFAULT 0.9, /* Option < f64 > */
	"context" jsonb DEFAULT NULL, /* Option < crate :: jsonb :: Jsonb > */
	"toward" TEXT DEFAULT 'prior' /* Option < String > */
) RETURNS TABLE (
	"alpha" double precision,  /* f64 */
	"beta" double precision,  /* f64 */
	"pulls" INT,  /* i32 */
	"total_reward" double precision,  /* f64 */
	"mean" double precision  /* f64 */
)
VOLATILE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'qortex_decay_arm_wrapper';
DROP FUNCTION qortex_decay_learner(TEXT, double precision, jsonb);
CREATE  FUNCTION "qortex_decay_learner"(
	"learner" TEXT, /* Option < String > */
	"factor" double precision, /* Option < f64 > */
	"context" jsonb DEFAULT NULL, /* Option < crate :: jsonb :: Jsonb > */
	"toward" TEXT DEFAULT 'prior' /* Option < String > */
) RETURNS INT /* i32 */
VOLATILE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'qortex_decay_learner_wrapper';

-- Citus: spread qortex's state over a cluster (docs/operations.md, Scale-out with Citus).
CREATE  FUNCTION "qortex_distribute"() RETURNS jsonb /* pgrx :: JsonB */
STRICT VOLATILE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'qortex_distribute_wrapper';

-- Citus: the text leg scores a distributed table's rows on its shards (each returns its best
-- ids and scores, not its candidates' tsvectors).
CREATE FUNCTION qortex.bm25(
    document tsvector, lexemes TEXT[], idf double precision[], avgdl double precision,
    k1 double precision DEFAULT 1.2, b double precision DEFAULT 0.75
) RETURNS double precision
IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'bm25_wrapper';

-- Citus: SET LOCAL run inside a function, so Citus passes it on to the workers of the
-- transaction (citus::set_on_workers); a NULL value sets the worker's default.
CREATE FUNCTION qortex.set_local(names TEXT[], settings TEXT[]) RETURNS void
VOLATILE LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. coalesce(pg_catalog.cardinality(names), 0) LOOP
        IF settings[i] IS NULL THEN
            EXECUTE pg_catalog.format('SET LOCAL %I TO DEFAULT', names[i]);
        ELSE
            EXECUTE pg_catalog.format('SET LOCAL %I = %L', names[i], settings[i]);
        END IF;
    END LOOP;
END
$$;

-- The qortex_bm25 index access method (docs/reference/bm25-index.md): its query type, the
-- ordering operator, the access method and its operator class, and its functions.
-- qortex_bm25_query: a BM25 query's lexemes (a tsvector underneath: the same text form).
CREATE TYPE qortex_bm25_query;
CREATE FUNCTION qortex_bm25_query_in(cstring) RETURNS qortex_bm25_query
    AS 'tsvectorin' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION qortex_bm25_query_out(qortex_bm25_query) RETURNS cstring
    AS 'tsvectorout' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION qortex_bm25_query_recv(internal) RETURNS qortex_bm25_query
    AS 'tsvectorrecv' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION qortex_bm25_query_send(qortex_bm25_query) RETURNS bytea
    AS 'tsvectorsend' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE;
CREATE TYPE qortex_bm25_query (
    INPUT = qortex_bm25_query_in, OUTPUT = qortex_bm25_query_out,
    RECEIVE = qortex_bm25_query_recv, SEND = qortex_bm25_query_send, LIKE = pg_catalog.tsvector
);
CREATE CAST (tsvector AS qortex_bm25_query) WITHOUT FUNCTION;
-- the query's lexemes as to_tsvector makes them (stop words removed, stemmed)
-- (SQL bodies the planner inlines: to_tsvector itself is then called, found by its OID)
CREATE FUNCTION qortex_bm25_query(config regconfig, query text) RETURNS qortex_bm25_query
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN pg_catalog.to_tsvector(config, query)::qortex_bm25_query;
CREATE FUNCTION qortex_bm25_query(query text) RETURNS qortex_bm25_query
    LANGUAGE sql STABLE STRICT PARALLEL SAFE
    RETURN pg_catalog.to_tsvector(query)::qortex_bm25_query;

CREATE FUNCTION qortex_bm25_distance(document tsvector, query qortex_bm25_query) RETURNS double precision
STABLE STRICT PARALLEL SAFE COST 100000 LANGUAGE c AS 'MODULE_PATHNAME', 'qortex_bm25_distance_wrapper';

CREATE FUNCTION qortex_bm25_scored(index oid, "row" tid) RETURNS double precision
VOLATILE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'qortex_bm25_scored_wrapper';

CREATE FUNCTION qortex_bm25_handler(internal) RETURNS index_am_handler
STRICT LANGUAGE c AS 'MODULE_PATHNAME', 'qortex_bm25_handler_wrapper';

CREATE OPERATOR <@> (LEFTARG = tsvector, RIGHTARG = qortex_bm25_query, FUNCTION = qortex_bm25_distance);
CREATE ACCESS METHOD qortex_bm25 TYPE INDEX HANDLER qortex_bm25_handler;
CREATE OPERATOR CLASS bm25_tsvector_ops DEFAULT FOR TYPE tsvector USING qortex_bm25 AS
    OPERATOR 1 <@> (tsvector, qortex_bm25_query) FOR ORDER BY pg_catalog.float_ops;
-- the scope column (an index's optional second column): equality, and the type's hash
CREATE OPERATOR CLASS bm25_scope_text_ops DEFAULT FOR TYPE text USING qortex_bm25 AS
    OPERATOR 1 = (text, text), FUNCTION 1 pg_catalog.hashtextextended(text, bigint);
-- one family for the integers, so a smallint parameter finds a bigint column's rows
CREATE OPERATOR FAMILY bm25_scope_integer_ops USING qortex_bm25;
CREATE OPERATOR CLASS bm25_scope_int2_ops DEFAULT FOR TYPE smallint USING qortex_bm25
    FAMILY bm25_scope_integer_ops AS
    OPERATOR 1 = (smallint, smallint), FUNCTION 1 pg_catalog.hashint2extended(smallint, bigint);
CREATE OPERATOR CLASS bm25_scope_int4_ops DEFAULT FOR TYPE integer USING qortex_bm25
    FAMILY bm25_scope_integer_ops AS
    OPERATOR 1 = (integer, integer), FUNCTION 1 pg_catalog.hashint4extended(integer, bigint);
CREATE OPERATOR CLASS bm25_scope_int8_ops DEFAULT FOR TYPE bigint USING qortex_bm25
    FAMILY bm25_scope_integer_ops AS
    OPERATOR 1 = (bigint, bigint), FUNCTION 1 pg_catalog.hashint8extended(bigint, bigint);
ALTER OPERATOR FAMILY bm25_scope_integer_ops USING qortex_bm25 ADD
    OPERATOR 1 = (smallint, integer), OPERATOR 1 = (smallint, bigint),
    OPERATOR 1 = (integer, smallint), OPERATOR 1 = (integer, bigint),
    OPERATOR 1 = (bigint, smallint), OPERATOR 1 = (bigint, integer);
CREATE OPERATOR CLASS bm25_scope_uuid_ops DEFAULT FOR TYPE uuid USING qortex_bm25 AS
    OPERATOR 1 = (uuid, uuid), FUNCTION 1 pg_catalog.uuid_hash_extended(uuid, bigint);

CREATE FUNCTION qortex_bm25_flush(index regclass) RETURNS bigint
VOLATILE STRICT PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'qortex_bm25_flush_wrapper';

CREATE FUNCTION qortex_bm25_merge(index regclass) RETURNS bigint
VOLATILE STRICT PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'qortex_bm25_merge_wrapper';

CREATE FUNCTION qortex_bm25_info(index regclass) RETURNS TABLE (
    segments integer, buffer_docs bigint, buffer_pages integer, docs bigint,
    dead_docs bigint, pages bigint, bytes bigint
) STABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'qortex_bm25_info_wrapper';

CREATE FUNCTION qortex_bm25_check(index regclass) RETURNS jsonb
VOLATILE STRICT PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'qortex_bm25_check_wrapper';

-- Many documents in one call, and a load in committed batches whose job shows progress.
CREATE  FUNCTION "qortex_ingest_batch"(
	"collection" TEXT, /* Option < String > */
	"documents" jsonb, /* Option < crate :: jsonb :: Jsonb > */
	"job_id" bigint DEFAULT NULL /* Option < i64 > */
) RETURNS bigint[] /* Vec < Option < i64 > > */
VOLATILE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'qortex_ingest_batch_wrapper';
CREATE PROCEDURE qortex_ingest_batches(
    collection TEXT, documents jsonb, INOUT job_id bigint DEFAULT NULL,
    batch_size INT DEFAULT 500
) LANGUAGE plpgsql AS $$
DECLARE
    items jsonb[];
    n int;
    i int := 1;
BEGIN
    IF collection IS NULL OR documents IS NULL THEN
        RAISE EXCEPTION 'qortex_ingest_batches: %: must not be NULL',
            CASE WHEN collection IS NULL THEN 'collection' ELSE 'documents' END
            USING ERRCODE = '22023';
    END IF;
    IF pg_catalog.jsonb_typeof(documents) <> 'array' THEN
        RAISE EXCEPTION 'qortex_ingest_batches: documents: must be a JSON array of document objects, each with its "chunks"'
            USING ERRCODE = '22023';
    END IF;
    IF batch_size IS NULL OR batch_size < 1 OR batch_size > 10000 THEN
        RAISE EXCEPTION 'qortex_ingest_batches: batch_size: must be between 1 and 10000, got %',
            coalesce(batch_size::text, 'NULL') USING ERRCODE = '22023';
    END IF;
    items := ARRAY(SELECT e FROM pg_catalog.jsonb_array_elements(documents) e);
    n := pg_catalog.cardinality(items);
    IF job_id IS NULL THEN
        job_id := @extschema@.qortex_job_create(collection, n);
    END IF;
    RAISE NOTICE 'qortex_ingest_batches: % documents into collection "%": ingestion job %',
        n, collection, job_id
        USING HINT = pg_catalog.format('SELECT qortex_job_status(%s) shows its progress', job_id);
    COMMIT;
    WHILE i <= n LOOP
        PERFORM @extschema@.qortex_ingest_batch(
            collection, pg_catalog.to_jsonb(items[i:i + batch_size - 1]), job_id);
        COMMIT;
        i := i + batch_size;
    END LOOP;
END
$$;


-- User memories that grow by appends (qortex_remember_append): when each part was appended,
-- and a history of what no longer fitted (see sql/install/collections.sql).
ALTER TABLE qortex.user_memories ADD COLUMN segments JSONB;
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

CREATE  FUNCTION "qortex_remember_append"(
	"user_id" TEXT, /* Option < String > */
	"memory" TEXT, /* Option < String > */
	"separator" TEXT DEFAULT E'\n' /* Option < String > */
) RETURNS TABLE (
	"user_id" TEXT,  /* String */
	"memory_chars" INT,  /* i32 */
	"pushed_out_chars" INT,  /* i32 */
	"history_seq" bigint,  /* Option < i64 > */
	"updated_at" timestamp with time zone  /* pgrx :: datum :: TimestampWithTimeZone */
)
VOLATILE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'qortex_remember_append_wrapper';

CREATE  FUNCTION "qortex_memory_history"(
	"user_id" TEXT, /* Option < String > */
	"from_seq" bigint DEFAULT NULL, /* Option < i64 > */
	"to_seq" bigint DEFAULT NULL /* Option < i64 > */
) RETURNS TABLE (
	"seq" bigint,  /* i64 */
	"memory" TEXT,  /* String */
	"written_from" timestamp with time zone,  /* TimestampWithTimeZone */
	"written_to" timestamp with time zone,  /* TimestampWithTimeZone */
	"pieces" INT,  /* i32 */
	"summarized" bool,  /* bool */
	"archived_at" timestamp with time zone  /* TimestampWithTimeZone */
)
STABLE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'qortex_memory_history_wrapper';

CREATE  FUNCTION "qortex_memory_history_replace"(
	"user_id" TEXT, /* Option < String > */
	"from_seq" bigint, /* Option < i64 > */
	"to_seq" bigint, /* Option < i64 > */
	"memory" TEXT /* Option < String > */
) RETURNS TABLE (
	"seq" bigint,  /* i64 */
	"memory" TEXT,  /* String */
	"written_from" timestamp with time zone,  /* TimestampWithTimeZone */
	"written_to" timestamp with time zone,  /* TimestampWithTimeZone */
	"pieces" INT,  /* i32 */
	"summarized" bool,  /* bool */
	"archived_at" timestamp with time zone  /* TimestampWithTimeZone */
)
VOLATILE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'qortex_memory_history_replace_wrapper';

-- The latest recall check of each collection's vector index (qortex_check_recall).
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

CREATE  FUNCTION "qortex_check_recall"(
	"collection" TEXT, /* Option < String > */
	"sample" INT DEFAULT 100, /* Option < i32 > */
	"k" INT DEFAULT 10, /* Option < i32 > */
	"ef_search" INT DEFAULT NULL /* Option < i32 > */
) RETURNS TABLE (
	"collection" TEXT,  /* String */
	"index_name" TEXT,  /* String */
	"k" INT,  /* i32 */
	"ef_search" INT,  /* i32 */
	"queries" INT,  /* i32 */
	"recall" double precision,  /* f64 */
	"recall_stddev" double precision,  /* f64 */
	"recall_ci95" double precision,  /* f64 */
	"recall_min" double precision,  /* f64 */
	"recall_p10" double precision,  /* f64 */
	"table_rows" bigint,  /* i64 */
	"elapsed_ms" double precision,  /* f64 */
	"checked_at" timestamp with time zone  /* pgrx :: datum :: TimestampWithTimeZone */
)
VOLATILE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'qortex_check_recall_wrapper';

-- Give every collection that can have one its qortex_bm25 index (on its tsvector column, or
-- on to_tsvector(config, content); scoped by its user column). The others (one partition
-- of a table, a Citus table) read their GIN index, and qortex_collections() says why.
DO $$
DECLARE c record;
BEGIN
    FOR c IN SELECT name FROM qortex.collections ORDER BY name LOOP
        BEGIN
            PERFORM qortex_refresh_text_index(c.name);
        EXCEPTION WHEN OTHERS THEN
            RAISE NOTICE 'qortex: collection "%" has no qortex_bm25 index (its text leg reads the GIN index): %',
                c.name, SQLERRM;
        END;
    END LOOP;
END $$;
