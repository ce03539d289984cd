"""SmolLM2-135M-Instruct learns to call a calculator: the measurement of `configs/smollm2-tools.yaml`.

    python benchmarks/smollm2_tools.py [--seed 0] [--model DIR] [--rl-minutes 4] [--out DIR] [--set KEY=VALUE ...]

Three held-out greedy evaluations on the same `eval.num_problems` problems, each giving accuracy and tool rate
(the share of episodes that called a tool, from the episode records):
- step 0: the instruct model as it is, the call format shown in the system prompt;
- after imitation: `pretrain.steps` next-token steps, in place, on the task teacher's transcripts
  (`task.params.tool_share` of them call the calculator; observations masked out of the loss, as in
  `rlvr demo --story tools`);
- after RL: GRPO steps on the binary reward until `--rl-minutes` of step time (at most `train.steps` steps).
Wall time counts everything after the model is loaded: the evaluations, the imitation phase and RL.
`--seed` sets train.seed (the imitation corpus's order and every sample drawn); the held-out problems stay
the same (task.seed). Writes OUT/smollm2_tools_seed<N>.json (with transcripts) and the progress it prints to
OUT/smollm2_tools_seed<N>.log.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rlvr.config import load_config
from rlvr.logging.metrics import MetricsLogger
from rlvr.pretrain import pretrain
from rlvr.stories.tools import tool_corpus
from rlvr.trainer import Trainer

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "configs" / "smollm2-tools.yaml"


LOG: list[str] = []


def say(line: str) -> None:
    """Print a progress line and keep it for the .log."""
    print(line, flush=True)
    LOG.append(line)


def measured(trainer: Trainer, phase: str, seconds: list[float]) -> dict:
    """Held-out greedy accuracy and tool rate of the current policy, with a few transcripts."""
    t0 = time.time()
    r = trainer.run_eval(phase)
    seconds.append(time.time() - t0)
    out = {"accuracy": r["accuracy"], "tool_rate": r.get("tool_rate", 0.0), "format_rate": r["format_rate"],
           "n": r["n"], "seconds": round(seconds[-1], 1),
           "examples": [{"prompt": e["prompt"], "completion": e["completion"], "correct": e["correct"]}
                        for e in r["examples"][:6]]}
    say(f"{phase}: accuracy {out['accuracy']:.3f} tool rate {out['tool_rate']:.3f} format {out['format_rate']:.3f} "
        f"({out['seconds']:.0f}s)")
    for e in out["examples"][:3]:
        say(f"   {e['correct']!s:5} {e['completion']!r}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0, help="train.seed")
    ap.add_argument("--model", default=str(ROOT / "models" / "smollm2-135m-instruct"))
    ap.add_argument("--rl-minutes", type=float, default=4.0, help="RL step time budget (evaluations not counted)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--run-dir", default="runs/smollm2-tools", help="the run's metrics and samples (DIR/seedN)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    args = ap.parse_args()
    overrides = [f"model.path={args.model}", f"train.seed={args.seed}", "logging.progress=false", *args.set]
    cfg = load_config(RECIPE, overrides)
    run_dir = Path(args.run_dir) / f"seed{args.seed}"
    trainer = Trainer(cfg, run_dir, logger=MetricsLogger(run_dir))
    t_start, eval_s = time.time(), []
    step0 = measured(trainer, "initial", eval_s)

    # imitation, in place on the policy the trainer holds (the engine samples from the same weights)
    p = cfg.pretrain
    t0 = time.time()
    corpus, share = tool_corpus(trainer.task, trainer.tokenizer, trainer.encode, p.num_examples, cfg.train.seed)
    stats = pretrain(trainer.model, trainer.tokenizer, corpus, p, seed=cfg.train.seed, compute_dtype=trainer.dtype)
    trainer.sync_weights()
    imitation_s = time.time() - t0
    say(f"imitation: {p.steps} steps of {p.batch_size}, {share:.0%} of transcripts call the tool, "
        f"loss {stats['loss']:.3f}, {imitation_s:.0f}s")
    imitated = measured(trainer, "imitation", eval_s)

    rows, spent = [], 0.0
    while spent < args.rl_minutes * 60 and trainer.step_count < cfg.train.steps:
        t0 = time.time()
        m = trainer.step()
        spent += time.time() - t0
        rows.append({k: m.get(k) for k in ("accuracy", "episode/tool_rate", "episode/tool_error_rate",
                                            "groups/informative_frac", "episode/turns")})
        say(f"rl step {trainer.step_count}: {spent:.0f}s sampled accuracy {m['accuracy']:.3f} "
            f"tool rate {m.get('episode/tool_rate', 0.0):.3f} informative {m['groups/informative_frac']:.2f}")
    after = measured(trainer, "rl", eval_s)
    trainer.logger.close()
    wall = time.time() - t_start
    result = {
        "config": "configs/smollm2-tools.yaml", "seed": args.seed, "overrides": args.set, "eval_problems": step0["n"],
        "accuracy_step0": step0["accuracy"], "tool_rate_step0": step0["tool_rate"],
        "accuracy_before": imitated["accuracy"], "tool_rate_before": imitated["tool_rate"],
        "accuracy_after": after["accuracy"], "tool_rate_after": after["tool_rate"],
        "imitation_steps": p.steps, "imitation_batch": p.batch_size, "imitation_tool_share": share,
        "imitation_seconds": round(imitation_s, 1), "rl_steps": trainer.step_count, "rl_seconds": round(spent, 1),
        "eval_seconds": round(sum(eval_s), 1), "wall_seconds": round(wall, 1),
        "prompts_per_step": cfg.train.prompts_per_step, "num_generations": cfg.rollout.num_generations,
        "rl_by_step": rows, "step0": step0, "imitation": imitated, "after": after,
    }
    out = Path(args.out) / f"smollm2_tools_seed{args.seed}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    say(f"wall {wall:.0f}s (imitation {imitation_s:.0f}s, RL {spent:.0f}s, evaluations {sum(eval_s):.0f}s); "
        f"written: {out}")
    out.with_suffix(".log").write_text("\n".join(LOG) + "\n")


if __name__ == "__main__":
    main()
