# The two commands of the README's Quickstart. Each creates its own virtualenv on first use.
PYTHON ?= python3
VENV ?= .venv
PORT ?= 8095
BIN := $(VENV)/bin

.PHONY: run test lint bench bench-tail clean superuser fake-openai call

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
## On first use it writes .env (DEBUG on, generated secrets), which every other command then reads.
run: $(BIN)/.installed-run .env
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py setup_info --port $(PORT)
	$(BIN)/python manage.py runserver 0.0.0.0:$(PORT)

.env: | $(BIN)/.installed-run
	$(BIN)/python -m voiceagent.devenv

## Create an admin user (asks for a name and a password).
superuser: $(BIN)/.installed-run .env
	$(BIN)/python manage.py createsuperuser

## A local stand-in for OpenAI's Realtime API on port 8765 (run `make run` with OPENAI_REALTIME_URL, see README).
fake-openai: $(BIN)/.installed-run .env
	$(BIN)/python manage.py fake_openai --port 8765

## A simulated phone call to the running server: make call TO=+46700000001 [ARGS="--seconds 8 --record out.wav"]
TO ?= +46700000001
call: $(BIN)/.installed-run .env
	$(BIN)/python manage.py simulate_call --to $(TO) $(ARGS)

## Run the whole test suite (uses DATABASE_URL / REDIS_URL when they are set), in TEST_WORKERS
## processes (pytest-xdist; each with its own test database, daphnes and Redis prefix). `--dist load`
## keeps pytest-django's order on each worker: tests that flush the database (and the rows its
## migrations seed) come after those that read those rows.
# Three on two cores: most tests wait on real-time audio, not on the CPU (measured: 2:30 vs 3:01 wall on PG+Redis).
TEST_WORKERS ?= 3
test: $(BIN)/.installed-dev
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist load $(PYTEST_ARGS)

## Style, and the import contracts of the layout (.importlinter; docs/architecture.md).
lint: $(BIN)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

$(BIN)/.installed-bench: $(BIN)/.installed-dev bench/requirements.txt
	$(BIN)/pip install --quiet -r bench/requirements.txt
	touch $@

## Benchmark our server against the guide's bridge; rewrites docs/performance.md (see it for BENCH_ARGS).
bench: $(BIN)/.installed-bench
	$(BIN)/python -m bench.run $(BENCH_ARGS)

## The tail at N=100 over 60 s: baseline, ours, FAST_LANE=0, the public-API lane (docs/performance-tail.md).
bench-tail: $(BIN)/.installed-bench
	$(BIN)/python -m bench.run --tail $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .test-db-*.sqlite3*
