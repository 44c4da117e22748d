"""qortex-learning 0.1.0's dataclasses and reward models, for when that package is not
installed (field for field the same; :mod:`qortex_client.learning` uses the package's own
when it is importable)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field


@dataclass
class Arm:
    """A candidate action in the bandit."""

    id: str
    metadata: dict = field(default_factory=dict)
    token_cost: int = 0


@dataclass
class ArmState:
    """Beta-Bernoulli posterior state for an arm."""

    alpha: float = 1.0
    beta: float = 1.0
    pulls: int = 0
    total_reward: float = 0.0
    last_updated: str = ""

    @property
    def mean(self) -> float:
        return self.alpha / (self.alpha + self.beta)

    def to_dict(self) -> dict:
        return {"alpha": self.alpha, "beta": self.beta, "pulls": self.pulls,
                "total_reward": self.total_reward, "last_updated": self.last_updated}

    @classmethod
    def from_dict(cls, d: dict) -> "ArmState":
        return cls(alpha=d.get("alpha", 1.0), beta=d.get("beta", 1.0), pulls=d.get("pulls", 0),
                   total_reward=d.get("total_reward", 0.0),
                   last_updated=d.get("last_updated", ""))


@dataclass
class ArmOutcome:
    """Result of using an arm."""

    arm_id: str
    reward: float
    outcome: str
    context: dict = field(default_factory=dict)
    timestamp: str = ""


@dataclass
class SelectionResult:
    """Result of selecting arms from the bandit."""

    selected: list
    excluded: list
    is_baseline: bool
    scores: dict = field(default_factory=dict)
    token_budget: int = 0
    used_tokens: int = 0


@dataclass
class RunTrace:
    """Trace of a selection + observation cycle."""

    session_id: str
    learner: str
    selected_arms: list
    outcomes: dict = field(default_factory=dict)
    started_at: str = ""
    ended_at: str = ""


@dataclass
class LearnerConfig:
    """Configuration for a Learner instance."""

    name: str
    baseline_rate: float = 0.1
    seed_boost: float = 2.0
    seed_arms: list = field(default_factory=list)
    state_dir: str = ""
    max_arms: int = 1000
    min_pulls: int = 0


def context_hash(context: dict) -> str:
    """Deterministic hash for a context dict (what qortex_context_hash computes)."""
    if not context:
        return "default"
    canonical = json.dumps(context, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class BinaryReward:
    """Binary: accepted=1.0, everything else=0.0."""

    def compute(self, outcome: str) -> float:
        return 1.0 if outcome == "accepted" else 0.0


class TernaryReward:
    """Ternary: accepted=1.0, partial=0.5, rejected=0.0."""

    _rewards = {"accepted": 1.0, "partial": 0.5, "rejected": 0.0}

    def compute(self, outcome: str) -> float:
        return self._rewards.get(outcome, 0.0)


class ThompsonSampling:
    """Marker: the database's strategy (Beta-Bernoulli Thompson sampling)."""
