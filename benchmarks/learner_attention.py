"""The learner's forward and backward on a CPU with SDPA's attention against rlvr's short-sequence attention
(`rlvr.models.attention`) and against the form of it with the keys and values copied per query head, on the
same batches, alternating in one process.

    python benchmarks/learner_attention.py [--model models/smollm2-135m-instruct] [--rounds 4] [--threads 1]
                                           [--micro-batch-tokens 512] [--json benchmarks/results/learner_attention.json]

The work is `benchmarks/vs_trl.py`'s fixed-length step (SmolLM2-135M, 2 prompts x 8, exactly 64 new tokens, bf16
autocast over fp32 master weights, micro-batches of at most `--micro-batch-tokens` padded tokens): one step
samples the batch, then each round runs the learner's update on that same batch once per arm (the arms alternate;
the first round warms up and is left out). Arms: `sdpa` (transformers' SDPA path), `short` (rlvr's: each
key/value head's query heads as one block of rows in the two products) and `repeat` (`repeat_attention` below,
what `short` was before: the keys and values copied per query head with transformers' `repeat_kv`, the same
arithmetic otherwise). Printed: median forward, backward and update seconds per arm, and the ratios.
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

ROOT = Path(__file__).resolve().parent.parent
REPEAT = "rlvr_short_repeat_kv"  # the name `repeat_attention` is registered under


def repeat_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling: float | None = None,
                     is_causal: bool | None = None, **kwargs):
    """rlvr's short-sequence attention with the keys and values first copied per query head (`repeat_kv`), as
    it was before each key/value head's query heads became one block; everything it does not take goes to rlvr's."""
    from transformers.integrations.sdpa_attention import repeat_kv

    from rlvr.models.attention import SHORT, _masked, short_sequence_attention

    B, H, q, D = query.shape
    L = key.shape[2]
    if q == 1 or L > SHORT or dropout or attention_mask is None or H % key.shape[1] or kwargs.get("softcap") is not None:
        return short_sequence_attention(module, query, key, value, attention_mask, dropout, scaling, is_causal, **kwargs)
    groups = H // key.shape[1]
    key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    scores = torch.matmul(query, key.transpose(-1, -2)).float() * (D ** -0.5 if scaling is None else scaling)
    scores = _masked(scores, attention_mask[:, :, :, :L])
    out = torch.matmul(torch.softmax(scores, dim=-1), value.float()).to(value.dtype)
    return out.transpose(1, 2).contiguous(), None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "smollm2-135m-instruct"))
    ap.add_argument("--rounds", type=int, default=4, help="timed rounds (after one warm-up round)")
    ap.add_argument("--threads", type=int, default=None, help="default: OMP_NUM_THREADS when set, else every core")
    ap.add_argument("--micro-batch-tokens", type=int, default=512,
                    help="the learner's micro-batches of at most this many padded tokens (0: the 16 rows as one, "
                         "the trainer's default)")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "learner_attention.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads or int(os.environ.get("OMP_NUM_THREADS", 0)) or os.cpu_count() or 1)
    if not (Path(args.model) / "config.json").exists():
        raise SystemExit(f"learner_attention: no checkpoint at {args.model}; run `make smollm2`")

    run = vs_trl.headline_run(args.model, micro_batch_tokens=args.micro_batch_tokens)
    trainer = vs_trl.rlvr_trainer(run, "bfloat16", Path(tempfile.mkdtemp(prefix="learner_attention_")), True)
    config = trainer.model.config
    arms = {"sdpa": "sdpa", "short": config._attn_implementation, "repeat": REPEAT}
    if arms["short"] == "sdpa":
        raise SystemExit("learner_attention: the model is not on rlvr's short-sequence attention (not a CPU run?)")
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(REPEAT, repeat_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(REPEAT, sdpa_mask)
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
    ratio_repeat = med["repeat"]["update"] / med["short"]["update"]
    print(f"\n{'arm':8}{'forward s':>12}{'backward s':>12}{'update s':>12}")
    for arm, m in med.items():
        print(f"{arm:8}{m['forward']:12.2f}{m['backward']:12.2f}{m['update']:12.2f}")
    print(f"short-sequence attention: the learner's forward + backward {ratio:.2f}x faster than with SDPA, "
          f"{ratio_repeat:.2f}x faster than with the keys and values copied per query head")
    write_result(args.json, {"median_s": med, "speedup": ratio, "speedup_vs_repeat": ratio_repeat, "rounds": times,
                             "threads": torch.get_num_threads(), "machine": cpu_name(), "cpu_flags": cpu_flags(),
                             "batch_shape": list(batch.input_ids.shape)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
