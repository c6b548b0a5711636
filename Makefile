# The two commands of the README's Quickstart. Each creates its own virtualenv on first use.
PYTHON ?= python3
VENV ?= .venv
PORT ?= 8095
BIN := $(VENV)/bin

.PHONY: run test lint bench clean

$(BIN)/.installed-run: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(BIN)/.installed-dev: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(BIN)/.installed-run

## Run the server on the embedded defaults: SQLite, in-memory channel layer, port 8095.
run: $(BIN)/.installed-run
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py migrate --noinput
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py setup_info --port $(PORT)
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py runserver 0.0.0.0:$(PORT)

## Run the whole test suite (uses DATABASE_URL / REDIS_URL when they are set).
test: $(BIN)/.installed-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(BIN)/.installed-dev
	$(BIN)/ruff check .

$(BIN)/.installed-bench: $(BIN)/.installed-dev bench/requirements.txt
	$(BIN)/pip install --quiet -r bench/requirements.txt
	touch $@

## Benchmark our server against the guide's bridge; rewrites docs/performance.md (see it for BENCH_ARGS).
bench: $(BIN)/.installed-bench
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .test-db-*.sqlite3*
