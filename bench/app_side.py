#!/usr/bin/env python3
"""The bandit loop done the app-side way (what users of plain pgvector write today) beside
qortex, measured in one run.

    .venv/bin/python bench/app_side.py [--steps 3000] [--clients 8]

One step = choose 1 of 10 arms by Thompson sampling, then record a Bernoulli reward.
- app-side: read the 10 posteriors (SELECT), sample Beta draws in Python, then write the
  arm back read-modify-write (SELECT the row, UPDATE it with the new alpha/beta/pulls),
  autocommit, as a typical application does it;
- qortex: `qortex_select_arms` + `qortex_observe`, two calls.
Reports steps/s with 1 client and with `--clients` threads, and how many updates the
app-side loop lost under concurrency (pulls recorded vs steps made); qortex loses none.
Connects with the libpq environment (PGHOST, PGPORT, PGDATABASE, PGUSER).
"""
import argparse
import random
import threading
import time

import psycopg

import common

ARMS = [f"arm{i}" for i in range(10)]
PROBS = [0.5] + [0.4] * 9


def app_side_step(conn, learner, rng):
    rows = conn.execute(
        "SELECT arm_id, alpha, beta FROM qortex.learning_arm_states "
        "WHERE learner_name = %s AND context_hash = 'default' AND arm_id = ANY(%s)",
        (learner, ARMS), prepare=True).fetchall()
    post = {a: (al, be) for a, al, be in rows}
    arm = max(ARMS, key=lambda a: rng.betavariate(*post.get(a, (1.0, 1.0))))
    r = 1.0 if rng.random() < PROBS[ARMS.index(arm)] else 0.0
    alpha, beta, pulls = conn.execute(
        "SELECT alpha, beta, pulls FROM qortex.learning_arm_states "
        "WHERE learner_name = %s AND context_hash = 'default' AND arm_id = %s",
        (learner, arm), prepare=True).fetchone()
    conn.execute(
        "UPDATE qortex.learning_arm_states SET alpha = %s, beta = %s, pulls = %s, "
        "total_reward = total_reward + %s, last_updated = now() "
        "WHERE learner_name = %s AND context_hash = 'default' AND arm_id = %s",
        (alpha + r, beta + 1 - r, pulls + 1, r, learner, arm), prepare=True)


def qortex_step(conn, learner, rng):
    arm = conn.execute("SELECT arm_id FROM qortex_select_arms(%s, %s)",
                       (learner, ARMS), prepare=True).fetchone()[0]
    r = 1.0 if rng.random() < PROBS[ARMS.index(arm)] else 0.0
    conn.execute("SELECT qortex_observe(%s, %s, reward => %s)", (learner, arm, r), prepare=True)


def run(step, learner, steps, clients):
    with psycopg.connect(autocommit=True) as conn:
        conn.execute("SELECT qortex_reset(%s)", (learner,))
        # Both ways start from stored rows (the app-side update needs them to exist).
        conn.execute("SELECT qortex_observe(%s, a, reward => 0.5) FROM unnest(%s::text[]) a",
                     (learner, ARMS))
    per_client = steps // clients

    def worker(i):
        rng = random.Random(i)
        with psycopg.connect(autocommit=True) as conn:
            for _ in range(per_client):
                step(conn, learner, rng)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    with psycopg.connect(autocommit=True) as conn:
        pulls = conn.execute("SELECT sum(pulls) - %s FROM qortex.learning_arm_states "
                             "WHERE learner_name = %s", (len(ARMS), learner)).fetchone()[0]
        conn.execute("SELECT qortex_reset(%s)", (learner,))
    made = per_client * clients
    return made / elapsed, made - pulls


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--clients", type=int, default=8)
    args = ap.parse_args()
    with psycopg.connect() as conn:
        common.require_release(conn)
    for clients in (1, args.clients):
        app, app_lost = run(app_side_step, "bench_app_side", args.steps, clients)
        qx, qx_lost = run(qortex_step, "bench_app_qortex", args.steps, clients)
        print(f"{clients} client(s), {args.steps} steps:")
        print(f"  app-side (read, sample in Python, read-modify-write)  {app:8,.0f} steps/s"
              f"   lost updates: {app_lost}")
        print(f"  qortex (select_arms + observe)                          {qx:8,.0f} steps/s"
              f"   lost updates: {qx_lost}")
        print(f"  speed-up: {qx / app:.2f}x")


if __name__ == "__main__":
    main()
