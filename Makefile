# Entry points for the socialstream project. Every target is idempotent.
# The virtual environment (.venv) is created on first use; services, data,
# logs and pid files live under .state/.

SYSTEM_PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STACK := $(PY) scripts/stack.py

.PHONY: help venv install stack-up stack-down stack-status up down demo test lint typecheck bench

help:
	@echo "make demo          run the simulator through the whole pipeline, write .state/report.{json,html}"
	@echo "make test          start the services, run every test, stop what it started"
	@echo "make up / down     stack plus worker and API in the background / stop everything"
	@echo "make stack-up      install (first time) and start Kafka, FerretDB and MinIO"
	@echo "make stack-down    stop the services"
	@echo "make stack-status  health of every service"

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -n "$(SYSTEM_PYTHON)" || { echo "error: python3.11 was not found on PATH; install Python 3.11"; exit 1; }
	@$(SYSTEM_PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { echo "error: $(SYSTEM_PYTHON) is not Python 3.11; set SYSTEM_PYTHON to a Python 3.11 interpreter"; exit 1; }
	test -x $(PY) || $(SYSTEM_PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]' || { echo "error: pip could not install the dependencies; check access to PyPI"; exit 1; }
	touch $@

install: venv
	$(STACK) install

stack-up: venv
	$(STACK) up

stack-down:
	@$(SYSTEM_PYTHON) scripts/stack.py down-services

stack-status:
	@$(SYSTEM_PYTHON) scripts/stack.py status

up: stack-up
	$(PY) -m app.cli up

down:
	@$(SYSTEM_PYTHON) scripts/stack.py down

demo: stack-up
	$(PY) -m app.demo

test: venv
	bash scripts/run_tests.sh

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy

bench: venv
	$(PY) -m pip install -q -e '.[bench]'
	@echo "see bench/README.md for the benchmark commands"
