# labkit: `make test` builds .venv, installs labkit with its test extras, runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint run demo up bench clean

$(STAMP): pyproject.toml setup.py $(wildcard labkit/native/*.c labkit/native/*.h)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check labkit tests
	$(BIN)/mypy labkit
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check labkit tests
	$(BIN)/mypy labkit

# the embedded default lab and all its phones, end to end; exits 0 only if every phone provisions
demo: $(STAMP)
	$(BIN)/labkit demo

# the embedded default lab served on 127.0.0.1, ports + 10000, until Ctrl-C
up: $(STAMP)
	$(BIN)/labkit up --loopback

# what one phone of the embedded lab receives, finds and fetches
run: $(STAMP)
	$(BIN)/labkit explain

bench: $(STAMP)
	$(BIN)/python bench/storm.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis plan
