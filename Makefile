# The README's quick start: `make dev` runs the service, `make test` runs the tests.
# Each target bootstraps .venv from requirements.lock on a fresh machine (only Python needed).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: dev test fuzz lint typecheck bench bench-ingest lock clean

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -e .
	@rm -f $(VENV)/.installed-* && touch $@

dev: $(STAMP)
	$(BIN)/warden dev --host $(HOST) --port $(PORT)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The contract fuzz run, longer than in `make test` (~15 min), with every Schemathesis phase.
fuzz: $(STAMP)
	FUZZ_MAX_SECONDS=$${FUZZ_MAX_SECONDS:-900} FUZZ_MAX_EXAMPLES=$${FUZZ_MAX_EXAMPLES:-50} \
	FUZZ_PHASES=examples,coverage,fuzzing,stateful \
	$(BIN)/python -m pytest -q -s tests/contract/test_fuzz.py

lint: $(STAMP)
	$(BIN)/ruff check app workers tests benchmarks
	$(BIN)/ruff format --check app workers tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy app workers

# Benchmarks (not tests): `make bench`, or e.g. `make bench BENCH_ARGS=--quick`.
bench: $(STAMP)
	$(BIN)/warden bench $(BENCH_ARGS)

bench-ingest: $(STAMP)
	$(BIN)/warden bench --only ingest $(BENCH_ARGS)

lock:
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e' > requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
