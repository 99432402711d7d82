# The README's commands. `install` is a dependency of everything, so a fresh clone needs only Python 3.11.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PHOTOS ?= ../shared/datasets/fuseg
PROFILE ?= demo

# Tools that phone home or write outside the project are told not to, here rather than by hand.
export DVC_NO_ANALYTICS := 1
export DO_NOT_TRACK := 1
export MLFLOW_DISABLE_TELEMETRY := true
export MESA_SHADER_CACHE_DIR := $(CURDIR)/.tmp/mesa
export TORCHINDUCTOR_CACHE_DIR := $(CURDIR)/.tmp/torchinductor
# OpenMP threads spin while waiting; on a busy 2-core machine that made training ~3x slower
export OMP_WAIT_POLICY := PASSIVE

.PHONY: install system-deps run test bench lint clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(MAKE) --no-print-directory system-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and pinned: this version has a local CPU wheel; anything else pulls CUDA packages
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	touch $@

# open3d needs libusb-1.0 from the system (Debian/Ubuntu package libusb-1.0-0).
system-deps:
	@if ! /sbin/ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then \
	  echo "installing libusb-1.0-0 (needed by open3d)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq libusb-1.0-0 >/dev/null; \
	fi

run: install
	$(BIN)/coherency data generate --profile $(PROFILE) --photos $(PHOTOS)
	$(BIN)/dvc status data.dvc
	$(BIN)/coherency compare data/phantoms --profile $(PROFILE)
	$(BIN)/coherency pipeline run --profile $(PROFILE) --unless-champion
	# serves until Ctrl-C: KServe transformer + predictor, MLflow UI, monitoring dashboard
	$(BIN)/coherency up --profile $(PROFILE)

test: install
	$(BIN)/ruff check .
	$(BIN)/pytest

bench: install
	# -P: a script's own folder must not shadow the project's packages (benchmarks/models.py vs models/)
	$(BIN)/python -P benchmarks/measure.py
	$(BIN)/python -P benchmarks/accuracy.py
	$(BIN)/python -P benchmarks/models.py
	$(BIN)/python -P benchmarks/serving.py
	$(BIN)/python -P benchmarks/api.py

clean:
	rm -rf $(VENV) .tmp .pytest_cache .ruff_cache
