-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION qortex" to load this file. \quit

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
