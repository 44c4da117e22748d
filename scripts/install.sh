#!/usr/bin/env bash
# Build and install qortex into the PostgreSQL of PG_CONFIG, plus the frozen install scripts
# of earlier versions.  scripts/install.sh [--release]
#
# `cargo pgrx install` writes over an existing qortex.so in place, and processes that have
# it mapped (every backend that used qortex, and the postmaster when it is preloaded) then
# crash. Renaming the old file away first keeps their copy intact (the file lives on until
# they exit) and the new build goes into a new file. Servers that preload qortex keep running
# the old build until they restart.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/${PG_MAJOR:-15}/bin/pg_config}
sudo=(); pgrx_sudo=()
if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); pgrx_sudo=(--sudo); fi

lib="$("$PG_CONFIG" --pkglibdir)/qortex.so"
if [ -e "$lib" ]; then
    "${sudo[@]}" mv -f "$lib" "$lib.replaced"
    "${sudo[@]}" rm -f "$lib.replaced"
fi
cargo pgrx install --pg-config "$PG_CONFIG" "${pgrx_sudo[@]}" "$@"
scripts/install-archive.sh
