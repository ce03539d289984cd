"""rlvr's training step with freed host memory kept for reuse (`model.keep_host_memory`, the default) against
glibc's defaults, on identical work, measured in one run, alternating.

    python benchmarks/host_memory.py [--model models/smollm2-135m-instruct] [--rounds 3] [--steps 6]
                                     [--micro-batch-tokens 0] [--threads 1] [--json benchmarks/results/host_memory.json]

The setting is process-wide (glibc's `mallopt`), so each arm runs in its own process: a round starts one
process per arm, in turn (the order turning each round), each building the trainer of `benchmarks/vs_trl.py`'s
fixed-length headline (2 prompts x 8 completions, exactly 64 new tokens each, bf16 compute where the CPU has
it, else fp32; the learner's batch in one micro-batch unless `--micro-batch-tokens` splits it) and running 2
warm-up steps and `--steps` measured ones. The two arms draw the same problems and seeds, so they generate and
train on the same tokens. Printed per arm: median s/step, generation and
update seconds, minor page faults and system CPU seconds a step, and peak resident memory; and the ratio.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_machine import cpu_flags, cpu_name, write_result  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ARMS = {"glibc defaults": "false", "kept for reuse": "true"}


def child(args) -> None:
    """One arm: warm-up and measured steps; prints one JSON line."""
    import torch
    from vs_trl import headline_run, rlvr_trainer

    torch.set_num_threads(args.threads)
    opts = headline_run(args.model, args.micro_batch_tokens)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = rlvr_trainer(opts, "auto", Path(run_dir), fixed=True,
                               overrides=(f"model.keep_host_memory={args.child}",))
        steps = []
        for i in range(2 + args.steps):
            before = resource.getrusage(resource.RUSAGE_SELF)
            m = trainer.step()
            after = resource.getrusage(resource.RUSAGE_SELF)
            if i >= 2:
                steps.append({"step_s": m["time/step"], "generate_s": m["time/generate"],
                              "update_s": m["time/update"], "faults": after.ru_minflt - before.ru_minflt,
                              "sys_s": after.ru_stime - before.ru_stime,
                              "tokens": m.get("response_length/mean", 0.0) * 16})
        print(json.dumps({"steps": steps, "header": trainer.header().splitlines()[0],
                          "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="models/smollm2-135m-instruct")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--micro-batch-tokens", type=int, default=0, help="the learner's padded tokens per micro-batch")
    ap.add_argument("--json", default=None)
    ap.add_argument("--child", choices=["true", "false"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args)
        return 0
    if not (ROOT / args.model).exists() and not Path(args.model).exists():
        print(f"host_memory: {args.model} is missing (make smollm2)", file=sys.stderr)
        return 2
    runs: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    extra: dict[str, dict] = {}
    names = list(ARMS)
    for r in range(args.rounds):
        for arm in names[r % 2:] + names[: r % 2]:
            cmd = [sys.executable, __file__, "--child", ARMS[arm], "--model", args.model, "--steps", str(args.steps),
                   "--threads", str(args.threads), "--micro-batch-tokens", str(args.micro_batch_tokens)]
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            if out.returncode != 0:
                print(out.stderr[-3000:], file=sys.stderr)
                return 1
            res = json.loads(out.stdout.strip().splitlines()[-1])
            runs[arm] += res["steps"]
            extra[arm] = {"header": res["header"],
                          "peak_rss_mb": max(res["peak_rss_mb"], extra.get(arm, {}).get("peak_rss_mb", 0.0))}
            print(f"round {r + 1} {arm}: step {statistics.median(s['step_s'] for s in res['steps']):.2f} s", flush=True)
    keys = ("step_s", "generate_s", "update_s", "faults", "sys_s")
    table = {arm: {k: statistics.median(s[k] for s in steps) for k in keys} | extra[arm] for arm, steps in runs.items()}
    same = [s["tokens"] for s in runs["glibc defaults"]] == [s["tokens"] for s in runs["kept for reuse"]]
    print(f"\n{cpu_name()} ({', '.join(cpu_flags())}), {args.threads} thread(s); {args.rounds} rounds x "
          f"{args.steps} steps per arm, micro_batch_tokens {args.micro_batch_tokens}; same sampled lengths in both arms: {same}")
    print(f"{'arm':<16}{'s/step':>8}{'generate':>10}{'update':>8}{'faults/step':>13}{'sys s/step':>12}{'peak MB':>9}")
    for arm, t in table.items():
        print(f"{arm:<16}{t['step_s']:>8.2f}{t['generate_s']:>10.2f}{t['update_s']:>8.2f}{t['faults']:>13.0f}"
              f"{t['sys_s']:>12.2f}{t['peak_rss_mb']:>9.0f}")
    ratio = table["glibc defaults"]["step_s"] / table["kept for reuse"]["step_s"]
    upd = table["glibc defaults"]["update_s"] / table["kept for reuse"]["update_s"]
    print(f"kept for reuse: {ratio:.2f}x the step rate, {upd:.2f}x the update rate of glibc's defaults")
    if args.json:
        write_result(args.json, {"cpu": cpu_name(), "flags": cpu_flags(), "threads": args.threads,
                                 "rounds": args.rounds, "steps": args.steps, "micro_batch_tokens": args.micro_batch_tokens, "arms": table, "same_work": same,
                                 "step_speedup": ratio, "update_speedup": upd, "per_step": runs})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
