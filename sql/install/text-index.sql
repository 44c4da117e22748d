-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION qortex" to load this file. \quit

-- 0.4.0: every collection's BM25 index lives in tables of this schema, created with the
-- collection and kept current by triggers on its table (src/text_index). Nobody but the
-- extension's owner may use it: searches read it, and triggers write it, as that owner,
-- after checking the caller's rights on the collection's table. A grant on schema qortex
-- never reaches it.
CREATE SCHEMA qortex_internal;
COMMENT ON SCHEMA qortex_internal IS
    'qortex''s indexes of collections; read and written by qortex functions only';
REVOKE ALL ON SCHEMA qortex_internal FROM PUBLIC;
