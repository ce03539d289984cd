#!/usr/bin/env bash
# The GPU rows of benchmarks/vs_trl.py, as run on a lent H100/H200 (no network there, 64 MiB carried from here).
#
# Here, once: `make gpu-kit` puts SmolLM2's tokenizer in .gpu/tokenizer and wheels for the GPU machine's
# Python 3.12 in .whl/ (TRL and what it needs beyond that machine's packages, torchao for fp8 rollouts).
# There: `bash benchmarks/gpu_run.sh`, carrying .gpu and .whl; results go to $OUT.
#
# No checkpoint can travel (1.5B is 3 GB), so each model is a real architecture with random weights
# (benchmarks/random_models.py: SmolLM2-135M, Qwen2.5-0.5B, Qwen2.5-1.5B shapes). All runs are fixed length:
# every completion exactly MAX_NEW tokens on both sides, so rlvr and TRL do identical work token for token.
#
# One call is held to BUDGET seconds (default 290, so a rerun fits the session's device time): a run starts
# only while 45 s are left, and each is cut at its own limit or the budget, whichever comes first. RUNS picks
# which runs, in order (default: the three shapes at 8 x 8); the others, for a second call:
#   smollm2_8x8 qwen05_8x8 qwen15_8x8   8 prompts x 8 completions, rlvr's decode steps compiled (CUDA graphs)
#   qwen05_8x8_fp8                      the same with rlvr's rollouts in fp8 weights (extra row; the headline
#                                       keeps the learner's precision)
#   smollm2_32x8 qwen05_32x8            32 x 8, learner micro-batches of 64 rows on both sides
# GPU_SMOKE=1 runs the same sequence on this machine's CPU with one-layer models and 8 new tokens: a check of
# the script, never a measurement.
set -u
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
BUDGET=${BUDGET:-290}
RUNS=${RUNS:-"smollm2_8x8 qwen05_8x8 qwen15_8x8"}
MODELS=${MODELS_DIR:-/tmp/rlvr_random_models}
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
if [ -z "${GPU_SMOKE:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
  export PYTHONPATH=/tmp/site:$PWD
  PY=python3 MAX_NEW=${MAX_NEW:-512} STEPS=(--steps 2 --warmup 1 --gen-repeats 1) BUILD=(--device cuda)
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
else
  export PYTHONPATH=$PWD
  PY=${PY:-.venv/bin/python} MAX_NEW=${MAX_NEW:-8} STEPS=(--steps 1 --warmup 0 --gen-repeats 1) BUILD=(--layers 1)
fi
$PY -c "import torch, transformers, trl; print('torch', torch.__version__, 'transformers', transformers.__version__, 'trl', trl.__version__)" || exit 1
shape_of() {  # RUN -> the random_models.py shape it runs on
  case $1 in smollm2*) echo smollm2-135m ;; qwen05*) echo qwen2.5-0.5b ;; qwen15*) echo qwen2.5-1.5b ;; esac
}
$PY benchmarks/random_models.py --tokenizer .gpu/tokenizer --out "$MODELS" "${BUILD[@]}" \
  --shapes $(for r in $RUNS; do shape_of "$r"; done | sort -u) 2>&1 | grep -v -i warn || exit 1
echo "models built at ${SECONDS}s"

run() {  # NAME LIMIT_S ARGS...: one vs_trl.py run, its JSON and log under $OUT
  local name=$1 limit=$2
  shift 2
  local left=$((BUDGET - SECONDS))
  if [ "$left" -lt 45 ]; then
    echo "== $name: not run, ${left}s left of the ${BUDGET}s budget" | tee -a "$OUT/not_run.txt"
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  timeout "$limit" $PY benchmarks/vs_trl.py --mode fixed "${STEPS[@]}" --max-new-tokens "$MAX_NEW" "$@" \
    --json "$OUT/vs_trl_gpu_$name.json" > "$OUT/vs_trl_gpu_$name.log" 2>&1
  echo "== $name: exit $? after ${SECONDS}s (limit ${limit}s)"
  grep -v -i warn "$OUT/vs_trl_gpu_$name.log" | grep -v "^{'" | tail -14
}

for r in $RUNS; do
  model=(--model "$MODELS/$(shape_of "$r")" --generations 8 --compile)
  case $r in
    smollm2_8x8 | qwen05_8x8) run "$r" 110 "${model[@]}" --prompts 8 ;;
    qwen15_8x8) run "$r" 130 "${model[@]}" --prompts 8 ;;
    qwen05_8x8_fp8) run "$r" 110 "${model[@]}" --prompts 8 --rollout-weights fp8 ;;
    smollm2_32x8 | qwen05_32x8) run "$r" 150 "${model[@]}" --prompts 32 --micro-batch-rows 64 ;;
    *) echo "unknown run $r" ;;
  esac
done
echo "done at ${SECONDS}s"
