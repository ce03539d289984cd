"""Decode steps through transformers' forward against the plain layer loop (`rlvr.rollout.layer_loop`), in the
torch engine, on identical work, arms alternating in one process.

    python benchmarks/layer_loop.py [--model models/smollm2-135m-instruct] [--dtype bfloat16] [--rounds 3]
                                    [--threads 1] [--natural] [--against forward|apart]
                                    [--json benchmarks/results/layer_loop.json]

Two engines share one model (its weights, rlvr's CPU attention and, by default, the oneDNN-packed linears):
`forward` decodes through the model's forward, `loop` through the layer loop. Seeded per prompt, fixed length
(`ignore_eos`: every completion exactly `max_new_tokens`), at vs_trl's two settings: 2 prompts x 8 completions
x 64 new tokens and 8 x 8 x 256; with `--natural`, completions stop at EOS instead (rows leave the batch as
they finish; both arms sample the same tokens, so the work is still identical). Each round runs both arms once
per setting, in alternating order; the first round warms up and is left out. Printed per setting: tokens/s of
each arm per round, the medians and their ratio, the median of the per-round ratios (the machine's speed drifts
between rounds, less within one), and how many completions came out identical, with the largest log-prob
difference (the loop is meant to give the forward's logits bit for bit, so identical samples and a difference
of 0).

`--against apart` compares the loop with itself, its linears one product each (`apart`) against each layer's
q/k/v and gate/up projections stacked into one product each on packed weights (`loop`, the default since
`rlvr.rollout.cpu_kernels` stacks them): the same samples, bit for bit.
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import time
from pathlib import Path
from unittest import mock

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_machine import cpu_name, write_result  # noqa: E402
from decode_attention import QUESTIONS, SETTINGS, TEMPLATE, engine_arguments, load_engine_model  # noqa: E402

from rlvr.rollout.base import SamplingParams  # noqa: E402
from rlvr.rollout.layer_loop import LayerLoop  # noqa: E402
from rlvr.rollout.torch_engine import TorchEngine  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = engine_arguments("layer_loop", rounds=3, doc=__doc__)
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--natural", action="store_true", help="completions stop at EOS (default: fixed length)")
    ap.add_argument("--against", choices=["forward", "apart"], default="forward",
                    help="the other arm: transformers' forward, or the loop with no stacked linears")
    args = ap.parse_args(argv)
    model, tok = load_engine_model(args, "layer_loop")
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    base = args.against
    engines = {base: TorchEngine(model, pad, tokenizer=tok, layer_loop=base == "apart"),
               "loop": TorchEngine(model, pad, tokenizer=tok)}

    def running(arm: str):  # the apart arm stacks nothing: no linear groups for the packed kernels
        return (mock.patch.object(LayerLoop, "linear_groups", staticmethod(lambda m: ())) if arm == "apart"
                else contextlib.nullcontext())
    out: dict = {"dtype": args.dtype, "threads": torch.get_num_threads(), "machine": cpu_name(),
                 "mode": "natural" if args.natural else "fixed", "against": base, "settings": {}}
    for name in args.settings:
        U, n, T = SETTINGS[name]
        prompts = [tok.encode(TEMPLATE.format(q=q)) for q in QUESTIONS[:U]]
        sampling = SamplingParams(n, T, 1.0, 1.0, (tok.eos_token_id,), ignore_eos=not args.natural)
        rates: dict[str, list[float]] = {arm: [] for arm in engines}
        groups = {}
        for r in range(args.rounds + 1):
            for arm in (list(engines) if r % 2 == 0 else list(engines)[::-1]):
                t0 = time.perf_counter()
                with running(arm):
                    groups[arm] = engines[arm].generate(prompts, sampling, seeds=list(range(U)))
                tok_s = sum(len(c.token_ids) for g in groups[arm] for c in g) / (time.perf_counter() - t0)
                if r:
                    rates[arm].append(tok_s)
                print(f"{name} round {r}{' (warm-up)' if not r else ''} {arm}: {tok_s:.0f} tok/s", flush=True)
        pairs = [(a, b) for ga, gb in zip(groups[base], groups["loop"]) for a, b in zip(ga, gb)]
        same = sum(a.token_ids == b.token_ids for a, b in pairs)
        gap = max((abs(x - y) for a, b in pairs if a.token_ids == b.token_ids
                   for x, y in zip(a.logprobs, b.logprobs)), default=float("nan"))
        med = {arm: statistics.median(v) for arm, v in rates.items()}
        per_round = statistics.median(lp / fw for lp, fw in zip(rates["loop"], rates[base]))
        row = {"tok_s": rates, "median_tok_s": med, "speedup": med["loop"] / med[base],
               "speedup_per_round_median": per_round, "identical_completions": same, "completions": U * n,
               "max_logprob_difference": gap, "loop_steps": engines["loop"].loop_steps,
               "completion_tokens": sum(len(c.token_ids) for g in groups["loop"] for c in g)}
        out["settings"][name] = row
        print(f"{name}: {base} {med[base]:.0f} tok/s, loop {med['loop']:.0f} tok/s ({row['speedup']:.2f}x; "
              f"per-round median {per_round:.2f}x); identical completions {same}/{U * n}, "
              f"largest log-prob difference {gap:.1e}")
    write_result(args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
