#!/usr/bin/env python3
"""The learning loop: feedback on one half of SciFact's train queries, nDCG@10 on both
halves before and after, for several rounds.

    .venv/bin/python bench/feedback_loop.py [--rounds 3] [--fusion rrf]

Uses the `bench_scifact` collection of bench/quality.py (built on first use). Half A =
queries with even ids, half B = odd ids. Each round: hybrid_search (k = 10) every A query,
then `interoception_update` its top 10 (accepted if labelled relevant, else rejected, with
the query's id as query_id unless --no-query-id);
then nDCG@10 of both halves. Factors and per-query feedback of the corpus ids are reset at the start; the run
leaves them in place for inspection. Connects with the libpq environment.
"""
import argparse
import json

import psycopg
from psycopg.types.json import Jsonb

import common
import quality


def ndcg_of(conn, queries, rel, opts):
    scores, tops = {}, {}
    for q in queries:
        ids = [r[0] for r in conn.execute(
            "SELECT id FROM hybrid_search(%s, %s::vector, %s, 10, %s)",
            (quality.COLL, q["embedding"], q["text"], json.dumps(opts)), prepare=True)]
        tops[q["id"]] = ids
        scores[q["id"]] = quality.ndcg10(ids, rel[q["id"]])
    return sum(scores.values()) / len(scores), tops


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--fusion", default="rrf")
    ap.add_argument("--no-query-id", action="store_true",
                    help="send feedback without query_id (every round counts again)")
    args = ap.parse_args()
    with psycopg.connect() as conn:
        common.require_release(conn)
    rel = quality.qrels()
    queries = [q for q in quality.load_csv("queries-train.csv") if q["id"] in rel]
    half_a = [q for q in queries if int(q["id"]) % 2 == 0]
    half_b = [q for q in queries if int(q["id"]) % 2 == 1]
    opts = {"fusion": args.fusion}
    with psycopg.connect(autocommit=True) as conn:
        quality.ensure_corpus(conn)
        for t in ["interoception_factors", "interoception_feedback"]:
            conn.execute(f"DELETE FROM qortex.{t} WHERE node_id IN "
                         "(SELECT id::text FROM bench_scifact)")
        a0, tops = ndcg_of(conn, half_a, rel, opts)
        b0, _ = ndcg_of(conn, half_b, rel, opts)
        print(f"fusion {args.fusion}; {len(half_a)} queries in A (feedback), {len(half_b)} in B; "
              f"feedback {'without' if args.no_query_id else 'with'} query_id")
        print(f"round 0: nDCG@10 A {a0:.4f}  B {b0:.4f}")
        for r in range(1, args.rounds + 1):
            updates = 0
            for q in half_a:
                outcomes = {i: ("accepted" if i in rel[q["id"]] else "rejected")
                            for i in tops[q["id"]]}
                conn.execute("SELECT count(*) FROM interoception_update(%s, %s)",
                             (Jsonb(outcomes), None if args.no_query_id else q["id"]))
                updates += len(outcomes)
            a, tops = ndcg_of(conn, half_a, rel, opts)
            b, _ = ndcg_of(conn, half_b, rel, opts)
            print(f"round {r}: nDCG@10 A {a:.4f} ({a - a0:+.4f})  B {b:.4f} ({b - b0:+.4f})"
                  f"   {updates} factor updates", flush=True)
        s = conn.execute("SELECT interoception_summary()").fetchone()[0]["factors"]
        print(f"factors: {s['count']} nodes, {s['boosted']} boosted, {s['penalized']} penalized,"
              f" mean {s['mean']:.3f}, min {s['min']:.3f}, max {s['max']:.3f}")


if __name__ == "__main__":
    main()
