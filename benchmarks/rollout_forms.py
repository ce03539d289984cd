"""Rollout weight forms side by side on SmolLM2-135M-Instruct (`configs/smollm2-arithmetic.yaml`): rollout
tokens/s, weight-sync time, and what the off-policy correction sees (engine/learner KL, share of tokens whose
importance weight was truncated, share of completions masked).

    python benchmarks/rollout_forms.py --model models/smollm2-135m-instruct [--steps 4] [--warmup 1]
                                       [--arms same int8 bf16-fp32] [--json PATH]

Arms (all with `algorithm.offpolicy_correction: auto`):
- `same`:      `model.dtype: auto` (bf16 compute where the hardware has it), the engine on a bf16 copy of
               the fp32 masters: today's default;
- `int8`:      the same learner, the engine on torchao int8 weight-only linear layers (`rollout.weights: int8`);
- `bf16-fp32`: an fp32 learner (`model.dtype: float32`) beside a bf16 engine (`rollout.weights: bf16`);
- `fp32`:      fp32 learner and engine sharing one module (the on-policy control: the KL must be ~0);
- `bf16-fp32-off`: `bf16-fp32` with `algorithm.offpolicy_correction: off` (what the correction prevents);
- `same-plain`, `fp32-plain`: `same` and `fp32` with `rollout.cpu_kernels: false` (decode on the model's own
               linear kernels instead of oneDNN-packed weights, which are repacked at every sync: the
               repack is inside the rollout time these arms are compared on).
All arms are built first, then their steps alternate (arm A step 1, arm B step 1, ...) so they see the same
machine state; the first `--warmup` steps of each are left out of the medians. Held-out accuracy after 40
steps, two seeds per arm: `benchmarks/rollout_forms_learning.py`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

import torch
from bench_machine import write_result

from rlvr.config import load_config
from rlvr.trainer import Trainer

ROOT = Path(__file__).resolve().parent.parent
ARMS = {
    "same": ["model.dtype=auto", "rollout.weights=same"],
    "int8": ["model.dtype=auto", "rollout.weights=int8"],
    "w8a8": ["model.dtype=auto", "rollout.weights=w8a8"],
    "w8a8-off": ["model.dtype=auto", "rollout.weights=w8a8", "algorithm.offpolicy_correction=off"],
    "bf16-fp32": ["model.dtype=float32", "rollout.weights=bf16"],
    "fp32": ["model.dtype=float32", "rollout.weights=same"],
    "bf16-fp32-off": ["model.dtype=float32", "rollout.weights=bf16", "algorithm.offpolicy_correction=off"],
    "same-plain": ["model.dtype=auto", "rollout.weights=same", "rollout.cpu_kernels=false"],
    "fp32-plain": ["model.dtype=float32", "rollout.weights=same", "rollout.cpu_kernels=false"],
}
KEYS = ("offpolicy/kl", "offpolicy/truncated_frac", "offpolicy/masked_frac", "logprob_gap", "offpolicy/active")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "smollm2-135m-instruct"))
    ap.add_argument("--steps", type=int, default=4, help="timed steps per arm (after the warm-up)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--arms", nargs="+", default=["same", "int8", "bf16-fp32"], choices=list(ARMS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="default: OMP_NUM_THREADS when set, else every core")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "rollout_forms_cpu.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads or int(os.environ.get("OMP_NUM_THREADS", 0)) or os.cpu_count() or 1)

    work = Path(tempfile.mkdtemp(prefix="rollout_forms_"))
    trainers = {}
    for arm in args.arms:
        cfg = load_config(ROOT / "configs" / "smollm2-arithmetic.yaml", [
            f"model.path={args.model}", f"train.seed={args.seed}", "eval.every=0", "logging.progress=false",
            "train.checkpoint_every=0", "logging.samples_per_step=0", *ARMS[arm]])
        trainers[arm] = Trainer(cfg, work / arm)
        print(f"[{arm}] {trainers[arm].header()}", flush=True)
    steps: dict[str, list[dict]] = {arm: [] for arm in args.arms}
    for i in range(args.warmup + args.steps):
        for arm, trainer in trainers.items():
            before = trainer.sampled_tokens
            m = trainer.step()
            row = {"step_s": m["time/step"], "generate_s": m["time/generate"], "sync_s": m["time/weight_sync"],
                   "tokens": trainer.sampled_tokens - before, **{k: m.get(k, float("nan")) for k in KEYS}}
            steps[arm].append(row)
            print(f"  step {i + 1} {arm}: {row['step_s']:.2f} s, generate {row['generate_s']:.2f} s "
                  f"({row['tokens'] / row['generate_s']:.0f} tok/s), KL {row['offpolicy/kl']:.2e}, truncated "
                  f"{row['offpolicy/truncated_frac']:.3f}, masked {row['offpolicy/masked_frac']:.3f}", flush=True)
    med = statistics.median
    summary = {}
    for arm, rows in steps.items():
        timed = rows[args.warmup:]
        summary[arm] = {
            "rollout_tok_s": sum(r["tokens"] for r in timed) / sum(r["generate_s"] for r in timed),
            "step_s_median": med(r["step_s"] for r in timed), "sync_s_median": med(r["sync_s"] for r in timed),
            **{f"{k}_mean": statistics.fmean(r[k] for r in rows) for k in KEYS},
            "header": trainers[arm].header(), "steps": rows,
        }
    print(f"\n{'arm':12}{'tok/s':>8}{'s/step':>8}{'sync s':>8}{'KL':>10}{'trunc':>8}{'masked':>8}{'corr':>6}")
    for arm, s in summary.items():
        print(f"{arm:12}{s['rollout_tok_s']:8.0f}{s['step_s_median']:8.2f}{s['sync_s_median']:8.2f}"
              f"{s['offpolicy/kl_mean']:10.2e}{s['offpolicy/truncated_frac_mean']:8.3f}"
              f"{s['offpolicy/masked_frac_mean']:8.3f}{s['offpolicy/active_mean']:6.0f}")
    write_result(args.json, {"arms": summary, "steps": args.steps, "warmup": args.warmup, "seed": args.seed,
                             "threads": torch.get_num_threads()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
