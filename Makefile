# The two commands in the README are the contract: `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: install install-dev demo test test-fast lint fmt bench reliability security gcp-parity dev clean schemas

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.runtime: $(BIN)/python requirements.txt pyproject.toml
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

demo: install            ## run the sample pipeline end to end on the embedded runtime (no cloud, no Java)
	$(BIN)/cloudact demo

test: install-dev        ## the whole suite; starts (and stops) the emulators, bqemulator and function servers
	scripts/test.sh

test-fast: install-dev   ## the tests that need no server (unit + embedded contract halves), < 2 min; fails on 0 tests
	scripts/test_fast.sh

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports   # the layers in pyproject.toml [tool.importlinter]: each imports only those below it

fmt: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install-dev       ## benchmark figures (P1..P6): table on stdout, JSON in bench/results/; starts its own emulators
	$(BIN)/python -m bench

reliability: install-dev ## reliability/security drills, one figure per line; non-zero exit on any loss
	$(BIN)/python -m reliability

security: install-dev    ## tenant-vs-tenant attack drill (issue 13): attacks tried / blocked / breached; non-zero on any breach
	$(BIN)/python -m reliability --only attacks,cross-tenant

gcp-parity: install-dev  ## would it work on GCP? IAM grants, Firestore indexes, service limits; starts its own emulators
	$(BIN)/python -m reliability.parity

schemas: install         ## regenerate shared/contracts/schemas/*.json from the pydantic contracts
	$(BIN)/cloudact contracts export

docs: install            ## regenerate docs/configuration.md, metadata-schema.md, api.md from the code
	$(BIN)/python -m shared.docgen

clean:
	rm -rf .cloudact .emulators .pytest_cache .mypy_cache .ruff_cache test-artifacts
