# Two commands for a fresh machine: `make demo` and `make test`.
# Each sets up what it needs itself: the venv (torch first), the package with its
# extras, and the Debian packages the tests use (chromium, chromedriver, postgresql-15).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT := DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true
export WANDB_MODE := offline
export WANDB_SILENT := true
export WANDB_DISABLE_GIT := true

.PHONY: demo test venv system-deps bench screenshots clean

venv: $(INSTALLED)

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[all,test]'
	touch $@

system-deps:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null \
	    || [ ! -x /usr/lib/postgresql/15/bin/initdb ]; then \
	  $(SUDO) apt-get update -qq && \
	  $(APT) chromium chromium-driver postgresql-15 ; \
	fi

demo: venv
	$(BIN)/neural check examples/*.neural
	$(BIN)/python -m neural_dsl_tracking.compiler.demo --store neural_experiments

test: venv system-deps
	$(BIN)/python -m pytest -q

screenshots: venv system-deps
	NEURAL_SCREENSHOT_DIR=$(CURDIR)/docs/img $(BIN)/python -m pytest -q tests/dashboard -m browser

bench: venv
	for script in bench/*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) build dist neural_experiments .pytest_cache
