# OrthoFuse: `make run` sets up and serves the demo; `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run setup venv deps frontend migrate demo serve test lint bench clean

# The dev targets run in development mode on their own (settings default to production:
# DEBUG off, and no start without DJANGO_SECRET_KEY); a variable already set is kept.
DEV_TARGETS := run setup migrate demo serve test bench
$(DEV_TARGETS): export DJANGO_DEBUG ?= 1

run: setup demo serve

setup: deps frontend migrate

$(VENV)/bin/activate:
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required ($(PYTHON) not found)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(VENV)/.deps-stamp: requirements.txt | $(VENV)/bin/activate
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements.txt
	touch $@

deps: $(VENV)/.deps-stamp

node_modules/.stamp: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

frontend: node_modules/.stamp
	npm run --silent build

migrate: deps
	$(PY) manage.py migrate --noinput

demo: migrate
	$(PY) manage.py load_demo

serve:
	$(PY) scripts/serve.py --host $(HOST) --port $(PORT)

test: deps frontend
	bash scripts/run_tests.sh

lint: deps
	$(VENV)/bin/ruff check .

bench: deps
	$(PY) manage.py bench_drr
	$(PY) manage.py bench_calibration

clean:
	rm -rf var static/dist
