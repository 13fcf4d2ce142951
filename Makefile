# Two commands on a fresh Debian machine with Python 3.11: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Outside the kernel's ephemeral range (32768-60999), so an outgoing connection never holds the port.
PG_PORT ?= 25432
REDIS_PORT ?= 63799
TEST_ENV = DATABASE_URL=postgres://postgres@127.0.0.1:$(PG_PORT)/orchestrator \
	REDIS_URL=redis://127.0.0.1:$(REDIS_PORT)/0 PG_PORT=$(PG_PORT) REDIS_PORT=$(REDIS_PORT)
HOST ?= 127.0.0.1
PORT ?= 8000

# The Python packages the checks cover (tests are linted too, but not type-checked).
PACKAGES := orchestrator audit routing sessions notifications approvals policy webhooks transfer dashboard observability agent_tools

.PHONY: install install-dev run test lint bench fuzz screenshots services-start services-stop clean

# `make run` installs only what production runs; the test and bench targets add the dev tools.
$(BIN)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(BIN)/.installed-dev: $(BIN)/.installed requirements-dev.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

install: $(BIN)/.installed

install-dev: $(BIN)/.installed-dev

# Style, formatting and types; the import contracts run inside the suite (tests/test_architecture.py).
lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy $(PACKAGES)

# DEBUG defaults to false (settings.py); the local server is the one place it is switched on.
run: export DEBUG ?= true
run: install
	$(BIN)/python manage.py migrate --noinput
# The shipped role profiles; an unchanged file makes no new version (docs/policy.md).
	$(BIN)/python manage.py load_profiles profiles/
	@$(BIN)/python manage.py welcome --host $(HOST) --port $(PORT)
# No broker here: the periodic jobs run beside the server in run_jobs (docs/operations.md).
	$(BIN)/python manage.py run_jobs & jobs=$$!; trap 'kill $$jobs 2>/dev/null' EXIT INT TERM; \
	  $(BIN)/python manage.py runserver $(HOST):$(PORT)

# The suite in parallel: one pytest-xdist worker per core, at most four, each with its own throwaway
# PostgreSQL and Redis (scripts/services.sh SERVICE_SETS; tests/settings.py).
TEST_WORKERS ?= $(shell n=$$(nproc); echo $$(( n < 4 ? n : 4 )))
PYTEST_ARGS ?= --numprocesses $(TEST_WORKERS)
# services-stop stops every worker's set too, so it also cleans up after an interrupted `make test`.
test services-stop: export SERVICE_SETS = $(TEST_WORKERS)

test: lint
	./scripts/services.sh install
	@status=0; ./scripts/services.sh start >/dev/null && \
	  $(TEST_ENV) $(BIN)/python -m pytest $(PYTEST_ARGS) || status=$$?; \
	  ./scripts/services.sh stop; exit $$status

# Benchmarks run on a PostgreSQL of their own, durable as production runs it (fsync and
# synchronous_commit on), on ports apart from the test server's.
BENCH_PG_PORT ?= 25433
BENCH_REDIS_PORT ?= 63798
BENCH_SERVICES = PG_DURABLE=1 PG_PORT=$(BENCH_PG_PORT) REDIS_PORT=$(BENCH_REDIS_PORT)
BENCH_ENV = DATABASE_URL=postgres://postgres@127.0.0.1:$(BENCH_PG_PORT)/orchestrator \
	REDIS_URL=redis://127.0.0.1:$(BENCH_REDIS_PORT)/0

bench: install-dev
	./scripts/services.sh install
	@status=0; $(BENCH_SERVICES) ./scripts/services.sh start >/dev/null && \
	  $(BENCH_ENV) $(BIN)/python -m tests.bench $(BENCH_ARGS) || status=$$?; \
	  $(BENCH_SERVICES) ./scripts/services.sh stop; exit $$status

# Refresh the console's pictures in docs/screenshots (docs/dashboard.md); a test run keeps its own.
screenshots: install-dev
	./scripts/services.sh install
	@status=0; ./scripts/services.sh start >/dev/null && \
	  SAVE_SCREENSHOTS=docs $(TEST_ENV) $(BIN)/python -m pytest \
	  tests/dashboard/test_browser.py -k screenshotted || status=$$?; \
	  ./scripts/services.sh stop; exit $$status

services-start:
	./scripts/services.sh start

services-stop:
	./scripts/services.sh stop

clean:
	rm -rf $(VENV) db.sqlite3 .pytest_cache

# Random-seed schemathesis (every check) against gunicorn on PostgreSQL; FUZZ_SEED, FUZZ_MAX_EXAMPLES,
# FUZZ_SECONDS tune it (scripts/fuzz.sh). The derandomized run is part of `make test`.
fuzz: install-dev
	./scripts/services.sh install
	@status=0; ./scripts/services.sh start >/dev/null && \
	  DATABASE_URL=postgres://postgres@127.0.0.1:$(PG_PORT)/postgres REDIS_URL=redis://127.0.0.1:$(REDIS_PORT)/0 \
	  PYTHON=$(BIN)/python ./scripts/fuzz.sh || status=$$?; \
	  ./scripts/services.sh stop; exit $$status
