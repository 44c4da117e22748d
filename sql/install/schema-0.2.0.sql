-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION qortex" to load this file. \quit

-- qortex schema 0.2.0: learner configurations (qortex_learner_configure).
-- The same DDL ships in the upgrade script sql/upgrade/qortex--0.1.0--0.2.0.sql.
CREATE TABLE qortex.learners (
    learner_name TEXT PRIMARY KEY,
    config       JSONB NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT pg_catalog.now()
);
SELECT pg_catalog.pg_extension_config_dump('qortex.learners', '');
