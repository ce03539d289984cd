"""Decode steps through `torch.compile` on a CPU: the layer loop's step compiled by inductor (its default mode
and `max-autotune`, whose C++ GEMM templates target AVX-512 / AMX for small batches) against the eager step on
oneDNN-packed weights (rlvr's default), in the torch engine, on identical work, arms alternating in one process.

    python benchmarks/compiled_decode.py [--model models/smollm2-135m-instruct] [--dtype bfloat16] [--rounds 3]
                                         [--threads 1] [--modes default max-autotune-no-cudagraphs]
                                         [--json benchmarks/results/compiled_decode.json]

The compiled arms run `LayerLoop.step` (rlvr/rollout/layer_loop.py) through `torch.compile` on the model's
own weights, which the graph takes as inputs (so a weight sync needs no recompile): the packed weights are
oneDNN's opaque tensors, which a graph cannot take. 2 prompts x 8 completions x exactly 64 new tokens, seeded
per prompt. The first call of each compiled arm compiles (its seconds are printed and kept apart); then each
round runs every arm once, in turning order. Printed: tokens/s per arm per round, the medians, each compiled
arm's ratio to the eager one, and how many completions equal the eager arm's (inductor's kernels round
differently, so the samples may part ways; the law is the same).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from unittest import mock

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_machine import cpu_name, write_result  # noqa: E402
from decode_attention import QUESTIONS, TEMPLATE, engine_arguments, load_engine_model  # noqa: E402

from rlvr.rollout.base import SamplingParams  # noqa: E402
from rlvr.rollout.layer_loop import LayerLoop  # noqa: E402
from rlvr.rollout.torch_engine import TorchEngine  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = engine_arguments("compiled_decode", rounds=3, doc=__doc__)
    ap.add_argument("--modes", nargs="+", default=["default", "max-autotune-no-cudagraphs"])
    args = ap.parse_args(argv)
    model, tok = load_engine_model(args, "compiled_decode")
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    prompts = [tok.encode(TEMPLATE.format(q=q)) for q in QUESTIONS[:2]]
    sampling = SamplingParams(8, 64, 1.0, 1.0, (tok.eos_token_id,), ignore_eos=True)
    eager = TorchEngine(model, pad, tokenizer=tok)
    plain = TorchEngine(model, pad, tokenizer=tok, cpu_kernels=False)  # the compiled arms' engine
    steps = {mode: torch.compile(LayerLoop.step, mode=None if mode == "default" else mode) for mode in args.modes}

    def run(arm: str):
        engine, step = (eager, LayerLoop.step) if arm == "eager" else (plain, steps[arm])
        with mock.patch.object(LayerLoop, "step", step):
            t0 = time.perf_counter()
            groups = engine.generate(prompts, sampling, seeds=[0, 1])
            return groups, time.perf_counter() - t0

    out: dict = {"dtype": args.dtype, "threads": torch.get_num_threads(), "machine": cpu_name(),
                 "setting": "2x8x64", "compile_s": {}, "tok_s": {}}
    tokens = 2 * 8 * 64
    want, _ = run("eager")  # warm-up of the eager arm
    for mode in args.modes:
        _, took = run(mode)  # compiles
        out["compile_s"][mode] = took
        print(f"{mode}: first call (compiling) {took:.1f} s", flush=True)
    arms = ["eager", *args.modes]
    same: dict[str, int] = {}
    for r in range(args.rounds):
        for arm in arms[r % len(arms):] + arms[: r % len(arms)]:
            groups, took = run(arm)
            out["tok_s"].setdefault(arm, []).append(tokens / took)
            same[arm] = sum(a.token_ids == b.token_ids for ga, gb in zip(want, groups) for a, b in zip(ga, gb))
            print(f"round {r} {arm}: {tokens / took:.0f} tok/s", flush=True)
    med = {arm: statistics.median(v) for arm, v in out["tok_s"].items()}
    out["median_tok_s"], out["identical_to_eager"] = med, same
    out["speedup_vs_eager"] = {mode: med[mode] / med["eager"] for mode in args.modes}
    print(f"eager (packed weights) {med['eager']:.0f} tok/s; " + "; ".join(
        f"compiled {mode} {med[mode]:.0f} tok/s ({med[mode] / med['eager']:.2f}x, compile "
        f"{out['compile_s'][mode]:.0f} s, identical completions {same[mode]}/16)" for mode in args.modes))
    write_result(args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
