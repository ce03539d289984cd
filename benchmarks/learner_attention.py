"""The learner's forward and backward on a CPU with SDPA's attention against rlvr's short-sequence attention
(`rlvr.models.attention`), on the same batches, alternating in one process.

    python benchmarks/learner_attention.py [--model models/smollm2-135m-instruct] [--rounds 4] [--threads 1]
                                           [--json benchmarks/results/learner_attention.json]

The work is `benchmarks/vs_trl.py`'s fixed-length step (SmolLM2-135M, 2 prompts x 8, exactly 64 new tokens,
bf16 autocast over fp32 master weights, micro-batches of at most 512 padded tokens): one step samples the batch,
then each round runs the learner's update on that same batch once per arm (the arms alternate; the first round
warms up and is left out). Printed: median forward, backward and update seconds per arm, and the ratio.
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
import vs_trl  # noqa: E402 - the step this measures is vs_trl's
from bench_machine import write_result  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "smollm2-135m-instruct"))
    ap.add_argument("--rounds", type=int, default=4, help="timed rounds (after one warm-up round)")
    ap.add_argument("--threads", type=int, default=None, help="default: OMP_NUM_THREADS when set, else every core")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "learner_attention.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads or int(os.environ.get("OMP_NUM_THREADS", 0)) or os.cpu_count() or 1)
    if not (Path(args.model) / "config.json").exists():
        raise SystemExit(f"learner_attention: no checkpoint at {args.model}; run `make smollm2`")

    run = vs_trl.headline_run(args.model, micro_batch_tokens=512)
    trainer = vs_trl.rlvr_trainer(run, "bfloat16", Path(tempfile.mkdtemp(prefix="learner_attention_")), True)
    config = trainer.model.config
    arms = {"sdpa": "sdpa", "short": config._attn_implementation}
    if arms["short"] == "sdpa":
        raise SystemExit("learner_attention: the model is not on rlvr's short-sequence attention (not a CPU run?)")
    batch, _ = trainer.assemble(trainer.collect().kept)
    times: dict[str, list[dict]] = {arm: [] for arm in arms}
    for r in range(args.rounds + 1):
        for arm, impl in arms.items():
            config._attn_implementation = impl
            m = trainer.learner.update(batch)
            row = {k: m[f"time/{k}"] for k in ("forward", "backward")}
            row["update"] = row["forward"] + row["backward"]
            if r:
                times[arm].append(row)
            print(f"round {r} {arm}: forward {row['forward']:.2f} s, backward {row['backward']:.2f} s", flush=True)
    config._attn_implementation = arms["short"]
    med = {arm: {k: statistics.median(t[k] for t in rows) for k in rows[0]} for arm, rows in times.items()}
    ratio = med["sdpa"]["update"] / med["short"]["update"]
    print(f"\n{'arm':8}{'forward s':>12}{'backward s':>12}{'update s':>12}")
    for arm, m in med.items():
        print(f"{arm:8}{m['forward']:12.2f}{m['backward']:12.2f}{m['update']:12.2f}")
    print(f"short-sequence attention: the learner's forward + backward {ratio:.2f}x faster than with SDPA")
    write_result(args.json, {"median_s": med, "speedup": ratio, "rounds": times, "threads": torch.get_num_threads(),
                             "batch_shape": list(batch.input_ids.shape)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
