"""The learner's forward+backward, eager vs `train.compile` (torch.compile at bucketed shapes), per micro-batch.

    python benchmarks/compiled_learner.py [--model models/smollm2-135m-instruct] [--reps 3] [--warmup 1]
                                          [--settings varied16,fixed32,groups2x8] [--json PATH]

Settings: `varied16` is 16 rows whose prompt+completion lengths are drawn in [100, 300] tokens afresh each
repetition (a 40-token prompt, the rest completion; the longest in (256, 300], so every repetition falls in
the same length bucket, 384, which the compiled side pads to: eager runs at the longest row);
`fixed32` is 32 rows of exactly 256 tokens (a bucket: no padding); `groups2x8` is vs_trl's headline batch,
2 prompts x 8 completions (GRPO groups: each prompt run once for its group, `train.share_prompts`, on both
sides), 40-token prompts and completions drawn in [16, 64] tokens, the longest 64. One model (fp32 masters, compute under
autocast in the machine's `model.dtype: auto`, bf16 on a CPU with native bf16), two learners on it: eager
and compiled. Each repetition runs one `update` (one micro-batch) of each, alternating (eager, compiled,
eager, ...), and the forward+backward seconds are the learner's own `time/forward + time/backward`. The
first `--warmup` repetitions (which hold the compile) are reported apart; the medians are over the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rlvr.config import AlgorithmConfig, ModelConfig, TrainConfig  # noqa: E402
from rlvr.learner import Learner  # noqa: E402
from rlvr.models.loading import compute_dtype, load_policy  # noqa: E402
from rlvr.types import Batch  # noqa: E402

PROMPT = 40


def micro_batch(setting: str, vocab: int, rep: int) -> Batch:
    """One learner micro-batch of random tokens: (rows, longest) right-padded, completion after PROMPT."""
    g = torch.Generator().manual_seed(rep)
    if setting == "groups2x8":
        lengths = torch.randint(PROMPT + 16, PROMPT + 65, (16,), generator=g).tolist()
        lengths[0] = PROMPT + 64
    elif setting == "varied16":
        lengths = torch.randint(100, 301, (16,), generator=g).tolist()
        lengths[0] = int(torch.randint(257, 301, (1,), generator=g))  # the longest in one length bucket (384)
    else:
        lengths = [256] * 32
    N, T = len(lengths), max(lengths)
    ids = torch.randint(0, vocab, (N, T), generator=g)
    attn, mask = torch.zeros(N, T, dtype=torch.long), torch.zeros(N, T - 1)
    for i, n in enumerate(lengths):
        attn[i, :n], mask[i, PROMPT - 1 : n - 1] = 1, 1.0
    if setting == "groups2x8":  # rows 0-7 share one prompt, rows 8-15 another
        ids[:8, :PROMPT], ids[8:, :PROMPT] = ids[0, :PROMPT], ids[8, :PROMPT]
    old = -2.0 * mask  # behaviour log-probs: any value, the timing does not depend on them
    return Batch(ids, attn, mask, old, torch.randn(N, generator=g))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(REPO / "models" / "smollm2-135m-instruct"))
    ap.add_argument("--settings", default="varied16,fixed32,groups2x8")
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions per arm and setting")
    ap.add_argument("--warmup", type=int, default=1, help="repetitions left out of the medians (the compile)")
    ap.add_argument("--json", default=str(REPO / "benchmarks" / "results" / "compiled_learner.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", 0)) or os.cpu_count() or 1)

    mcfg = ModelConfig(kind="hf", path=args.model, dtype="auto", device="cpu")
    model, _ = load_policy(mcfg)
    dtype = compute_dtype(mcfg, model)
    vocab = model.config.vocab_size
    print(f"model {args.model}; weights {next(model.parameters()).dtype}, compute {dtype}; "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}; load average {os.getloadavg()}", flush=True)
    results: dict = {"model": args.model, "compute_dtype": str(dtype), "torch": torch.__version__,
                     "threads": torch.get_num_threads(), "load_average_start": os.getloadavg(), "settings": {}}
    for setting in args.settings.split(","):
        rows = 32 if setting == "fixed32" else 16
        algo = AlgorithmConfig(loss_agg="token_mean")
        # one learner (one optimiser state: the 32 x 256 setting needs ~10 GB already), its switch flipped per arm
        learner = Learner(model, TrainConfig(lr=1e-9, micro_batch_size=rows), algo, compute_dtype=dtype)
        times: dict[str, list[float]] = {"eager": [], "compiled": []}
        walls: dict[str, list[float]] = {"eager": [], "compiled": []}
        widths = []
        for rep in range(args.warmup + args.reps):
            mb = micro_batch(setting, vocab, rep)
            widths.append(int(mb.attention_mask.sum(-1).max()))
            for arm in times:
                learner.cfg.compile = arm == "compiled"
                t = time.perf_counter()
                stats = learner.update(mb)
                walls[arm].append(time.perf_counter() - t)
                times[arm].append(stats["time/forward"] + stats["time/backward"])
                print(f"  {setting} rep {rep} {arm}: forward+backward {times[arm][-1]:.2f} s "
                      f"(update {walls[arm][-1]:.2f} s, longest row {widths[-1]})", flush=True)
        w = args.warmup
        med = {arm: statistics.median(v[w:]) for arm, v in times.items()}
        compiled = learner._compiled
        out = {
            "rows": rows, "longest_rows": widths, "fwd_bwd_s": times, "update_s": walls,
            "median_fwd_bwd_s": med, "speedup": med["eager"] / med["compiled"],
            "warmup_fwd_bwd_s": {arm: v[:w] for arm, v in times.items()},
            "compiled_shapes": sorted(compiled.shapes) if compiled is not None else [],
            "compiled_shared_shapes": sorted(compiled.shared_shapes) if compiled is not None else [],
        }
        results["settings"][setting] = out
        write(args.json, results)  # after each setting, so a run cut short keeps what it measured
        print(f"[{setting}] median forward+backward per micro-batch: eager {med['eager']:.2f} s, compiled "
              f"{med['compiled']:.2f} s ({out['speedup']:.2f}x); warm-up (compile) runs: "
              f"{out['warmup_fwd_bwd_s']}; compiled shapes {out['compiled_shapes']} {out['compiled_shared_shapes']}", flush=True)
    results["load_average_end"] = os.getloadavg()
    write(args.json, results)
    print(f"wrote {args.json}")
    return 0


def write(path: str, results: dict) -> None:
    """The results as JSON at `path`; settings measured by an earlier run (and not by this one) are kept."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    earlier = json.loads(path.read_text()).get("settings", {}) if path.exists() else {}
    path.write_text(json.dumps({**results, "settings": {**earlier, **results["settings"]}}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
