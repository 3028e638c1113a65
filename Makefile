# Homeward — the commands a newcomer needs: `make up` and `make test`.
PY := .venv/bin/python

.PHONY: install up test unit lint clean

install:
	@bash deploy/local/install.sh

up: install  ## the whole system: Kafka, Redis, alert :8000, dispatch :8001, notify :8002
	$(PY) -m deploy.local.stack up

lint: install
	.venv/bin/ruff check shared services deploy tests
	.venv/bin/mypy

test: lint  ## the whole suite; starts and stops its own Kafka and Redis on free ports
	$(PY) -m pytest -q -ra

unit: install
	$(PY) -m pytest -q tests/unit

clean:
	rm -rf .data .pytest_cache .mypy_cache .ruff_cache
