# Two commands for a newcomer: `make demo` and `make test`. Both set themselves up.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
UV_VERSION := 0.13.9
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1

.PHONY: docs chaos verifier bench-peers setup demo test lint typecheck unit integration infra e2e layer synth schemas bench clean local-up

setup: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q uv==$(UV_VERSION)
	$(VENV)/bin/uv pip install -q -p $(PY) -c constraints.txt -e '.[local,cdk,dev]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The stock OpenSSF verifier (model_signing CLI), kept out of the project's venv.
VERIFIER := build/verifier
verifier: $(VERIFIER)/.installed
$(VERIFIER)/.installed: $(VENV)/.installed constraints.txt
	python3 -m venv $(VERIFIER)
	$(VENV)/bin/uv pip install -q -p $(VERIFIER)/bin/python -c constraints.txt model-signing pyopenssl
	touch $@

# The drift bench's peer (Evidently, pandas, scipy), kept out of the project's venv.
BENCH_PEERS := build/bench
bench-peers: $(BENCH_PEERS)/.installed
$(BENCH_PEERS)/.installed: $(VENV)/.installed constraints.txt
	python3 -m venv $(BENCH_PEERS)
	$(VENV)/bin/uv pip install -q -p $(BENCH_PEERS)/bin/python -c constraints.txt evidently pandas scipy
	touch $@

# The Lambda layer: arm64 wheels for the Lambda runtime, no Docker.
layer: build/layer/.built
build/layer/.built: $(VENV)/.installed constraints.txt pyproject.toml scripts/build_layer.py $(shell find layers/modelops/modelops -name '*.py' -o -name '*.cedar' 2>/dev/null)
	$(PY) scripts/build_layer.py
	touch $@

demo: $(VENV)/.installed
	$(PY) -m modelops_cli.demo

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: setup
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy app.py

schemas: setup
	$(PY) scripts/generate_schemas.py
	$(PY) scripts/generate_docs.py

docs: schemas

synth: setup layer
	npx --no-install cdk synth --quiet --no-notices

test: setup layer verifier bench-peers lint typecheck
	$(VENV)/bin/pytest

unit: setup
	$(VENV)/bin/pytest tests/unit

bench: setup bench-peers
	$(PY) -m bench.run

# The chaos campaign: at least 1,000 injected dependency faults under concurrent clients, then
# every invariant checked; prints the table and exits non-zero if anything was lost.
chaos: setup
	$(PY) -m chaos

local-up: setup
	$(VENV)/bin/modelops local up

clean:
	rm -rf build cdk.out .pytest_cache .mypy_cache .ruff_cache
