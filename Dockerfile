# qortex on the official pgvector image of PostgreSQL 18, the newest major CI tests.
#
#   docker build -t qortex .
#   docker run -e POSTGRES_PASSWORD=secret -p 5432:5432 qortex
#   psql -h localhost -U postgres -c 'CREATE EXTENSION qortex CASCADE'
#
# The build stage runs the scripts CI runs: scripts/setup.sh (toolchain; here PostgreSQL 18's
# headers come from the image's apt repository) and scripts/package.sh (the release build
# and every SQL file), which CI runs for PostgreSQL 18 after the whole test suite passed on
# it. No Docker engine runs on our CI machines, so CI runs those steps, not this file.
# The final stage gets only the extension's .so, .control and .sql files.

FROM pgvector/pgvector:pg18 AS build
ENV PG_MAJOR=18 \
    PATH=/root/.cargo/bin:$PATH \
    QORTEX_SETUP_PYTHON=0
RUN apt-get update && apt-get install -y --no-install-recommends curl ca-certificates
WORKDIR /src
# setup first, so the toolchain layer is cached across source changes
COPY scripts/setup.sh scripts/pg-config.sh scripts/
RUN scripts/setup.sh
COPY . .
RUN scripts/package.sh /pkg

FROM pgvector/pgvector:pg18
COPY --from=build /pkg/usr/lib/postgresql/18/lib/qortex.so /usr/lib/postgresql/18/lib/
COPY --from=build /pkg/usr/share/postgresql/18/extension/qortex.control \
                  /pkg/usr/share/postgresql/18/extension/qortex--*.sql \
                  /usr/share/postgresql/18/extension/
# Loaded at start for its shared-memory counters (qortex works without, counters read null).
CMD ["postgres", "-c", "shared_preload_libraries=qortex"]
