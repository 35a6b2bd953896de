# The README's two commands: `make run` and `make test`. Every target creates .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
SCENARIO ?= all
PYTEST_ARGS ?=

.PHONY: run test lint typecheck unit format clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "pushgate needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Reinstall only when the dependency lists change.
$(VENV)/.run-deps: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) install --quiet -c constraints.txt -e .
	touch $@

$(VENV)/.test-deps: $(VENV)/.run-deps
	$(PIP) install --quiet -c constraints.txt -e '.[test]'
	touch $@

# `make run PORT=9000 HOST=0.0.0.0` wins; without them pushgate's settings decide
# (PUSHGATE_SERVER__PORT, then SERVICE_PORT, then --config's file, then 127.0.0.1:8000).
# Only values given on make's command line count: a HOST or PORT in the environment is
# often the shell's or the platform's, not meant for pushgate.
given = $(if $(filter command line,$(origin $(1))),$(2) $($(1)))

run: $(VENV)/.run-deps
	$(BIN)/pushgate serve $(call given,HOST,--host) $(call given,PORT,--port)

lint: $(VENV)/.test-deps
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: $(VENV)/.test-deps
	$(BIN)/mypy

# Cheapest check first, so a slip fails in seconds rather than after the suite: ruff (under a
# second), mypy (~10 s from cold), then pytest on PYTEST_WORKERS processes (pytest-xdist; most
# tests wait on sockets and subprocesses, so workers overlap the waits even on two cores).
# Coverage is combined across workers by pytest-cov. `PYTEST_WORKERS=0` runs in one process.
# Four on two cores: the suite keeps the CPU about half busy (23.7 CPU-min in a 15-min run),
# the rest is waiting on processes, sockets and timers, which more workers overlap.
PYTEST_WORKERS ?= 4

test: lint typecheck
	$(BIN)/pytest -n $(PYTEST_WORKERS) --cov --cov-report=term:skip-covered --durations=15 \
		$(PYTEST_ARGS)

unit: $(VENV)/.test-deps
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

format: $(VENV)/.test-deps
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .coverage

# `make bench [SCENARIO=webpush_e2e] [PROFILE=services] [N=20000] [BENCH_ARGS=...]`: see
# bench/README.md. Installs nginx (with its echo module: the FCM sink reads request bodies) and
# wrk from Debian when missing (needs root, as here).
PROFILE ?= all
N ?=
BENCH_ARGS ?=

.PHONY: bench

$(VENV)/.bench-deps: $(VENV)/.run-deps bench/requirements.txt
	$(PIP) install --quiet -c constraints.txt -r bench/requirements.txt
	touch $@

bench: $(VENV)/.bench-deps
	@command -v nginx >/dev/null 2>&1 && command -v wrk >/dev/null 2>&1 && \
		test -e /usr/lib/nginx/modules/ngx_http_echo_module.so || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			nginx-light libnginx-mod-http-echo wrk; }
	$(BIN)/python -m bench --scenario $(SCENARIO) --profile $(PROFILE) $(if $(N),--n $(N)) $(BENCH_ARGS)
