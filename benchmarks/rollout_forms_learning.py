"""Does learning survive a cheaper rollout weight form? Held-out accuracy of `configs/smollm2-arithmetic.yaml`
(SmolLM2-135M-Instruct) at step 0 and after `--steps` steps, per arm of `benchmarks/rollout_forms.py` and seed,
with each run's median s/step, rollout tok/s, mean engine/learner KL, shares truncated / masked, wall time.

    python benchmarks/rollout_forms_learning.py --model models/smollm2-135m-instruct [--steps 40] [--seeds 0 1]
        [--arms same bf16-fp32 bf16-fp32-off fp32 int8] [--json PATH]

Runs go one after another, seed by seed (all arms of seed 0 first, in `--arms` order), one process, so a
partial invocation still holds the most informative pairs. Each finished run is written to `--json` at once
and an invocation skips the (arm, seed) pairs already there: rerun the same command to resume. Each write
reads the file again and adds its run, so invocations on different seeds may share one `--json`. The task has
200 distinct problems, half held out, so the held-out set is all 100 of them. Accuracy is greedy, through
the run's own engine (what `rlvr train` reports). Each form is compared with its same-precision reference
(`int8` and `w8a8` with `same`, `bf16-fp32` and `bf16-fp32-off` with `fp32`; `bf16-fp32-off` also with `bf16-fp32`):
learning counts as intact when the difference of the mean end accuracies over the seeds both ran is within
the seed spread (the larger max - min over those seeds of the two). `--summary-only` recomputes the summary
in `--json` (and each run's step diagnostics from its `--out` directory) and runs nothing. The printed lines also go to the `.log` beside `--json`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
from pathlib import Path

import torch
from precision import machine_info, step_diagnostics, train_and_evaluate
from rollout_forms import ARMS

from rlvr.logging.metrics import read_jsonl

ROOT = Path(__file__).resolve().parent.parent
# (form, its reference): the same-precision run, and for the correction-off arm also the correction-on one
COMPARED = [("int8", "same"), ("w8a8", "same"), ("w8a8-off", "w8a8"), ("bf16-fp32", "fp32"), ("bf16-fp32-off", "fp32"), ("bf16-fp32-off", "bf16-fp32")]


def record(path: Path, row: dict, machine: dict) -> list[dict]:
    """Add `row` to the runs in `path` as the file holds them now (another invocation may have added its own
    since this one started), replacing an earlier run of the same arm, seed and steps; returns the runs."""
    runs = json.loads(path.read_text())["runs"] if path.exists() else []
    key = (row["arm"], row["seed"], row["steps"])
    runs = [r for r in runs if (r["arm"], r["seed"], r["steps"]) != key] + [row]
    write(path, runs, machine)
    return runs


def summarise(runs: list[dict]) -> dict:
    """Per arm: mean and spread (max - min over seeds) of the end accuracy and the gain; per compared form:
    the difference from its reference and whether it lies within the seed spread."""
    arms: dict[str, dict] = {}
    for arm in dict.fromkeys(r["arm"] for r in runs):
        rows = [r for r in runs if r["arm"] == arm]
        end = [r["accuracy_end"] for r in rows]
        gain = [r["accuracy_end"] - r["accuracy_start"] for r in rows]
        arms[arm] = {"seeds": [r["seed"] for r in rows], "accuracy_end_mean": statistics.fmean(end),
                     "accuracy_end_spread": max(end) - min(end), "gain_mean": statistics.fmean(gain),
                     "s_per_step_median_mean": statistics.fmean(r["s_per_step_median"] for r in rows),
                     "rollout_tok_s_mean": statistics.fmean(r["rollout_tok_s"] for r in rows),
                     "offpolicy/kl_mean": statistics.fmean(r["offpolicy/kl_mean"] for r in rows)}
    compared = {}
    for arm, ref in COMPARED:
        if arm not in arms or ref not in arms:
            continue
        shared = sorted(set(arms[arm]["seeds"]) & set(arms[ref]["seeds"]))
        if not shared:
            continue
        # over the seeds both arms ran, so an unfinished seed does not tilt the difference
        end = {a: [r["accuracy_end"] for r in runs if r["arm"] == a and r["seed"] in shared] for a in (arm, ref)}
        diff = statistics.fmean(end[arm]) - statistics.fmean(end[ref])
        spread = max(max(v) - min(v) for v in end.values())
        compared[f"{arm} vs {ref}"] = {"arm": arm, "reference": ref, "seeds_both": shared, "accuracy_end_diff": diff, "seed_spread": spread,
                         # one seed has no spread to be within: say so rather than judge
                         "within_seed_spread": (abs(diff) <= spread) if len(shared) >= 2 else None}
    return {"arms": arms, "compared": compared}


def table(runs: list[dict]) -> str:
    lines = [f"{'arm':14}{'seed':>5}{'acc start->end':>16}{'s/step':>8}{'tok/s':>7}{'KL':>10}{'trunc':>8}"
             f"{'masked':>8}{'wall s':>8}"]
    for r in runs:
        lines.append(f"{r['arm']:14}{r['seed']:>5}{r['accuracy_start']:>9.2f} -> {r['accuracy_end']:.2f}"
                     f"{r['s_per_step_median']:8.2f}{r['rollout_tok_s']:7.0f}{r['offpolicy/kl_mean']:10.2e}"
                     f"{r['offpolicy/truncated_frac_mean']:8.4f}{r['offpolicy/masked_frac_mean']:8.4f}"
                     f"{r['wall_seconds']:8.0f}")
    return "\n".join(lines)


def write(path: Path, runs: list[dict], machine: dict) -> None:
    out = {"task": "configs/smollm2-arithmetic.yaml", "held_out_problems": runs[-1]["eval_problems"],
           "eval": "greedy, through each run's own engine", "runs": runs, **summarise(runs), "machine": machine}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "models" / "smollm2-135m-instruct"))
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--arms", nargs="+", default=["same", "bf16-fp32", "bf16-fp32-off", "fp32", "int8"],
                    choices=list(ARMS))
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--out", default=str(ROOT / "runs" / "rollout_forms_learning"))
    ap.add_argument("--summary-only", action="store_true", help="recompute the summary in --json, run nothing")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "rollout_forms_learning.json"))
    args = ap.parse_args(argv)
    path = Path(args.json)
    log = path.with_suffix(".log").open("a", encoding="utf-8")

    def say(text: str) -> None:
        print(text, flush=True)
        log.write(text + "\n")
        log.flush()

    runs = json.loads(path.read_text())["runs"] if path.exists() else []
    for seed in [] if args.summary_only else args.seeds:
        for arm in args.arms:
            if any(r["arm"] == arm and r["seed"] == seed and r["steps"] == args.steps for r in runs):
                say(f"[{arm} seed {seed}] already in {path.name}: skipped")
                continue
            say(f"[{arm} seed {seed}] {args.steps} steps, overrides {ARMS[arm]}")
            shutil.rmtree(Path(args.out) / f"{arm}-seed{seed}", ignore_errors=True)  # a killed run's leftovers
            row = train_and_evaluate(arm, ARMS[arm], seed, args.steps, args.model, Path(args.out), args.threads)
            say(json.dumps(row))
            runs = record(path, row, machine_info(args.threads, 1))
    if not runs:
        return 0
    if args.summary_only:  # also refreshes each run's step diagnostics from its metrics.jsonl, where kept
        for r in runs:
            metrics = Path(args.out) / f"{r['arm']}-seed{r['seed']}" / "metrics.jsonl"
            if metrics.exists() and len(read_jsonl(metrics)) == r["steps"]:
                r.update(step_diagnostics(read_jsonl(metrics)))
        write(path, runs, json.loads(path.read_text())["machine"])
    say(table(runs))
    summary = summarise(runs)
    for arm, s in summary["arms"].items():
        say(f"{arm:14} seeds {s['seeds']}: end accuracy mean {s['accuracy_end_mean']:.3f}, spread "
            f"{s['accuracy_end_spread']:.3f}, gain {s['gain_mean']:+.3f}")
    for pair, c in summary["compared"].items():
        say(f"{pair}: diff {c['accuracy_end_diff']:+.3f}, seed spread {c['seed_spread']:.3f}, "
            f"within: {c['within_seed_spread']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
