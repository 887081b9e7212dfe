# crm-gateway. `make run` and `make test` do all the set-up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= config.example.yaml
# make test runs the suite in a process per core (pytest-xdist); TEST_PROCESSES=0: in one.
TEST_PROCESSES ?= auto

.PHONY: run test test-rt5 bench fuzz lint format sandbox clean

$(BIN)/crm-gateway: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

# With ZENDESK_URL set: serve in front of that Zendesk. Without: start the sandbox CRM with demo
# data on 127.0.0.1:8081 and the gateway in front of it on 127.0.0.1:8080.
run: $(BIN)/crm-gateway
	@if [ -n "$$ZENDESK_URL" ]; then \
		exec $(BIN)/crm-gateway serve --config $(CONFIG); \
	else \
		exec $(BIN)/crm-gateway demo --config $(CONFIG); \
	fi

sandbox: $(BIN)/crm-gateway
	$(BIN)/crm-gateway sandbox --port 8081

lint: $(BIN)/crm-gateway
	$(BIN)/ruff check gateway tests
	$(BIN)/ruff format --check gateway tests
	$(BIN)/mypy gateway

test: lint
	$(BIN)/pytest -q -n $(TEST_PROCESSES)

# The scenario suite against a real Request Tracker 5 on 127.0.0.1 (Debian packages, installed
# when missing; needs root), and three gateway processes on one Redis in front of it. Started,
# used, and stopped, also when the tests fail.
RT5_PORT ?= 8181
test-rt5: $(BIN)/crm-gateway
	@set -e; env=$$(bash tests/rt5/rt5.sh up $(RT5_PORT) | grep '^RT5_'); \
	trap 'bash tests/rt5/rt5.sh down $(RT5_PORT)' EXIT; \
	env $$env $(BIN)/pytest -q tests/test_scenarios.py tests/test_cases.py tests/test_customers.py \
		tests/test_replicas.py -k rt5 -p no:cacheprovider

# Benchmarks (not part of `make test`; about 17 minutes): the gateway beside an aiohttp
# reference and nginx, over an upstream nginx serves from static files. wrk and nginx from Debian
# (installed when missing; needs root), matplotlib and py-spy from PyPI. Prints a table; writes
# it and a plot to tests/bench/results/. BENCH_PROFILE=1 adds py-spy flame graphs there;
# BENCH_RUNS and BENCH_SECONDS set how many runs of how long (3 of 5 s).
bench: $(BIN)/crm-gateway
	@command -v wrk >/dev/null && command -v nginx >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk nginx-light)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python tests/bench/run.py

# The long fuzz: schemathesis with 1000 examples per operation (make test runs 40).
fuzz: $(BIN)/crm-gateway
	FUZZ_EXAMPLES=1000 $(BIN)/pytest -q tests/test_fuzz.py -p no:cacheprovider

format: $(BIN)/crm-gateway
	$(BIN)/ruff format gateway tests
	$(BIN)/ruff check --fix gateway tests

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
