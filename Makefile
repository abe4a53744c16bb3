# The one entry point: make help | run | test | lint | fmt
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: help venv run test lint fmt clean

help:  ## show this help
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-6s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PY) -m venv $(VENV)

# torch==2.13.0 goes in first so pip takes the CPU build on disk, never a CUDA wheel.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)  ## create or update .venv with everything installed

run: $(STAMP)  ## build the default collection if missing, then serve on 127.0.0.1:8000
	$(BIN)/vector-primer serve

test: $(STAMP)  ## run the whole suite (unit, property, doctests, real model, real server)
	$(BIN)/python -m pytest -q

lint: $(STAMP)  ## ruff + mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: $(STAMP)  ## format and autofix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:  ## remove the virtual environment
	rm -rf $(VENV)
