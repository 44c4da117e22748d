-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION qortex" to load this file. \quit

-- qortex schema 0.1.0: the state tables, created once by CREATE EXTENSION.
--
-- Layout follows the Python qortex stores column for column (names, types, defaults, keys),
-- so rows written by either side are readable by the other. Later schema changes never edit
-- this file's effect: they ship as upgrade scripts sql/upgrade/qortex--A--B.sql.

CREATE SCHEMA qortex;
COMMENT ON SCHEMA qortex IS 'State owned by the qortex extension; dropped with it';

CREATE TABLE qortex.learning_arm_states (
    learner_name TEXT NOT NULL,
    context_hash TEXT NOT NULL,
    arm_id       TEXT NOT NULL,
    alpha        DOUBLE PRECISION NOT NULL DEFAULT 1.0,
    beta         DOUBLE PRECISION NOT NULL DEFAULT 1.0,
    pulls        INTEGER NOT NULL DEFAULT 0,
    total_reward DOUBLE PRECISION NOT NULL DEFAULT 0.0,
    last_updated TIMESTAMPTZ DEFAULT pg_catalog.now(),
    PRIMARY KEY (learner_name, context_hash, arm_id)
);
CREATE INDEX idx_learning_arm_states_context
    ON qortex.learning_arm_states (learner_name, context_hash);

CREATE TABLE qortex.interoception_factors (
    node_id    TEXT PRIMARY KEY,
    weight     DOUBLE PRECISION NOT NULL DEFAULT 1.0,
    updated_at TIMESTAMPTZ DEFAULT pg_catalog.now()
);

CREATE TABLE qortex.interoception_edge_buffer (
    src_id    TEXT NOT NULL,
    tgt_id    TEXT NOT NULL,
    hit_count INTEGER NOT NULL DEFAULT 0,
    scores    JSONB NOT NULL DEFAULT '[]',
    last_seen TIMESTAMPTZ DEFAULT pg_catalog.now(),
    PRIMARY KEY (src_id, tgt_id)
);

-- The tables hold user state, not configuration: pg_dump must keep their rows.
SELECT pg_catalog.pg_extension_config_dump('qortex.learning_arm_states', '');
SELECT pg_catalog.pg_extension_config_dump('qortex.interoception_factors', '');
SELECT pg_catalog.pg_extension_config_dump('qortex.interoception_edge_buffer', '');
