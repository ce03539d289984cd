"""zero (R1-Zero): pure RL from a model never shown worked solutions; accurate but wonky reasoning?

Arms, on the same problems and seeds:
- `zero_imitation` -> `zero`: next-token training on plain text of the domain only (bare equations from the
  flawed teacher, `312+555=867`, no steps, no tags), then RL with the chef's reward. As R1-Zero's prompt told
  its model the format, the prompt shows the four tags before the question and the reply is primed with
  `<think>`; nothing else.
- `chef_imitation` -> `chef`: the chef story (worked solutions imitated, then RL), for the readability baseline.
`readability` (defined in `verifiers/steps.py` before any run): the share of reasoning items inside `<think>`
that are valid steps in the documented step format; None when there is no reasoning to read.
"""

from __future__ import annotations

import random
from pathlib import Path

from matplotlib.figure import Figure

from rlvr.logging.metrics import read_jsonl
from rlvr.models.loading import load_policy
from rlvr.stories.harness import (
    StoryRun,
    arm_evals,
    arm_event,
    clearly_above,
    finish_panels,
    r4,
    two_panels,
    variant_task,
)
from rlvr.tasks.arithmetic import ArithmeticTask
from rlvr.tasks.arithmetic_variants import PlainArithmeticTask

NAME = "zero"
CONFIG = "story-zero.yaml"
MAIN_ARM = "zero"
CLAIM = ("pure RL from plain text finds the format and climbs in accuracy, with less readable reasoning "
         "than imitated-then-RL")
PRIMED = "<think>"


def plain_corpus(task: PlainArithmeticTask, tokenizer, n: int, seed: int) -> tuple[list, list, float]:
    """`n` bare equations as training text (loss on every token after BOS) and the share that are right."""
    rng = random.Random(seed)
    seqs, starts, right = [], [], 0
    for i in range(n):
        text, ok = task.plain_text(task.train_problem(i), rng)
        seqs.append([tokenizer.bos_token_id] + tokenizer(text, add_special_tokens=False)["input_ids"]
                    + [tokenizer.eos_token_id])
        starts.append(1)
        right += ok
    return seqs, starts, right / max(n, 1)


def run(s: StoryRun) -> None:
    cfg = s.cfg
    zero_task = variant_task(PlainArithmeticTask, cfg)
    _, tokenizer = load_policy(cfg.model, seed=cfg.train.seed)
    seqs, starts, accuracy = plain_corpus(zero_task, tokenizer, cfg.pretrain.num_examples, cfg.train.seed)
    s.log("data", data_accuracy=accuracy)
    s.imitate("zero_imitation", zero_task, corpus=(seqs, starts))
    s.rl("zero", zero_task, s.out / "zero_imitation" / "model", response_prefix=PRIMED)
    chef_task = variant_task(ArithmeticTask, cfg)
    s.imitate("chef_imitation", chef_task)
    s.rl("chef", chef_task, s.out / "chef_imitation" / "model")


def summarize(out: Path) -> dict:
    zero, chef = arm_evals(out, "zero"), arm_evals(out, "chef")
    data = [r for r in read_jsonl(Path(out) / "story.jsonl") if r.get("event") == "data"][-1]
    return {
        "plain_text_accuracy": r4(data["data_accuracy"]),
        "format_rate_before": r4(zero[0]["format_rate"]),
        "format_rate_after": r4(zero[-1]["format_rate"]),
        "readability": r4(zero[-1]["readability"]),
        "chef_readability": r4(chef[-1]["readability"]),
        "reasoning_items": zero[-1]["reasoning_items"],
        "chef_reasoning_items": chef[-1]["reasoning_items"],
        "length_after": r4(zero[-1]["length"]),
        "chef_accuracy_before": r4(chef[0]["accuracy"]),
        "chef_accuracy_after": r4(chef[-1]["accuracy"]),
        "rl_steps": arm_event(out, "zero")["steps"],
    }


def _pct(x: float | None) -> str:
    return "undefined (no reasoning written)" if x is None else f"{x:.1%}"


def holds(s: dict) -> bool:
    """Most answers have the format after RL, accuracy rose clearly (two standard errors), and the reasoning
    reads worse than the chef's."""
    wonky = s["readability"] is not None and s["chef_readability"] is not None and s["readability"] < s["chef_readability"]
    return (s["format_rate_after"] >= 0.5 and clearly_above(s["accuracy_after"], s["accuracy_before"], s["eval_problems"])
            and wonky)


def reading(s: dict) -> str:
    found = s["format_rate_after"] >= 0.5
    return " ".join([
        f"The zero model read only bare equations ({s['plain_text_accuracy']:.1%} of them right).",
        f"Before RL {s['format_rate_before']:.1%} of its held-out greedy answers had the format and "
        f"{s['accuracy_before']:.1%} were right; after {s['rl_steps']} RL steps {s['format_rate_after']:.1%} had the "
        f"format ({'found' if found else 'not found'}) and {s['accuracy_after']:.1%} were right.",
        f"Readability of its reasoning: {_pct(s['readability'])} of {s['reasoning_items']} reasoning items are valid "
        f"steps, against {_pct(s['chef_readability'])} of {s['chef_reasoning_items']} for the chef's imitated-then-RL "
        f"model ({s['chef_accuracy_after']:.1%} right).",
        "The claim holds on this run." if holds(s) else "The claim does not hold on this run.",
    ])


def figure(out: Path) -> Figure:
    """Format rate and accuracy of both arms (left) and readability (right) at every evaluation."""
    fig, left, right = two_panels()
    for arm, color in (("zero", "#d62728"), ("chef", "#1f77b4")):
        evals = arm_evals(out, arm)
        steps = [r["step"] for r in evals]
        left.plot(steps, [r["accuracy"] for r in evals], "o-", color=color, label=f"{arm}: accuracy")
        left.plot(steps, [r["format_rate"] for r in evals], "s:", color=color, label=f"{arm}: format rate")
        read = [float("nan") if r["readability"] is None else r["readability"] for r in evals]
        right.plot(steps, read, "o-", color=color, label=f"{arm}: readability")
    finish_panels((left, "zero vs chef: format and accuracy"), (right, "readability of the reasoning"))
    return fig
