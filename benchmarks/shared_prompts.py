"""The learner's update with each prompt run once for its group (`train.share_prompts`, rlvr.shared_prefix)
against every row run whole, on the same batches, alternating in one process.

    python benchmarks/shared_prompts.py [--config configs/smollm2-thin-signal.yaml] [--set KEY=VALUE ...]
                                        [--rounds 4] [--threads 1] [--json benchmarks/results/shared_prompts.json]

The batch is one sampled step of the recipe (SmolLM2-135M-Instruct by default: `make smollm2`), with every row
run (`train.skip_zero_advantage=false`, the rows given advantages of +-1) so that both arms do the whole
batch's work. Before any update, the two arms' log-probs of the batch are compared (the largest difference is
printed: the same update up to rounding). Each round then runs the learner's update once per arm (the arms
alternate; the first round warms up and is left out; lr 1e-9 so the weights barely move). Printed: median
forward, backward and update seconds per arm, and the ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_machine import write_result  # noqa: E402

from rlvr.config import load_config  # noqa: E402
from rlvr.trainer import Trainer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "smollm2-thin-signal.yaml"))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--rounds", type=int, default=4, help="timed rounds (after one warm-up round)")
    ap.add_argument("--threads", type=int, default=None, help="default: OMP_NUM_THREADS when set, else every core")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "shared_prompts.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads or int(os.environ.get("OMP_NUM_THREADS", 0)) or os.cpu_count() or 1)
    cfg = load_config(args.config, ["train.skip_zero_advantage=false", "train.lr=1e-9", "train.warmup_steps=0",
                                    "algorithm.screening=false", "logging.progress=false", "check.train_seconds=0",
                                    *args.set])
    if cfg.model.kind == "hf" and not (Path(cfg.model.path) / "config.json").exists():
        raise SystemExit(f"shared_prompts: no checkpoint at {cfg.model.path}; run `make smollm2`")
    trainer = Trainer(cfg, Path(tempfile.mkdtemp(prefix="shared_prompts_")))
    batch, _ = trainer.assemble(trainer.collect().kept)
    batch.advantages = torch.where(torch.arange(len(batch)) % 2 == 0, 1.0, -1.0)  # every row has a gradient
    learner = trainer.learner
    prompts = {tuple(r[: int(m.argmax()) + 1]) for r, m in zip(batch.input_ids.tolist(), batch.completion_mask)}
    logps = {}
    for share in (True, False):
        learner.cfg.share_prompts = share
        with torch.no_grad():
            logps[share], _ = learner._forward(learner.model, batch, want_entropy=False)
    gap = float((logps[True] - logps[False]).abs().max())
    arms = {"shared": True, "whole": False}
    times: dict[str, list[dict]] = {arm: [] for arm in arms}
    for r in range(args.rounds + 1):
        for arm, share in arms.items():
            learner.cfg.share_prompts = share
            m = learner.update(batch)
            row = {k: m[f"time/{k}"] for k in ("forward", "backward")}
            row["update"] = row["forward"] + row["backward"]
            if r:
                times[arm].append(row)
            print(f"round {r} {arm}: forward {row['forward']:.2f} s, backward {row['backward']:.2f} s", flush=True)
    med = {arm: {k: statistics.median(t[k] for t in rows) for k in rows[0]} for arm, rows in times.items()}
    ratio = med["whole"]["update"] / med["shared"]["update"]
    lengths = batch.attention_mask.sum(-1).float()
    completion = batch.completion_mask.sum(-1)
    print(f"\nbatch: {len(batch)} rows of {len(prompts)} prompts; mean row {lengths.mean():.1f} tokens, "
          f"of which completion {completion.mean():.1f}")
    print(f"largest log-prob difference between the arms: {gap:.2e}")
    print(f"{'arm':8}{'forward s':>12}{'backward s':>12}{'update s':>12}")
    for arm, m in med.items():
        print(f"{arm:8}{m['forward']:12.2f}{m['backward']:12.2f}{m['update']:12.2f}")
    print(f"shared prompts: the learner's forward + backward {ratio:.2f}x faster than whole rows")
    trainer.logger.close()
    write_result(args.json, {"median_s": med, "speedup": ratio, "rounds": times, "threads": torch.get_num_threads(),
                             "batch_shape": list(batch.input_ids.shape), "prompts": len(prompts),
                             "mean_row_tokens": float(lengths.mean()),
                             "mean_completion_tokens": float(completion.mean()),
                             "max_logprob_difference": gap, "config": args.config, "set": args.set})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
