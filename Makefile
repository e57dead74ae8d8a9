# The README's two commands: `make run` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
UV := $(shell command -v uv 2>/dev/null)

.PHONY: run test install install-dev install-dbt assets lint typecheck security lock migrate worker web bench-orchestration bench-copy bench-peers bench-chaos bench-throughput loadtest clean

$(PY):
ifdef UV
	uv venv -q -p python3.11 $(VENV)
else
	python3 -m venv $(VENV)
endif

# Front-end assets (htmx) come from npm at install time; nothing vendored.
# The stamp is npm's own lock copy, rewritten by every `npm ci`.
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

# The editor and graph bundles (CodeMirror, dagre) built by esbuild from
# node_modules into build/static/ (git-ignored); `npm ci` builds them too
# (the package's "prepare" script), this rebuilds after a change in frontend/.
build/static/bundle/editor.js: node_modules/.package-lock.json $(wildcard frontend/*)
	npm run build --silent

assets: node_modules/.package-lock.json build/static/bundle/editor.js

# Dependencies come from the lock files (exact versions, audited in CI);
# `make lock` regenerates them from pyproject.toml's ranges.
install: $(PY) assets
ifdef UV
	uv pip install -q -p $(PY) -r requirements.lock -e .
else
	$(PY) -m pip install -q -r requirements.lock -e .
endif

install-dev: $(PY) assets
ifdef UV
	uv pip install -q -p $(PY) -r requirements-dev.lock -e '.[dev,dbt]'
else
	$(PY) -m pip install -q -r requirements-dev.lock -e '.[dev,dbt]'
endif

# dbt tasks on a production install (docs/dbt.md): the product's lock plus the extra's.
install-dbt: install
ifdef UV
	uv pip install -q -p $(PY) -r requirements-dbt.lock -e '.[dbt]'
else
	$(PY) -m pip install -q -r requirements-dbt.lock -e '.[dbt]'
endif

lock:
	uv pip compile -q --universal -p 3.11 pyproject.toml -o requirements.lock
	uv pip compile -q --universal -p 3.11 pyproject.toml --extra dbt -o requirements-dbt.lock
	uv pip compile -q --universal -p 3.11 pyproject.toml --extra dev --extra dbt -o requirements-dev.lock

# Set up and run the product on the embedded default (SQLite, ORM broker):
# bootstrap, demo data, the web app and one worker. Python tasks may call the
# demo's package (datadog_demo) unless PYTHON_TASK_MODULES says otherwise.
run: export PYTHON_TASK_MODULES ?= datadog_demo
run: install
	$(PY) manage.py bootstrap --noinput
	$(PY) manage.py demo
	$(PY) manage.py collectstatic --noinput -v 0
	@echo "DataDog Platform: http://$(HOST):$(PORT)/  (admin: http://$(HOST):$(PORT)/admin/)"
	@echo "Log in as $${DATADOG_ADMIN_USER:-admin} (password printed above on first bootstrap, or DATADOG_ADMIN_PASSWORD)"
	@trap 'kill 0' EXIT INT TERM; \
	  $(PY) manage.py worker & \
	  $(PY) manage.py runserver --noreload $(HOST):$(PORT)

# Set up and run the whole test suite (services used when present).
test: install-dev
	$(PY) -m pytest --cov --cov-report=term:skip-covered $(PYTEST_ARGS)

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports  # the one-way layers, [tool.importlinter] in pyproject.toml

typecheck: install-dev
	$(VENV)/bin/mypy

# Static security checks (bandit, configured in pyproject.toml) and known
# vulnerabilities of the locked dependencies (pip-audit).
security: install-dev
	$(VENV)/bin/bandit -q -c pyproject.toml -r core datadog_web ops pipelines connectors accounts
	$(PY) .ci/pip_audit.py

bench-orchestration: install-dev
	$(PY) bench/orchestration.py

bench-copy: install-dev
	$(PY) bench/copy.py

# The copy matrix's peers (dlt, polars + connectorx, Sling) in a virtualenv
# of their own; `bench/copy.py --matrix` runs them when it exists.
bench-peers: .venv-peers/bin/python
	.venv-peers/bin/python -m pip install -q -r bench/peers-requirements.txt

.venv-peers/bin/python:
ifdef UV
	uv venv -q -p python3.11 .venv-peers
	uv pip install -q -p .venv-peers/bin/python pip
else
	python3 -m venv .venv-peers
endif

# Chaos soak (bench/chaos.py, as root: it runs a private PostgreSQL as user
# postgres and a private redis-server): 1,000 runs in 10 minutes while
# worker processes are killed and Redis and PostgreSQL restart.
bench-chaos: install-dev
	$(PY) bench/chaos.py

# Throughput (bench/throughput.py): executions/min of a 2-task pipeline at
# steady arrival rates, raised until p99 passes 1 s, beside bare django-q2.
bench-throughput: install-dev
	$(PY) bench/throughput.py

# Load test (bench/loadtest.py): gunicorn + qcluster on a scratch PostgreSQL
# database and Redis prefix (BENCH_PG_URL, BENCH_REDIS_URL; loopback by
# default), seeded data, locust headless; torn down at the end. Not part of
# `make test`. LOADTEST_ARGS, e.g. "--users 32 --seconds 120".
loadtest: install-dev
	$(PY) bench/loadtest.py $(LOADTEST_ARGS)

clean:
	rm -rf var .pytest_cache .coverage htmlcov
