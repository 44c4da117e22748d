#!/usr/bin/env bash
# Build and install qortex into the PostgreSQL of PG_CONFIG, plus the frozen install scripts
# of earlier versions.  scripts/install.sh [--release | --move-old-only]
#
# `cargo pgrx install` writes over an existing qortex.so in place, and processes that have
# it mapped (every backend that used qortex, and the postmaster when it is preloaded) then
# crash. Renaming the old file away first keeps their copy intact (the file lives on until
# they exit) and the new build goes into a new file. A server that preloads qortex must
# restart, though: its new backends would load the new file beside the preloaded old one.
# The repo's own running clusters (.pg/*) of this major are restarted here; others are listed.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"
PG_CONFIG=$(scripts/pg-config.sh)
sudo=(); pgrx_sudo=()
if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); pgrx_sudo=(--sudo); fi

lib="$("$PG_CONFIG" --pkglibdir)/qortex.so"
if [ -e "$lib" ]; then
    "${sudo[@]}" mv -f "$lib" "$lib.replaced"
    "${sudo[@]}" rm -f "$lib.replaced"
fi
# `--move-old-only`: just that, before something else installs (cargo pgrx test does).
[ "${1:-}" = --move-old-only ] && exit 0
cargo pgrx install --pg-config "$PG_CONFIG" "${pgrx_sudo[@]}" "$@"
scripts/install-sql.sh

BIN=$("$PG_CONFIG" --bindir)
as_owner() { if [ "$(id -u)" -eq 0 ]; then sudo -u postgres -- "$@"; else "$@"; fi; }
MAJOR=$("$PG_CONFIG" --version | sed 's/^PostgreSQL \([0-9]*\).*/\1/')
for data in "$ROOT"/.pg/*/data "$ROOT"/.pg/*/*/data; do  # (.pg/citus/<node>/data too)
    [ -f "$data/postmaster.pid" ] && [ "$(cat "$data/PG_VERSION")" = "$MAJOR" ] || continue
    if as_owner "$BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        as_owner "$BIN/pg_ctl" -D "$data" -m fast -w restart -l "$(dirname "$data")/server.log" >/dev/null
        echo "[install] restarted the server in ${data%/data} so it runs the new build"
    fi
done
others=$(pgrep -a -f 'postgres.*-D' | grep -v "$ROOT/.pg/" || true)
if [ -n "$others" ]; then
    echo "[install] other PostgreSQL servers are running; if they preload qortex, restart them:"
    echo "$others" | sed 's/^/    /'
fi
