"""The torch engine's token draw: one uniform a row through the distribution function in two levels of running
sums (rlvr's sampler now, `two_level`), against the same draw through one float64 running sum over the whole
vocabulary after a log-softmax (`one_level`, its previous form) and the exponential race before that (a
uniform per vocabulary entry), on identical logits, arms alternating in one process.

    python benchmarks/sampler.py [--rows 16 64] [--vocab 49152] [--rounds 5] [--steps 50] [--threads 1]
                                 [--json benchmarks/results/sampler.json]

Each step samples every row of a (rows, vocab) batch of logits (bf16, as the engine's output layer gives them,
temperature 1, no top-p) with per-prompt seeded noise, as the engine does with `seeds`: groups of 8 rows share a
generator. Printed per row count: milliseconds a step of each arm per round, the medians and their ratios. Then
how often two levels and one level draw different tokens from the same logits and noise (rounding at an
interval's edge), and the law: on a 6-token distribution, 200,000 draws of each arm, the largest gap between a
token's share and its probability (all are exact samplers, so the gaps are sampling noise, about 0.001-0.003). Freed memory is
kept for reuse, as in an rlvr run on a CPU (`rlvr.models.host_memory`), so page faults do not blur the timings.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_machine import cpu_flags, cpu_name, write_result  # noqa: E402

from rlvr.models.host_memory import keep_freed_memory  # noqa: E402
from rlvr.rollout.torch_engine import behaviour_logprobs, sample_next  # noqa: E402

GROUP = 8  # rows per prompt (one seeded generator each)


def race(logits: torch.Tensor, uniform: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The draw rlvr used before: argmax_v p_v / -log u_v over a (B, V) uniform (the exponential race)."""
    logp = behaviour_logprobs(logits.float(), 1.0, 1.0)
    tokens = (logp.exp() / torch.log(uniform)).argmin(dim=-1)
    return tokens, logp.gather(-1, tokens[:, None]).squeeze(-1)


def one_level(logits: torch.Tensor, uniform: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The draw before the two levels: a (B, V) log-softmax, one float64 running sum over it, a search."""
    logp = behaviour_logprobs(logits.float(), 1.0, 1.0)
    cdf = logp.exp().cumsum(dim=-1, dtype=torch.float64)
    target = uniform.to(torch.float64)[:, None] * cdf[:, -1:]
    tokens = torch.searchsorted(cdf, target, right=True).squeeze(-1).clamp_(max=logp.shape[-1] - 1)
    return tokens, logp.gather(-1, tokens[:, None]).squeeze(-1)


def arms(rows: int, vocab: int):
    """step functions of both arms over one batch of logits, each drawing its noise as the engine would."""
    logits = (torch.randn(rows, vocab, generator=torch.Generator().manual_seed(0)) * 3).bfloat16()
    gens = [torch.Generator().manual_seed(i) for i in range(rows // GROUP)]
    per_token = torch.empty(rows, vocab)
    per_row = torch.empty(rows)

    def old():
        for i, g in enumerate(gens):
            torch.rand((GROUP, vocab), generator=g, out=per_token[i * GROUP:(i + 1) * GROUP])
        return race(logits, per_token)

    def row_noise():
        for i, g in enumerate(gens):
            torch.rand(GROUP, generator=g, out=per_row[i * GROUP:(i + 1) * GROUP])
        return per_row

    return {"race": old, "one_level": lambda: one_level(logits, row_noise()),
            "two_level": lambda: sample_next(logits, 1.0, 1.0, None, uniform=row_noise())}


def law_gap(draws: int = 200_000) -> dict:
    """Largest |share - probability| over a 6-token distribution for each arm's draws."""
    probs = torch.tensor([0.4, 0.25, 0.2, 0.1, 0.04, 0.01])
    logits = probs.log().repeat(draws, 1)
    g = torch.Generator().manual_seed(1)
    per_row = torch.rand(draws, generator=g)
    tokens = {"race": race(logits, torch.rand(logits.shape, generator=g))[0],
              "one_level": one_level(logits, per_row)[0],
              "two_level": sample_next(logits, 1.0, 1.0, None, uniform=per_row)[0]}
    return {arm: (torch.bincount(t, minlength=6).float() / draws - probs).abs().max().item()
            for arm, t in tokens.items()}


def disagreement(rows: int, vocab: int, steps: int = 300) -> dict:
    """Draws where the two levels and one level pick different tokens from the same logits and noise (fresh
    random bf16 logits each step, as `arms`): float rounding at an interval's edge, nothing else."""
    differ = 0
    for s in range(steps):
        g = torch.Generator().manual_seed(10_000 + s)
        logits = (torch.randn(rows, vocab, generator=g) * 3).bfloat16()
        uniform = torch.rand(rows, generator=g)
        differ += int((one_level(logits, uniform)[0] != sample_next(logits, 1.0, 1.0, None, uniform=uniform)[0]).sum())
    return {"draws": rows * steps, "differ": differ}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[16, 64])
    ap.add_argument("--vocab", type=int, default=49152)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as rlvr's CPU policies do (`model.keep_host_memory`): no page faults in the timings
    out: dict = {"machine": cpu_name(), "cpu_flags": cpu_flags(), "threads": args.threads, "vocab": args.vocab,
                 "rows": {}}
    for rows in args.rows:
        fns = arms(rows, args.vocab)
        ms: dict[str, list[float]] = {arm: [] for arm in fns}
        for r in range(args.rounds + 1):
            for arm in (list(fns) if r % 2 == 0 else list(fns)[::-1]):
                t0 = time.perf_counter()
                for _ in range(args.steps):
                    fns[arm]()
                took = (time.perf_counter() - t0) / args.steps * 1e3
                if r:  # round 0 warms up
                    ms[arm].append(took)
        med = {arm: statistics.median(v) for arm, v in ms.items()}
        out["rows"][str(rows)] = {"ms_per_step": ms, "median_ms": med, "speedup": med["race"] / med["two_level"],
                                  "speedup_over_one_level": med["one_level"] / med["two_level"]}
        print(f"{rows} rows x {args.vocab}: race {med['race']:.2f} ms, one level {med['one_level']:.2f} ms, "
              f"two levels {med['two_level']:.2f} ms a step ({med['race'] / med['two_level']:.2f}x and "
              f"{med['one_level'] / med['two_level']:.2f}x)", flush=True)
    out["two_vs_one_level"] = disagreement(16, args.vocab)
    print(f"two levels vs one level: {out['two_vs_one_level']['differ']} of {out['two_vs_one_level']['draws']} "
          "draws picked another token")
    out["law_max_gap"] = law_gap()
    print("largest gap between share and probability, 200,000 draws: "
          + ", ".join(f"{arm} {gap:.4f}" for arm, gap in out["law_max_gap"].items()))
    if args.json:
        write_result(args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
