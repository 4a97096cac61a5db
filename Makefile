# Two commands: `make dev` and `make test`. Everything else is a helper of theirs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
#: Line coverage of src/envoi that `make test` demands: today's figure (94 % with PostgreSQL and
#: chromium, a little less without), raised as it climbs.
COVERAGE_FLOOR ?= 92
#: Test processes: most tests wait on Redis, a database or a stand-in server, so more than the cores.
TEST_WORKERS ?= 4

.PHONY: dev test install lint typecheck clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

dev: $(STAMP)
	$(BIN)/envoi dev

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

# Two runs, one coverage: the suite in TEST_WORKERS processes, then the tests marked `serial` (they time
# what a real server sees) alone on a quiet machine. Exit code 5 is "no test selected" (a narrowed run).
test: $(STAMP) lint typecheck
	$(BIN)/python -m pytest -n $(TEST_WORKERS) -m "not serial" --cov=envoi --cov-report= $(PYTEST_ARGS)
	$(BIN)/python -m pytest -m serial --cov=envoi --cov-append --cov-report=term:skip-covered \
		--cov-fail-under=$(COVERAGE_FLOOR) $(PYTEST_ARGS) || [ $$? -eq 5 ]

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
