"""qortex_client.learning.Learner: qortex-learning's API (the real package, pinned in
tests/requirements.txt) on the SQL functions."""
import asyncio
import difflib
import importlib.metadata
import os
import re
import subprocess
import sys
import textwrap

import pytest

from conftest import ASYNC_DRIVERS, HOST, PORT, Opened, run
from qortex_client import InvalidArgumentError
from qortex_client.learning import Arm, ArmOutcome, ArmState, Learner, LearnerConfig

import qortex.learning as package

DRIVERS = ["asyncpg-pool", "asyncpg-conn", "psycopg-async", "psycopg-async-pool", "psycopg"]


def test_the_dataclasses_are_the_packages():
    assert (Arm, ArmOutcome, ArmState, LearnerConfig) == (
        package.Arm, package.ArmOutcome, package.ArmState, package.LearnerConfig)


def quick_start():
    """The usage example of qortex-learning's own README (its PyPI description)."""
    readme = importlib.metadata.metadata("qortex-learning").get_payload()
    return re.search(r"```python\n(.*?)```", readme, re.S).group(1)


def test_the_quick_start_with_one_line_changed(db, tmp_path):
    original = quick_start()
    changed = original.replace("from qortex.learning import", "from qortex_client.learning import")
    diff = [ln for ln in difflib.unified_diff(original.splitlines(), changed.splitlines(), lineterm="")
            if ln.startswith(("+", "-")) and not ln.startswith(("+++", "---"))]
    assert diff == ["-from qortex.learning import Learner, LearnerConfig, Arm, ArmOutcome",
                    "+from qortex_client.learning import Learner, LearnerConfig, Arm, ArmOutcome"]
    # top-level awaits, as the README writes them: run as asyncio's REPL would, in a function
    script = tmp_path / "quick_start.py"
    script.write_text("import asyncio\n\nasync def main():\n" + textwrap.indent(changed, "    ")
                      + "    print(result.selected[0].id, result.is_baseline)\n"
                      + "    await learner.close()\n\nasyncio.run(main())\n")
    env = dict(os.environ, PGHOST=HOST, PGPORT=str(PORT), PGUSER="postgres",
               PGDATABASE=db.info.dbname, HOME=str(tmp_path))
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"(v1|v2) (True|False)\n", done.stdout)
    # the state is in the database, not in a file under ~/.qortex
    assert db.execute("SELECT arm_id, context_hash, alpha, beta, pulls FROM qortex.learning_arm_states "
                      "WHERE learner_name = 'prompts'").fetchall() == [("v2", "default", 2.0, 1.0, 1)]
    assert not (tmp_path / ".qortex").exists()
    assert db.execute("SELECT qortex_learner_configure('prompts', '{}')->>'baseline_rate'").fetchone()[0] == "0.1"


async def script(learner):
    """The same calls on any Learner; what they return, as plain values."""
    out = []
    ctx = {"task": "type-check"}
    state = lambda s: (s.alpha, s.beta, s.pulls, s.total_reward)  # noqa: E731
    out.append(state(await learner.observe(ArmOutcome(arm_id="a", reward=1.0, outcome="accepted"))))
    out.append(state(await learner.observe(ArmOutcome(arm_id="a", reward=0.0, outcome="accepted"))))  # outcome wins
    out.append(state(await learner.observe(ArmOutcome(arm_id="b", reward=0.0, outcome="rejected"))))
    out.append(state(await learner.observe(ArmOutcome(arm_id="c", reward=0.0, outcome="partial"))))
    out.append(state(await learner.observe(ArmOutcome(arm_id="b", reward=0.25, outcome=""), context=ctx)))
    out.append(state(await learner.observe(ArmOutcome(arm_id="d", reward=0.0, outcome="maybe", context=ctx))))
    batch = await learner.batch_observe([ArmOutcome(arm_id="a", reward=0.0, outcome="partial"),
                                         ArmOutcome(arm_id="e", reward=0.75, outcome=""),
                                         ArmOutcome(arm_id="a", reward=1.0, outcome="accepted")])
    out.append({k: state(v) for k, v in batch.items()})
    out.append([(k, state(v)) for k, v in await learner.top_arms()])
    out.append([(k, state(v)) for k, v in await learner.top_arms(k=2)])
    out.append([(k, state(v)) for k, v in await learner.top_arms(context=ctx)])
    post = await learner.posteriors()
    out.append({k: {f: v for f, v in d.items() if f != "last_updated"} for k, d in post.items()})
    out.append(sorted(await learner.posteriors(context=ctx, arm_ids=["b"])))
    m = await learner.metrics()
    out.append({k: m[k] for k in ("learner", "total_pulls", "total_reward", "accuracy", "arm_count",
                                  "explore_ratio")})
    out.append(tuple(round(x, 12) for x in state(await learner.decay_arm("a", 0.5))))
    out.append(tuple(round(x, 12) for x in state(await learner.decay_arm("b", 0.9, context=ctx))))
    out.append(await learner.reset(arm_ids=["c"]))
    out.append(await learner.reset(arm_ids=[]))
    out.append(await learner.reset(context=ctx))
    out.append(sorted(await learner.posteriors()))
    out.append(await learner.reset())
    out.append(await learner.posteriors())
    return out


@pytest.mark.parametrize("kind", DRIVERS)
def test_the_same_calls_give_what_the_package_gives(kind, db, tmp_path):
    """Every method, on qortex-learning's own Learner (its SQLite store) and on this one: the
    same values (timestamps aside)."""
    async def main():
        theirs = await package.Learner.create(package.LearnerConfig(name="diff", state_dir=str(tmp_path)))
        expected = await script(theirs)
        await theirs.store.close()
        async with Opened(kind, db.info.dbname) as conn:
            ours = await Learner.create(LearnerConfig(name="diff"), connection=conn)
            got = await script(ours)
        return expected, got
    expected, got = run(main())
    assert got == expected


@pytest.mark.parametrize("kind", ["asyncpg-pool", "psycopg-async-pool"])
def test_eight_concurrent_observers_lose_nothing(kind, db):
    n, per = 8, 25
    rewards = [(i * 7 % 10) / 10 for i in range(n * per)]

    async def observer(learner, i):
        for r in rewards[i * per:(i + 1) * per]:
            await learner.observe(ArmOutcome(arm_id="hot", reward=r, outcome=""))

    async def main():
        async with Opened(kind, db.info.dbname) as pool:
            learners = [await Learner.create(LearnerConfig(name="race"), connection=pool) for _ in range(n)]
            await asyncio.gather(*(observer(lr, i) for i, lr in enumerate(learners)))
            return (await learners[0].posteriors())["hot"]
    post = run(main())
    assert post["pulls"] == n * per
    assert post["alpha"] == pytest.approx(1 + sum(rewards))
    assert post["beta"] == pytest.approx(1 + sum(1 - r for r in rewards))
    assert post["total_reward"] == pytest.approx(sum(rewards))


def test_the_packages_own_store_loses_updates_under_the_same_load(db):
    """The control: the same eight observers through qortex-learning's PostgresLearningStore
    (read, modify, write back) on qortex's table lose updates, so the test above can fail."""
    import asyncpg
    from qortex.learning.pg_store import PostgresLearningStore

    class QortexStore(PostgresLearningStore):  # docs/libraries/qortex-learning.md
        async def _ensure_schema(self):
            pass

    async def main():
        pool = await asyncpg.create_pool(host=HOST, port=PORT, user="postgres", database=db.info.dbname,
                                         min_size=8, max_size=8, server_settings={"search_path": "qortex"})
        try:
            learners = [await package.Learner.create(package.LearnerConfig(name="race"),
                                                     store=QortexStore("race", pool)) for _ in range(8)]

            async def observer(learner):
                for _ in range(25):
                    await learner.observe(ArmOutcome(arm_id="hot", reward=1.0, outcome="accepted"))
            await asyncio.gather(*(observer(lr) for lr in learners))
        finally:
            await pool.close()
    run(main())
    pulls = db.execute("SELECT pulls FROM qortex.learning_arm_states WHERE learner_name = 'race'").fetchone()[0]
    assert pulls < 200


@pytest.mark.parametrize("kind", ["asyncpg-pool", "psycopg-async"])
def test_select(kind, db):
    arms = [Arm(id="terse", token_cost=10), Arm(id="detailed", token_cost=40), Arm(id="cot", token_cost=25)]

    async def main():
        async with Opened(kind, db.info.dbname) as conn:
            learner = await Learner.create(LearnerConfig(name="styles", baseline_rate=0.0), connection=conn)
            for _ in range(30):
                await learner.observe(ArmOutcome(arm_id="cot", reward=1.0, outcome="accepted"))
                await learner.observe(ArmOutcome(arm_id="terse", reward=0.0, outcome="rejected"))
            r = await learner.select(arms, k=1, seed=7)
            assert r.selected == [arms[2]] and r.selected[0] is arms[2]  # the candidates' own Arms
            assert r.excluded == [arms[0], arms[1]] and r.is_baseline is False
            assert list(r.scores) == ["cot"] and 0 < r.scores["cot"] < 1
            assert r.used_tokens == 25 and r.token_budget == 0
            # k <= 0: every candidate, best draw first; a seed makes the draw reproducible
            a = await learner.select(arms, k=0, seed=42)
            assert sorted(x.id for x in a.selected) == ["cot", "detailed", "terse"] and a.excluded == []
            assert (await learner.select(arms, k=0, seed=42)).scores == a.scores
            # a token budget: greedily in rank order, skipping what does not fit
            b = await learner.select(arms, k=0, token_budget=50, seed=7)
            assert b.used_tokens <= 50 and "cot" in [x.id for x in b.selected]
            # a context has its own posteriors
            c = await learner.select(arms, context={"task": "new"}, k=3, seed=1)
            assert len(c.selected) == 3
            # exploration rounds, as configured in the program's LearnerConfig
            explorer = await Learner.create(LearnerConfig(name="explore", baseline_rate=1.0), connection=conn)
            e = await explorer.select(arms, k=2)
            assert e.is_baseline is True and set(e.scores.values()) == {0.5}
            # min_pulls: arms observed fewer times come first
            forced = await Learner.create(LearnerConfig(name="styles", baseline_rate=0.0, min_pulls=1),
                                          connection=conn)
            f = await forced.select(arms, k=1)
            assert [x.id for x in f.selected] == ["detailed"]
    run(main())


@pytest.mark.parametrize("kind", ["asyncpg-pool", "psycopg-async-pool"])
def test_where_qortex_refuses_what_the_package_accepts(kind, db):
    async def main():
        async with Opened(kind, db.info.dbname) as conn:
            learner = await Learner.create(LearnerConfig(name="strict"), connection=conn)
            with pytest.raises(InvalidArgumentError) as e:
                await learner.observe(ArmOutcome(arm_id="a", reward=1.5, outcome=""))
            assert e.value.sqlstate == "22023" and "reward" in e.value.message
            with pytest.raises(InvalidArgumentError, match="duplicate"):
                await learner.select([Arm(id="a"), Arm(id="a")])
            with pytest.raises(InvalidArgumentError):
                await learner.decay_arm("a", 0.0)
            # a batch with one bad element applies none
            await learner.observe(ArmOutcome(arm_id="a", reward=1.0, outcome="accepted"))
            with pytest.raises(InvalidArgumentError, match=r"outcomes\[1\]"):
                await learner.batch_observe([ArmOutcome(arm_id="a", reward=1.0, outcome=""),
                                             ArmOutcome(arm_id="b", reward=-1.0, outcome="")])
            assert (await learner.posteriors())["a"]["pulls"] == 1
            # decay toward the prior, qortex's default in SQL, on request
            s = await learner.decay_arm("a", 0.5, toward="prior")
            assert (s.alpha, s.beta) == (1.5, 1.0)
            # an arm without state stays without one
            assert await learner.decay_arm("never", 0.5) == ArmState()
            assert "never" not in await learner.posteriors()
    run(main())
    with pytest.raises(TypeError, match="connection="):
        Learner(LearnerConfig(name="x"), store=object())


def test_without_qortex_learning_installed(db, tmp_path):
    """Where the package is not installed, the Learner brings compatible dataclasses."""
    code = textwrap.dedent("""
        import asyncio, sys
        sys.modules["qortex.learning"] = None  # as if qortex-learning were not installed
        from qortex_client.learning import Arm, ArmOutcome, ArmState, Learner, LearnerConfig
        assert Arm.__module__ == "qortex_client._learning_types", Arm.__module__

        async def main():
            learner = await Learner.create(LearnerConfig(name="standalone", baseline_rate=0.0))
            r = await learner.select([Arm(id="a", token_cost=3), Arm(id="b")], k=1, seed=3)
            s = await learner.observe(ArmOutcome(arm_id="a", reward=0.0, outcome="partial"))
            print(r.selected[0].id in ("a", "b"), s == ArmState(1.5, 1.5, 1, 0.5, s.last_updated))
            await learner.close()
        asyncio.run(main())
    """)
    env = dict(os.environ, PGHOST=HOST, PGPORT=str(PORT), PGUSER="postgres",
               PGDATABASE=db.info.dbname, HOME=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "True True\n"
