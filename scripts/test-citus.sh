#!/usr/bin/env bash
# The Citus suite: qortex (debug build) on a local coordinator and two workers.
# Expects scripts/setup.sh to have run (make test-citus does that). Citus 13.2 supports
# PostgreSQL 15 here (16/17 cannot be had; 18 needs Citus 14).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export PG_MAJOR=15
scripts/install.sh
trap 'scripts/citus.sh stop' EXIT
scripts/citus.sh stop  # servers left by an interrupted run still have the old .so
scripts/citus.sh start
.venv/bin/python -m pytest -q tests/citus "$@"
