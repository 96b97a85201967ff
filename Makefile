# `make run`: the whole system with demo data. `make test`: lint, types and every test against real servers.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

# $(call debian_package,COMMAND,PACKAGE,WHO[,APT OPTIONS]): installs Debian's PACKAGE when COMMAND is missing and
# we are root; otherwise one line saying what WHO needs.
debian_package = command -v $(1) >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(4) $(2) >/dev/null; } || \
	  { echo "$(3) needs Debian's $(2) package: apt-get install $(2)"; exit 1; }

.PHONY: run test lint types pytest setup stack-prepare stack-up browser-prepare prometheus-prepare faults-cluster bench-extras bench-setup bench soak faults faults-prepare clean

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

# Benchmarks on the local broker and database; the faust-streaming peer runs in a virtualenv of its own.
FAUST_VENV := .local/faust-venv
# Pinned: the results record the version measured.
FAUST_VERSION := 0.15.3
$(FAUST_VENV)/.installed-$(FAUST_VERSION)-uvloop:
	$(PYTHON) -m venv $(FAUST_VENV)
	$(FAUST_VENV)/bin/pip install -q faust-streaming==$(FAUST_VERSION) uvloop
	touch $@

bench-extras: setup
	$(BIN)/pip install -q -e '.[dev,bench]'

stack-up: stack-prepare
	$(BIN)/ppu stack up

bench-setup: bench-extras $(FAUST_VENV)/.installed-$(FAUST_VERSION)-uvloop stack-up

bench: bench-setup
	$(BIN)/ppu bench

# `make soak DURATION=30m RATE=1000`: every worker at a steady rate, latency per minute, memory, table sizes.
DURATION ?= 30m
RATE ?= 1000
soak: bench-setup
	$(BIN)/ppu soak --duration $(DURATION) --rate $(RATE)

# One fault scenario runs a worker under a skewed clock: Debian's faketime (libfaketime), installed when missing.
faults-prepare:
	@$(call debian_package,faketime,faketime,make faults)

# The fault scenarios need no faust peer, but the local stack: they restart its broker and database.
faults: bench-extras stack-up faults-prepare
	$(BIN)/ppu faults

# The cluster scenarios on a stack of their own: three KRaft nodes, a PostgreSQL primary with a synchronous standby.
CLUSTER := PPU_STATE_DIR=.local/cluster PPU_TOPICS_PROFILE=cluster
faults-cluster: bench-extras faults-prepare
	$(CLUSTER) $(BIN)/ppu stack up --brokers 3 --standby
	$(CLUSTER) $(BIN)/ppu faults --cluster; status=$$?; $(CLUSTER) $(BIN)/ppu stack down; exit $$status

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: setup
	$(BIN)/mypy .

# The console's browser test drives Debian's Chromium (Playwright's own browser download is not used).
browser-prepare:
	@$(call debian_package,chromium,chromium,make test)

# The dashboard test runs Debian's Prometheus server against the workers (Grafana cannot run on these machines).
prometheus-prepare:
	@$(call debian_package,prometheus,prometheus,make test,--no-install-recommends)

pytest: stack-prepare browser-prepare prometheus-prepare
	$(BIN)/pytest -q

test: lint types pytest

clean:
	-$(BIN)/ppu stack down
	rm -rf .local .mypy_cache .pytest_cache .ruff_cache
