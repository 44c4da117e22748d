#!/usr/bin/env bash
# Every test suite, in order of speed: pure-Rust unit tests (no server), #[pg_test]s inside
# PostgreSQL, then the client-side integration suite against a throw-away local cluster, then
# the Python client package's tests (tests/clients) against the same cluster.
# Expects scripts/setup.sh to have run (make test does that).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PG_MAJOR=${PG_MAJOR:-15}
PG_CONFIG=$(scripts/pg-config.sh)
export PG_MAJOR PG_CONFIG
# each major its own cluster and port (15: .pg/test on 28816; 18: .pg/test-18 on 28819)
TEST_PORT=${QORTEX_TEST_PORT:-$((28801 + PG_MAJOR))}
TEST_DIR=.pg/test$([ "$PG_MAJOR" = 15 ] || echo "-$PG_MAJOR")
export PATH="$HOME/.cargo/bin:$PATH"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "unit tests (qortex-core, no server)"
cargo test -p qortex-core

step "#[pg_test]s inside PostgreSQL $PG_MAJOR"
scripts/install.sh --move-old-only  # cargo pgrx test installs over qortex.so in place
if [ "$(id -u)" -eq 0 ]; then
    # PostgreSQL refuses to run as root: pgrx initdb's and starts its server as `postgres`.
    mkdir -p "target/pgrx-test-data-$PG_MAJOR"
    chown postgres: "target/pgrx-test-data-$PG_MAJOR"
    cargo pgrx test "pg$PG_MAJOR" --runas postgres --pgdata "$ROOT/target/pgrx-test-data-$PG_MAJOR"
else
    cargo pgrx test "pg$PG_MAJOR"
fi

step "client-side integration tests"
scripts/install.sh
trap 'scripts/cluster.sh stop "$TEST_DIR"' EXIT
scripts/cluster.sh stop "$TEST_DIR"  # a server left by an interrupted run still has the old .so
scripts/cluster.sh start "$TEST_DIR" "$TEST_PORT"
QORTEX_TEST_HOST="$ROOT/$TEST_DIR/run" QORTEX_TEST_PORT="$TEST_PORT" \
    .venv/bin/python -m pytest -q tests/integration "$@"

step "Python client package tests (clients/python, tests/clients)"
QORTEX_TEST_HOST="$ROOT/$TEST_DIR/run" QORTEX_TEST_PORT="$TEST_PORT" \
    .venv/bin/python -m pytest -q tests/clients
