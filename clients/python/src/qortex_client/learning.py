"""qortex-learning's ``Learner`` with its state in the database.

The API and dataclasses of the ``qortex-learning`` package (0.1.0): ``await
Learner.create(config)``, ``select(candidates, context, k)``, ``observe(ArmOutcome)``,
``batch_observe``, ``top_arms``, ``posteriors``, ``metrics``, ``decay_arm``, ``reset``. Every
call is one of qortex's SQL functions (``qortex_select_arms``, ``qortex_observe``, ...), so
the posteriors live in ``qortex.learning_arm_states``, shared by every process, and
concurrent observes of one arm never lose an update (the package's own stores read, modify
and write back).

Code written for qortex-learning runs with one line changed, the import::

    from qortex_client.learning import Learner, LearnerConfig, Arm, ArmOutcome

    learner = await Learner.create(LearnerConfig(name="prompts"))   # PG* variables / QORTEX_DSN
    # or: await Learner.create(LearnerConfig(name="prompts"), connection=pool)

``connection``: an asyncpg pool or connection, a psycopg 3 AsyncConnection or
AsyncConnectionPool (or a synchronous psycopg connection or pool, run in a worker thread).
Without one, the learner opens its own connection from ``QORTEX_DSN`` or libpq's ``PG*``
environment variables (psycopg if installed, else an asyncpg pool) and ``close()`` closes it.

Where the semantics differ from the package's (docs/libraries/qortex-learning.md):
``LearnerConfig`` is written to ``qortex.learners`` on the first call (the program's values
win, as in the package); seed arms start at ``seed_boost`` without a stored row; rewards
outside [0, 1], ``k < 0``, duplicate candidates and ``decay_factor`` outside (0, 1] raise
:class:`~qortex_client.errors.InvalidArgumentError`; ``SelectionResult.scores`` has the
selected arms' draws only.
"""
from __future__ import annotations

import json
import os
import uuid
from datetime import datetime, timezone
from typing import Any, Optional

from . import _driver
from ._driver import Statement

try:  # qortex-learning's own classes, so isinstance checks and shared code keep working
    from qortex.learning.reward import BinaryReward, TernaryReward
    from qortex.learning.strategy import ThompsonSampling
    from qortex.learning.types import (
        Arm,
        ArmOutcome,
        ArmState,
        LearnerConfig,
        RunTrace,
        SelectionResult,
        context_hash,
    )
except ImportError:  # pragma: no cover - exercised where qortex-learning is absent
    from ._learning_types import (  # type: ignore[assignment]
        Arm,
        ArmOutcome,
        ArmState,
        BinaryReward,
        LearnerConfig,
        RunTrace,
        SelectionResult,
        TernaryReward,
        ThompsonSampling,
        context_hash,
    )

__all__ = [
    "Learner", "LearnerConfig", "Arm", "ArmOutcome", "ArmState", "SelectionResult", "RunTrace",
    "BinaryReward", "TernaryReward", "ThompsonSampling", "context_hash",
]

_OUTCOMES = ("accepted", "rejected", "partial")


def _ctx(context: Optional[dict]) -> Optional[str]:
    """A context as the jsonb text qortex hashes (NULL for the default context)."""
    return json.dumps(context) if context else None


def _iso(ts: Any) -> str:
    return ts.isoformat() if ts is not None else ""


class Learner:
    """A Thompson-sampling bandit whose posteriors live in the database (see the module)."""

    def __init__(self, config: LearnerConfig, strategy: Any = None, reward_model: Any = None,
                 store: Any = None, *, connection: Any = None,
                 schema: Optional[str] = None) -> None:
        if store is not None:
            raise TypeError("qortex_client.learning.Learner keeps its state in the database: "
                            "pass connection= (an asyncpg pool, a psycopg async connection or "
                            "pool) instead of store=")
        if strategy is not None and type(strategy).__name__ != "ThompsonSampling":
            raise TypeError("the database runs Beta-Bernoulli Thompson sampling; "
                            f"strategy {type(strategy).__name__} cannot run there")
        if connection is not None:
            _driver.kind_of(connection)
        self.config = config
        self.strategy = strategy or ThompsonSampling()
        self.reward_model = reward_model or TernaryReward()
        self._connection = connection
        self._owned = False
        self._configured = False
        self._sessions: dict[str, RunTrace] = {}
        s = '"' + schema.replace('"', '""') + '".' if schema else ""
        self._sql = {
            "configure": Statement(f"SELECT {s}qortex_learner_configure(%s::text, %s::text::jsonb)::text"),
            "select": Statement(
                "SELECT arm_id, score, explored "
                f"FROM {s}qortex_select_arms(%s::text, %s::text[], %s::text::jsonb, %s::int, "
                "%s::int[], %s::int, %s::bigint)"),
            "observe": Statement(
                "SELECT alpha, beta, pulls, total_reward, now() "
                f"FROM {s}qortex_observe(%s::text, %s::text, %s::text, %s::float8, %s::text::jsonb)"),
            "batch": Statement(f"SELECT {s}qortex_observe_batch(%s::text, %s::text::jsonb)"),
            "posteriors": Statement(
                "SELECT arm_id, alpha, beta, pulls, total_reward, last_updated "
                f"FROM {s}qortex_posteriors(%s::text, %s::text::jsonb) "
                "WHERE %s::text[] IS NULL OR arm_id = ANY(%s::text[]) "
                "ORDER BY mean DESC, arm_id LIMIT %s::int"),
            "metrics": Statement(f"SELECT {s}qortex_metrics(%s::text)::text"),
            "decay": Statement(
                "SELECT alpha, beta, pulls, total_reward, now() "
                f"FROM {s}qortex_decay_arm(%s::text, %s::text, %s::float8, %s::text::jsonb, %s::text)"),
            "reset": Statement(f"SELECT {s}qortex_reset(%s::text, %s::text[], %s::text::jsonb)"),
        }

    @classmethod
    async def create(cls, config: LearnerConfig, strategy: Any = None, reward_model: Any = None,
                     store: Any = None, *, connection: Any = None,
                     schema: Optional[str] = None) -> "Learner":
        """A Learner whose configuration is in the database (``qortex_learner_configure``)."""
        learner = cls(config, strategy, reward_model, store, connection=connection, schema=schema)
        await learner._configure()
        return learner

    # -- plumbing -------------------------------------------------------------------------

    async def _conn(self) -> Any:
        if self._connection is None:
            self._connection = await _open_default()
            self._owned = True
        return self._connection

    async def _fetch(self, name: str, *params: Any) -> list[Any]:
        if not self._configured:
            await self._configure()
        return await _driver.afetch(await self._conn(), self._sql[name], params)

    async def _configure(self) -> None:
        """Writes the program's LearnerConfig into qortex.learners, as the package applies it."""
        c = self.config
        cfg: dict[str, Any] = {"baseline_rate": c.baseline_rate, "seed_boost": c.seed_boost,
                               "seed_arms": list(c.seed_arms), "min_pulls": c.min_pulls}
        if type(self.reward_model).__name__ == "BinaryReward":
            cfg["reward_model"] = "binary"
        elif type(self.reward_model).__name__ == "TernaryReward":
            cfg["reward_model"] = "ternary"
        await _driver.afetch(await self._conn(), self._sql["configure"],
                             (c.name, json.dumps(cfg)))
        self._configured = True

    async def close(self) -> None:
        """Closes the connection the learner opened itself (not one it was given)."""
        if self._owned and self._connection is not None:
            conn, self._connection, self._owned = self._connection, None, False
            await conn.close()

    @staticmethod
    def _state(row: Any) -> ArmState:
        return ArmState(alpha=float(row[0]), beta=float(row[1]), pulls=int(row[2]),
                        total_reward=float(row[3]), last_updated=_iso(row[4]))

    def _reward(self, outcome: ArmOutcome) -> float:
        reward = outcome.reward
        if outcome.outcome and not outcome.reward:  # as the package: the outcome wins over 0.0
            reward = self.reward_model.compute(outcome.outcome)
        return reward

    # -- the API --------------------------------------------------------------------------

    async def select(self, candidates: list[Arm], context: Optional[dict] = None, k: int = 1,
                     token_budget: int = 0, *, seed: Optional[int] = None) -> SelectionResult:
        """Select k arms from candidates (k <= 0: every arm that fits; token_budget 0: none).
        ``seed`` makes the draw reproducible."""
        ids = [a.id for a in candidates]
        costs = [int(a.token_cost) for a in candidates] if token_budget > 0 else None
        rows = await self._fetch("select", self.config.name, ids, _ctx(context), max(k, 0),
                                 costs, token_budget if token_budget > 0 else None, seed)
        by_id = {a.id: a for a in candidates}
        selected = [by_id[r[0]] for r in rows]
        chosen = {r[0] for r in rows}
        return SelectionResult(
            selected=selected,
            excluded=[a for a in candidates if a.id not in chosen],
            is_baseline=any(r[2] for r in rows),
            scores={r[0]: float(r[1]) for r in rows},
            token_budget=token_budget,
            used_tokens=sum(a.token_cost for a in selected),
        )

    async def observe(self, outcome: ArmOutcome, context: Optional[dict] = None) -> ArmState:
        """Record an observation (atomically) and return the arm's posterior after it."""
        ctx = context or outcome.context
        oc = outcome.outcome if outcome.outcome in _OUTCOMES else None
        rows = await self._fetch("observe", self.config.name, outcome.arm_id, oc,
                                 self._reward(outcome), _ctx(ctx))
        return self._state(rows[0])

    async def batch_observe(self, outcomes: list[ArmOutcome],
                            context: Optional[dict] = None) -> dict[str, ArmState]:
        """Record several observations in one statement (all or none) and return each arm's
        posterior after them."""
        if not outcomes:
            return {}
        items: list[dict[str, Any]] = []
        keys: list[tuple[str, Optional[str]]] = []
        contexts: dict[Optional[str], set[str]] = {}
        for o in outcomes:
            ctx = context or o.context
            item: dict[str, Any] = {"arm_id": o.arm_id, "reward": self._reward(o)}
            if o.outcome in _OUTCOMES:
                item["outcome"] = o.outcome
            if ctx:
                item["context"] = ctx
            items.append(item)
            keys.append((o.arm_id, _ctx(ctx)))
            contexts.setdefault(_ctx(ctx), set()).add(o.arm_id)
        await self._fetch("batch", self.config.name, json.dumps(items))
        states: dict[tuple[str, Optional[str]], ArmState] = {}
        for ctx_json, arms in contexts.items():
            arm_list = sorted(arms)
            rows = await self._fetch("posteriors", self.config.name, ctx_json, arm_list,
                                     arm_list, None)
            for r in rows:
                states[(r[0], ctx_json)] = self._state(r[1:])
        return {arm: states[(arm, ctx_json)] for arm, ctx_json in keys}

    async def top_arms(self, context: Optional[dict] = None,
                       k: int = 10) -> list[tuple[str, ArmState]]:
        """The top-k stored arms by posterior mean, descending (ties by arm id)."""
        rows = await self._fetch("posteriors", self.config.name, _ctx(context), None, None,
                                 k if k >= 0 else None)
        pairs = [(r[0], self._state(r[1:])) for r in rows]
        return pairs if k >= 0 else pairs[:k]

    async def posteriors(self, context: Optional[dict] = None,
                         arm_ids: Optional[list[str]] = None) -> dict[str, dict[str, Any]]:
        """``{arm_id: {alpha, beta, pulls, total_reward, last_updated, mean}}`` of the stored
        arms of a context (best mean first)."""
        ids = list(arm_ids) if arm_ids is not None else None
        rows = await self._fetch("posteriors", self.config.name, _ctx(context), ids, ids, None)
        out = {}
        for r in rows:
            state = self._state(r[1:])
            out[r[0]] = {**state.to_dict(), "mean": state.mean}
        return out

    async def metrics(self, window: Optional[int] = None) -> dict[str, Any]:
        """The package's metrics (``arm_count`` counts (context, arm) pairs, as it does), plus
        qortex's ``contexts``, ``selections``, ``observations`` and ``last_updated``."""
        rows = await self._fetch("metrics", self.config.name)
        m = json.loads(rows[0][0])
        total_pulls = int(m.get("total_pulls") or 0)
        total_reward = float(m.get("total_reward") or 0.0)
        return {
            "learner": self.config.name,
            "total_pulls": total_pulls,
            "total_reward": total_reward,
            "accuracy": round(total_reward / max(total_pulls, 1), 4),
            "arm_count": int(m.get("rows") or 0),
            "explore_ratio": self.config.baseline_rate,
            "contexts": m.get("contexts"),
            "selections": m.get("selections"),
            "observations": m.get("observations"),
            "last_updated": m.get("last_updated"),
        }

    async def decay_arm(self, arm_id: str, decay_factor: float = 0.9,
                        context: Optional[dict] = None, *, toward: str = "zero") -> ArmState:
        """Multiply alpha and beta by ``decay_factor`` (floor 0.01), as the package does;
        ``toward="prior"`` shrinks toward the learner's prior instead. An arm with no stored
        state is left without one and its prior state (``ArmState()``) returned."""
        rows = await self._fetch("decay", self.config.name, arm_id, decay_factor,
                                 _ctx(context), toward)
        return self._state(rows[0]) if rows else ArmState()

    async def reset(self, arm_ids: Optional[list[str]] = None,
                    context: Optional[dict] = None) -> int:
        """Delete stored state (the whole learner, a context, or arms in a context); returns
        the rows deleted."""
        if arm_ids is not None and len(arm_ids) == 0:
            return 0
        rows = await self._fetch("reset", self.config.name,
                                 list(arm_ids) if arm_ids is not None else None, _ctx(context))
        return int(rows[0][0])

    # -- sessions (in the program, as in the package) ---------------------------------------

    def session_start(self, session_name: str) -> str:
        session_id = str(uuid.uuid4())
        self._sessions[session_id] = RunTrace(
            session_id=session_id, learner=self.config.name, selected_arms=[],
            started_at=datetime.now(timezone.utc).isoformat())
        return session_id

    def session_end(self, session_id: str) -> dict[str, Any]:
        trace = self._sessions.pop(session_id, None)
        if trace is None:
            return {"error": f"Session {session_id} not found"}
        trace.ended_at = datetime.now(timezone.utc).isoformat()
        return {"session_id": session_id, "learner": trace.learner,
                "selected_arms": trace.selected_arms, "outcomes": trace.outcomes,
                "started_at": trace.started_at, "ended_at": trace.ended_at}


async def _open_default() -> Any:
    """A connection from QORTEX_DSN or libpq's PG* variables: psycopg's if installed, else
    an asyncpg pool."""
    dsn = os.environ.get("QORTEX_DSN", "")
    try:
        import psycopg
    except ImportError:
        try:
            import asyncpg
        except ImportError:
            raise RuntimeError("Learner needs a connection: install psycopg or asyncpg, or pass "
                               "connection=") from None
        return await asyncpg.create_pool(dsn or None, min_size=1, max_size=4)
    return await psycopg.AsyncConnection.connect(dsn, autocommit=True)
