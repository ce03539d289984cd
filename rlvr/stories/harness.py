"""The story harness: arms from one imitated checkpoint, the same seeds, measured evaluations, summary, figure.

A story (`rlvr/stories/<name>.py`) runs its arms through a `StoryRun`:
- `imitate(arm, task, corpus)`: next-token training (from scratch or from an arm's model), saved to
  `out/<arm>/model`;
- `rl(arm, task, init)`: GRPO from a saved model with `StoryTrainer`, which adds the story measures
  (`measures.py`) to every held-out evaluation and keeps the answers.
Every arm is a run directory of its own (`metrics.jsonl`, `eval.jsonl`, `answers.jsonl`, `report.html`);
`story.jsonl` records each arm's wall time and tokens trained. The summary is computed from these files
only (`summarize` in each story), so re-reading the logs of a finished run gives the same numbers.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

from rlvr.config import Config, save_config
from rlvr.logging.metrics import MetricsLogger, read_jsonl, to_jsonable
from rlvr.logging.progress import Progress
from rlvr.logging.report import write_report
from rlvr.models.loading import compute_dtype, encode_prompt, load_policy, save_policy, stop_token_ids
from rlvr.pretrain import build_corpus, pretrain
from rlvr.rng import seed_everything
from rlvr.rollout.torch_engine import TorchEngine, inference_copy
from rlvr.stories.measures import evaluate_story
from rlvr.trainer import Trainer

STORY_LOG = "story.jsonl"
ANSWERS_FILE = "answers.jsonl"
KEEP_ANSWERS = 8  # answers kept per evaluation for the report's before/after samples


class StoryTrainer(Trainer):
    """The `Trainer` whose held-out evaluations also log the story measures (length, steps, readability and
    the story's own `measure`), and keep the first answers in `answers.jsonl`."""

    def __init__(self, *args, measure=None, **kwargs):
        super().__init__(*args, **kwargs)
        (self.run_dir / ANSWERS_FILE).unlink(missing_ok=True)  # a fresh run (stories never resume)
        self.measure = measure
        self.last_eval_step = -1

    def run_eval(self, phase: str) -> dict:
        e = self.cfg.eval
        row, answers = evaluate_story(
            self.engine, self.tokenizer, self.task, self.task.eval_problems(e.num_problems), self.encode,
            e.max_new_tokens or self.cfg.rollout.max_new_tokens, self.stop_ids, self.cfg.model.response_prefix,
            self.measure)
        self.logger.log_eval(self.step_count, {"phase": phase, **row})
        log_answers(self.run_dir, self.step_count, phase, answers)
        self.last_eval_step = self.step_count
        return row


def log_answers(run_dir: Path, step: int, phase: str, answers: list[dict]) -> None:
    with (Path(run_dir) / ANSWERS_FILE).open("a", encoding="utf-8") as f:
        for a in answers[:KEEP_ANSWERS]:
            f.write(json.dumps(to_jsonable({"step": step, "phase": phase, **a})) + "\n")


class StoryRun:
    """One story on one config and seed, written under `out`: runs arms and records what they cost."""

    def __init__(self, story: str, cfg: Config, out: str | Path, progress: bool = True):
        self.story, self.cfg, self.progress = story, cfg, progress
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.t0 = time.time()
        save_config(cfg, self.out / "config.yaml")
        (self.out / STORY_LOG).write_text("")
        self.log("start", story=story, seed=cfg.train.seed)

    def log(self, event: str, **fields) -> None:
        """Append one event row to `story.jsonl` (arm costs, the story's start and end)."""
        with (self.out / STORY_LOG).open("a", encoding="utf-8") as f:
            f.write(json.dumps(to_jsonable({"event": event, **fields})) + "\n")

    def encoder(self, tokenizer, prefix: str | None = None):
        return lambda p: encode_prompt(p, tokenizer, self.cfg.model.system_prompt, prefix)

    def imitate(self, arm: str, task, corpus=None, init: Path | None = None, steps: int | None = None,
                seed_offset: int = 0, evaluate: bool = False) -> dict:
        """Next-token training on `corpus` ((seqs, starts), default: the task's worked solutions), from a
        fresh tiny model or from the model saved at `init`, for `steps` (default `pretrain.steps`) steps.
        Saves `out/<arm>/model`; with `evaluate`, measures it on the held-out problems (logged at its step)."""
        cfg, d = self.cfg, self.out / arm
        seed = cfg.train.seed + seed_offset
        seed_everything(seed)
        model_cfg = cfg.model if init is None else dataclasses.replace(cfg.model, kind="hf", path=str(init))
        model, tokenizer = load_policy(model_cfg, seed=cfg.train.seed, master_weights=cfg.train.master_weights)
        dtype = compute_dtype(cfg.model, model)
        data_accuracy = None
        if corpus is None:
            seqs, starts, data_accuracy, _, masks = build_corpus(task, tokenizer, self.encoder(tokenizer),
                                                                 cfg.pretrain.num_examples, cfg.train.seed,
                                                                 observations=bool(cfg.task.tools))
            corpus = (seqs, starts, masks)
        steps = cfg.pretrain.steps if steps is None else steps
        pcfg = dataclasses.replace(cfg.pretrain, steps=steps, warmup_steps=min(cfg.pretrain.warmup_steps, steps // 10))
        logger = MetricsLogger(d, config=cfg.to_dict())
        (d / ANSWERS_FILE).unlink(missing_ok=True)
        save_config(dataclasses.replace(cfg, pretrain=pcfg), d / "config.yaml")
        with Progress(steps, f"{self.story}: {arm} (imitation)", enabled=self.progress) as bar:

            def on_step(step, metrics):
                if step % 10 == 0 or step == steps:
                    logger.log(step, {"phase": "pretrain", **metrics})
                    bar.update(step, {"loss": metrics["pretrain/loss"]})

            stats = pretrain(model, tokenizer, corpus, pcfg, seed=seed, on_step=on_step, compute_dtype=dtype)
        save_policy(model, tokenizer, d / "model")
        if evaluate:
            e = cfg.eval
            row, answers = evaluate_story(
                TorchEngine(inference_copy(model, dtype), tokenizer.pad_token_id), tokenizer, task, task.eval_problems(e.num_problems),
                self.encoder(tokenizer), e.max_new_tokens or cfg.rollout.max_new_tokens, stop_token_ids(tokenizer),
                None)
            logger.log_eval(steps, {"phase": "pretrain", **row})
            log_answers(d, steps, "pretrain", answers)
        logger.close()
        write_report(d)
        result = {"seconds": stats["seconds"], "tokens": stats["tokens"], "steps": steps,
                  "data_accuracy": data_accuracy}
        self.log("arm", arm=arm, kind="imitation", **result)
        return result

    def rl(self, arm: str, task, init: Path, measure=None, response_prefix: str | None = None) -> dict:
        """GRPO (the config's algorithm) from the model saved at `init`, in `out/<arm>`; evaluated at step 0,
        every `eval.every` steps and at the end."""
        cfg = self.cfg
        rl_cfg = dataclasses.replace(
            cfg,
            model=dataclasses.replace(cfg.model, kind="hf", path=str(init), response_prefix=response_prefix),
            train=dataclasses.replace(cfg.train, out_dir=str(self.out / arm)),
            eval=dataclasses.replace(cfg.eval, every=cfg.eval.every or cfg.train.steps),
        )
        t0 = time.time()
        trainer = StoryTrainer(rl_cfg, self.out / arm, task=task, measure=measure)
        trainer.run(progress=self.progress)
        if trainer.last_eval_step != trainer.step_count:
            trainer.run_eval("final")
        trainer.logger.close()
        write_report(self.out / arm)
        result = {"seconds": time.time() - t0, "tokens": trainer.sampled_tokens, "steps": trainer.step_count}
        self.log("arm", arm=arm, kind="rl", **result)
        return result

    def finish(self) -> float:
        """Record the story's wall time (everything up to here, the summary and report come after)."""
        wall = time.time() - self.t0
        self.log("done", wall_seconds=wall)
        return wall


# --- reading a finished story's files -----------------------------------------------------------------------


def story_events(out: Path) -> list[dict]:
    return read_jsonl(Path(out) / STORY_LOG)


def arm_event(out: Path, arm: str) -> dict:
    """The `arm` row of `story.jsonl` for `arm` (its seconds and tokens)."""
    rows = [r for r in story_events(out) if r.get("event") == "arm" and r.get("arm") == arm]
    if not rows:
        raise ValueError(f"{Path(out) / STORY_LOG}: no record of arm {arm!r}; did the story finish?")
    return rows[-1]


def two_panels():
    """(figure, left axes, right axes): the side-by-side figure the two-panel stories draw."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.6, 3.4))
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.16, top=0.88, wspace=0.25)
    return fig, fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)


def finish_panels(*titled) -> None:
    """Label each (axes, title) pair the same way: RL steps on x, a title, a grid and a legend."""
    for ax, title in titled:
        ax.set_xlabel("RL step")
        ax.set_title(title, fontsize=11)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)


def arm_evals(out: Path, arm: str) -> list[dict]:
    """The held-out evaluations of one arm, in step order."""
    rows = read_jsonl(Path(out) / arm / "eval.jsonl")
    if not rows:
        raise ValueError(f"{Path(out) / arm / 'eval.jsonl'}: no evaluations")
    return sorted(rows, key=lambda r: r["step"])


def arm_answers(out: Path, arm: str) -> list[dict]:
    return read_jsonl(Path(out) / arm / ANSWERS_FILE)


def common_summary(out: Path, story: str, main_arm: str) -> dict:
    """The keys every story has, from its logs: the main arm's first and last evaluations."""
    out = Path(out)
    evals = arm_evals(out, main_arm)
    start = next(r for r in story_events(out) if r.get("event") == "start")
    done = [r for r in story_events(out) if r.get("event") == "done"]
    return {
        "story": story,
        "seed": start["seed"],
        "wall_seconds": round(done[-1]["wall_seconds"], 1) if done else None,
        "eval_problems": evals[-1]["n"],
        "accuracy_before": round(evals[0]["accuracy"], 4),
        "accuracy_after": round(evals[-1]["accuracy"], 4),
    }


def r4(x: float | None) -> float | None:
    return None if x is None else round(float(x), 4)


def variant_task(cls, cfg: Config):
    """A task of class `cls` (an `arithmetic` variant) built from the `task` section of `cfg`."""
    t = cfg.task
    try:
        return cls(difficulty=t.difficulty, flaw_rate=t.flaw_rate, seed=t.seed, eval_size=cfg.eval.num_problems,
                   format_reward=t.format_reward, blind_spot=t.blind_spot, **t.params)
    except TypeError as e:
        raise ValueError(f"task.params: {e}") from e


def clearly_above(a: float, b: float, n: int) -> bool:
    """Whether rate `a` exceeds rate `b` by more than two standard errors of their difference, each measured
    on `n` held-out problems: sqrt(a(1-a)/n + b(1-b)/n), floored at one problem in n so that 0 vs 0 is not
    a difference."""
    se = math.sqrt(a * (1 - a) / n + b * (1 - b) / n)
    return a - b > 2 * max(se, 1 / n)
