"""Prompt screening's sampling calls: a round's top-ups decoded with the next round's screens (one call), against
each round's top-ups in a call of their own, on identical work, arms alternating in one process.

    python benchmarks/screen_batches.py [--model models/smollm2-135m-instruct] [--steps 8] [--threads 1]
                                        [--set KEY=VALUE ...] [--json benchmarks/results/screen_batches.json]

Two trainers of `configs/smollm2-thin-signal.yaml` (the same seed, so the same stream of candidates and the
same per-prompt seeds) collect the batches of `--steps` steps from the same policy (the base model: no updates,
so the two arms sample from identical weights at every step); they differ only in `Screener.merge`. A third
trainer, `control`, makes separate calls too: its ratio to `separate` is what two identical arms measure
(the machine's noise, and any bias of one trainer's memory against another's). Each arm goes first in turn. A
screened candidate's top-up has the same seed either way, so both arms sample the same tokens (up to the
rounding of a row's products in a batch of another size: the count of identical samples is printed). Per step:
seconds of each arm (sampling and verifying: `collect`), engine calls and the rows they decoded, the groups
kept; then the totals and their ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_machine import cpu_name, write_result  # noqa: E402

from rlvr.config import load_config  # noqa: E402
from rlvr.trainer import Trainer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "configs" / "smollm2-thin-signal.yaml"
# control: a second trainer with separate calls, so the ratio of two identical arms shows the machine's noise and
# any bias of one trainer against another
ARMS = ["separate", "merged", "control"]


def counting(trainer: Trainer, calls: list[tuple[int, int]]) -> None:
    """Record (prompts, samples) of every sampling call the trainer's screener makes."""
    sample = trainer.sample

    def wrapped(problems, positions, n, salts, info):
        calls.append((len(problems), len(problems) * n))
        return sample(problems, positions, n, salts, info)

    trainer.sample = wrapped


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "smollm2-135m-instruct"))
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--threads", type=int, default=None, help="default: OMP_NUM_THREADS when set, else every core")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override the recipe")
    ap.add_argument("--out", default="/tmp/rlvr-screen-batches")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "screen_batches.json"))
    args = ap.parse_args(argv)
    if not (Path(args.model) / "config.json").exists():
        raise SystemExit(f"screen_batches: no checkpoint at {args.model}; run `make smollm2`")
    torch.set_num_threads(args.threads or int(os.environ.get("OMP_NUM_THREADS", 0)) or os.cpu_count() or 1)
    cfg = load_config(RECIPE, [f"model.path={args.model}", "logging.progress=false", *args.set])
    arms = {}
    for arm in ARMS:
        trainer = Trainer(cfg, Path(args.out) / arm)
        trainer.screener.merge = arm == "merged"
        calls: list[tuple[int, int]] = []
        counting(trainer, calls)
        arms[arm] = (trainer, calls)
    print(f"machine: {cpu_name()}; torch threads {torch.get_num_threads()}; dtype {cfg.model.dtype}")
    steps = []
    for s in range(args.steps):
        row, kept = {"step": s + 1}, {}
        for arm in ARMS[s % 3:] + ARMS[: s % 3]:  # each arm first in turn
            trainer, calls = arms[arm]
            n0 = len(calls)
            t0 = time.perf_counter()
            collected = trainer.collect()
            row[arm] = {"seconds": time.perf_counter() - t0, "calls": len(calls) - n0,
                        "rows": [c[1] for c in calls[n0:]], "kept_groups": len(collected.kept) // cfg.rollout.num_generations,
                        "sampled_tokens": sum(len(r.completion_ids) for r in collected.sampled)}
            kept[arm] = collected
        a, b = kept["separate"], kept["merged"]
        row["same_kept"] = sum(x.completion_ids == y.completion_ids for x, y in zip(a.kept, b.kept))
        row["kept"] = min(len(a.kept), len(b.kept))
        steps.append(row)
        print(f"step {s + 1}: " + ", ".join(f"{arm} {row[arm]['seconds']:.1f}s in {row[arm]['calls']} calls "
                                            f"{row[arm]['rows']}" for arm in ARMS)
              + f"; kept samples identical {row['same_kept']} of {row['kept']}", flush=True)
    total = {arm: sum(r[arm]["seconds"] for r in steps) for arm in arms}
    tokens = {arm: sum(r[arm]["sampled_tokens"] for r in steps) for arm in arms}
    out = {"machine": cpu_name(), "threads": torch.get_num_threads(), "dtype": cfg.model.dtype, "set": args.set,
           "steps": steps, "seconds": total, "sampled_tokens": tokens,
           "calls": {arm: sum(r[arm]["calls"] for r in steps) for arm in arms},
           "speedup": total["separate"] / total["merged"], "control": total["separate"] / total["control"],
           "identical_kept": sum(r["same_kept"] for r in steps), "kept": sum(r["kept"] for r in steps)}
    print(f"total: separate {total['separate']:.1f}s, merged {total['merged']:.1f}s: {out['speedup']:.2f}x; "
          f"control {total['control']:.1f}s: {out['control']:.2f}x; "
          f"sampled tokens {tokens['separate']} / {tokens['merged']}; kept samples identical "
          f"{out['identical_kept']} of {out['kept']}")
    write_result(args.json, out)
    for trainer, _ in arms.values():
        trainer.logger.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
