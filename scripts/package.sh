#!/usr/bin/env bash
# The files qortex ships for PostgreSQL $PG_MAJOR, built in release mode into a staging
# folder laid out as the server's own (OUT/<pkglibdir>/qortex.so, OUT/<sharedir>/extension/
# qortex.control and every qortex--*.sql, upgrades and frozen releases included).
# The Dockerfile builds its image with this script and CI runs it for every major it tests.
#
#   scripts/package.sh OUT
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"
out=${1:?usage: scripts/package.sh OUT}
mkdir -p "$out"
out=$(cd "$out" && pwd)
PG_CONFIG=$(scripts/pg-config.sh)
major=$("$PG_CONFIG" --version | sed 's/^PostgreSQL \([0-9]*\).*/\1/')
cargo pgrx package --pg-config "$PG_CONFIG" --no-default-features --features "pg$major" \
    --out-dir "$out"
ext="$out$("$PG_CONFIG" --sharedir)/extension"
scripts/install-sql.sh "$ext"
lib="$out$("$PG_CONFIG" --pkglibdir)/qortex.so"
for f in "$lib" "$ext/qortex.control" "$ext/qortex--$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1).sql"; do
    [ -s "$f" ] || { echo "[package] missing $f" >&2; exit 1; }
done
echo "[package] PostgreSQL $major: $(find "$out" -type f | wc -l) files in $out"
