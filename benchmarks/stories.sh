#!/usr/bin/env bash
# Every story at full size, two seeds each, one command at a time (all seed-0 runs first); summaries, figures
# and logs land in benchmarks/results/stories/ (the README's table reads them).
# Usage: bash benchmarks/stories.sh [story-seed ...]   (default: chef-0 elicit-0 hacking-0 zero-0, then seed 1)
set -euo pipefail
PY=${PY:-python}
# One torch thread: on shared cores OpenMP threads wait at barriers (see tests/conftest.py).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
RES=benchmarks/results/stories
mkdir -p "$RES"
runs=("$@")
[ ${#runs[@]} -gt 0 ] || runs=(chef-0 elicit-0 hacking-0 zero-0 chef-1 elicit-1 hacking-1 zero-1)
for run in "${runs[@]}"; do
  story=${run%-*}
  seed=${run##*-}
  out=runs/stories/$story-s$seed
  start=$(date +%s.%N)
  $PY -m rlvr.cli demo --story "$story" --seed "$seed" --out "$out" --no-progress > "$RES/$story-s$seed.log" 2>&1
  end=$(date +%s.%N)
  echo "whole command: $(echo "$end - $start" | bc) s" >> "$RES/$story-s$seed.log"
  cp "$out/summary.json" "$RES/$story-s$seed.json"
  cp "$out/figure.png" "$RES/$story-s$seed.png"
done
