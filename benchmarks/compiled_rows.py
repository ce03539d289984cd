"""Compiled CPU decode steps (`rollout.compile: true`) at natural length: finished rows dropped down a ladder of
batch sizes (`buckets`, rlvr's way now) against every row kept to the end (`kept`, its way before), with the eager
layer loop (which drops finished rows at once) beside them, on identical work, arms alternating in one process.

    python benchmarks/compiled_rows.py [--model models/smollm2-135m-instruct] [--rounds 5] [--threads 1]
                                       [--settings 2x8x64] [--json benchmarks/results/compiled_rows.json]

Seeded per prompt, completions stop at EOS (at most the setting's new tokens), so every arm draws the same
noise: the two compiled arms run the same graphs on the same rows and sample the same tokens (counted:
identical completions), and the eager arm the same up to the compiled kernels' rounding. Each round runs every
arm once, in rotating order; the first round warms up (and compiles: inductor's graph per batch size and cache
length, reported on its own) and is left out. Printed per setting: tokens/s of each arm per round, medians and
ratios, the compiled graphs' (rows, cache slots) shapes, and how many completions came out identical.
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
from decode_attention import QUESTIONS, SETTINGS, TEMPLATE, engine_arguments, load_engine_model  # noqa: E402

from rlvr.rollout import torch_engine  # noqa: E402
from rlvr.rollout.base import SamplingParams  # noqa: E402
from rlvr.rollout.torch_engine import TorchEngine  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = engine_arguments("compiled_rows", rounds=5, doc=__doc__)
    ap.add_argument("--settings", nargs="+", default=["2x8x64"], choices=list(SETTINGS))
    args = ap.parse_args(argv)
    model, tok = load_engine_model(args, "compiled_rows")
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    engines = {"eager": TorchEngine(model, pad, tokenizer=tok), "buckets": TorchEngine(model, pad, tokenizer=tok, compile=True),
               "kept": TorchEngine(model, pad, tokenizer=tok, compile=True)}
    if not engines["buckets"].compile_loop:
        raise SystemExit("compiled_rows: compiled loop steps need bf16 weights oneDNN can pack (AVX-512); nothing to compare")

    def running(arm: str):  # the kept arm: no ladder, every row stays in the batch to the end
        return mock.patch.object(torch_engine, "bucket", lambda n: 10**9) if arm == "kept" else mock.patch.dict({})

    out: dict = {"dtype": args.dtype, "threads": torch.get_num_threads(), "machine": cpu_name(), "mode": "natural",
                 "settings": {}}
    arms = list(engines)
    for name in args.settings:
        U, n, T = SETTINGS[name]
        prompts = [tok.encode(TEMPLATE.format(q=q)) for q in QUESTIONS[:U]]
        sampling = SamplingParams(n, T, 1.0, 1.0, (tok.eos_token_id,))
        rates: dict[str, list[float]] = {arm: [] for arm in arms}
        warm: dict[str, float] = {}
        groups = {}
        for r in range(args.rounds + 1):
            for arm in arms[r % len(arms):] + arms[:r % len(arms)]:
                t0 = time.perf_counter()
                with running(arm):
                    groups[arm] = engines[arm].generate(prompts, sampling, seeds=list(range(U)))
                took = time.perf_counter() - t0
                tok_s = sum(len(c.token_ids) for g in groups[arm] for c in g) / took
                if r:
                    rates[arm].append(tok_s)
                else:
                    warm[arm] = took
                print(f"{name} round {r}{' (warm-up)' if not r else ''} {arm}: {tok_s:.0f} tok/s", flush=True)
        flat = {arm: [c for g in groups[arm] for c in g] for arm in arms}
        same = {f"{a}_vs_{b}": sum(x.token_ids == y.token_ids for x, y in zip(flat[a], flat[b]))
                for a, b in (("buckets", "kept"), ("buckets", "eager"))}
        med = {arm: statistics.median(v) for arm, v in rates.items()}
        row = {"tok_s": rates, "median_tok_s": med, "buckets_over_kept": med["buckets"] / med["kept"],
               "buckets_over_eager": med["buckets"] / med["eager"], "kept_over_eager": med["kept"] / med["eager"],
               "identical_completions": same, "completions": U * n, "warmup_s": warm,
               "completion_tokens": sum(len(c.token_ids) for c in flat["buckets"]),
               "compiled_shapes": {arm: sorted(engines[arm].compiled_shapes) for arm in ("buckets", "kept")}}
        out["settings"][name] = row
        print(f"{name}: buckets {med['buckets']:.0f}, kept {med['kept']:.0f}, eager {med['eager']:.0f} tok/s "
              f"(buckets {row['buckets_over_kept']:.2f}x kept, {row['buckets_over_eager']:.2f}x eager); identical "
              f"completions {same} of {U * n}; compiled shapes {row['compiled_shapes']}")
    write_result(args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
