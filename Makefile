# The README's two commands: `make demo` and `make test`. Both build .venv from nothing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# the suite waits on simulated plants and browsers far more than it computes: 4 workers on 2 cores
PYTEST_WORKERS ?= 4
# "how to tell it is there:Debian package" -- initdb is not on PATH on Debian
SYSTEM_CHECKS := socat:socat mbpoll:mbpoll mosquitto:mosquitto mosquitto_passwd:mosquitto-clients \
	/usr/lib/postgresql/*/bin/initdb:postgresql /usr/bin/chromium:chromium systemd-analyze:systemd openssl:openssl

.PHONY: demo test lint typecheck pytest system-packages bench docs clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "depline needs Python >= 3.11, found " + sys.version.split()[0])'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Debian packages the suite drives for real: socat (serial links), mbpoll (an independent Modbus
# master), mosquitto (the MQTT broker), PostgreSQL (the production database) and chromium (the browser the
# HMI tests drive through Playwright; Playwright's own browser download is never used); systemd-analyze
# verifies the site's service unit, openssl makes the throwaway CA of the MQTT TLS test.
system-packages:
	@missing=""; for pair in $(SYSTEM_CHECKS); do check=$${pair%%:*}; pkg=$${pair##*:}; \
		if ! command -v $$check >/dev/null 2>&1 && ! ls $$check >/dev/null 2>&1; then missing="$$missing $$pkg"; fi; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian packages:$$missing"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else \
		echo "missing system packages:$$missing -- install them with: sudo apt-get install$$missing" >&2; exit 1; \
	fi

demo: $(STAMP)
	$(BIN)/depline demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) system-packages
	$(BIN)/pytest -q -p no:cacheprovider -n $(PYTEST_WORKERS) --dist loadgroup --durations=15

test: lint typecheck pytest

bench: $(STAMP) system-packages
	$(BIN)/python -m bench.acquisition
	$(BIN)/python -m bench.interlock_latency
	$(BIN)/python -m bench.historian
	$(BIN)/python -m bench.mqtt
	$(BIN)/python -m bench.overnight
	$(BIN)/python -m bench.hmi_feed
	$(BIN)/python -m bench.recording

docs: $(STAMP)
	$(BIN)/python -m drivers.register_map_docs > docs/register_maps.md
	$(BIN)/python -m sequences.state_machine_docs > docs/state_machines.md

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
