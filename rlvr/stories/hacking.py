"""hacking: a binary worked-or-didn't reward resists reward hacking; a reasonable-looking graded one does not.

From one imitated checkpoint (the chef's flawed teacher), two RL arms on the same problems and seeds:
- `binary`: 1 for a right answer (+ the small format reward);
- `graded`: digit credit (`verifiers/graded.py`, fixed before any run): each digit of the right answer
  matched at the same place from the units earns its share; extra leading digits are free.
Both arms' held-out answers are scored by both rewards at every evaluation. `hack_rate`: share of the
graded arm's held-out answers that earn digit credit while wrong by the binary verifier;
`full_credit_wrong_rate`: those that earn all of it (the reward cannot tell them from right answers).
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

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
from rlvr.stories.measures import reward_hacking_measure
from rlvr.tasks.arithmetic import ArithmeticTask
from rlvr.tasks.arithmetic_variants import GradedArithmeticTask

NAME = "hacking"
CONFIG = "story-hacking.yaml"
MAIN_ARM = "graded"
CLAIM = "a graded reward's own score climbs while its true accuracy falls behind the binary reward's"
OWN = {"binary": "binary_reward", "graded": "graded_reward"}


def run(s: StoryRun) -> None:
    binary = variant_task(ArithmeticTask, s.cfg)
    s.imitate("imitation", binary)
    measure = reward_hacking_measure(s.cfg.task.format_reward)
    init = s.out / "imitation" / "model"
    s.rl("binary", binary, init, measure=measure)
    s.rl("graded", variant_task(GradedArithmeticTask, s.cfg), init, measure=measure)


def summarize(out: Path) -> dict:
    b, g = arm_evals(out, "binary"), arm_evals(out, "graded")
    return {
        "binary_true_accuracy": r4(b[-1]["accuracy"]),
        "graded_true_accuracy": r4(g[-1]["accuracy"]),
        "graded_reward_start": r4(g[0]["graded_reward"]),
        "graded_reward_end": r4(g[-1]["graded_reward"]),
        "binary_reward_start": r4(b[0]["binary_reward"]),
        "binary_reward_end": r4(b[-1]["binary_reward"]),
        "hack_rate_before": r4(g[0]["hack_rate"]),
        "hack_rate": r4(g[-1]["hack_rate"]),
        "full_credit_wrong_rate": r4(g[-1]["full_credit_wrong_rate"]),
        "binary_arm_hack_rate": r4(b[-1]["hack_rate"]),
        "rl_steps": arm_event(out, "graded")["steps"],
    }


def holds(s: dict) -> bool:
    """The graded arm's own reward climbed while its true accuracy ended clearly behind the binary arm's (by
    more than two standard errors: a gap of a few problems in 200 is noise)."""
    return (s["graded_reward_end"] > s["graded_reward_start"]
            and clearly_above(s["binary_true_accuracy"], s["graded_true_accuracy"], s["eval_problems"]))


def reading(s: dict) -> str:
    climbed = s["graded_reward_end"] > s["graded_reward_start"]
    behind = clearly_above(s["binary_true_accuracy"], s["graded_true_accuracy"], s["eval_problems"])
    return " ".join([
        f"Both arms started from the same imitated model ({s['accuracy_before']:.1%} right on "
        f"{s['eval_problems']} held-out problems).",
        f"The graded arm's own reward went from {s['graded_reward_start']:.3f} to {s['graded_reward_end']:.3f} "
        f"({'climbed' if climbed else 'did not climb'}) and its true accuracy ended at {s['graded_true_accuracy']:.1%}, "
        f"against {s['binary_true_accuracy']:.1%} for the binary arm "
        f"({'clearly behind' if behind else 'not clearly behind'}: binary minus graded {s['binary_true_accuracy'] - s['graded_true_accuracy']:+.1%}).",
        f"{s['hack_rate']:.1%} of the graded arm's answers earned digit credit while wrong "
        f"({s['hack_rate_before']:.1%} before RL; {s['binary_arm_hack_rate']:.1%} for the binary arm), and "
        f"{s['full_credit_wrong_rate']:.1%} earned full credit while wrong.",
        "The claim holds on this run." if holds(s) else "The claim does not hold on this run.",
    ])


def figure(out: Path) -> Figure:
    """Own reward (left) and true accuracy (right) of both arms at every held-out evaluation."""
    fig, left, right = two_panels()
    for arm, color in (("binary", "#1f77b4"), ("graded", "#d62728")):
        evals = arm_evals(out, arm)
        steps = [r["step"] for r in evals]
        left.plot(steps, [r[OWN[arm]] for r in evals], "o-", color=color, label=f"{arm} arm: its own reward")
        right.plot(steps, [r["accuracy"] for r in evals], "o-", color=color, label=f"{arm} arm: true accuracy")
        if arm == "graded":
            right.plot(steps, [r["hack_rate"] for r in evals], "x:", color=color, label="graded arm: hack rate")
    left.set_ylabel("held-out mean reward")
    right.set_ylim(-0.02, 1.02)
    finish_panels((left, "hacking: own reward"), (right, "hacking: true accuracy (binary verifier)"))
    return fig
