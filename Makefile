# qortex — the two commands are `make run` and `make test` (see README.md).
# PG_MAJOR=18 make run | test: the same for PostgreSQL 18 (its own cluster and port).
PG_MAJOR   ?= 15
PORT       ?= 288$(PG_MAJOR)
DB         ?= qortex
DEV_DIR    := .pg/dev$(if $(filter-out 15,$(PG_MAJOR)),-$(PG_MAJOR))
export PG_MAJOR

# asked when used (after setup has installed it): scripts/pg-config.sh picks the pg_config
BIN         = $(shell "$$(scripts/pg-config.sh)" --bindir)
PSQL        = $(BIN)/psql -X -q -v ON_ERROR_STOP=1 -h $(abspath $(DEV_DIR))/run -p $(PORT) -U postgres

.PHONY: setup install run stop test test-citus bench clean

setup:
	@scripts/setup.sh

install: setup
	@scripts/install.sh --release

# The install restarts a running dev server (it preloads qortex) onto the new build.
run: setup
	@$(MAKE) --no-print-directory install
	@scripts/cluster.sh start $(DEV_DIR) $(PORT)
	@$(PSQL) -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$(DB)'" | grep -q 1 || \
		$(PSQL) -d postgres -c 'CREATE DATABASE "$(DB)"'
	@$(PSQL) -d $(DB) -c 'SET client_min_messages = warning' -c 'CREATE EXTENSION IF NOT EXISTS qortex CASCADE' -c 'ALTER EXTENSION qortex UPDATE'
	@echo
	@echo "qortex is running (data in $(DEV_DIR)/, stop it with 'make stop'). Connect with:"
	@echo
	@echo "  $(BIN)/psql -h $(abspath $(DEV_DIR))/run -p $(PORT) -U postgres $(DB)"
	@echo

stop:
	@scripts/cluster.sh stop $(DEV_DIR)

test: setup
	@scripts/test.sh

# The Citus suite (tests/citus): builds Citus from ../shared/vendor once, starts a coordinator
# and two workers (scripts/citus.sh), runs against them, stops them. PostgreSQL 15 only.
test-citus: setup
	@scripts/test-citus.sh

clean: stop
	cargo clean
	rm -rf .pg
