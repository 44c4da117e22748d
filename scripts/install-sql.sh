#!/usr/bin/env bash
# Install the frozen install scripts of earlier versions (sql/archive/qortex--X.sql) next to
# what `cargo pgrx install` writes, so `CREATE EXTENSION qortex VERSION 'X'` and
# `ALTER EXTENSION qortex UPDATE` from X work. pgrx itself only copies upgrade scripts.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/${PG_MAJOR:-15}/bin/pg_config}
dest=${1:-$("$PG_CONFIG" --sharedir)/extension}
sudo=; [ "$(id -u)" -eq 0 ] || [ -w "$dest" ] || sudo=sudo
$sudo install -m 644 "$ROOT"/sql/archive/qortex--*.sql "$dest/"
