# videoqa from a fresh clone, in one command each:
#
#   make demo   set up .venv (Python 3.11+, torch, videoqa with its dev extras) and caption the
#               shipped sample clip with the shipped demo checkpoint (offline; three sidecars)
#   make test   set up .venv with every extra the test suite uses (dev, shots, web, ray,
#               speech), then lint (ruff), type check (mypy), check the layer contracts
#               (lint-imports) and run the tests; CI's main stage is this
#   make lint   set up as for make test, then ruff, mypy and lint-imports only
#
# Each is idempotent: a second run finds what the first installed and only runs. Each step says
# what it does in one line. Variables (make demo VAR=value):
#   PYTHON       the interpreter that makes the virtual environment [python3.11, else python3]
#   VENV         the virtual environment [.venv]; CI gives a new folder per run
#   INSTALL=no   use VENV as it is, installing nothing: a venv that already holds every package
#                (this checkout's code still runs, through PYTHONPATH); the test of make demo
#                uses it to spare itself installing torch again
#   TORCH        the torch requirement [torch==2.13.0]; without a GPU the CPU build: the one pip
#                finds among its local wheels (find-links) when there is one, else from
#                PyTorch's CPU index (TORCH_CPU_INDEX); with a GPU (nvidia-smi) PyPI's build
#   OUT          where make demo writes the sidecars [$TMPDIR/videoqa-demo]
#   PIP_OPTIONS  [-q]; CI adds --no-compile
#   PYTEST_ARGS  what make test passes to pytest (a file, -k, -x) [the whole suite]

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
INSTALL ?= yes
TORCH ?= torch==2.13.0
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
OUT ?= $(or $(TMPDIR),/tmp)/videoqa-demo
PIP_OPTIONS ?= -q
PYTEST_ARGS ?=

PY := $(VENV)/bin/python
PIP := $(PY) -m pip install $(PIP_OPTIONS)
TEST_EXTRAS := dev,shots,web,ray,speech
# This checkout's code first, whatever VENV holds; no hub look-ups (the demo checkpoint and the
# tests' checkpoints are local).
RUN := PYTHONPATH="$(CURDIR)/src:$(CURDIR)/plugins$${PYTHONPATH:+:$$PYTHONPATH}" \
	HF_HUB_OFFLINE=1 $(PY)

.PHONY: help demo test lint setup-demo setup-test

help:
	@echo "make demo   set up $(VENV) and caption the sample clip with the demo checkpoint"
	@echo "make test   set up $(VENV) with every extra the tests use, lint, type check, test"
	@echo "make lint   set up as for make test, then ruff, mypy and lint-imports only"

demo: setup-demo
	@echo "make: captioning sample_media/circle_turns_blue.mp4 with the demo checkpoint into $(OUT)"
	@$(RUN) -m videoqa caption sample_media/circle_turns_blue.mp4 --model demo --output-dir "$(OUT)"

test: lint
	@echo "make: running the test suite (pytest $(or $(PYTEST_ARGS),tests))"
	@status=0; $(RUN) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS) || status=$$?; \
	if [ "$$status" -eq 5 ]; then echo "make: pytest ran no test" >&2; fi; exit "$$status"

lint: setup-test
	@echo "make: ruff check (lint), mypy (types), lint-imports (the layers of .importlinter)"
	@$(RUN) -m ruff check src plugins tests benchmarks tools
	@$(RUN) -m mypy src plugins
	@PYTHONPATH="$(CURDIR)/src:$(CURDIR)/plugins" "$(VENV)/bin/lint-imports"

ifeq ($(INSTALL),no)
setup-demo setup-test:
	@test -x "$(PY)" || { echo "make: INSTALL=no, but $(PY) does not exist" >&2; exit 1; }
	@echo "make: using $(VENV) as it is (INSTALL=no): $$($(PY) --version)"
else
setup-demo: $(VENV)/.videoqa-dev
setup-test: $(VENV)/.videoqa-$(TEST_EXTRAS)

# videoqa itself, editable, with the extras named in the stamp's name; again when pyproject.toml
# changes. make demo after make test finds the dev extra in the larger set and installs nothing.
$(VENV)/.videoqa-%: pyproject.toml $(VENV)/.torch
	@if [ "$*" = dev ] && [ "$(VENV)/.videoqa-$(TEST_EXTRAS)" -nt pyproject.toml ]; then \
		echo "make: videoqa and its extras are installed in $(VENV) already"; \
	else \
		echo "make: installing videoqa (editable) with the extras $* into $(VENV)"; \
		$(PIP) -e ".[$*]"; \
	fi
	@touch "$@"

# torch before videoqa, so that pip does not pick PyPI's default build (CUDA, gigabytes) for a
# machine without a GPU.
$(VENV)/.torch: | $(PY)
	@if $(PY) -c "import torch" 2>/dev/null; then \
		echo "make: torch $$($(PY) -c 'import torch; print(torch.__version__)') is installed in $(VENV) already"; \
	elif nvidia-smi -L >/dev/null 2>&1; then \
		echo "make: installing $(TORCH), PyPI's build (with CUDA: nvidia-smi sees a GPU)"; \
		$(PIP) "$(TORCH)"; \
	else \
		echo "make: installing $(TORCH), the CPU build (no GPU here): from pip's local wheels, else from $(TORCH_CPU_INDEX)"; \
		if $(PIP) --no-index --no-deps "$(TORCH)" >/dev/null 2>&1; then \
			$(PIP) "$(TORCH)"; \
		else \
			$(PIP) "$(TORCH)" --index-url "$(TORCH_CPU_INDEX)"; \
		fi; \
	fi
	@touch "$@"

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
		echo "make: videoqa needs Python 3.11 or newer; PYTHON=$(PYTHON) is not (make demo PYTHON=python3.12)" >&2; \
		exit 1; }
	@echo "make: creating the virtual environment $(VENV) with $$($(PYTHON) --version) ($(PYTHON))"
	@$(PYTHON) -m venv "$(VENV)" || { \
		echo "make: $(PYTHON) -m venv failed (on Debian and Ubuntu: apt-get install python3-venv)" >&2; \
		rm -rf "$(VENV)"; exit 1; }
endif
