"""Learning where the signal is thin: SmolLM2-135M-Instruct on a task it rarely solves, three ways, each for the
same budget of training-step time.

    python benchmarks/thin_signal.py [--model DIR] [--minutes 20] [--clock cpu|wall] [--seed S]
                                     [--arms grpo dapo screened] [--out DIR] [--json FILE]
    python benchmarks/thin_signal.py --table RESULT.json [RESULT.json ...]

The arms share `configs/smollm2-thin-signal.yaml` (the new way: prompt screening with `rlvr check`'s advice
applied, see the recipe's comments) and differ by overrides:
- grpo: the GRPO defaults the check was run on (screening off, T=1.0, G=8, 16 new tokens);
- dapo: the same with `algorithm.name=dapo` (dynamic sampling, clip-higher, overlong shaping);
- screened: the recipe itself;
- curriculum: the recipe with difficulty by measured pass rate (`task.adaptive_difficulty`), starting at
  reasoning-gym's level 0 (2 one-digit terms), held out at level 1 like the others (the same 200 problems).
- kinds: the recipe without screening, its training problems drawn by kind (reasoning-gym's difficulty values)
  in proportion to each kind's measured informative share (`task.kind_sampling`, rlvr.tasks.kinds).
- supervised: not RL, a reference for what the budget can teach this model at all: next-token training on the
  reference answers of fresh training problems (the completion the verifier scores right, after the primed
  `model.response_prefix`), prompts_per_step x num_generations problems a step at `train.lr`, through the
  learner's own optimiser; nothing is sampled. Its gain bounds what reward alone is likely to reach in the
  same time: RL is told only right or wrong, this arm is shown every answer.
Each arm trains until its steps have used `--minutes` of time (the held-out evaluations are not counted), then
held-out greedy accuracy (eval.num_problems problems) is measured. `--clock cpu` (the default) counts the process's
CPU time, so arms run side by side on a shared machine (one torch thread each) get the same compute whatever else
runs; `--clock wall` counts wall time, fair only on an otherwise idle machine. The table gives accuracy at the start
(the same model and greedy decoding for every arm: measured once) and at the end, steps, sampled tokens, the
informative share of sampled groups (mean of the first 10 steps and of all), the first step that sampled a
group with a reward spread, and the check's prediction.
With `--set eval.samples=8 --set 'eval.pass_k=[1,8]'` the held-out problems are also sampled 8 times at
temperature 1 before and after: pass@1 and pass@8 show whether RL moved answers the model could already sample
into its greedy one (greedy rises towards the start's pass@8, pass@8 stays) or reached beyond them. For
reasoning-gym tasks a second table gives held-out accuracy per kind of problem (its difficulty values, e.g.
`num_terms=3, num_digits=1`) at the start and at each arm's end: which problems the gain came from.
Results go to `OUT/thin_signal.json` (and `--json`); `--table FILE...` prints one table from finished runs' JSON
(arms run in separate processes are joined there).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from rlvr.config import load_config
from rlvr.logging.metrics import MetricsLogger
from rlvr.trainer import Trainer

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "configs" / "smollm2-thin-signal.yaml"
GRPO_DEFAULTS = ["algorithm.screening=false", "rollout.max_new_tokens=16"]
# the recipe's task is reasoning-gym's curriculum level 1: the curriculum sets the level's fields itself
CURRICULUM = ["task.params={}", "task.adaptive_difficulty=true", "task.difficulty=1", "task.curriculum_start=0"]
# the recipe's 32 new tokens without screening, drawing each kind of problem by its informative share
KINDS = ["algorithm.screening=false", "task.kind_sampling=true"]
ARMS = {"grpo": GRPO_DEFAULTS, "dapo": [*GRPO_DEFAULTS, "algorithm.name=dapo"], "screened": [],
        "curriculum": CURRICULUM, "kinds": KINDS, "supervised": ["algorithm.screening=false"]}


def sampled_share(row: dict, drawn: int, dynamic: bool) -> float:
    """Share of the groups a step sampled that had a reward spread. Plain GRPO trains every group it draws;
    with dynamic sampling the constant ones (`dynamic/dropped_groups`) are among the `drawn`; with screening
    it is the share of candidates whose screen was mixed (k samples, not G: not the same quantity)."""
    if "screen/candidates" in row:
        return row["screen/passed"] / max(row["screen/candidates"], 1)
    if dynamic and drawn:
        return (drawn - row["dynamic/dropped_groups"]) / drawn
    return row["groups/informative_frac"]


def steps_by_level(rows: list[dict]) -> dict[str, int] | None:
    """{level: steps} from the steps' `curriculum/difficulty`; None where no step had a curriculum."""
    levels = [str(int(r["curriculum/difficulty"])) for r in rows if "curriculum/difficulty" in r]
    return {lv: levels.count(lv) for lv in sorted(set(levels), key=int)} or None


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _held_out(result: dict) -> dict:
    """Greedy accuracy and, with `eval.samples` set, pass@k of temperature-1 samples (RL's reach: see the docstring)."""
    return {k: v for k, v in result.items() if k in ("accuracy", "by_kind") or k.startswith("pass@")}


CLOCKS = {"cpu": time.process_time, "wall": time.time}


def answer_completion(problem, prefix: str) -> str:
    """The reference answer written as the recipe's reply (`<answer>ANSWER</answer>`), less the part the prompt
    already primes (`model.response_prefix`)."""
    text = f"<answer>{problem.answer}</answer>"
    if not text.startswith(prefix):
        raise ValueError(f"model.response_prefix {prefix!r}: the supervised arm writes answers as {text!r}, "
                         "which does not start with it")
    return text[len(prefix):]


def supervised_step(trainer: Trainer) -> dict:
    """One next-token step of the `supervised` arm on the reference answers of the next prompts_per_step x
    num_generations training problems (the task's stream: held-out problems never come up), loss on the answer
    tokens and the end of turn. Each answer is scored by the task's verifier first: one it does not score right
    stops the run, since the arm would teach something the reward never pays."""
    from rlvr.batching import pad_sequences
    from rlvr.optim import clip_and_step
    from rlvr.pretrain import imitation_loss

    cfg, tok, learner = trainer.cfg, trainer.tokenizer, trainer.learner
    n = cfg.train.prompts_per_step * cfg.rollout.num_generations
    prefix = cfg.model.response_prefix or ""
    seqs, starts = [], []
    for i in range(trainer.cursor, trainer.cursor + n):
        problem = trainer.task.train_problem(i)
        completion = answer_completion(problem, prefix)
        if not trainer.task.verify(problem, prefix + completion).correct:
            raise ValueError(f"supervised arm: the task's verifier scores problem {problem.id}'s reference answer "
                             f"{problem.answer!r} wrong as {prefix + completion!r}")
        prompt = trainer.encode(problem)
        seqs.append(prompt + tok(completion, add_special_tokens=False)["input_ids"] + [tok.eos_token_id])
        starts.append(len(prompt))
    ids, attn, lmask = (t.to(trainer.device) for t in pad_sequences(seqs, starts, tok.pad_token_id))
    trainer.model.train()
    loss = imitation_loss(trainer.model, ids, attn, lmask, learner.compute_dtype)
    loss.backward()
    grad_norm = clip_and_step(trainer.model, learner.optimizer, learner.scheduler, cfg.train.grad_clip)
    trainer.cursor += n
    trainer.step_count += 1
    trainer.sync_weights()
    # nothing is sampled: no sampled accuracy and no groups in the row
    return {"loss": float(loss), "grad_norm": grad_norm, "cursor": trainer.cursor, "sampled_tokens": 0,
            "trained_tokens": int(lmask.sum())}


def run_arm(name: str, model: str, minutes: float, out: Path, initial: dict | None, extra: list[str],
            clock: str = "cpu") -> tuple[dict, dict]:
    """Train one arm for `minutes` of step time on `clock`; held-out accuracy before (unless given) and after."""
    now = CLOCKS[clock]
    # held-out answers are read without stop strings in every arm (eval.stop=[]), so the measure is the same
    cfg = load_config(RECIPE, [f"model.path={model}", "train.steps=100000", "train.checkpoint_every=0",
                               "logging.progress=false", "eval.stop=[]", *ARMS[name], *extra])
    run_dir = out / name
    trainer = Trainer(cfg, run_dir, logger=MetricsLogger(run_dir))
    if initial is None:
        t0 = time.time()
        initial = {**_held_out(trainer.run_eval("initial")), "seconds": time.time() - t0}
    rows, shares, spent, cursor = [], [], 0.0, 0
    wall = 0.0
    while spent < minutes * 60:
        t0, w0 = now(), time.time()
        m = supervised_step(trainer) if name == "supervised" else trainer.step()
        spent += now() - t0
        wall += time.time() - w0
        rows.append(m)
        if name == "supervised":
            print(f"{name} step {trainer.step_count}: {spent:.0f}s loss {m['loss']:.3f}", flush=True)
            continue
        shares.append(sampled_share(m, m["cursor"] - cursor, cfg.algorithm.dynamic_sampling))
        cursor = m["cursor"]
        print(f"{name} step {trainer.step_count}: {spent:.0f}s sampled accuracy {m['accuracy']:.3f} "
              f"informative {shares[-1]:.2f} tokens {m['sampled_tokens']}", flush=True)
    t0 = time.time()
    final = _held_out(trainer.run_eval("rl"))
    eval_s = time.time() - t0
    trainer.logger.close()
    kls = [r["offpolicy/kl"] for r in rows if "offpolicy/kl" in r]  # steps whose learner ran rows
    return {"arm": name, "overrides": ARMS[name], "set": [e for e in extra if not e.startswith("train.seed=")],
            # the arm's own task (its overrides come after the file's top-level `params`, which the curriculum
            # arm replaces with reasoning-gym's levels, held out at `held_out_level`)
            "task": cfg.task.name, "task_params": cfg.task.params,
            "held_out_level": cfg.task.difficulty if cfg.task.adaptive_difficulty else None,
            "initial_accuracy": initial["accuracy"], "final_accuracy": final["accuracy"],
            "initial_pass": {k: v for k, v in initial.items() if k.startswith("pass@")},
            "final_pass": {k: v for k, v in final.items() if k.startswith("pass@")},
            # held-out accuracy per kind of problem (reasoning-gym's difficulty values): where a gain came from
            "initial_by_kind": initial.get("by_kind"), "final_by_kind": final.get("by_kind"),
            "eval_seconds": eval_s, "steps": trainer.step_count, "train_seconds": spent,
            "clock": clock, "train_wall_seconds": wall, "seed": cfg.train.seed,
            "sampled_tokens": trainer.sampled_tokens, "prompts_drawn": trainer.cursor,
            "informative_share_first10": _mean(shares[:10]), "informative_share_all": _mean(shares),
            "informative_share_by_step": shares,
            # the curriculum arm: how many steps ended at each level (None for the other arms)
            "steps_by_level": steps_by_level(rows),
            "trained_informative_frac": _mean([r["groups/informative_frac"] for r in rows
                                               if "groups/informative_frac" in r]),
            "sampled_accuracy": _mean([r["accuracy"] for r in rows if "accuracy" in r]),
            # the supervised arm: answer tokens trained on (it samples nothing)
            "trained_tokens": sum(r.get("trained_tokens", 0) for r in rows) or None,
            # the engine's log-probs against the learner's on the same tokens: ~0 when both hold the same
            # weights; anything else means the samples did not come from the policy being trained
            "engine_learner_kl_median": statistics.median_high(kls) if kls else None,
            "engine_learner_kl_max": max(kls, default=None),
            "num_generations": cfg.rollout.num_generations, "temperature": cfg.rollout.temperature,
            "max_new_tokens": cfg.rollout.max_new_tokens, "eval_problems": cfg.eval.num_problems}, initial


def first_signal(shares: list[float] | None) -> str:
    """The first step (1-based) that sampled a group with a reward spread: how long an arm waited for any
    signal at all; "-" where none did (or a result without the per-step shares, the supervised arm's)."""
    return next((str(i) for i, share in enumerate(shares or [], 1) if share > 0), "-")


def print_table(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    clock = result.get("clock", "wall")
    table = Table(title=f"thin signal: {result['task']}, {result['minutes']} min ({clock} time) of training steps "
                        "per arm")
    cols = ["arm", "seed", "held-out start", "held-out end", "gain (pts)", "steps", "sampled tokens",
            "informative sampled, first 10 steps", "informative sampled, all steps", "informative trained",
            "first step with signal"]
    ks = sorted({k for a in result["arms"] for k in a.get("initial_pass", {})}, key=lambda k: int(k[5:]))
    cols += [f"{k} start / end" for k in ks]
    for c in cols:
        table.add_column(c, justify="right")
    pct = lambda x: "-" if x is None else f"{100 * x:.1f}%"  # noqa: E731
    for a in result["arms"]:
        label = a["arm"] + (f" ({', '.join(a['set'])})" if a.get("set") else "")  # --set overrides of the run
        table.add_row(label, str(a.get("seed", 0)), pct(a["initial_accuracy"]), pct(a["final_accuracy"]),
                      f"{100 * (a['final_accuracy'] - a['initial_accuracy']):+.1f}", str(a["steps"]),
                      f"{a['sampled_tokens']:,}", pct(a["informative_share_first10"]),
                      pct(a["informative_share_all"]), pct(a["trained_informative_frac"]),
                      first_signal(a.get("informative_share_by_step")),
                      *[f"{pct(a['initial_pass'].get(k))} / {pct(a['final_pass'].get(k))}" for k in ks])
    Console(width=180).print(table)
    arms = [a for a in result["arms"] if a.get("initial_by_kind") and a.get("final_by_kind")]
    if arms:
        by_kind = Table(title="held-out greedy accuracy by kind of problem, start -> end")
        by_kind.add_column("kind")
        by_kind.add_column("problems", justify="right")
        by_kind.add_column("start", justify="right")
        for a in arms:
            by_kind.add_column(f"{a['arm']} s{a.get('seed', 0)} end", justify="right")
        for kind, start in arms[0]["initial_by_kind"].items():
            by_kind.add_row(kind, str(start["n"]), pct(start["accuracy"]),
                            *[pct(a["final_by_kind"].get(kind, {}).get("accuracy")) for a in arms])
        Console(width=180).print(by_kind)
    if result.get("predicted_informative_share") is not None:
        print(f"rlvr check predicted an informative share of {100 * result['predicted_informative_share']:.1f}% "
              f"for the GRPO defaults (G=8, T=1.0); screening's share is of screened candidates (k samples).")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "smollm2-135m-instruct"))
    ap.add_argument("--minutes", type=float, default=20.0, help="time of training steps per arm")
    ap.add_argument("--clock", choices=list(CLOCKS), default="cpu", help="what --minutes counts (see above)")
    ap.add_argument("--seed", type=int, default=0, help="train.seed of every arm (sampling and updates; the problems stay)")
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    ap.add_argument("--check", type=Path, help="the check's JSON for the GRPO defaults (its predicted share)")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-thin-signal")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every arm")
    ap.add_argument("--table", type=Path, nargs="+", help="only print one table of finished runs' JSON")
    args = ap.parse_args()
    if args.table:
        results = [json.loads(p.read_text()) for p in args.table]
        print_table({**results[0], "arms": [a for r in results for a in r["arms"]]})
        return
    args.out.mkdir(parents=True, exist_ok=True)
    cfg = load_config(RECIPE, args.set)  # the task the arms run: the recipe's, or the one --set names
    extra = [f"train.seed={args.seed}", *args.set]
    result = {"task": cfg.task.name, "params": cfg.task.params, "minutes": args.minutes, "clock": args.clock,
              "seed": args.seed, "overrides": args.set, "arms": []}
    if args.check:
        result["predicted_informative_share"] = json.loads(args.check.read_text())["informative_share"]
    initial = None
    for name in args.arms:
        arm, initial = run_arm(name, args.model, args.minutes, args.out, initial, extra, args.clock)
        result["arms"].append(arm)
        for path in [args.out / "thin_signal.json", *([args.json] if args.json else [])]:
            path.write_text(json.dumps(result, indent=2))
    print_table(result)


if __name__ == "__main__":
    main()
