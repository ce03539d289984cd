#!/usr/bin/env bash
# The GPU half of benchmarks/vs_trl.py, as run on a lent H100/H200 (no network there).
#
# Carried with the working tree: .whl/ (trl, datasets, dill, multiprocess wheels for Python 3.12) and
# .gpu/smol-config/ (SmolLM2-135M-Instruct's config and tokenizer). The weights themselves (538 MB) cannot
# travel (64 MiB limit), so the model is SmolLM2-135M's architecture with random weights: the same
# arithmetic per token; a random model never writes end-of-sequence, so every completion is 64 tokens,
# for both rlvr and TRL.
set -u
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, transformers, trl, peft, pyarrow; print('torch', torch.__version__, 'transformers', transformers.__version__, 'trl', trl.__version__, 'peft', peft.__version__)"
python3 - <<'EOF' || exit 1
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
cfg = AutoConfig.from_pretrained(".gpu/smol-config")
torch.manual_seed(0)
model = AutoModelForCausalLM.from_config(cfg)
model.save_pretrained("/tmp/smol")
AutoTokenizer.from_pretrained(".gpu/smol-config").save_pretrained("/tmp/smol")
print("random-weight model:", sum(p.numel() for p in model.parameters()), "parameters")
EOF
# 1. rlvr vs TRL, whole GRPO steps, alternated; rlvr's engine eager.
timeout 200 python3 benchmarks/vs_trl.py --model /tmp/smol --steps 4 --json "$OUT/vs_trl_gpu.json" 2>&1 \
  | grep -v -i "warn" | grep -v "^{'" | tee "$OUT/vs_trl_gpu.log" | tail -12
# 2. The same with rlvr's decode steps compiled (CUDA graphs), in the generation race and in the steps.
timeout 240 python3 benchmarks/vs_trl.py --model /tmp/smol --steps 4 --compile --json "$OUT/vs_trl_gpu_compiled.json" 2>&1 \
  | grep -v -i "warn" | grep -v "^{'" | tee "$OUT/vs_trl_gpu_compiled.log" | tail -12
