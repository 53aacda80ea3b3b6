# One command to run bouncd on its embedded defaults, one to run the whole test suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: venv run test lint bench clean

$(BIN)/bouncd: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

venv: $(BIN)/bouncd

## run: set up and serve on 127.0.0.1:2525 with SQLite in ./var/bouncd.sqlite3
run: venv
	$(BIN)/bouncd serve

## test: set up, lint, type-check and run every test
test: venv lint
	$(BIN)/pytest $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check bouncd tests bench
	$(BIN)/mypy

bench: venv
	$(BIN)/python bench/parse_bench.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache var
