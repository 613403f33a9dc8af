# Developer commands. `make help` lists them.
.DEFAULT_GOAL := help
UV ?= $(shell command -v uv 2>/dev/null || echo .venv-tools/bin/uv)
VENV := .venv
BIN := $(VENV)/bin
PG_TEST_URL ?= postgres://postgres@127.0.0.1:5432/matomete_test
AMQP_TEST_URL ?= amqp://guest:guest@127.0.0.1:5672/%2F
REDIS_TEST_URL ?= redis://127.0.0.1:6379/1

.PHONY: help up test test-embedded test-services faults camara lint golden migrations check-migrations catalogue bench clean

help: ## list the developer commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(UV):
	python3 -m venv .venv-tools && .venv-tools/bin/pip install -q uv

$(BIN)/matomete: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen
	@touch $@

up: $(BIN)/matomete ## install from the lock file and run the whole platform (SQLite, in-process broker)
	$(BIN)/matomete up

test: test-embedded test-services ## install and run the tests on SQLite + in-process broker, then PostgreSQL + RabbitMQ + Redis

test-embedded: $(BIN)/matomete ## the suite on the embedded backends
	$(BIN)/pytest -q -p no:cacheprovider

test-services: $(BIN)/matomete ## the suite on PostgreSQL + RabbitMQ + Redis (skips unless they answer; fails then under MATOMETE_REQUIRE_SERVICES=1)
	MATOMETE_TEST_BACKEND=services MATOMETE_TEST_DATABASE_URL=$(PG_TEST_URL) MATOMETE_TEST_BROKER_URL=$(AMQP_TEST_URL) \
		MATOMETE_TEST_REDIS_URL=$(REDIS_TEST_URL) \
		$(BIN)/pytest -q -p no:cacheprovider

faults: $(BIN)/matomete ## only the fault tests (`-m faults`: duplicate-and-reorder, secrets in logs; then the fault harness and the races on PostgreSQL + RabbitMQ); MATOMETE_FAULT_SEED, MATOMETE_FAULT_PURCHASES, MATOMETE_FAULT_KILLS
	$(BIN)/pytest -q -p no:cacheprovider -m faults
	MATOMETE_TEST_BACKEND=services MATOMETE_TEST_DATABASE_URL=$(PG_TEST_URL) MATOMETE_TEST_BROKER_URL=$(AMQP_TEST_URL) \
		$(BIN)/pytest -q -p no:cacheprovider -m faults

camara: $(BIN)/matomete ## only CAMARA's conformance suite (tests/camara: the r3.2 feature files in ../shared/camara, or MATOMETE_CAMARA_DIR), embedded then services
	$(BIN)/pytest -q -p no:cacheprovider tests/camara
	MATOMETE_TEST_BACKEND=services MATOMETE_TEST_DATABASE_URL=$(PG_TEST_URL) MATOMETE_TEST_BROKER_URL=$(AMQP_TEST_URL) \
		MATOMETE_TEST_REDIS_URL=$(REDIS_TEST_URL) \
		$(BIN)/pytest -q -p no:cacheprovider tests/camara

lint: $(BIN)/matomete ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

golden: $(BIN)/matomete ## rewrite the month close's rendered SQL (tests/models/golden/) after a deliberate change
	MATOMETE_UPDATE_GOLDEN=1 $(BIN)/pytest -q -p no:cacheprovider tests/models/test_close_sql.py

migrations: $(BIN)/matomete ## write a migration for model changes (tortoise makemigrations)
	MATOMETE_DATABASE_URL=sqlite:///tmp/matomete-makemigrations.sqlite3 $(BIN)/tortoise -c settings.database.TORTOISE_ORM makemigrations

catalogue: $(BIN)/matomete ## list page text (templates) with no Japanese yet in api/locale/ja/LC_MESSAGES/*.po
	$(BIN)/pybabel extract -F api/locale/babel.cfg --no-location --omit-header -o api/locale/messages.pot . >/dev/null
	$(BIN)/pytest -q -p no:cacheprovider tests/sites/test_catalogue.py

bench: $(BIN)/matomete ## run the benchmarks (PostgreSQL + RabbitMQ)
	@for script in bench/*.py; do case $$script in *_support.py) continue;; esac; $(BIN)/python $$script; done

clean: ## remove the virtualenv and local state
	rm -rf $(VENV) .venv-tools matomete.sqlite3* matomete.secret_key matomete.ops_token matomete.demo.json
