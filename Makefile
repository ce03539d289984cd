# Two commands do everything on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch: the CPU build on this disk; a bare `torch` would pull a multi-GB CUDA build.
TORCH := torch==2.13.0

.PHONY: demo test lint venv dev clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.torch: | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q $(TORCH)
	touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.torch
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.dev: pyproject.toml $(VENV)/.torch
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed
dev: $(VENV)/.dev

demo: $(VENV)/.installed
	$(BIN)/rlvr demo --out runs/demo

lint: $(VENV)/.dev
	$(BIN)/ruff check rlvr tests benchmarks

test: $(VENV)/.dev lint
	$(BIN)/pytest

clean:
	rm -rf $(VENV) runs .pytest_cache
