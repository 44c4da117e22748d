"""API.md §1, through SQL: Thompson-sampling learners."""
import json
import pathlib
import threading

import psycopg
import pytest
from psycopg.types.json import Jsonb

from conftest import connect
from stats import chi_square_p, thompson_first_pick

VECTORS = json.loads(
    (pathlib.Path(__file__).parents[1] / "data" / "context_hash_vectors.json").read_text())


def row(conn, sql, *args):
    return conn.execute(sql, args).fetchone()


def observe(conn, learner, arm, outcome=None, reward=None, context=None):
    return row(conn, "SELECT alpha, beta, pulls, total_reward, mean "
                     "FROM qortex_observe(%s, %s, %s, %s, %s)",
               learner, arm, outcome, reward, None if context is None else Jsonb(context))


def state_snapshot(conn):
    return conn.execute("SELECT * FROM qortex.learning_arm_states ORDER BY 1, 2, 3").fetchall(), \
        conn.execute("SELECT * FROM qortex.learners ORDER BY 1").fetchall()


# ---- pinned values -----------------------------------------------------------------------

def test_ternary_partial_on_a_fresh_arm(db):
    assert observe(db, "l", "a", "partial") == (1.5, 1.5, 1, 0.5, 0.5)


def test_accepted_accepted_rejected(db):
    for o in ["accepted", "accepted", "rejected"]:
        last = observe(db, "l", "a", o)
    assert last == (3.0, 2.0, 3, 2.0, 0.6)


def test_binary_partial(db):
    cfg = row(db, "SELECT qortex_learner_configure('b', %s)", Jsonb({"reward_model": "binary"}))[0]
    assert cfg["reward_model"] == "binary"
    assert observe(db, "b", "a", "partial")[:2] == (1.0, 2.0)


def test_explicit_reward_wins_over_outcome(db):
    assert observe(db, "l", "a", "rejected", 0.25)[:4] == (1.25, 1.75, 1, 0.25)


def test_decay_toward_the_prior(db):
    for _ in range(5):
        observe(db, "l", "a", "accepted")
    assert observe(db, "l", "a", reward=0.0)[:2] == (6.0, 2.0)
    db.execute("UPDATE qortex.learning_arm_states SET beta = 1.0")  # (6, 1) as pinned
    assert row(db, "SELECT alpha, beta, pulls, total_reward FROM qortex_decay_arm('l', 'a', 0.5)") \
        == (3.5, 1.0, 6, 2.5)
    # decay of an arm with no stored state: no row, nothing written
    assert db.execute("SELECT * FROM qortex_decay_arm('l', 'zzz', 0.5)").fetchall() == []


def test_decay_learner_all_contexts_or_one(db):
    observe(db, "l", "a", "accepted")
    observe(db, "l", "a", "accepted", context={"t": 1})
    observe(db, "m", "a", "accepted")
    assert row(db, "SELECT qortex_decay_learner('l', 0.5, %s)", Jsonb({"t": 1}))[0] == 1
    assert row(db, "SELECT qortex_decay_learner('l', 0.5)")[0] == 2
    alphas = dict(db.execute("SELECT context_hash, alpha FROM qortex.learning_arm_states "
                             "WHERE learner_name = 'l'").fetchall())
    assert alphas["default"] == 1.5
    assert alphas[row(db, "SELECT qortex_context_hash(%s)", Jsonb({"t": 1}))[0]] == 1.25
    assert row(db, "SELECT alpha FROM qortex.learning_arm_states WHERE learner_name = 'm'")[0] == 2


def test_seed_arms_start_at_seed_boost_in_the_default_context(db):
    db.execute("SELECT qortex_learner_configure('s', %s)",
               (Jsonb({"seed_arms": ["fav"], "seed_boost": 3.0}),))
    rows = {r[0]: r for r in db.execute(
        "SELECT arm_id, alpha, beta, pulls FROM qortex_select_arms('s', ARRAY['fav','other'], k => 0)")}
    assert rows["fav"][1:] == (3.0, 1.0, 0)
    assert rows["other"][1:] == (1.0, 1.0, 0)
    ctx_rows = {r[0]: r[1] for r in db.execute(
        "SELECT arm_id, alpha FROM qortex_select_arms('s', ARRAY['fav'], %s, 0)", (Jsonb({"x": 1}),))}
    assert ctx_rows["fav"] == 1.0
    assert observe(db, "s", "fav", "accepted")[:2] == (4.0, 1.0)
    # decay pulls a seed arm toward its own starting point
    assert row(db, "SELECT alpha FROM qortex_decay_arm('s', 'fav', 0.5)")[0] == 3.5


def test_configure_merges_and_returns_the_effective_config(db):
    cfg = row(db, "SELECT qortex_learner_configure('c', '{}')")[0]
    assert cfg == {"reward_model": "ternary", "baseline_rate": 0.1, "min_pulls": 0,
                   "prior_alpha": 1.0, "prior_beta": 1.0, "seed_arms": [], "seed_boost": 2.0}
    row(db, "SELECT qortex_learner_configure('c', '{\"baseline_rate\": 0}')")
    cfg = row(db, "SELECT qortex_learner_configure('c', '{\"min_pulls\": 3}')")[0]
    assert (cfg["baseline_rate"], cfg["min_pulls"]) == (0, 3)


def test_priors_apply_to_unknown_arms(db):
    db.execute("SELECT qortex_learner_configure('p', '{\"prior_alpha\": 2, \"prior_beta\": 5}')")
    assert observe(db, "p", "a", "accepted")[:2] == (3.0, 5.0)


# ---- context hash ------------------------------------------------------------------------

def test_context_hash_matches_the_python_package(db):
    assert len(VECTORS) >= 30
    for v in VECTORS:
        assert row(db, "SELECT qortex_context_hash(%s::jsonb)", v["context"])[0] == v["hash"], v
    assert row(db, "SELECT qortex_context_hash(NULL)")[0] == "default"


def test_a_row_written_by_the_python_store_is_read(db):
    # What PostgresLearningStore.put writes for context {"task": "type-check"}.
    v = next(v for v in VECTORS if v["canonical"] == '{"task":"type-check"}')
    db.execute("INSERT INTO qortex.learning_arm_states (learner_name, context_hash, arm_id, alpha, "
               "beta, pulls, total_reward, last_updated) VALUES ('py', %s, 'arm', 4, 2, 4, 3, now())",
               (v["hash"],))
    got = db.execute("SELECT arm_id, alpha, beta, pulls, total_reward, mean "
                     "FROM qortex_posteriors('py', %s::jsonb)", (v["context"],)).fetchall()
    assert got == [("arm", 4.0, 2.0, 4, 3.0, 4 / 6)]
    assert observe(db, "py", "arm", "accepted", context={"task": "type-check"})[:3] == (5.0, 2.0, 5)


# ---- selection ---------------------------------------------------------------------------

def test_selection_frequencies_match_exact_thompson_probabilities(db):
    params = [(3.0, 5.0), (5.0, 5.0), (8.0, 4.0), (2.0, 2.0)]
    db.execute("SELECT qortex_learner_configure('t', '{\"baseline_rate\": 0}')")
    for i, (a, b) in enumerate(params):
        db.execute("INSERT INTO qortex.learning_arm_states (learner_name, context_hash, arm_id, "
                   "alpha, beta) VALUES ('t', 'default', %s, %s, %s)", (f"a{i}", a, b))
    n = 6000
    counts = dict(db.execute(
        "SELECT s.arm_id, count(*) FROM generate_series(1, %s) g, "
        "LATERAL qortex_select_arms('t', ARRAY['a0','a1','a2','a3'], seed => g) s "
        "WHERE s.rank = 1 GROUP BY 1", (n,)).fetchall())
    observed = [counts.get(f"a{i}", 0) for i in range(len(params))]
    probs = thompson_first_pick(params)
    assert chi_square_p(observed, probs) > 0.001, (observed, [round(p * n) for p in probs])


def test_observed_exploration_rate_matches_baseline_rate(db):
    db.execute("SELECT qortex_learner_configure('e', '{\"baseline_rate\": 0.3}')")
    n = 5000
    explored, scores = row(db, "SELECT count(*) FILTER (WHERE explored), "
                               "array_agg(DISTINCT score) FILTER (WHERE explored) "
                               "FROM generate_series(1, %s) g, "
                               "LATERAL qortex_select_arms('e', ARRAY['x','y','z'], seed => g)",
                           n)
    # Binomial(5000, 0.3): sd 32.4; 5 sd either side
    assert abs(explored - 0.3 * n) < 5 * (n * 0.3 * 0.7) ** 0.5
    assert scores == [0.5]


def test_top_k_without_replacement(db):
    rows = db.execute("SELECT arm_id, rank, score FROM qortex_select_arms("
                      "'k', ARRAY['a','b','c','d','e'], k => 3, seed => 5)").fetchall()
    assert [r[1] for r in rows] == [1, 2, 3]
    assert len({r[0] for r in rows}) == 3
    assert [r[2] for r in rows] == sorted((r[2] for r in rows), reverse=True)
    assert len(db.execute("SELECT * FROM qortex_select_arms('k', ARRAY['a','b','c'], k => 0)")
               .fetchall()) == 3
    assert len(db.execute("SELECT * FROM qortex_select_arms('k', ARRAY['a','b','c'], k => NULL)")
               .fetchall()) == 3
    assert db.execute("SELECT * FROM qortex_select_arms('k', ARRAY[]::text[])").fetchall() == []


def test_ties_are_broken_at_random(db):
    # A decayed-to-nothing posterior draws exactly 0 for every arm: a full tie.
    db.execute("SELECT qortex_learner_configure('tie', '{\"baseline_rate\": 0}')")
    for a in "abc":
        db.execute("INSERT INTO qortex.learning_arm_states (learner_name, context_hash, arm_id, "
                   "alpha, beta) VALUES ('tie', 'default', %s, 1e-300, 1)", (a,))
    counts = dict(db.execute(
        "SELECT s.arm_id, count(*) FROM generate_series(1, 3000) g, "
        "LATERAL qortex_select_arms('tie', ARRAY['a','b','c'], seed => g) s GROUP BY 1").fetchall())
    assert chi_square_p([counts[a] for a in "abc"], [1 / 3] * 3) > 0.001, counts


def test_token_budget_skips_what_does_not_fit_and_keeps_going(db):
    db.execute("SELECT qortex_learner_configure('tb', '{\"baseline_rate\": 0}')")
    for arm, a, b in [("big", 1e6, 1), ("mid", 1e5, 1e5), ("small", 1, 1e5), ("tiny", 1, 1e6)]:
        db.execute("INSERT INTO qortex.learning_arm_states (learner_name, context_hash, arm_id, "
                   "alpha, beta) VALUES ('tb', 'default', %s, %s, %s)", (arm, a, b))
    got = [r[0] for r in db.execute(
        "SELECT arm_id FROM qortex_select_arms('tb', ARRAY['big','mid','small','tiny'], k => 0, "
        "token_costs => ARRAY[60, 50, 30, 10], token_budget => 100, seed => 1)")]
    assert got == ["big", "small", "tiny"]


def test_min_pulls_forces_cold_arms(db):
    db.execute("SELECT qortex_learner_configure('mp', '{\"baseline_rate\": 0, \"min_pulls\": 2}')")
    db.execute("INSERT INTO qortex.learning_arm_states (learner_name, context_hash, arm_id, alpha, "
               "beta, pulls) VALUES ('mp', 'default', 'hot', 1e6, 1, 50), "
               "('mp', 'default', 'cold', 1, 1e6, 1)")
    for seed in range(20):
        rows = db.execute("SELECT arm_id, rank FROM qortex_select_arms('mp', ARRAY['hot','cold','new'], "
                          "seed => %s)", (seed,)).fetchall()
        # k = 1 but two arms are below min_pulls: both come, nothing else
        assert sorted(r[0] for r in rows) == ["cold", "new"]


def test_same_seed_same_rows_different_seed_differs(db):
    arms = [f"arm{i}" for i in range(30)]
    q = "SELECT * FROM qortex_select_arms('r', %s, k => 10, seed => %s)"
    a = db.execute(q, (arms, 42)).fetchall()
    assert a == db.execute(q, (arms, 42)).fetchall()
    assert a != db.execute(q, (arms, 43)).fetchall()


def test_select_writes_nothing_and_works_read_only(db):
    observe(db, "ro", "a", "accepted")
    before = state_snapshot(db)
    with db.transaction():
        db.execute("SET TRANSACTION READ ONLY")
        rows = db.execute("SELECT arm_id FROM qortex_select_arms('ro', ARRAY['a','b'], k => 2)").fetchall()
        assert len(rows) == 2
        db.execute("SELECT * FROM qortex_top_arms('ro')").fetchall()
        db.execute("SELECT qortex_metrics('ro')")
    assert state_snapshot(db) == before


# ---- reading ------------------------------------------------------------------------------

def test_top_arms_posteriors_and_metrics(db):
    for arm, outs in {"a": ["accepted"] * 3, "b": ["rejected"] * 2, "c": ["partial"]}.items():
        for o in outs:
            observe(db, "m", arm, o)
    observe(db, "m", "a", "accepted", context={"user": "u1"})
    top = db.execute("SELECT arm_id, mean, pulls FROM qortex_top_arms('m', 2)").fetchall()
    assert top == [("a", 0.8, 3), ("c", 0.5, 1)]
    post = db.execute("SELECT arm_id FROM qortex_posteriors('m')").fetchall()
    assert [p[0] for p in post] == ["a", "c", "b"]
    m = row(db, "SELECT qortex_metrics('m')")[0]
    assert (m["learner"], m["total_pulls"], m["total_reward"], m["arm_count"], m["contexts"]) \
        == ("m", 7, 4.5, 3, 2)
    assert m["accuracy"] == pytest.approx(4.5 / 7)


def test_metrics_count_selections_and_observations_in_shared_memory(db):
    """Counters live in shared memory: select stays write-free, even read-only, and counts."""
    def counts():
        m = row(db, "SELECT qortex_metrics('cnt')")[0]
        return m["selections"], m["observations"]

    assert counts() == (0, 0)
    for _ in range(5):
        db.execute("SELECT * FROM qortex_select_arms('cnt', ARRAY['a','b'])").fetchall()
    with db.transaction():
        db.execute("SET TRANSACTION READ ONLY")
        db.execute("SELECT * FROM qortex_select_arms('cnt', ARRAY['a','b'], k => 2)").fetchall()
    observe(db, "cnt", "a", "accepted")
    db.execute("""SELECT qortex_observe_batch('cnt', '[{"arm_id":"a","reward":1},
                  {"arm_id":"b","outcome":"rejected"},{"arm_id":"a","outcome":"partial"}]')""")
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        observe(db, "cnt", "a", "nonsense")
    assert counts() == (6, 4)
    status = row(db, "SELECT qortex_status()")[0]["counters"]
    assert status["enabled"] is True
    assert status["selections"] >= 6 and status["observations"] >= 4


def test_select_checks_privileges_like_a_query(db):
    """Select reads the state table directly; it still needs SELECT on it, as a query would."""
    observe(db, "priv", "a", "accepted")
    db.execute("DROP ROLE IF EXISTS qortex_it_reader")
    db.execute("CREATE ROLE qortex_it_reader")
    try:
        db.execute("GRANT USAGE ON SCHEMA qortex TO qortex_it_reader")
        db.execute("GRANT SELECT ON qortex.learners TO qortex_it_reader")
        sql = "SELECT arm_id, alpha FROM qortex_select_arms('priv', ARRAY['a'])"
        with db.transaction():
            db.execute("SET LOCAL ROLE qortex_it_reader")
            with pytest.raises(psycopg.errors.InsufficientPrivilege,
                               match="qortex.learning_arm_states"):
                db.execute(sql)
        db.execute("GRANT SELECT ON qortex.learning_arm_states TO qortex_it_reader")
        with db.transaction():
            db.execute("SET LOCAL ROLE qortex_it_reader")
            assert db.execute(sql).fetchall() == [("a", 2.0)]
    finally:
        db.execute("DROP OWNED BY qortex_it_reader")
        db.execute("DROP ROLE qortex_it_reader")


def test_result_columns_are_the_contract(db):
    """select_arms and observe return row types; their columns are those of API.md."""
    def columns(sql):
        cur = db.execute(sql)
        return [(c.name, db.execute("SELECT %s::regtype::text", (c.type_code,)).fetchone()[0])
                for c in cur.description]

    assert columns("SELECT * FROM qortex_select_arms('cols', ARRAY['a'])") == [
        ("arm_id", "text"), ("rank", "integer"), ("score", "double precision"),
        ("explored", "boolean"), ("alpha", "double precision"), ("beta", "double precision"),
        ("pulls", "integer")]
    posterior = [("alpha", "double precision"), ("beta", "double precision"),
                 ("pulls", "integer"), ("total_reward", "double precision"),
                 ("mean", "double precision")]
    assert columns("SELECT * FROM qortex_observe('cols', 'a', 'accepted')") == posterior
    assert columns("SELECT * FROM qortex_decay_arm('cols', 'a')") == posterior


def test_a_committed_configure_reaches_other_sessions_at_once(db):
    """Backends cache learner configs; every change to qortex.learners invalidates them."""
    with connect(db.info.dbname, autocommit=True) as other:
        def explored():
            return other.execute(
                "SELECT explored FROM qortex_select_arms('cfg', ARRAY['a','b','c'])").fetchone()[0]

        db.execute("""SELECT qortex_learner_configure('cfg', '{"baseline_rate": 0.0}')""")
        assert not any(explored() for _ in range(20))  # now cached in `other`
        db.execute("""SELECT qortex_learner_configure('cfg', '{"baseline_rate": 1.0}')""")
        assert all(explored() for _ in range(5))
        # A change by plain SQL, and a configure that rolls back, are seen the same way.
        db.execute("""UPDATE qortex.learners SET config = config || '{"baseline_rate": 0.0}'""")
        assert not any(explored() for _ in range(20))
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            with db.transaction():
                db.execute("""SELECT qortex_learner_configure('cfg', '{"baseline_rate": 1.0}')""")
                db.execute("SELECT qortex_observe('cfg', 'a', 'bogus')")
        assert not any(explored() for _ in range(20))
        db.execute("DELETE FROM qortex.learners")
        # Back to the defaults (baseline_rate 0.1): some of 200 picks explore.
        assert any(explored() for _ in range(200))
        # In one transaction, a configure is seen by the next statement.
        with other.transaction():
            other.execute("""SELECT qortex_learner_configure('cfg', '{"baseline_rate": 1.0}')""")
            assert explored()


def test_reset_follows_the_python_store(db):
    for ctx in [None, {"u": 1}]:
        for arm in "abc":
            observe(db, "z", arm, "accepted", context=ctx)
    assert row(db, "SELECT qortex_reset('z', ARRAY['a','b'])")[0] == 2  # default context only
    assert row(db, "SELECT qortex_reset('z', NULL, %s)", Jsonb({"u": 1}))[0] == 3
    assert row(db, "SELECT qortex_reset('z')")[0] == 1


# ---- concurrency -------------------------------------------------------------------------

def run_threads(dbname, n, work):
    errors = []

    def target(i):
        try:
            with connect(dbname, autocommit=True) as c:
                work(c, i)
        except Exception as e:  # noqa: BLE001 - collected and re-raised below
            errors.append(e)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_concurrent_observes_lose_no_update(db):
    dbname = db.info.dbname
    per = 250

    def work(c, i):
        for j in range(per):
            c.execute("SELECT qortex_observe('conc', 'hot', %s)",
                      ("accepted" if (i + j) % 2 == 0 else "rejected",))

    run_threads(dbname, 8, work)
    alpha, beta, pulls, total = row(db, "SELECT alpha, beta, pulls, total_reward "
                                        "FROM qortex.learning_arm_states WHERE learner_name = 'conc'")
    assert pulls == 8 * per
    assert (alpha, beta, total) == (1 + 4 * per, 1 + 4 * per, 4 * per)


def test_observe_of_a_stored_arm_behaves_as_the_sql_update(db):
    """Observes of an arm with a row are written in place; everything SQL would do holds."""
    # one statement observing the same arm three times sees its own updates
    pulls = db.execute("SELECT (qortex_observe('inpl', 'a', 'accepted')).pulls "
                       "FROM generate_series(1, 3)").fetchall()
    assert pulls == [(1,), (2,), (3,)]
    with db.transaction():
        assert observe(db, "inpl", "a", "rejected")[:4] == (4.0, 2.0, 4, 3.0)
        assert row(db, "SELECT last_updated = now() FROM qortex.learning_arm_states "
                       "WHERE learner_name = 'inpl'")[0] is True
        raise psycopg.Rollback()
    before = state_snapshot(db)
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        with db.transaction():
            db.execute("SET TRANSACTION READ ONLY")
            observe(db, "inpl", "a", "accepted")
    assert state_snapshot(db) == before  # the rollback and the refusal changed nothing
    with db.transaction():
        db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        assert observe(db, "inpl", "a", "accepted")[:3] == (5.0, 1.0, 4)
    # a trigger on the table still fires (the update then goes through SQL)
    db.execute("CREATE TABLE inpl_audit (arm text, pulls int)")
    db.execute("""CREATE FUNCTION inpl_audit() RETURNS trigger LANGUAGE plpgsql AS $$
                  BEGIN INSERT INTO inpl_audit VALUES (NEW.arm_id, NEW.pulls); RETURN NEW; END $$""")
    db.execute("CREATE TRIGGER inpl_audit AFTER UPDATE ON qortex.learning_arm_states "
               "FOR EACH ROW EXECUTE FUNCTION inpl_audit()")
    try:
        observe(db, "inpl", "a", "accepted")
        assert db.execute("SELECT * FROM inpl_audit").fetchall() == [("a", 5)]
    finally:
        db.execute("DROP TRIGGER inpl_audit ON qortex.learning_arm_states")


def test_concurrent_batches_in_opposite_orders_never_deadlock(db):
    dbname = db.info.dbname
    arms = [f"arm{i:02d}" for i in range(20)]

    def work(c, i):
        order = arms if i % 2 == 0 else list(reversed(arms))
        batch = Jsonb([{"arm_id": a, "outcome": "accepted"} for a in order])
        for _ in range(40):
            with c.transaction():  # hold the locks until commit, as an app batch would
                c.execute("SELECT qortex_observe_batch('batch', %s)", (batch,))

    run_threads(dbname, 4, work)
    got = db.execute("SELECT DISTINCT pulls FROM qortex.learning_arm_states "
                     "WHERE learner_name = 'batch'").fetchall()
    assert got == [(160,)]


def test_observe_batch_applies_all_with_duplicates_and_contexts(db):
    n = row(db, "SELECT qortex_observe_batch('ob', %s)", Jsonb([
        {"arm_id": "a", "outcome": "accepted"},
        {"arm_id": "a", "outcome": "partial"},
        {"arm_id": "b", "reward": 0.25, "context": {"u": 1}},
    ]))[0]
    assert n == 3
    assert observe(db, "ob", "a", reward=0.0)[:4] == (2.5, 2.5, 3, 1.5)
    assert observe(db, "ob", "b", reward=0.0, context={"u": 1})[:4] == (1.25, 2.75, 2, 0.25)


# ---- bad input ---------------------------------------------------------------------------

BAD = [
    ("SELECT * FROM qortex_observe('l', 'a', reward => 'NaN')", "reward"),
    ("SELECT * FROM qortex_observe('l', 'a', reward => 'Infinity')", "reward"),
    ("SELECT * FROM qortex_observe('l', 'a', reward => '-Infinity')", "reward"),
    ("SELECT * FROM qortex_observe('l', 'a', reward => -0.01)", "reward"),
    ("SELECT * FROM qortex_observe('l', 'a', reward => 1.01)", "reward"),
    ("SELECT * FROM qortex_observe('l', 'a', 'great')", "outcome"),
    ("SELECT * FROM qortex_observe('l', 'a')", "outcome"),
    ("SELECT * FROM qortex_observe(NULL, 'a', 'accepted')", "learner"),
    ("SELECT * FROM qortex_observe('l', NULL, 'accepted')", "arm_id"),
    ("SELECT * FROM qortex_observe('l', 'a', 'accepted', context => '[1]')", "context"),
    ("SELECT * FROM qortex_select_arms('l', ARRAY['a'], k => -1)", "k"),
    ("SELECT * FROM qortex_select_arms('l', ARRAY['a','b','a'])", "arms"),
    ("SELECT * FROM qortex_select_arms('l', ARRAY['a', NULL])", "arms"),
    ("SELECT * FROM qortex_select_arms('l', ARRAY['a','b'], token_costs => ARRAY[1])", "token_costs"),
    ("SELECT * FROM qortex_select_arms('l', ARRAY['a','b'], token_costs => ARRAY[1,-2])",
     "token_costs"),
    ("SELECT * FROM qortex_select_arms('l', ARRAY['a'], token_budget => -5)", "token_budget"),
    ("SELECT * FROM qortex_decay_arm('l', 'a', 0)", "factor"),
    ("SELECT * FROM qortex_decay_arm('l', 'a', 1.5)", "factor"),
    ("SELECT qortex_decay_learner('l', -0.5)", "factor"),
    ("SELECT qortex_learner_configure('l', '{\"nope\": 1}')", "config"),
    ("SELECT qortex_learner_configure('l', '{\"baseline_rate\": 2}')", "config.baseline_rate"),
    ("SELECT qortex_learner_configure('l', '{\"min_pulls\": -1}')", "config.min_pulls"),
    ("SELECT qortex_learner_configure('l', '{\"prior_alpha\": 0}')", "config.prior_alpha"),
    ("SELECT qortex_learner_configure('l', '{\"reward_model\": \"x\"}')", "config.reward_model"),
    ("SELECT qortex_observe_batch('l', '[{\"arm_id\": \"a\", \"outcome\": \"accepted\"}, "
     "{\"arm_id\": \"b\", \"reward\": 7}]')", "outcomes[1].reward"),
    ("SELECT qortex_observe_batch('l', '[{\"arm_id\": \"a\", \"outcome\": \"accepted\"}, "
     "{\"arm\": \"b\"}]')", "outcomes[1].arm"),
    ("SELECT qortex_observe_batch('l', '{\"arm_id\": \"a\"}')", "outcomes"),
]


@pytest.mark.parametrize("sql,arg", BAD, ids=[f"{i}-{b[1]}" for i, b in enumerate(BAD)])
def test_bad_input_is_22023_naming_the_argument_and_changes_nothing(db, sql, arg):
    observe(db, "l", "a", "accepted")
    db.execute("SELECT qortex_learner_configure('l', '{\"baseline_rate\": 0.2}')")
    before = state_snapshot(db)
    with pytest.raises(psycopg.errors.InvalidParameterValue) as e:
        db.execute(sql)
    assert f"invalid {arg}" in str(e.value), str(e.value)
    assert state_snapshot(db) == before
