# Two commands: `make demo` and `make test`. Everything else is set-up they call.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
AZURITE := node_modules/.bin/azurite-table
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test test-fast bench package clean odbc-deps browser-deps

demo: odbc-deps $(STAMP)
	$(PY) -m local.cli demo

test: odbc-deps browser-deps $(STAMP) $(AZURITE)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not azurite and not browser and not slow"

bench: odbc-deps $(STAMP)
	$(PY) bench/run_all.py

package: $(STAMP)
	$(PY) -m local.cli package --out dist/function-app.zip

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[all]'
	touch $(STAMP)

# unixODBC with the SQLite ODBC driver (the agent's pyodbc path in the demo and the tests), and
# Chromium for the status page check. Installed through apt-get only when missing.
define apt_install
	@if [ -n "$(strip $(1))" ]; then \
	  echo "installing: $(1)"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(1) >/dev/null; \
	fi
endef

odbc-deps:
	$(call apt_install,$(shell odbcinst -q -d 2>/dev/null | grep -q '^\[SQLite3\]' || echo unixodbc unixodbc-dev libsqliteodbc))

browser-deps:
	$(call apt_install,$(shell command -v chromium >/dev/null || echo chromium))

$(AZURITE): package.json
	npm install --no-audit --no-fund --no-package-lock --loglevel=error
	touch $(AZURITE)

clean:
	rm -rf $(VENV) node_modules var dist build *.egg-info
