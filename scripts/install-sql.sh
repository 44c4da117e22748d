#!/usr/bin/env bash
# Install the SQL that `cargo pgrx install`/`package` does not: the upgrade scripts
# (sql/upgrade/qortex--A--B.sql) and the frozen install scripts of earlier releases
# (sql/released/qortex--X.sql), so `ALTER EXTENSION qortex UPDATE` from any release and
# `CREATE EXTENSION qortex VERSION 'X'` work.
#   scripts/install-sql.sh [DEST]   (default: the extension folder of $PG_CONFIG)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_CONFIG=$("$(dirname "${BASH_SOURCE[0]}")/pg-config.sh")
dest=${1:-$("$PG_CONFIG" --sharedir)/extension}
sudo=; [ "$(id -u)" -eq 0 ] || [ -w "$dest" ] || sudo=sudo
$sudo install -m 644 "$ROOT"/sql/upgrade/qortex--*--*.sql "$ROOT"/sql/released/qortex--*.sql "$dest/"
