# `make run`: the whole system with demo data. `make test`: lint, types and every test against real servers.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint types pytest setup stack-prepare clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# Installs PostgreSQL when missing and fetches the Kafka jars once (cached outside git).
stack-prepare: setup
	$(BIN)/ppu stack prepare

run: stack-prepare
	$(BIN)/ppu run

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: setup
	$(BIN)/mypy .

pytest: stack-prepare
	$(BIN)/pytest -q

test: lint types pytest

clean:
	-$(BIN)/ppu stack down
	rm -rf .local .mypy_cache .pytest_cache .ruff_cache
