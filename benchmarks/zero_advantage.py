"""What skipping zero-advantage completions saves the learner (`train.skip_zero_advantage`), on batches from real
GRPO steps, the two arms alternating on the same batches from the same weights.

    python benchmarks/zero_advantage.py [--config configs/smollm2-thin-signal.yaml] [--set KEY=VALUE ...]
                                        [--steps 8] [--repeats 2] [--json FILE]

The run samples `--steps` steps of the config (skipping off while sampling, so the batches are those of plain
GRPO), keeping each step's batch and its generate/verify time. Then, for every batch, the learner's update runs
`--repeats` times per arm, arms alternating, each time from the same saved weights and optimiser state: skipping
off (every row through forward and backward) and on (rows whose advantage is 0 left out; the update is the same,
the largest weight difference between the arms is reported). It prints the median update time per arm, the
share of rows skipped, and the step time each arm gives with the step's measured sampling time added.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.bench_machine import cpu_flags, cpu_name, write_result
from rlvr.config import load_config
from rlvr.trainer import Trainer

ROOT = Path(__file__).resolve().parent.parent
GRPO_DEFAULTS = ["algorithm.screening=false", "rollout.max_new_tokens=16"]  # thin_signal.py's grpo arm


def collect(cfg, steps: int) -> tuple[Trainer, list, list[float]]:
    """A trainer after `steps` steps, each step's batch, and each step's sampling time (generate + verify)."""
    trainer = Trainer(cfg, Path(tempfile.mkdtemp(prefix="bench-zero-adv-")))
    batches, update = [], trainer.learner.update

    def keep(batch, *args, **kwargs):
        batches.append(copy.deepcopy(batch))
        return update(batch, *args, **kwargs)

    trainer.learner.update = keep
    sampling = []
    for _ in range(steps):
        m = trainer.step()
        sampling.append(m["time/generate"] + m["time/verify"])
        print(f"step {trainer.step_count}: {len(batches[-1])} rows, informative groups "
              f"{m['groups/informative_frac']:.2f}, sampling {sampling[-1]:.2f} s", flush=True)
    trainer.learner.update = update
    return trainer, batches, sampling


def timed_update(learner, batch, skip: bool, weights: dict, opt_state: dict) -> tuple[float, list[torch.Tensor]]:
    learner.model.load_state_dict(weights)
    learner.load_state_dict(copy.deepcopy(opt_state))
    learner.cfg.skip_zero_advantage = skip
    t0 = time.perf_counter()
    learner.update(batch)
    seconds = time.perf_counter() - t0
    return seconds, [p.detach().clone() for p in learner.model.parameters()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "smollm2-thin-signal.yaml")
    ap.add_argument("--set", action="append", default=None, metavar="KEY=VALUE",
                    help="config overrides (default: the GRPO defaults of thin_signal.py's grpo arm)")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    overrides = GRPO_DEFAULTS if args.set is None else args.set
    cfg = load_config(args.config, [*overrides, "train.skip_zero_advantage=false", "train.checkpoint_every=0",
                                    "logging.progress=false", "eval.every=0"])
    trainer, batches, sampling = collect(cfg, args.steps)
    learner = trainer.learner
    weights = {k: v.detach().clone() for k, v in learner.model.state_dict().items()}
    opt_state = copy.deepcopy(learner.state_dict())
    times = {"off": [[] for _ in batches], "on": [[] for _ in batches]}
    max_diff = 0.0
    for r in range(args.repeats):
        for i, batch in enumerate(batches):
            after = {}
            for arm in (("off", "on") if (r + i) % 2 == 0 else ("on", "off")):
                seconds, after[arm] = timed_update(learner, batch, arm == "on", weights, opt_state)
                times[arm][i].append(seconds)
            max_diff = max(max_diff, max(float((a - b).abs().max()) for a, b in zip(after["off"], after["on"])))
    per_step = {arm: [statistics.median(t) for t in ts] for arm, ts in times.items()}
    skipped = [float((b.advantages == 0).sum()) / len(b) for b in batches]
    step = {arm: [s + u for s, u in zip(sampling, per_step[arm])] for arm in per_step}
    out = {
        "config": str(args.config.relative_to(ROOT) if args.config.is_relative_to(ROOT) else args.config),
        "task": cfg.task.name, "task_params": cfg.task.params, "dtype": cfg.model.dtype,
        "overrides": overrides, "steps": args.steps, "repeats": args.repeats, "threads": args.threads,
        "cpu": cpu_name(), "cpu_flags": cpu_flags(), "rows_per_step": [len(b) for b in batches],
        "skipped_row_share": skipped, "mean_skipped_row_share": statistics.mean(skipped),
        "update_s_off": per_step["off"], "update_s_on": per_step["on"], "sampling_s": sampling,
        "median_update_s_off": statistics.median(per_step["off"]),
        "median_update_s_on": statistics.median(per_step["on"]),
        "total_update_s_off": sum(per_step["off"]), "total_update_s_on": sum(per_step["on"]),
        "total_step_s_off": sum(step["off"]), "total_step_s_on": sum(step["on"]),
        "update_speedup": sum(per_step["off"]) / sum(per_step["on"]),
        "step_speedup": sum(step["off"]) / sum(step["on"]),
        "max_weight_diff": max_diff,
    }
    print(f"{cpu_name()}, {args.threads} thread(s); {args.config.name} {' '.join(overrides)}")
    print(f"rows skipped: {100 * out['mean_skipped_row_share']:.1f}% on average over {args.steps} steps")
    print(f"learner update, all {args.steps} steps: {out['total_update_s_off']:.2f} s every row vs "
          f"{out['total_update_s_on']:.2f} s skipping ({out['update_speedup']:.2f}x); median per step "
          f"{out['median_update_s_off']:.2f} vs {out['median_update_s_on']:.2f} s")
    print(f"whole steps (the same sampling time added): {out['total_step_s_off']:.1f} vs {out['total_step_s_on']:.1f} s "
          f"({out['step_speedup']:.2f}x); largest weight difference between the arms {max_diff:.2e}")
    if args.json:
        write_result(args.json, out)


if __name__ == "__main__":
    main()
