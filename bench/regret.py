#!/usr/bin/env python3
"""Cumulative regret of qortex's Thompson sampling, driven through SQL, beside a reference
Thompson sampler in plain Python on the same bandits.

    .venv/bin/python bench/regret.py [--seeds 20] [--horizon 10000]

Connects with the usual libpq environment (PGHOST, PGPORT, PGDATABASE, PGUSER); `make run`
prints them. Each run is its own learner with baseline_rate 0 (pure Thompson sampling, as
the reference), selecting k=1 and observing a Bernoulli reward, for `horizon` steps.
"""
import argparse
import random
import statistics
import time

import psycopg

import common

SCENARIOS = {
    "K=10 (best 0.5, others 0.4)": [0.5] + [0.4] * 9,
    "K=2 (0.9 vs 0.8)": [0.9, 0.8],
}


def reference_run(probs, horizon, rng):
    a = [1.0] * len(probs)
    b = [1.0] * len(probs)
    best, regret = max(probs), 0.0
    for _ in range(horizon):
        i = max(range(len(probs)), key=lambda j: rng.betavariate(a[j], b[j]))
        r = 1.0 if rng.random() < probs[i] else 0.0
        a[i] += r
        b[i] += 1 - r
        regret += best - probs[i]
    return regret


def qortex_run(conn, learner, probs, horizon, rng, seed):
    arms = [f"arm{i}" for i in range(len(probs))]
    conn.execute("SELECT qortex_reset(%s)", (learner,))
    conn.execute("SELECT qortex_learner_configure(%s, '{\"baseline_rate\": 0}')", (learner,))
    best, regret = max(probs), 0.0
    select = "SELECT arm_id FROM qortex_select_arms(%s, %s, seed => %s)"
    observe = "SELECT qortex_observe(%s, %s, reward => %s)"
    for t in range(horizon):
        arm = conn.execute(select, (learner, arms, seed * 1_000_003 + t), prepare=True).fetchone()[0]
        p = probs[arms.index(arm)]
        r = 1.0 if rng.random() < p else 0.0
        conn.execute(observe, (learner, arm, r), prepare=True)
        regret += best - p
    return regret


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--horizon", type=int, default=10_000)
    args = ap.parse_args()
    if args.seeds < 2:
        ap.error("--seeds must be at least 2 (the figures are mean ± standard deviation)")
    with psycopg.connect() as conn:
        common.require_release(conn)
    with psycopg.connect(autocommit=True) as conn:
        for name, probs in SCENARIOS.items():
            started = time.perf_counter()
            ours = [qortex_run(conn, f"bench_regret_{s}", probs, args.horizon, random.Random(s), s)
                    for s in range(args.seeds)]
            took = time.perf_counter() - started
            ref = [reference_run(probs, args.horizon, random.Random(10_000 + s))
                   for s in range(args.seeds)]
            sem = lambda xs: statistics.stdev(xs) / len(xs) ** 0.5  # noqa: E731
            print(f"{name}, T={args.horizon}, {args.seeds} seeds:")
            print(f"  qortex (SQL)   mean regret {statistics.mean(ours):7.1f} ± {sem(ours):.1f}"
                  f"   ({2 * args.seeds * args.horizon / took:,.0f} SQL calls/s)")
            print(f"  reference (Py) mean regret {statistics.mean(ref):7.1f} ± {sem(ref):.1f}")
        for s in range(args.seeds):
            conn.execute("SELECT qortex_reset(%s)", (f"bench_regret_{s}",))


if __name__ == "__main__":
    main()
