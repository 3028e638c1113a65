# Homeward — the commands a newcomer needs: `make up` and `make test`.
PY := .venv/bin/python

.PHONY: install up test unit lint bench clean

install:
	@bash deploy/local/install.sh

# BROKERS=3: a three-node KRaft cluster (replication 3, min.insync 2); SASL=1: SCRAM users and
# ACLs per service (deploy/local/cluster_stack.py). Default: one plaintext broker.
BROKERS ?= 1
SASL ?=

up: install  ## the whole system: Kafka, Redis, alert :8000, dispatch :8001, notify :8002
ifeq ($(BROKERS)$(SASL),1)
	$(PY) -m deploy.local.stack up
else
	$(PY) -m deploy.local.cluster_stack up --brokers $(BROKERS) $(if $(SASL),--sasl)
endif

lint: install
	.venv/bin/ruff check shared services deploy tests bench
	.venv/bin/mypy

test: lint  ## the whole suite; starts and stops its own Kafka and Redis on free ports
	$(PY) -m pytest -q -ra --durations=20

unit: install
	$(PY) -m pytest -q tests/unit

bench: install  ## benchmarks, never part of `make test`; results in bench/results/latest.json
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk >/dev/null)
	$(PY) -m bench

clean:
	rm -rf .data .pytest_cache .mypy_cache .ruff_cache
