# fedtss entry points. `make demo` and `make test` do all the set-up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: install browser demo test bench clean

install: $(PY_STAMP) $(NODE_STAMP)

# torch is pinned to 2.13.0: that exact CPU build is on this machine's disk; any other spec
# pulls a multi-GB CUDA build.
$(PY_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --editable '.[test]'
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

demo: install
	$(VENV)/bin/fedtss demo

# The explorer's tests drive Debian's headless Chromium through its chromedriver (Selenium is
# given both paths; nothing downloads a browser). Installed here, as root, when missing.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium chromium-driver; }

test: install browser
	$(PY) -m pytest

bench: install
	$(PY) -m benchmarks.secret_sharing
	$(PY) -m benchmarks.gas
	$(PY) -m benchmarks.million
	$(PY) -m benchmarks.secure_aggregation
	$(PY) -m benchmarks.ipfs_fetch
	$(PY) -m benchmarks.validation
	$(PY) -m benchmarks.latency
	$(PY) -m benchmarks.cores

clean:
	rm -rf $(VENV) node_modules build
