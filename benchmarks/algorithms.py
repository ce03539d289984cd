"""Which member of the GRPO family learns fastest? Each preset trained on the demo task from the same
pretrained tiny model with the same budget of sampled completion tokens, several seeds each.

    python benchmarks/algorithms.py [--pretrained DIR] [--budget TOKENS] [--seeds 0 1 2] [--out DIR]

Without --pretrained it first runs the demo's imitation phase once (same for every preset). Prints a table of
held-out greedy accuracy (mean and spread over seeds) and wall time per preset, and writes
`OUT/algorithms.png` (accuracy against sampled tokens), `OUT/algorithms.json` and `OUT/report.html`.
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import time
from pathlib import Path

from rlvr.config import load_config
from rlvr.config.presets import PRESETS
from rlvr.logging.metrics import MetricsLogger
from rlvr.trainer import Trainer

ROOT = Path(__file__).resolve().parent.parent


def train_one(preset: str, seed: int, pretrained: Path, budget: int, out: Path, eval_every_tokens: int) -> dict:
    cfg = load_config(ROOT / "configs" / "demo.yaml", [
        "model.kind=hf", f"model.path={pretrained}", f"train.seed={seed}", "train.steps=1000",
        "train.checkpoint_every=0", "logging.progress=false",
    ])
    # The demo config pins loss_agg; a preset comparison must take every field from the preset.
    cfg.algorithm = load_config(overrides=[f"algorithm.name={preset}"]).algorithm
    run_dir = out / f"{preset}-seed{seed}"
    trainer = Trainer(cfg, run_dir, logger=MetricsLogger(run_dir))
    t0 = time.time()
    curve = [(0, trainer.run_eval("rl")["accuracy"])]
    next_eval = eval_every_tokens
    while trainer.sampled_tokens < budget:
        trainer.step()  # writes its metrics and samples
        if trainer.sampled_tokens >= next_eval or trainer.sampled_tokens >= budget:
            curve.append((trainer.sampled_tokens, trainer.run_eval("rl")["accuracy"]))
            next_eval += eval_every_tokens
    trainer.logger.close()
    return {"preset": preset, "seed": seed, "accuracy": curve[-1][1], "curve": curve, "steps": trainer.step_count,
            "seconds": time.time() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pretrained", type=Path, help="imitation checkpoint (default: make one)")
    ap.add_argument("--budget", type=int, default=60_000, help="sampled completion tokens per run")
    ap.add_argument("--eval-every", type=int, help="sampled tokens between evaluations (default budget / 4)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--presets", nargs="+", default=sorted(PRESETS))
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-algorithms")
    ap.add_argument("--table", type=Path, help="only print the tables of a finished run's algorithms.json")
    args = ap.parse_args()
    if args.table:
        runs = json.loads(args.table.read_text())["runs"]
        print_curve_table(runs, list(dict.fromkeys(r["preset"] for r in runs)))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    if args.pretrained is None:
        from rlvr.demo import run_pretrain

        cfg = load_config(ROOT / "configs" / "demo.yaml", ["logging.progress=false"])
        run_pretrain(cfg, args.out, MetricsLogger(args.out / "pretrain"), progress=False)
        args.pretrained = args.out / "pretrained"
    results = []
    for preset in args.presets:
        for seed in args.seeds:
            r = train_one(preset, seed, args.pretrained, args.budget, args.out,
                          args.eval_every or max(args.budget // 4, 1))
            print(f"{preset:<13} seed {seed}: accuracy {r['accuracy']:.3f} after {r['steps']} steps, "
                  f"{r['seconds']:.0f} s", flush=True)
            results.append(r)
    rows = []
    for preset in args.presets:
        accs = [r["accuracy"] for r in results if r["preset"] == preset]
        secs = [r["seconds"] for r in results if r["preset"] == preset]
        rows.append((preset, statistics.mean(accs), statistics.pstdev(accs), min(accs), max(accs),
                     statistics.mean(secs)))
    print_curve_table(results, args.presets)
    print(f"\nheld-out greedy accuracy after {args.budget} sampled tokens, seeds {args.seeds}")
    print(f"{'preset':<13} {'mean':>6} {'std':>6} {'min':>6} {'max':>6} {'wall s':>7}")
    for preset, mean, std, lo, hi, sec in sorted(rows, key=lambda r: -r[1]):
        print(f"{preset:<13} {mean:6.3f} {std:6.3f} {lo:6.3f} {hi:6.3f} {sec:7.0f}")
    (args.out / "algorithms.json").write_text(json.dumps({"budget": args.budget, "runs": results}, indent=1))
    png = plot(results, args.presets, args.out / "algorithms.png")
    table = "".join(f"<tr><td>{p}</td><td>{m:.3f}</td><td>{s:.3f}</td><td>{w:.0f}</td></tr>"
                    for p, m, s, _, _, w in rows)
    (args.out / "report.html").write_text(
        "<html><body><h1>GRPO family on the demo task</h1>"
        f"<p>same pretrained model, {args.budget} sampled tokens per run, seeds {args.seeds}</p>"
        "<table border=1><tr><th>preset</th><th>accuracy mean</th><th>std</th><th>wall s</th></tr>"
        f"{table}</table><img src='data:image/png;base64,{base64.b64encode(png).decode()}'></body></html>")
    print(f"\nwrote {args.out / 'report.html'}")


def print_curve_table(results: list[dict], presets: list[str]) -> None:
    """Mean held-out accuracy (over seeds) at each evaluation point: how fast each preset learns."""
    print("\nmean held-out accuracy at each evaluation (sampled completion tokens in brackets)")
    for preset in presets:
        runs = [r for r in results if r["preset"] == preset]
        n = min(len(r["curve"]) for r in runs)
        cells = []
        for i in range(n):
            tokens = statistics.mean(r["curve"][i][0] for r in runs)
            acc = statistics.mean(r["curve"][i][1] for r in runs)
            spread = statistics.pstdev([r["curve"][i][1] for r in runs])
            cells.append(f"{acc:.3f}±{spread:.3f} [{tokens / 1000:.0f}k]")
        print(f"{preset:<13} " + "  ".join(cells))


def plot(results: list[dict], presets: list[str], path: Path) -> bytes:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for preset in presets:
        runs = [r for r in results if r["preset"] == preset]
        n = min(len(r["curve"]) for r in runs)
        xs = [statistics.mean(r["curve"][i][0] for r in runs) for i in range(n)]
        ys = [statistics.mean(r["curve"][i][1] for r in runs) for i in range(n)]
        ax.plot(xs, ys, marker="o", label=preset)
    ax.set_xlabel("sampled completion tokens")
    ax.set_ylabel("held-out greedy accuracy")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path.read_bytes()


if __name__ == "__main__":
    main()
