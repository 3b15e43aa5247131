# Everyday commands. `make run` and `make test` are the two that must always work on a fresh
# machine with Python 3.11+ and make.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
# The embedded default: SQLite under var/, eager tasks, DEBUG on. Production sets its own env.
export DEBUG ?= true
PYTEST_ARGS ?=

.PHONY: install install-runtime run test test-smoke lint format worker beat migrate seed clean

# Two stamps: the runtime (what `make run`, the worker and the benchmarks need) and the
# developer tools on top (pytest, Playwright, ruff, schemathesis: several hundred MB more), so
# that trying the product does not download the test stack.
$(VENV)/.runtime: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed: $(VENV)/.runtime
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

install-runtime: $(VENV)/.runtime

install: $(VENV)/.installed

migrate: install-runtime
	$(PY) manage.py migrate --noinput

run: migrate
	$(PY) manage.py seed_demo --if-empty
	@echo "Debrief is starting on http://$(HOST):$(PORT)/ (Ctrl-C stops it)"
	$(PY) manage.py runserver $(HOST):$(PORT)

seed: migrate
	$(PY) manage.py seed_demo

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

# The fast subset that CI also runs against the embedded SQLite default.
test-smoke: install
	$(PY) -m pytest -m smoke $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache
	$(PY) manage.py makemigrations --check --dry-run

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

worker: install-runtime
	$(VENV)/bin/celery -A crm_site worker -l info

beat: install-runtime
	$(VENV)/bin/celery -A crm_site beat -l info

clean:
	rm -rf $(VENV) var/*.sqlite3* var/staticfiles

# Benchmarks (BENCHMARKS.md). Both use their own PostgreSQL database, created and seeded with
# the large demo set when missing, never the dev SQLite file or the test database.
BENCH_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/debrief_bench
BENCH_ARGS ?=
LOAD_ARGS ?=
.PHONY: bench load

# Each page's median over its floor's (the same data in one raw query, fetched in alternation),
# then absolute timings of the pages and jobs with targets; writes bench/results.json.
bench: install-runtime
	BENCH_DATABASE_URL=$(BENCH_DATABASE_URL) $(PY) -m bench.run $(BENCH_ARGS)

# At most 60 s: gunicorn with 2 workers on loopback, 50 logged-in users on a mix of pages.
load: install-runtime
	BENCH_DATABASE_URL=$(BENCH_DATABASE_URL) $(PY) -m bench.load $(LOAD_ARGS)

# A 1,000,000-row call list checked as a job by two real Celery workers (Redis) on the
# extra-large set (bench/calllist_job.py); prints the time and each worker's memory.
BENCH_XL_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/debrief_bench_xl
CALLLIST_ARGS ?=
.PHONY: bench-calllist
bench-calllist: install-runtime
	BENCH_DATABASE_URL=$(BENCH_XL_DATABASE_URL) $(PY) -m bench.calllist_job $(CALLLIST_ARGS)

# A generated 100,000-row Salesforce export checked and imported in batches (bench/
# history_import.py), on its own database; prints rows per second. IMPORT_ARGS=--rows 20000.
BENCH_IMPORT_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/debrief_import_bench
IMPORT_ARGS ?=
.PHONY: bench-import
bench-import: install-runtime
	BENCH_IMPORT_DATABASE_URL=$(BENCH_IMPORT_DATABASE_URL) $(PY) -m bench.history_import $(IMPORT_ARGS)
