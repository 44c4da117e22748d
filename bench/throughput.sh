#!/usr/bin/env bash
# pgbench throughput of the learning functions beside their baselines, measured in one run:
#   qortex_select_arms (10 arms, k=1)       vs  SELECT 1
#   qortex_observe                          vs  the raw INSERT ... ON CONFLICT DO UPDATE ... RETURNING
#   qortex_observe_batch (100 outcomes)     in outcomes/s
# and, for scale, two reads of the same table: `SELECT arm_id FROM qortex_select_arms(...)`
# (the pick without the posterior columns) and a plain one-row primary-key SELECT.
# Usage: [ROUNDS=3] bench/throughput.sh [seconds per run, default 15]   (against the `make run` server;
# PGHOST/PGPORT/PGDATABASE/PGUSER override). Writes run with synchronous_commit=off.
set -euo pipefail
T=${1:-15}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$("$("$ROOT/scripts/pg-config.sh")" --bindir)
M=${PG_MAJOR:-15}
export PGHOST=${PGHOST:-$ROOT/.pg/dev$([ "$M" = 15 ] || echo "-$M")/run} PGPORT=${PGPORT:-288$M} PGDATABASE=${PGDATABASE:-qortex} PGUSER=${PGUSER:-postgres}
export PGOPTIONS="-c synchronous_commit=off"
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT

build=$("$BIN/psql" -XAtq -c "SELECT qortex_status()->'versions'->>'build'")
if [ "$build" != release ]; then
    echo "the server runs a $build build of qortex; run \`make install\` first" >&2; exit 1
fi
# The arms have stored state (as in real use), and the table starts without dead rows.
"$BIN/psql" -Xq -c "SELECT qortex_reset('bench_tp')" -c "SELECT qortex_learner_configure('bench_tp', '{}')" \
    -c "SELECT qortex_observe('bench_tp', 'a' || i, 'accepted') FROM generate_series(0, 9) i" \
    -c "VACUUM ANALYZE qortex.learning_arm_states" >/dev/null
echo "SELECT 1;" >"$dir/select1.sql"
echo "SELECT * FROM qortex_select_arms('bench_tp', ARRAY['a0','a1','a2','a3','a4','a5','a6','a7','a8','a9']);" >"$dir/select.sql"
echo "SELECT arm_id FROM qortex_select_arms('bench_tp', ARRAY['a0','a1','a2','a3','a4','a5','a6','a7','a8','a9']);" >"$dir/select_id.sql"
echo "SELECT * FROM qortex.learning_arm_states WHERE learner_name = 'bench_tp' AND context_hash = 'default' AND arm_id = 'a3';" >"$dir/pk.sql"
cat >"$dir/observe.sql" <<'SQL'
\set arm random(0, 9)
SELECT * FROM qortex_observe('bench_tp', 'a' || :arm, 'accepted');
SQL
cat >"$dir/raw.sql" <<'SQL'
\set arm random(0, 9)
INSERT INTO qortex.learning_arm_states AS s (learner_name, context_hash, arm_id, alpha, beta, pulls, total_reward, last_updated)
VALUES ('bench_raw', 'default', 'a' || :arm, 2, 1, 1, 1, now())
ON CONFLICT (learner_name, context_hash, arm_id) DO UPDATE
   SET alpha = s.alpha + 1, beta = s.beta, pulls = s.pulls + 1, total_reward = s.total_reward + 1, last_updated = now()
RETURNING alpha, beta, pulls, total_reward, alpha / (alpha + beta);
SQL
batch=$(python3 -c 'import json; print(json.dumps([{"arm_id": f"b{i%50}", "outcome": "accepted"} for i in range(100)]))')
echo "SELECT qortex_observe_batch('bench_tp_batch', '$batch');" >"$dir/batch.sql"

tps() { "$BIN/pgbench" -n -M prepared -c 8 -j 2 -T "$T" -f "$dir/$1" 2>/dev/null | sed -n 's/^tps = \([0-9.]*\).*/\1/p'; }
# Rounds interleave the five runs, so drift (checkpoints, autovacuum) hits all of them alike;
# the figures are the medians over the rounds.
ROUNDS=${ROUNDS:-3}
for r in $(seq "$ROUNDS"); do
    echo "round $r/$ROUNDS: $(tps select1.sql) $(tps select.sql) $(tps raw.sql) $(tps observe.sql) $(tps batch.sql) $(tps select_id.sql) $(tps pk.sql)"
done | tee "$dir/rounds"
python3 - "$dir/rounds" <<'PY'
import statistics, sys
rows = [list(map(float, l.split(":")[1].split())) for l in open(sys.argv[1])]
s1, sel, raw, obs, bat, sid, pk = (statistics.median(c) for c in zip(*rows))
for name, v in [("SELECT 1", s1), ("qortex_select_arms (10 arms, k=1)", sel),
                ("raw INSERT ... ON CONFLICT ... RETURNING", raw), ("qortex_observe", obs),
                ("qortex_observe_batch (100 outcomes)", bat),
                ("SELECT arm_id FROM qortex_select_arms(...)", sid),
                ("one-row primary-key SELECT", pk)]:
    print(f"{name:<44} {v:12,.0f} TPS (median of {len(rows)})")
print(f"select / SELECT 1 = {sel / s1:.2f} (target >= 0.6); arm_id only {sid / s1:.2f}; "
      f"a primary-key SELECT {pk / s1:.2f}")
print(f"observe / raw upsert = {obs / raw:.2f} (target >= 0.9)")
print(f"observe_batch = {bat * 100:,.0f} outcomes/s (target >= 50,000)")
PY
"$BIN/psql" -Xq -c "SELECT qortex_reset('bench_tp')" -c "SELECT qortex_reset('bench_tp_batch')" -c "DELETE FROM qortex.learning_arm_states WHERE learner_name = 'bench_raw'" -c "DELETE FROM qortex.learners WHERE learner_name = 'bench_tp'" >/dev/null
