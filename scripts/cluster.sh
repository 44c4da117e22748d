#!/usr/bin/env bash
# A local PostgreSQL cluster in a folder of the repo, on its own port and socket.
#
#   scripts/cluster.sh start DIR PORT   initdb on first use, start unless running (idempotent)
#   scripts/cluster.sh stop DIR         stop it if running
#   scripts/cluster.sh status DIR       running or not
#
# The server loads qortex at start (shared_preload_libraries), which its counters need;
# QORTEX_PRELOAD=0 starts it without; QORTEX_PRELOAD_LIBS sets the list (bench/pg_textsearch.sh
# adds pg_textsearch); QORTEX_SHARED_BUFFERS sets shared_buffers (256MB).
# DIR holds data/ (PGDATA), run/ (the unix socket) and server.log. PostgreSQL refuses to run
# as root, so as root the server runs as the `postgres` user, who then owns DIR.
set -euo pipefail

BIN=$("$("$(dirname "${BASH_SOURCE[0]}")/pg-config.sh")" --bindir)

die() { printf '\033[1;31m[cluster] error:\033[0m %s\n' "$*" >&2; exit 1; }

as_owner() {
    if [ "$(id -u)" -eq 0 ]; then sudo -u postgres -- "$@"; else "$@"; fi
}

cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || die "usage: $0 start DIR PORT | stop DIR | status DIR"
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

running() { as_owner "$BIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; }

case "$cmd" in
start)
    port=${3:?usage: $0 start DIR PORT}
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 || die "there is no 'postgres' user to run the server as"
        chown postgres: "$dir"
        sudo -u postgres test -x "$dir" ||
            die "user postgres cannot reach $dir: every parent folder needs o+x"
    fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        as_owner "$BIN/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 \
            --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    fi
    if running; then
        exit 0
    fi
    as_owner mkdir -p "$dir/run"
    preload="-c shared_preload_libraries=${QORTEX_PRELOAD_LIBS:-qortex}"
    [ "${QORTEX_PRELOAD:-1}" = 1 ] || preload=""
    as_owner "$BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-p $port -k $dir/run -c listen_addresses=127.0.0.1 -c shared_buffers=${QORTEX_SHARED_BUFFERS:-256MB} $preload" start >/dev/null ||
        { tail -n 20 "$dir/server.log" >&2; die "the server did not start (log: $dir/server.log)"; }
    ;;
stop)
    if running; then
        as_owner "$BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    fi
    ;;
status)
    if running; then echo "running"; else echo "stopped"; exit 3; fi
    ;;
*)
    die "unknown command '$cmd'"
    ;;
esac
