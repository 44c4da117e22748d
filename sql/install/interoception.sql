-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION qortex" to load this file. \quit

-- Interoception (API.md §4): edges promoted from the buffer.
CREATE TABLE qortex.interoception_edges (
    src_id      TEXT NOT NULL,
    tgt_id      TEXT NOT NULL,
    relation    TEXT NOT NULL DEFAULT 'SIMILAR_TO',
    -- finite (0.4.0): a NaN here made every graph search fail
    confidence  DOUBLE PRECISION NOT NULL
                CONSTRAINT interoception_edges_confidence_finite
                CHECK (confidence > '-Infinity' AND confidence < 'Infinity'),
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
