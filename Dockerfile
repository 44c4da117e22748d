# qortex on the official pgvector image (PostgreSQL 17).
#
#   docker build -t qortex .
#   docker run -e POSTGRES_PASSWORD=secret -p 5432:5432 qortex
#   psql -h localhost -U postgres -c 'CREATE EXTENSION qortex CASCADE'
#
# The build stage sets up its toolchain with scripts/setup.sh, the same script `make test`
# and CI run (CI exercises it on PostgreSQL 15 here: no Docker engine runs on our CI machines,
# so this file is kept step for step in line with what CI runs rather than built by it).
# The final stage gets only the extension's .so, .control and .sql files.

FROM pgvector/pgvector:pg17 AS build
ENV PG_MAJOR=17 \
    PATH=/root/.cargo/bin:$PATH \
    QORTEX_SETUP_PYTHON=0
RUN apt-get update && apt-get install -y --no-install-recommends curl ca-certificates
WORKDIR /src
# setup first, so the toolchain layer is cached across source changes
COPY scripts/setup.sh scripts/setup.sh
RUN scripts/setup.sh
COPY . .
RUN cargo pgrx package --pg-config /usr/lib/postgresql/17/bin/pg_config \
        --no-default-features --features pg17 --out-dir /pkg && \
    scripts/install-sql.sh /pkg/usr/share/postgresql/17/extension

FROM pgvector/pgvector:pg17
COPY --from=build /pkg/usr/lib/postgresql/17/lib/qortex.so /usr/lib/postgresql/17/lib/
COPY --from=build /pkg/usr/share/postgresql/17/extension/qortex.control \
                  /pkg/usr/share/postgresql/17/extension/qortex--*.sql \
                  /usr/share/postgresql/17/extension/
# Loaded at start for its shared-memory counters (qortex works without, counters read null).
CMD ["postgres", "-c", "shared_preload_libraries=qortex"]
