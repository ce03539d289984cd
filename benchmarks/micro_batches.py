"""The learner's update with the whole batch in one micro-batch against length buckets under a padded-token
budget (`train.micro_batch_tokens`), on the same batches, alternating in one process.

    python benchmarks/micro_batches.py [--model models/smollm2-135m-instruct] [--budget 512] [--rounds 5]
                                       [--threads 1] [--json benchmarks/results/micro_batches.json]

The work is `benchmarks/vs_trl.py`'s step (SmolLM2-135M, 2 prompts x 8, at most 64 new tokens, bf16 autocast
over fp32 master weights where the CPU has native bf16): one batch sampled at fixed length (exactly 64 tokens)
and one at natural length (stops at the end of turn). Each round runs the learner's update on the batch once
per arm, the order turning each round; a warm-up update per arm is left out. Every split of rows into
micro-batches gives the same gradient (rlvr.learner); what changes is the cost per micro-batch: autocast
casts every weight again, and the backward casts every weight's gradient back and adds it into the fp32 one.
Printed: micro-batches per arm, median update seconds, and the ratio.
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
from bench_machine import cpu_flags, cpu_name, write_result  # noqa: E402

from rlvr.models.loading import cpu_has_native_bf16  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "smollm2-135m-instruct"))
    ap.add_argument("--budget", type=int, default=512, help="the bucketed arm's padded tokens per micro-batch")
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds (after one warm-up update per arm)")
    ap.add_argument("--threads", type=int, default=None, help="default: OMP_NUM_THREADS when set, else every core")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads or int(os.environ.get("OMP_NUM_THREADS", 0)) or os.cpu_count() or 1)
    if not (Path(args.model) / "config.json").exists():
        raise SystemExit(f"micro_batches: no checkpoint at {args.model}; run `make smollm2`")
    dtype = "bfloat16" if cpu_has_native_bf16() else "float32"
    arms = {"one micro-batch": 0, f"budget {args.budget}": args.budget}
    out: dict = {"cpu": cpu_name(), "flags": cpu_flags(), "threads": torch.get_num_threads(), "dtype": dtype,
                 "budget": args.budget, "rounds": args.rounds}
    for mode in ("fixed", "natural"):
        run = vs_trl.headline_run(args.model)
        trainer = vs_trl.rlvr_trainer(run, dtype, Path(tempfile.mkdtemp(prefix="micro_batches_")), mode == "fixed")
        learner = trainer.learner
        batch, _ = trainer.assemble(trainer.collect().kept)
        times: dict[str, list[float]] = {arm: [] for arm in arms}
        splits = {}
        names = list(arms)
        for r in range(args.rounds + 1):
            for arm in names[r % 2:] + names[: r % 2]:
                learner.cfg.micro_batch_tokens = arms[arm]
                splits[arm] = len(list(learner._micro_batches(batch)))
                m = learner.update(batch)
                t = m["time/forward"] + m["time/backward"] + m.get("time/optimizer", 0.0)
                if r:
                    times[arm].append(t)
                print(f"{mode} round {r} {arm} ({splits[arm]} micro-batches): {t:.2f} s", flush=True)
        med = {arm: statistics.median(v) for arm, v in times.items()}
        ratio = med[names[1]] / med[names[0]]
        tokens = int(batch.attention_mask.sum())
        print(f"{mode}: {len(batch)} rows, {tokens} tokens; " + ", ".join(
            f"{arm} ({splits[arm]}): {med[arm]:.2f} s" for arm in names) + f"; one micro-batch {ratio:.2f}x faster")
        out[mode] = {"rows": len(batch), "tokens": tokens, "micro_batches": splits, "update_s": med,
                     "all_s": times, "one_micro_batch_speedup": ratio}
        trainer.close()
    if args.json:
        write_result(args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
