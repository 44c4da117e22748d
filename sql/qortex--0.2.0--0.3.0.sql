-- qortex 0.2.0 -> 0.3.0
-- (the CREATE FUNCTION statements are what `cargo pgrx schema` generates for 0.3.0)

-- Learner configs are cached per backend; changes to qortex.learners invalidate them.
CREATE FUNCTION "qortex_learners_changed"()
	RETURNS TRIGGER
	LANGUAGE c
	AS 'MODULE_PATHNAME', 'qortex_learners_changed_wrapper';

CREATE TRIGGER learners_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON qortex.learners
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.qortex_learners_changed();

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
