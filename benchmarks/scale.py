"""Samples per second on the demo task: single process against Ray (synchronous and asynchronous), in one run.

    python benchmarks/scale.py [--pretrained DIR] [--steps 6] [--workers 1] [--learners 1] [--verifiers 1]
                               [--json FILE]

Every mode trains the demo config (16 prompts x 8 samples per step) from the same weights: the demo's tiny
model, or with --pretrained the demo's imitation checkpoint (realistic answer lengths). One warm-up step,
then `--steps` timed steps. Ray modes start a local cluster with all of this machine's CPUs, split between
`--workers` rollout workers and `--learners` learners. Prints samples/s for each mode with its ratio to the
single-process run, the parts of a step, and what the throughput model of docs/scale.md predicts for the
asynchronous run from the synchronous run's parts. The last mode is the asynchronous run with `--verifiers`
verifier actors (no CPUs reserved: they share the workers') scoring instead of the rollout workers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from rlvr.config import load_config
from rlvr.logging.metrics import MetricsLogger
from rlvr.trainer import Trainer

ROOT = Path(__file__).resolve().parent.parent
PARTS = ["time/generate", "time/verify", "time/update", "time/weight_sync", "time/step"]


def measure(name: str, cfg, steps: int, out: Path, ray_mode: bool) -> dict:
    if ray_mode:
        from rlvr.distributed.trainer import RayTrainer as cls
    else:
        cls = Trainer
    run_dir = out / name
    t0 = time.time()
    trainer = cls(cfg, run_dir, logger=MetricsLogger(run_dir))
    start_s = time.time() - t0
    trainer.step()  # warm-up: actors import torch, the first batch is sampled
    rows, t0 = [], time.perf_counter()
    for _ in range(steps):
        rows.append(trainer.step())
    wall = time.perf_counter() - t0
    trainer.logger.close()
    trainer.close()
    samples = steps * cfg.train.prompts_per_step * cfg.rollout.num_generations
    tokens = sum(r["response_length/mean"] * cfg.train.prompts_per_step * cfg.rollout.num_generations for r in rows)
    result = {"mode": name, "samples_per_s": samples / wall, "tokens_per_s": tokens / wall,
              "s_per_step": wall / steps, "start_s": start_s,
              "parts": {k: statistics.median(r.get(k, 0.0) for r in rows) for k in PARTS},
              "staleness_mean": statistics.mean(r.get("async/staleness_mean", 0.0) for r in rows),
              "accuracy": statistics.mean(r["accuracy"] for r in rows)}
    print(f"{name:28s} {result['samples_per_s']:8.1f} samples/s  {wall / steps:6.2f} s/step  "
          + "  ".join(f"{k.split('/')[1]} {v:.2f}" for k, v in result["parts"].items()), flush=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pretrained", help="the demo's imitation checkpoint (runs/demo/pretrained); default: untrained")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--learners", type=int, default=1)
    ap.add_argument("--verifiers", type=int, default=1, help="verifier actors of the last mode (0: no such mode)")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    cpus = os.cpu_count() or 1
    base = ["train.checkpoint_every=0", "logging.progress=false", f"train.steps={args.steps + 2}"]
    if args.pretrained:
        base += ["model.kind=hf", f"model.path={args.pretrained}"]
    share = cpus / (args.workers + args.learners)
    dist = [f"distributed.rollout_workers={args.workers}", f"distributed.learners={args.learners}",
            f"distributed.worker_cpus={share}", f"distributed.learner_cpus={share}"]
    print(f"{cpus} CPUs; demo task, 16 prompts x 8 samples per step, {args.steps} timed steps; Ray: "
          f"{args.workers} rollout worker(s) + {args.learners} learner(s), {share:g} CPU each")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for threads in sorted({1, cpus}):
            torch.set_num_threads(threads)
            results.append(measure(f"single process, {threads} thread(s)", load_config(ROOT / "configs/demo.yaml", base),
                                   args.steps, out, False))
        torch.set_num_threads(1)  # the driver only orchestrates
        import ray

        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
        results.append(measure("ray sync", load_config(ROOT / "configs/demo.yaml", base + dist +
                                                       ["distributed.backend=ray"]), args.steps, out, True))
        asynchronous = base + dist + ["distributed.backend=ray", "distributed.async_rollouts=true",
                                      "distributed.max_staleness=1"]
        results.append(measure("ray async (staleness <= 1)", load_config(ROOT / "configs/demo.yaml", asynchronous),
                               args.steps, out, True))
        if args.verifiers:
            results.append(measure(f"ray async + {args.verifiers} verifier(s)", load_config(
                ROOT / "configs/demo.yaml", asynchronous + [f"distributed.verifiers={args.verifiers}",
                                                            "distributed.verifier_cpus=0"]), args.steps, out, True))
        ray.shutdown()
    best_single = max(r["samples_per_s"] for r in results if r["mode"].startswith("single"))
    print("\nratio to the best single-process run:")
    for r in results:
        r["ratio"] = r["samples_per_s"] / best_single
        print(f"  {r['mode']:28s} {r['ratio']:.2f}x")
    sync = next(r for r in results if r["mode"] == "ray sync")["parts"]
    # docs/scale.md: synchronous step = generate + verify + update + sync; asynchronous step = the longer of
    # generating a batch and (verify + update + sync), since generation of the next batch overlaps them.
    predicted = max(sync["time/generate"], sync["time/verify"] + sync["time/update"] + sync["time/weight_sync"])
    measured = next(r for r in results if r["mode"].startswith("ray async (staleness"))["s_per_step"]
    print(f"\nthroughput model: async step predicted {predicted:.2f} s from the sync parts, measured {measured:.2f} s")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"cpus": cpus, "results": results, "async_predicted_s": predicted,
                                               "async_measured_s": measured}, indent=2))


if __name__ == "__main__":
    main()
