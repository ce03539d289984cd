"""Does the default precision learn as fp32 does? SmolLM2-135M-Instruct on `configs/smollm2-arithmetic.yaml`,
each arm and seed run in turn (alternating, in one invocation) on this machine:

- `mixed`: the default, `model.dtype: auto` (bf16 compute where the hardware has it) with fp32 master weights;
- `fp32`: `model.dtype: float32` throughout;
- `pure-bf16`: `model.dtype: bfloat16` with `train.master_weights: false` (the old path, for contrast).

    python benchmarks/precision.py [--steps 30] [--seeds 0 1] [--arms mixed fp32 pure-bf16] [--jobs 1]
                                   [--threads 2] [--json PATH]

Prints held-out greedy accuracy at step 0 and at the last step, and the median wall time per step, per arm and
seed; writes `--json` (default `benchmarks/results/precision_smollm2.json`, with the machine's CPU flags, so a
reader knows which dtype `auto` picked). `--jobs N` runs N runs at once in processes of `--threads` torch
threads each (for accuracy on a busy machine: their step times are then not comparable with a lone run's,
and the file says so); time the arms with `--jobs 1`, which alternates them in one process.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import platform
import resource
import statistics
import time
from pathlib import Path

import torch

from rlvr.config import load_config
from rlvr.logging.metrics import read_jsonl
from rlvr.models.loading import cpu_has_native_bf16
from rlvr.trainer import Trainer

ROOT = Path(__file__).resolve().parent.parent
ARMS = {
    "mixed": ["model.dtype=auto"],
    "fp32": ["model.dtype=float32"],
    "pure-bf16": ["model.dtype=bfloat16", "train.master_weights=false"],
}
OFFPOLICY_KEYS = ("offpolicy/kl", "offpolicy/truncated_frac", "offpolicy/masked_frac", "offpolicy/active")


def run_arm(arm: str, seed: int, steps: int, model: str, out: Path, threads: int) -> dict:
    return train_and_evaluate(arm, ARMS[arm], seed, steps, model, out, threads)


def train_and_evaluate(arm: str, overrides: list[str], seed: int, steps: int, model: str, out: Path,
                       threads: int) -> dict:
    """One `configs/smollm2-arithmetic.yaml` run of `steps` steps with `overrides`, held-out greedy accuracy at
    step 0 and at the end (`eval.num_problems` problems, through the run's own engine), and its per-step
    diagnostics summarised: median s/step, rollout tok/s over the run, means of the off-policy metrics."""
    torch.set_num_threads(threads)
    run_dir = out / f"{arm}-seed{seed}"
    cfg = load_config(ROOT / "configs" / "smollm2-arithmetic.yaml", [
        f"model.path={model}", f"train.seed={seed}", f"train.steps={steps}", f"eval.every={steps}",
        "train.checkpoint_every=0", "logging.progress=false", *overrides])
    t0 = time.time()
    trainer = Trainer(cfg, run_dir)
    trainer.run(progress=False)
    trainer.logger.close()
    wall = time.time() - t0
    evals = read_jsonl(run_dir / "eval.jsonl")
    metrics = read_jsonl(run_dir / "metrics.jsonl")
    changed = [m["update/changed_frac"] for m in metrics if "update/changed_frac" in m]
    return {
        "arm": arm, "seed": seed, "steps": steps, "overrides": overrides, "header": trainer.header(),
        "compute_dtype": str(trainer.dtype).removeprefix("torch."),
        "master_dtype": str(next(trainer.model.parameters()).dtype).removeprefix("torch."),
        "accuracy_start": evals[0]["accuracy"], "accuracy_end": evals[-1]["accuracy"],
        "eval_problems": evals[-1]["n"],
        "sampled_accuracy_last10": statistics.mean(m["accuracy"] for m in metrics[-10:]),
        "s_per_step_median": statistics.median(m["time/step"] for m in metrics),
        "rollout_tok_s": metrics[-1]["sampled_tokens"] / sum(m["time/generate"] for m in metrics),
        **step_diagnostics(metrics),
        "update_changed_frac_mean": statistics.mean(changed) if changed else None,
        "wall_seconds": round(wall, 1),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),  # whole process
    }


def step_diagnostics(metrics: list[dict]) -> dict:
    """Means (and maxima) over a run's steps that updated the policy of the off-policy metrics and of PPO's clip
    fraction (with one epoch the ratio is 1 on policy, so any clipping is the engine/learner gap), and how many
    steps updated it (a step whose groups all scored alike runs no update)."""
    out = {}
    for k in (*OFFPOLICY_KEYS, "clip_frac", "ratio_max"):
        values = [m[k] for m in metrics if k in m]  # a step with no informative group runs no update
        if values:
            out[f"{k}_mean"] = statistics.mean(values)
            out[f"{k}_max"] = max(values)
    out["updated_steps"] = sum("clip_frac" in m for m in metrics)
    return out


def machine_info(threads: int, jobs: int) -> dict:
    """The CPU's dtype flags and load, so a reader knows which dtype `auto` picked and how busy the machine was."""
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return {"cpu_native_bf16": cpu_has_native_bf16(), "cuda": torch.cuda.is_available(),
            "threads_per_run": threads, "runs_at_once": jobs, "cores": os.cpu_count(),
            "load_average_at_end": os.getloadavg(), "processor": platform.processor(),
            "avx512_bf16": "avx512_bf16" in flags, "amx_bf16": "amx_bf16" in flags}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "models" / "smollm2-135m-instruct"))
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--arms", nargs="+", default=["mixed", "fp32", "pure-bf16"], choices=sorted(ARMS))
    ap.add_argument("--out", default=str(ROOT / "runs" / "precision"))
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "precision_smollm2.json"))
    args = ap.parse_args()
    # Arms alternate within each seed, so machine load hits every arm alike.
    work = [(arm, seed, args.steps, args.model, Path(args.out), args.threads) for seed in args.seeds
            for arm in args.arms]
    if args.jobs > 1:
        ctx = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(args.jobs, mp_context=ctx) as pool:
            rows = list(pool.map(run_arm, *zip(*work)))
    else:
        rows = [run_arm(*w) for w in work]
    for row in rows:
        print(json.dumps(row), flush=True)
    print(f"\n{'arm':<10} {'seed':>4} {'compute':>9} {'masters':>8} {'acc@0':>6} {'acc@end':>7} {'s/step':>7}"
          f" {'changed':>8}")
    for r in rows:
        changed = "" if r["update_changed_frac_mean"] is None else f"{r['update_changed_frac_mean']:.3f}"
        print(f"{r['arm']:<10} {r['seed']:>4} {r['compute_dtype']:>9} {r['master_dtype']:>8} "
              f"{r['accuracy_start']:>6.2f} {r['accuracy_end']:>7.2f} {r['s_per_step_median']:>7.2f} {changed:>8}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"machine": machine_info(args.threads, args.jobs), "runs": rows}, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
