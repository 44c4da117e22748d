-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION qortex" to load this file. \quit

-- Backends cache learner configs and collection layouts; every change to these tables
-- (through qortex's functions or plain SQL) invalidates those caches (see src/cache.rs).
CREATE TRIGGER learners_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON qortex.learners
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.qortex_state_changed();
CREATE TRIGGER collections_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON qortex.collections
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.qortex_state_changed();
