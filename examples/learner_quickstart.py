"""qortex-learning's quick start with its state in the database: one line changed (the import).

    pip install ./clients/python[learning] "psycopg[binary]"
    PGHOST=... PGPORT=... PGUSER=... PGDATABASE=... python examples/learner_quickstart.py

The Learner opens its connection from the PG* variables (or QORTEX_DSN); pass
connection=<asyncpg pool | psycopg async connection or pool> to use yours. Resets the learner
"prompts" first.
"""
import asyncio

# was: from qortex.learning import Learner, LearnerConfig, Arm, ArmOutcome
from qortex_client.learning import Learner, LearnerConfig, Arm, ArmOutcome


async def main():
    learner = await Learner.create(LearnerConfig(name="prompts"))
    await learner.reset()

    candidates = [Arm(id="v1", token_cost=10), Arm(id="v2", token_cost=15)]
    result = await learner.select(candidates, context={"task": "type-check"}, k=1)
    print(f"selected {result.selected[0].id} (exploring: {result.is_baseline})")

    state = await learner.observe(ArmOutcome(arm_id="v2", outcome="accepted", reward=1.0))
    print(f"v2: alpha={state.alpha} beta={state.beta} pulls={state.pulls} mean={state.mean:.3f}")

    # eight observers at once: every update counts (the database applies each atomically)
    await asyncio.gather(*(learner.observe(ArmOutcome(arm_id="v1", outcome="partial", reward=0.0))
                           for _ in range(8)))
    print("v1:", {k: v for k, v in (await learner.posteriors())["v1"].items() if k != "last_updated"})
    print("metrics:", await learner.metrics())
    await learner.close()


if __name__ == "__main__":
    asyncio.run(main())
