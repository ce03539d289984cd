"""Does `rlvr check` predict the run's informative share? The check's prediction against the run's own groups.

    python benchmarks/check_prediction.py [--config FILE] [--set KEY=VALUE ...] [--problems 48] [--seeds 3]
                                          [--steps 40] [--json FILE]

One model, loaded once. The check (`rlvr.check.measure`, lower temperatures off) runs `--seeds` times on
`--problems` problems each, with its own seeds; then the trainer draws `--steps` steps of groups from the
training stream exactly as `rlvr train` would (`Trainer.collect`) but makes no update, so every group comes from
the model the check measured. The table gives each share with its 90% Wilson interval over groups: the check's
single runs, the check pooled over its seeds, and the run's groups. A prediction is right when the run's share
lies in the check's interval; the first steps of a real run are not a fair referee, because the policy changes
under them (once learning starts, the share moves within a few steps).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from rlvr.algorithms.dapo import nonconstant_groups
from rlvr.check import measure, wilson_interval
from rlvr.config import load_config
from rlvr.trainer import Trainer

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "configs" / "smollm2-thin-signal.yaml"
GRPO_DEFAULTS = ["algorithm.screening=false", "rollout.max_new_tokens=16"]  # benchmarks/thin_signal.py's grpo arm


def share_row(name: str, mixed: int, groups: int) -> dict:
    share = mixed / groups if groups else None
    lo, hi = wilson_interval(share or 0.0, groups)
    return {"source": name, "mixed": mixed, "groups": groups, "share": share, "interval": [lo, hi]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=RECIPE)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override (after the GRPO defaults of thin_signal.py's grpo arm)")
    ap.add_argument("--problems", type=int, default=48, help="problems per check run (rlvr check's --problems)")
    ap.add_argument("--seeds", type=int, default=3, help="check runs, each with its own seed")
    ap.add_argument("--steps", type=int, default=40, help="steps of groups the trainer draws without updating")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-check-prediction")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    overrides = [*GRPO_DEFAULTS, "check.temperatures=[]", "logging.progress=false", "train.checkpoint_every=0",
                 *args.set]
    cfg = load_config(args.config, overrides)
    trainer = Trainer(cfg, args.out)
    G = cfg.rollout.num_generations
    rows, t0 = [], time.time()
    for seed in range(args.seeds):
        report = measure(cfg, trainer.engine, trainer.tokenizer, trainer.task, args.problems, None, seed)
        mixed = sum(0 < rate < 1 for rate in report["pass_rates"])  # n = G: the share is mixed groups / problems
        rows.append({**share_row(f"check, seed {seed}", mixed, report["problems"]),
                     "pass@1": report["at_temperature"]["pass@1"], "greedy": report["greedy_accuracy"]})
        print(f"check seed {seed}: {report['informative_share']:.3f} of {report['problems']} "
              f"({time.time() - t0:.0f} s)", flush=True)
    rows.append(share_row(f"check, {args.seeds} seeds pooled", sum(r["mixed"] for r in rows),
                          sum(r["groups"] for r in rows)))
    mixed = groups = correct = samples = 0
    for step in range(args.steps):
        kept = trainer.collect().kept  # GRPO without dynamic sampling: every drawn group, no update made
        verdicts = torch.tensor([float(r.score.correct) for r in kept])
        mixed += int(nonconstant_groups(verdicts, G).sum())
        groups += len(kept) // G
        correct, samples = correct + int(verdicts.sum()), samples + len(kept)
        print(f"run step {step + 1}: {mixed} mixed of {groups} groups", flush=True)
    run = {**share_row(f"run, first {args.steps} steps, no update", mixed, groups), "pass@1": correct / samples}
    rows.append(run)
    trainer.logger.close()
    lo, hi = rows[-2]["interval"]
    result = {"config": str(args.config), "overrides": args.set, "task": cfg.task.name, "params": cfg.task.params,
              "num_generations": G, "temperature": cfg.rollout.temperature, "rows": rows,
              "run_share_inside_pooled_interval": lo <= run["share"] <= hi, "seconds": time.time() - t0}
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"rlvr check's predicted informative share (G={G}) against the run's groups: {cfg.task.name}")
    for col in ("source", "mixed / groups", "share", "90% interval", "pass@1"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(r["source"], f"{r['mixed']} / {r['groups']}", f"{100 * r['share']:.1f}%",
                      f"{100 * r['interval'][0]:.1f}% to {100 * r['interval'][1]:.1f}%",
                      "-" if r.get("pass@1") is None else f"{100 * r['pass@1']:.2f}%")
    Console().print(table)
    print(f"the run's share lies inside the pooled check's interval: {result['run_share_inside_pooled_interval']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
