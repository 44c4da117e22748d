-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION qortex UPDATE TO '0.2.0'" to load this file. \quit

-- qortex 0.1.0 -> 0.2.0: learner configurations (qortex_learner_configure).
CREATE TABLE qortex.learners (
    learner_name TEXT PRIMARY KEY,
    config       JSONB NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT pg_catalog.now()
);
SELECT pg_catalog.pg_extension_config_dump('qortex.learners', '');

-- The learning functions of API.md §1 (as cargo pgrx schema generates them for 0.2.0).
CREATE  FUNCTION "qortex_context_hash"(
	"context" jsonb /* Option < JsonB > */
) RETURNS TEXT /* String */
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'qortex_context_hash_wrapper';
CREATE  FUNCTION "qortex_decay_arm"(
	"learner" TEXT, /* Option < String > */
	"arm_id" TEXT, /* Option < String > */
	"factor" double precision DEFAULT 0.9, /* Option < f64 > */
	"context" jsonb DEFAULT NULL /* Option < JsonB > */
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
CREATE  FUNCTION "qortex_decay_learner"(
	"learner" TEXT, /* Option < String > */
	"factor" double precision, /* Option < f64 > */
	"context" jsonb DEFAULT NULL /* Option < JsonB > */
) RETURNS INT /* i32 */
VOLATILE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'qortex_decay_learner_wrapper';
CREATE  FUNCTION "qortex_learner_configure"(
	"learner" TEXT, /* Option < String > */
	"config" jsonb /* Option < JsonB > */
) RETURNS jsonb /* JsonB */
VOLATILE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'qortex_learner_configure_wrapper';
CREATE  FUNCTION "qortex_metrics"(
	"learner" TEXT /* Option < String > */
) RETURNS jsonb /* JsonB */
STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'qortex_metrics_wrapper';
CREATE  FUNCTION "qortex_observe"(
	"learner" TEXT, /* Option < String > */
	"arm_id" TEXT, /* Option < String > */
	"outcome" TEXT DEFAULT NULL, /* Option < String > */
	"reward" double precision DEFAULT NULL, /* Option < f64 > */
	"context" jsonb DEFAULT NULL /* Option < JsonB > */
) RETURNS TABLE (
	"alpha" double precision,  /* f64 */
	"beta" double precision,  /* f64 */
	"pulls" INT,  /* i32 */
	"total_reward" double precision,  /* f64 */
	"mean" double precision  /* f64 */
)
VOLATILE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'qortex_observe_wrapper';
CREATE  FUNCTION "qortex_observe_batch"(
	"learner" TEXT, /* Option < String > */
	"outcomes" jsonb /* Option < JsonB > */
) RETURNS INT /* i32 */
VOLATILE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'qortex_observe_batch_wrapper';
CREATE  FUNCTION "qortex_posteriors"(
	"learner" TEXT, /* Option < String > */
	"context" jsonb DEFAULT NULL /* Option < JsonB > */
) RETURNS TABLE (
	"arm_id" TEXT,  /* String */
	"alpha" double precision,  /* f64 */
	"beta" double precision,  /* f64 */
	"pulls" INT,  /* i32 */
	"total_reward" double precision,  /* f64 */
	"mean" double precision,  /* f64 */
	"last_updated" timestamp with time zone  /* Option < pgrx :: datum :: TimestampWithTimeZone > */
)
STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'qortex_posteriors_wrapper';
CREATE  FUNCTION "qortex_reset"(
	"learner" TEXT, /* Option < String > */
	"arm_ids" TEXT[] DEFAULT NULL, /* :: std :: option :: Option < Vec < Option < String > > > */
	"context" jsonb DEFAULT NULL /* Option < JsonB > */
) RETURNS INT /* i32 */
VOLATILE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'qortex_reset_wrapper';
CREATE  FUNCTION "qortex_select_arms"(
	"learner" TEXT, /* Option < String > */
	"arms" TEXT[], /* :: std :: option :: Option < Vec < Option < String > > > */
	"context" jsonb DEFAULT NULL, /* Option < JsonB > */
	"k" INT DEFAULT 1, /* Option < i32 > */
	"token_costs" INT[] DEFAULT NULL, /* :: std :: option :: Option < Vec < Option < i32 > > > */
	"token_budget" INT DEFAULT NULL, /* Option < i32 > */
	"seed" bigint DEFAULT NULL /* Option < i64 > */
) RETURNS TABLE (
	"arm_id" TEXT,  /* String */
	"rank" INT,  /* i32 */
	"score" double precision,  /* f64 */
	"explored" bool,  /* bool */
	"alpha" double precision,  /* f64 */
	"beta" double precision,  /* f64 */
	"pulls" INT  /* i32 */
)
VOLATILE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'qortex_select_arms_wrapper';
CREATE  FUNCTION "qortex_top_arms"(
	"learner" TEXT, /* Option < String > */
	"k" INT DEFAULT 10, /* Option < i32 > */
	"context" jsonb DEFAULT NULL /* Option < JsonB > */
) RETURNS TABLE (
	"arm_id" TEXT,  /* String */
	"mean" double precision,  /* f64 */
	"alpha" double precision,  /* f64 */
	"beta" double precision,  /* f64 */
	"pulls" INT,  /* i32 */
	"total_reward" double precision  /* f64 */
)
STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'qortex_top_arms_wrapper';
