"""Decode attention on a CPU: transformers' SDPA, rlvr's `decode_attention` (SDPA's kernel with grouped query
heads) and the two batched products it replaced, in the torch engine, on identical work, arms alternating in one
process.

    python benchmarks/decode_attention.py [--model models/smollm2-135m-instruct] [--dtype bfloat16]
                                          [--rounds 2] [--threads 1] [--compile] [--settings 2x8x64 8x8x256]
                                          [--json benchmarks/results/decode_attention.json]

Every arm runs the same engine on the same model and weights (bf16 by default: the eager engine takes
`decode_attention` in bf16 only), seeded per prompt, fixed length (`ignore_eos`: every completion exactly
`max_new_tokens`), at two settings: 2 prompts x 8 completions x 64 new tokens (vs_trl's headline) and 8 x 8 x 256
(its `--large`).
`sdpa` is the model on transformers' SDPA attention (its `repeat_kv` copies the cache per query head); `rlvr`
is the model on rlvr's attention, which the engine also tells how many static-cache slots are filled (prefills
then read only those), and whose decode steps take `decode_attention`; `products` is `rlvr` with
`decode_attention` swapped for the two batched products it replaced (`products_attention` below: q k^T per
key/value head, fp32 softmax, the probabilities rounded to bf16 for p v). With `--compile` the engine's decode
steps run compiled (`rollout.compile`) and only `rlvr` and `products` run (the compiled step calls the same
function through its operator). Each round runs every arm once per setting; the first round warms up and is
left out.

Printed per setting: tokens/s of each arm per round, the medians, `rlvr` against `products`, and how many
completions of those two came out identical (the two round the probabilities to bf16 at different points, so
sampled paths part after a few tokens: the engine's own log-probs stay its behaviour policy). Then the
engine/learner gap on the 2 x 8 batch: the engine's log-probs against a full forward of each completion on rlvr's
attention (what the learner runs), as the mean of exp(-d) - 1 + d over tokens (k3, an estimate of KL(engine ||
learner)) and the mean |d|.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_machine import cpu_flags, cpu_name, write_result  # noqa: E402

from rlvr.models import attention  # noqa: E402
from rlvr.models.attention import NAME, use_short_attention  # noqa: E402
from rlvr.models.host_memory import keep_freed_memory  # noqa: E402
from rlvr.rollout.base import SamplingParams  # noqa: E402
from rlvr.rollout.torch_engine import TorchEngine  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = ["What is 12 + 34?", "Compute 7 * 8 - 3.", "What is 91 - 45 + 2?", "What is 3 * 14?",
             "What is 100 / 4?", "Sum 5, 6 and 7.", "What is 19 + 23?", "What is 8 * 9?"]
TEMPLATE = "{q} Think briefly inside <think></think>, then give only the final number inside <answer></answer>."
SETTINGS = {"2x8x64": (2, 8, 64), "8x8x256": (8, 8, 256)}
DECODE_ATTENTION = attention.decode_attention


def products_attention(query, key, value, attention_mask, scaling, keys=None):
    """The decode attention `decode_attention` replaced: each key/value head's query heads as one (group, D) x
    (D, L) product on views of the cache, scores and softmax in fp32, the probabilities rounded to the values'
    dtype for the product with them (a masked score takes fp32's lowest value). It read the whole cache, its
    empty slots masked: `keys` (the filled slots) is ignored, as it was then."""
    B, H, _, D = query.shape
    KV, L = key.shape[1], key.shape[2]
    scores = torch.bmm(query.reshape(B * KV, H // KV, D), key.reshape(B * KV, L, D).transpose(1, 2)).float()
    scores = scores.mul_(scaling).view(B, H, L)
    if attention_mask is not None:
        last = attention_mask[:, :, -1, :]
        scores = (torch.where(last, scores, torch.finfo(scores.dtype).min) if last.dtype == torch.bool
                  else scores.add_(last.float()))
    probs = torch.softmax(scores, dim=-1).to(value.dtype).view(B * KV, H // KV, L)
    return torch.bmm(probs, value.reshape(B * KV, L, D)).view(B, 1, H, D)


def use(model, engine: TorchEngine, arm: str) -> None:
    """Put `model` (and what `engine` passes it) on one arm's attention."""
    model.config._attn_implementation = "sdpa" if arm == "sdpa" else NAME
    engine._bounded = arm != "sdpa"
    attention.decode_attention = products_attention if arm == "products" else DECODE_ATTENTION


def k3_gap(model, engine, prompts, groups) -> dict:
    """Engine log-probs against full forwards of each completion on rlvr's attention (the learner's)."""
    use(model, engine, "rlvr")
    diffs = []
    with torch.no_grad():
        for prompt, group in zip(prompts, groups):
            for c in group:
                logits = model(input_ids=torch.tensor([prompt + c.token_ids])).logits.float()[0, len(prompt) - 1:-1]
                lp = torch.log_softmax(logits, -1).gather(-1, torch.tensor(c.token_ids)[:, None])[:, 0]
                diffs.append(torch.tensor(c.logprobs) - lp)
    d = torch.cat(diffs)
    return {"k3": float((torch.exp(-d) - 1 + d).mean()), "mean_abs": float(d.abs().mean())}


def engine_arguments(name: str, rounds: int, doc: str) -> argparse.ArgumentParser:
    """The options the engine benchmarks share; `name` names the default JSON file, `doc` is the script's."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "smollm2-135m-instruct"))
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--rounds", type=int, default=rounds, help="timed rounds (after one warm-up round)")
    ap.add_argument("--threads", type=int, default=None, help="default: OMP_NUM_THREADS when set, else every core")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / f"{name}.json"))
    return ap


def load_engine_model(args, name: str):
    """(model, tokenizer): the checkpoint in `args.dtype` on rlvr's CPU attention, after setting the threads
    and printing the machine; exits with a message naming benchmark `name` where that cannot be done."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not (Path(args.model) / "config.json").exists():
        raise SystemExit(f"{name}: no checkpoint at {args.model}; run `make smollm2`")
    torch.set_num_threads(args.threads or int(os.environ.get("OMP_NUM_THREADS", 0)) or os.cpu_count() or 1)
    keep_freed_memory()  # as rlvr's CPU policies do (`model.keep_host_memory`): no page faults in the timings
    print(f"machine: {cpu_name()}; CPU flags: {' '.join(cpu_flags()) or 'none'}; torch threads {torch.get_num_threads()}")
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=getattr(torch, args.dtype)).eval()
    tok = AutoTokenizer.from_pretrained(args.model)
    if not use_short_attention(model):
        raise SystemExit(f"{name}: the model is not on SDPA attention on a CPU; nothing to compare")
    return model, tok


def main(argv: list[str] | None = None) -> int:
    ap = engine_arguments("decode_attention", rounds=2, doc=__doc__)
    ap.add_argument("--compile", action="store_true", help="compiled decode steps (arms rlvr and products)")
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    args = ap.parse_args(argv)
    model, tok = load_engine_model(args, "decode_attention")
    engine = TorchEngine(model, tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id, tokenizer=tok,
                         compile=args.compile)
    out: dict = {"dtype": args.dtype, "threads": torch.get_num_threads(), "machine": cpu_name(),
                 "cpu_flags": cpu_flags(), "compile": args.compile, "settings": {}}
    for name in args.settings:
        U, n, T = SETTINGS[name]
        prompts = [tok.encode(TEMPLATE.format(q=q)) for q in QUESTIONS[:U]]
        sampling = SamplingParams(n, T, 1.0, 1.0, (tok.eos_token_id,), ignore_eos=True)
        arms = ("products", "rlvr") if args.compile else ("sdpa", "products", "rlvr")
        rates: dict[str, list[float]] = {arm: [] for arm in arms}
        groups = {}
        for r in range(args.rounds + 1):
            for arm in rates:
                use(model, engine, arm)
                t0 = time.perf_counter()
                groups[arm] = engine.generate(prompts, sampling, seeds=list(range(U)))
                tok_s = U * n * T / (time.perf_counter() - t0)
                if r:
                    rates[arm].append(tok_s)
                print(f"{name} round {r}{' (warm-up)' if not r else ''} {arm}: {tok_s:.0f} tok/s", flush=True)
        same = sum(a.token_ids == b.token_ids for ga, gb in zip(groups["products"], groups["rlvr"])
                   for a, b in zip(ga, gb))
        med = {arm: statistics.median(v) for arm, v in rates.items()}
        row = {"tok_s": rates, "median_tok_s": med, "speedup": med["rlvr"] / med["products"],
               "identical_completions": same, "completions": U * n}
        if "sdpa" in med:
            row["speedup_vs_sdpa"] = med["rlvr"] / med["sdpa"]
        if name == "2x8x64":
            row["engine_learner_gap"] = {arm: k3_gap(model, engine, prompts, groups[arm]) for arm in rates}
        out["settings"][name] = row
        print(f"{name}: " + ", ".join(f"{arm} {med[arm]:.0f} tok/s" for arm in arms)
              + f"; rlvr vs products {row['speedup']:.2f}x; identical completions {same}/{U * n}")
        for arm, gap in row.get("engine_learner_gap", {}).items():
            print(f"  engine vs learner, {arm}: k3 {gap['k3']:.2e}, mean |d| {gap['mean_abs']:.3f}")
    write_result(args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
