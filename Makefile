# Two commands: `make demo` and `make test`. Everything else is set-up they call.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
AZURITE := node_modules/.bin/azurite-table
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test test-fast bench package clean system-deps

demo: $(STAMP) system-deps
	$(PY) -m local.cli demo

test: $(STAMP) system-deps $(AZURITE)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not azurite and not browser and not slow"

bench: $(STAMP) system-deps
	$(PY) bench/run_all.py

package: $(STAMP)
	$(PY) -m local.cli package --out dist/function-app.zip

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[all]'
	touch $(STAMP)

# unixODBC with the SQLite ODBC driver (the agent's pyodbc path in tests and the demo),
# and Chromium for the status page check. Installed through apt-get only when missing.
system-deps:
	@missing=""; \
	odbcinst -q -d 2>/dev/null | grep -q '^\[SQLite3\]' || missing="$$missing unixodbc unixodbc-dev libsqliteodbc"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

$(AZURITE): package.json
	npm install --no-audit --no-fund --no-package-lock --loglevel=error
	touch $(AZURITE)

clean:
	rm -rf $(VENV) node_modules var dist build *.egg-info
