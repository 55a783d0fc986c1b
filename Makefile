# Every target bootstraps .venv from the repository: a fresh machine needs only python3, pip and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# pyproject's requires-python. Checked before anything is built, so an older interpreter gets one line
# saying so instead of a pip resolver error half-way through.
MIN_PYTHON := 3.11
version_of = $(shell $(1) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
PYTHON_VERSION := $(call version_of,$(PYTHON))
# "stale" when .venv has a Python that is not $(PYTHON)'s version, or does not run at all.
VENV_STALE := $(if $(wildcard $(BIN)/python),$(if $(filter $(PYTHON_VERSION),$(call version_of,$(BIN)/python)),,stale))
comma := ,
python_ok = $(shell $(PYTHON) -c 'import sys; sys.exit(sys.version_info < ($(subst .,$(comma),$(MIN_PYTHON)),))' \
	2>/dev/null && echo ok)
# Expanded where a recipe needs $(PYTHON): make expands a whole recipe before running it, so nothing runs.
check_python = $(if $(python_ok),,$(error chat-mcp-primer needs Python $(MIN_PYTHON) or later: $(PYTHON) is \
	$(or $(PYTHON_VERSION),not a working Python) (run make with PYTHON=python$(MIN_PYTHON) or later)))

.PHONY: test lint typecheck layers pytest demo bench soak lock clean venv-python-changed redis-server

# A .venv made by another Python than $(PYTHON) (an older one, or another 3.x) is made again.
$(STAMP): pyproject.toml constraints.txt $(if $(VENV_STALE),venv-python-changed)
	$(check_python)
	$(if $(VENV_STALE),rm -rf $(VENV))
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# Always out of date: a prerequisite that makes $(STAMP) rebuild when .venv is stale.
venv-python-changed: ;

test: lint typecheck layers pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

typecheck: $(STAMP)
	$(BIN)/mypy

layers: $(STAMP)
	$(BIN)/lint-imports

pytest: $(STAMP) redis-server
	$(BIN)/pytest -q

# The replica tests and benchmark run a real redis-server. When it is missing it is installed with the system's
# package manager where that can be done (as root on Debian, as in CI); anywhere else one line says how.
redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing redis-server (the replica tests need it)"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -q redis-server >/dev/null 2>&1 || \
	      { apt-get update -q >/dev/null && apt-get install -y -q redis-server >/dev/null; }; \
	    command -v redis-server >/dev/null 2>&1 || { echo "apt-get could not install redis-server" >&2; exit 1; }; \
	  else \
	    echo "the replica tests need redis-server: install it (apt-get install redis-server, brew install redis) and run make again" >&2; \
	    exit 1; \
	  fi; }

demo: $(STAMP)
	$(BIN)/chat-mcp-primer demo

bench: $(STAMP) redis-server
	$(BIN)/python -m benchmarks

# 500 turns with random faults; fails if a turn fails or anything (sessions, fds, tasks, memory) grew.
soak: $(STAMP)
	$(BIN)/python -m benchmarks.soak

# Re-pin every dependency (run after changing pyproject.toml, then commit constraints.txt).
lock:
	$(check_python)
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet -e '.[dev]'
	.lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^-e ' > constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .import_linter_cache
