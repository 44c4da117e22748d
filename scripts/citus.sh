#!/usr/bin/env bash
# Citus for the scale-out tests: built from the release archive in the project's shared
# vendor folder (no package registry here has it), and a local cluster of a coordinator and
# two workers, each preloading citus and qortex.
#
#   scripts/citus.sh install   build and install Citus into PostgreSQL $PG_MAJOR (15; cached:
#                              a second run does nothing)
#   scripts/citus.sh start     install, then start the cluster (idempotent): .pg/citus/{coordinator,
#                              worker1,worker2} on ports 28830-28832, database `qortex` with
#                              citus and qortex created on every node, workers added
#   scripts/citus.sh stop      stop the three servers
#
# QORTEX_VENDOR: the folder holding citus-13.2.2.tar.gz and its patch (../shared/vendor).
# Citus 13.2 is the last line for PostgreSQL 15; 15.20 needs the one-hunk patch beside it.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PG_MAJOR=${PG_MAJOR:-15}
export PG_MAJOR
CITUS_VERSION=13.2.2
VENDOR=${QORTEX_VENDOR:-$ROOT/../shared/vendor}
DIR=.pg/citus
PORTS=(28830 28831 28832)
NODES=(coordinator worker1 worker2)
DB=qortex

say() { printf '\033[1m[citus]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[citus] error:\033[0m %s\n' "$*" >&2; exit 1; }

PG_CONFIG=$(scripts/pg-config.sh)
BIN=$("$PG_CONFIG" --bindir)

installed() {
    [ -f "$("$PG_CONFIG" --pkglibdir)/citus.so" ] &&
        grep -qs "^default_version = '13.2" "$("$PG_CONFIG" --sharedir)/extension/citus.control"
}

install() {
    installed && return
    local archive="$VENDOR/citus-$CITUS_VERSION.tar.gz"
    [ -f "$archive" ] || die "$archive is missing (set QORTEX_VENDOR to the folder holding it)"
    if command -v apt-get >/dev/null && [ "$(id -u)" -eq 0 ]; then
        local missing=()
        for p in liblz4-dev libzstd-dev libcurl4-openssl-dev libkrb5-dev; do
            dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
        done
        if [ ${#missing[@]} -gt 0 ]; then
            say "apt-get install ${missing[*]}"
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
        fi
    fi
    local build="$ROOT/target/citus-build"
    rm -rf "$build" && mkdir -p "$build"
    tar xzf "$archive" -C "$build"
    local src="$build/citus-$CITUS_VERSION"
    local version
    version=$("$PG_CONFIG" --version | awk '{print $2}')
    local patch="$VENDOR/citus-$CITUS_VERSION-pg$version.patch"
    if [ -f "$patch" ]; then
        (cd "$src" && patch -s -p1 <"$patch")
    fi
    say "building Citus $CITUS_VERSION for PostgreSQL $version (about 5 minutes)"
    (cd "$src" && ./configure -q PG_CONFIG="$PG_CONFIG" --without-libcurl >"$build/configure.log" 2>&1) ||
        { tail -n 20 "$build/configure.log" >&2; die "configure failed"; }
    (cd "$src" && make -s -j"$(nproc)" >"$build/make.log" 2>&1 && make -s install >>"$build/make.log" 2>&1) ||
        { tail -n 30 "$build/make.log" >&2; die "build failed (log: $build/make.log)"; }
    installed || die "Citus did not install"
}

start() {
    install
    local i
    for i in 0 1 2; do
        QORTEX_PRELOAD_LIBS=citus,qortex scripts/cluster.sh start "$DIR/${NODES[$i]}" "${PORTS[$i]}"
    done
    say "coordinator: $BIN/psql -h $ROOT/$DIR/coordinator/run -p ${PORTS[0]} -U postgres $DB (workers on ${PORTS[1]}, ${PORTS[2]})"
    local run="$ROOT/$DIR/coordinator/run"
    # made once: on a second start the workers already belong to the coordinator (which
    # then refuses DDL run on them directly)
    "$BIN/psql" -X -q -h "$run" -p "${PORTS[0]}" -U postgres -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1 && return
    for i in 0 1 2; do
        local node_run="$ROOT/$DIR/${NODES[$i]}/run"
        "$BIN/psql" -X -q -h "$node_run" -p "${PORTS[$i]}" -U postgres -d postgres -c "CREATE DATABASE $DB"
        "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$node_run" -p "${PORTS[$i]}" -U postgres -d "$DB" \
            -c "SET client_min_messages = warning" \
            -c "CREATE EXTENSION citus" \
            -c "CREATE EXTENSION qortex CASCADE"
    done
    "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$run" -p "${PORTS[0]}" -U postgres -d "$DB" \
        -c "SET client_min_messages = warning" \
        -c "SELECT citus_set_coordinator_host('127.0.0.1', ${PORTS[0]})" \
        -c "SELECT citus_add_node('127.0.0.1', ${PORTS[1]})" \
        -c "SELECT citus_add_node('127.0.0.1', ${PORTS[2]})" >/dev/null
}

stop() {
    local n
    for n in "${NODES[@]}"; do scripts/cluster.sh stop "$DIR/$n"; done
}

case "${1:-}" in
install) install ;;
start) start ;;
stop) stop ;;
*) die "usage: $0 install | start | stop" ;;
esac
