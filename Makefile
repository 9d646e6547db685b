# `make demo` and `make test` set everything up on first use (a .venv with the package
# installed editable, training and test extras included); later runs reuse it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint format clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[train,test]'
	touch $(STAMP)

# `make demo DEMO_OPTS=--tiny DEMO_OUT=/tmp/d` runs the seconds-long version (CI does).
DEMO_OUT ?= demo-output
DEMO_OPTS ?=

demo: $(STAMP)
	$(BIN)/mangograde demo --out $(DEMO_OUT) $(DEMO_OPTS)

test: $(STAMP) lint
	$(BIN)/python -m pytest -q -n 2 --dist worksteal

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks examples
	$(BIN)/ruff check --fix src tests benchmarks examples

clean:
	rm -rf $(VENV) demo-output .pytest_cache .ruff_cache
