# Every target works from a fresh clone: it makes .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install dev serve test test-fast bench bench-smoke lint format demo screenshots clean

# A stamp, not bin/agentwatch: a plain `pip install .` (the README's serve
# command) makes that too, without the dev tools.
STAMP := $(VENV)/.dev-installed

# Both distributions editable: the server (here) and the SDK (sdk/). The
# server's install brings a built copy of the SDK as its dependency; the
# second step puts the editable one in its place.
$(STAMP): pyproject.toml sdk/pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	$(BIN)/pip install -q --no-deps -e ./sdk
	@touch $@

install: $(STAMP)

serve: install
	$(BIN)/agentwatch serve

demo: install
	$(BIN)/python demo.py --backfill

# The whole suite, browser and PostgreSQL tests included.
test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not browser"

bench: install
	$(BIN)/python benchmarks/run_all.py

bench-smoke: install
	$(BIN)/python benchmarks/run_all.py --smoke

# Regenerate docs/images/dashboard-*.png from the browser tests.
screenshots: install
	AGENTWATCH_SCREENSHOTS=1 $(BIN)/python -m pytest -q tests/browser -k tablet

lint: install
	$(BIN)/ruff check src sdk/src tests benchmarks demo.py
	$(BIN)/ruff format --check src sdk/src tests benchmarks demo.py
	$(BIN)/mypy

format: install
	$(BIN)/ruff format src sdk/src tests benchmarks demo.py
	$(BIN)/ruff check --fix src sdk/src tests benchmarks demo.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
