"""What every benchmark checks first."""
import sys


def require_release(conn):
    """Exit unless the server runs a release build of qortex: `make test` installs a debug
    build into the same PostgreSQL, several times slower, and a figure taken on it means
    nothing. `make install` puts the release build back (and restarts `make run`'s server)."""
    build = conn.execute("SELECT qortex_status()->'versions'->>'build'").fetchone()[0]
    if build != "release":
        sys.exit(f"the server runs a {build} build of qortex; run `make install` first")
