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
SELECT pg_catalog.pg_extension_config_dump('qortex.interoception_edges', '');
