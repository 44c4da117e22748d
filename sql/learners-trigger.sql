-- Every change to qortex.learners (configure, or plain SQL) invalidates the learner
-- configs that backends cache; see learning.rs.
CREATE TRIGGER learners_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON qortex.learners
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.qortex_learners_changed();
