"""Where the headline step's time goes, by operator: torch's profiler over one learner update and one decode of
`benchmarks/vs_trl.py`'s fixed-length step (SmolLM2-135M, 2 prompts x 8, exactly 64 new tokens, the machine's
dtype, one torch thread by default).

    python benchmarks/step_profile.py [--model models/smollm2-135m-instruct] [--compile] [--threads 1]
                                      [--json benchmarks/results/step_profile.json]

The learner's update runs twice first (warm-up), then once under the profiler; the engine decodes the batch
twice (with `--compile` the compiled decode steps, whose compile the warm-up takes), then once under it. Printed
and written per part: wall seconds (with the profiler's overhead), each operator's self time and share (the
top 25), and the shares of four kinds: products (`mm`, `bmm`, `addmm`, oneDNN's packed and int8 linears,
attention kernels), dtype casts (`copy_`, `_to_copy`), other elementwise and reduction ops, and the rest.
The profiler adds a few percent of dispatch time; compare shares, not seconds, with an unprofiled run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vs_trl  # noqa: E402 - the step this takes apart is vs_trl's
from bench_machine import cpu_flags, cpu_name, write_result  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PRODUCTS = ("aten::mm", "aten::bmm", "aten::addmm", "mkldnn::_linear_pointwise", "onednn::qlinear_pointwise",
            "aten::_scaled_dot_product_flash_attention_for_cpu", "aten::_weight_int8pack_mm")
CASTS = ("aten::copy_", "aten::_to_copy")
ELEMENTWISE = ("aten::mul", "aten::add", "aten::add_", "aten::mul_", "aten::sub", "aten::sub_", "aten::div",
               "aten::div_", "aten::exp", "aten::exp_", "aten::silu", "aten::silu_backward", "aten::pow",
               "aten::rsqrt", "aten::neg", "aten::sum", "aten::mean", "aten::amax", "aten::where", "aten::fill_",
               "aten::masked_fill_", "aten::_softmax", "aten::_softmax_backward_data", "aten::linalg_vector_norm",
               "aten::_fused_rms_norm", "aten::scatter_add_", "aten::clamp_", "aten::index_copy_", "aten::cat",
               "aten::_fused_adamw_")


def shares(prof) -> dict:
    """Self CPU seconds per operator (leaf ops only, so nothing counts twice), the top 25 and the four kinds."""
    ops = {e.key: e.self_cpu_time_total / 1e6 for e in prof.key_averages() if e.self_cpu_time_total > 0}
    total = sum(ops.values())
    kinds = {"products": 0.0, "casts": 0.0, "elementwise": 0.0, "other": 0.0}
    for name, sec in ops.items():
        kind = "products" if name in PRODUCTS else "casts" if name in CASTS else \
            "elementwise" if name in ELEMENTWISE else "other"
        kinds[kind] += sec
    top = sorted(ops.items(), key=lambda kv: -kv[1])[:25]
    return {"self_s": total, "kinds_s": kinds, "kinds_share": {k: v / total for k, v in kinds.items()},
            "top_ops": [{"op": k, "self_s": v, "share": v / total} for k, v in top]}


def report(part: str, wall: float, out: dict) -> None:
    print(f"\n== {part}: {wall:.2f} s wall under the profiler, {out['self_s']:.2f} s of operator self time")
    print("   kinds: " + ", ".join(f"{k} {v:.2f} s ({100 * out['kinds_share'][k]:.0f}%)"
                                    for k, v in out["kinds_s"].items()))
    for row in out["top_ops"][:12]:
        print(f"   {row['op']:52s} {row['self_s']:7.3f} s  {100 * row['share']:5.1f}%")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "smollm2-135m-instruct"))
    ap.add_argument("--compile", action="store_true", help="the engine's compiled decode steps (rollout.compile)")
    ap.add_argument("--threads", type=int, default=None, help="default: OMP_NUM_THREADS when set, else every core")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "step_profile.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads or int(os.environ.get("OMP_NUM_THREADS", 0)) or os.cpu_count() or 1)
    if not (Path(args.model) / "config.json").exists():
        raise SystemExit(f"step_profile: no checkpoint at {args.model}; run `make smollm2`")
    run = vs_trl.headline_run(args.model)
    run.compile = args.compile
    trainer = vs_trl.rlvr_trainer(run, "auto", Path(tempfile.mkdtemp(prefix="step_profile_")), True)
    print(trainer.header())
    prompts, sampling = vs_trl.race_batch(trainer, run, fixed=True)
    gen = torch.Generator().manual_seed(0)
    result: dict = {"machine": cpu_name(), "cpu_flags": cpu_flags(), "threads": torch.get_num_threads(),
                    "header": trainer.header(), "compile": args.compile, "prompts": run.prompts,
                    "generations": run.generations, "max_new_tokens": run.max_new_tokens}
    for _ in range(2):
        trainer.engine.generate(prompts, sampling, gen)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        trainer.engine.generate(prompts, sampling, gen)
        wall = time.perf_counter() - t0
    result["decode"] = {"wall_s": wall, **shares(prof)}
    report("decode", wall, result["decode"])
    batch, _ = trainer.assemble(trainer.collect().kept)
    for _ in range(2):
        trainer.learner.update(batch)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        m = trainer.learner.update(batch)
        wall = time.perf_counter() - t0
    result["learner"] = {"wall_s": wall, "forward_s": m["time/forward"], "backward_s": m["time/backward"],
                         "optimizer_s": m["time/optimizer"], "batch_shape": list(batch.input_ids.shape), **shares(prof)}
    report("learner update", wall, result["learner"])
    write_result(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
