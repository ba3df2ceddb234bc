# umi-serve: `make setup`, `make test` (see README.md).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: setup test clean models compose-test

setup: $(STAMP)

# Re-installs only when pyproject.toml changes; otherwise `make setup` is a no-op.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[cpu,eval,test]'
	@touch $(STAMP)

# A private Redis server for the run (installed with apt-get if missing and root), then pytest.
test: setup
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

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info

# Benchmarks: each bench/<name>.py prints one line per figure and writes bench/results/<name>.json.
.PHONY: bench
bench: setup
	@mkdir -p bench/results
	@set -e; for b in bench/*.py; do echo "== $$b"; scripts/with-redis.sh $(BIN)/python $$b; done
