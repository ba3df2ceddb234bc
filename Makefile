# umi-serve: `make setup`, `make test` (see README.md).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: setup test clean models compose-test

setup: $(STAMP)

# Re-installs only when pyproject.toml changes; otherwise `make setup` is a no-op. Each step is
# announced and pip shows what it collects and installs (about 2 minutes the first time).
$(STAMP): pyproject.toml
	@echo "== make setup 1/3: the virtual environment $(VENV) ($$($(PYTHON) --version 2>&1))"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "== make setup 2/3: pip itself, upgraded"
	@$(BIN)/python -m pip install -q --upgrade pip
	@echo "== make setup 3/3: umi-serve (editable) with its cpu, eval and test extras; torch is the largest"
	$(BIN)/python -m pip install --progress-bar off -e '.[cpu,eval,test]'
	@touch $(STAMP)
	@echo "== make setup: done ($(BIN)/umi, $(BIN)/python)"

# A private Redis server for the run (installed with apt-get if missing and root), Debian's chromium
# for the viewer's browser test (scripts/ensure-chromium.sh, likewise), Debian's haproxy for the
# load-balancer tests (scripts/ensure-haproxy.sh, likewise), a real MCP server from PyPI in its own
# venv (scripts/ensure-mcp-time.sh), then pytest.
test: setup
	@scripts/ensure-chromium.sh
	@scripts/ensure-haproxy.sh
	@PYTHON=$(PYTHON) scripts/ensure-mcp-time.sh
	scripts/with-redis.sh $(BIN)/python -m pytest $(PYTEST_ARGS)

# docker-compose.yml's CPU stack for real (docs/compose.md): Debian's Docker engine and compose
# (apt-get as root if missing), a private dockerd, a base image from Debian packages and a
# wheelhouse (cached in UMI_CACHE_DIR, default /var/cache/umi-serve), `up --build`, chats, a swap
# under load, `down -v`. CI runs it after `make test`. Skipped (exit 0) without root, except in CI.
compose-test: setup
	scripts/compose-test.sh

# The demo's tiny role models (recipes/demo.toml): corpus from its seed, then GLPFT, then their
# held-out quality. The built models ship in models/demo; models whose inputs did not change are
# skipped, and so is the quality measure of models already measured (quick when up to date).
DEMO_MODELS ?= models/demo
models: setup
	$(BIN)/umi demo corpus --out $(DEMO_MODELS)/corpus
	$(BIN)/umi train --recipe recipes/demo.toml --out $(DEMO_MODELS) --data-root $(DEMO_MODELS)
	$(BIN)/umi demo quality --models $(DEMO_MODELS) --test $(DEMO_MODELS)/corpus/test-v1.json --out $(DEMO_MODELS)/quality.json --if-changed

# The demo (docs/demo.md), after `make models`: `make demo` starts the whole stack on free loopback
# ports, asks example questions, swaps the caller under load, stops everything (exit 0 only if all
# went right); `make up` runs the stack on the documented ports until Ctrl-C. Models built
# elsewhere: `make -o models demo DEMO_MODELS=DIR`. More options: DEMO_ARGS (`umi demo run --help`).
DEMO_ARGS ?=
.PHONY: demo up
demo: setup models
	@scripts/ensure-redis-server.sh
	$(BIN)/umi demo run --models $(DEMO_MODELS) $(DEMO_ARGS)

up: setup models
	@scripts/ensure-redis-server.sh
	$(BIN)/umi demo up --models $(DEMO_MODELS) $(DEMO_ARGS)

# Long fuzzing (tests/fuzz, the parser properties, the chaos test), fresh random examples each
# round, until FUZZ_SECONDS have passed (`make test` runs the same tests on a short budget).
FUZZ_SECONDS ?= 600
FUZZ_EXAMPLES ?= 300
.PHONY: fuzz
fuzz: setup
	@end=$$(( $$(date +%s) + $(FUZZ_SECONDS) )); round=0; \
	while [ $$(date +%s) -lt $$end ]; do round=$$((round + 1)); echo "== fuzz round $$round"; \
	  UMI_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) scripts/with-redis.sh $(BIN)/python -m pytest -q -p no:cacheprovider \
	    tests/fuzz tests/format/test_parser_properties.py tests/orchestrator/test_chaos.py || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info

# Benchmarks: each bench/<name>.py prints one line per figure and writes bench/results/<name>.json.
.PHONY: bench
bench: setup
	@mkdir -p bench/results
	@set -e; for b in bench/*.py; do echo "== $$b"; scripts/with-redis.sh $(BIN)/python $$b; done
