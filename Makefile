# Vokter. Quickstart (Debian 12, as root):  make demo   and   make test
PYTHON ?= /usr/bin/python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck contracts unit dist bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	# pycanon, the independent k-anonymity checker of the tests, pins exact versions of pandas,
	# typing_extensions and more that clash with pydantic; it needs only pandas and numpy.
	$(BIN)/pip install -q --disable-pip-version-check --no-deps 'pycanon==1.3.6'
	touch $@

## A narrated tour: starts a real vokterd in a throwaway enclave, creates a project, stops.
demo: $(STAMP)
	$(BIN)/vokter demo

## The whole suite: lint, types, import contracts, then every test (PostgreSQL brought up first).
test: $(STAMP) lint typecheck contracts
	VOKTER_TEST_PG_URL="$$(bash tests/support/postgres-up.sh)" $(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check agent cli tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports

## Unit tests only: no PostgreSQL, no daemon, no users.
unit: $(STAMP)
	VOKTER_SKIP_PG=1 $(BIN)/pytest -q -m "not postgres" --ignore=tests/e2e

dist: $(STAMP)
	$(BIN)/pip wheel -q --no-deps -w dist .

bench: $(STAMP)
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) dist build *.egg-info .mypy_cache .ruff_cache .pytest_cache
