# labkit: `make test` builds .venv, installs labkit with its test extras, runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint run clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check labkit tests
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check labkit tests

# the kit on its embedded default lab
run: $(STAMP)
	$(BIN)/labkit explain

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis plan
