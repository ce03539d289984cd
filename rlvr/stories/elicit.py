"""elicit: RL makes the reasoning the model already knows the default, and answers get longer.

The imitation corpus mixes two kinds of solutions (`TwoKindsArithmeticTask`): worked step by step (long,
right but for the usual flaw) and answered at once (short, usually wrong when a carry is needed), the short
kind the more common. The imitated model knows both; greedy decoding picks the commoner. RL uses the chef's
reward (binary correctness + the small format reward): nothing rewards length or steps. Measured at every
evaluation: held-out accuracy, the share of answers that show worked steps, and the mean response length.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from rlvr.logging.metrics import read_jsonl
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
from rlvr.tasks.arithmetic_variants import TwoKindsArithmeticTask

NAME = "elicit"
CONFIG = "story-elicit.yaml"
MAIN_ARM = "rl"
CLAIM = ("RL turns the worked (long) solutions the imitated model already knows into its default, "
         "with nothing rewarding length or steps")


def run(s: StoryRun) -> None:
    task = variant_task(TwoKindsArithmeticTask, s.cfg)
    imitation = s.imitate("imitation", task)
    s.log("data", data_accuracy=imitation["data_accuracy"])
    s.rl("rl", task, s.out / "imitation" / "model")


def summarize(out: Path) -> dict:
    evals = arm_evals(out, "rl")
    first, last = evals[0], evals[-1]
    data = [r for r in read_jsonl(Path(out) / "story.jsonl") if r.get("event") == "data"][-1]
    return {
        "data_accuracy": r4(data["data_accuracy"]),
        "steps_share_before": r4(first["steps_share"]),
        "steps_share_after": r4(last["steps_share"]),
        "length_before": r4(first["length"]),
        "length_after": r4(last["length"]),
        "rl_steps": arm_event(out, "rl")["steps"],
    }


def holds(s: dict) -> bool:
    """Most answers show worked steps after RL (more than before), they are longer, and accuracy rose clearly
    (two standard errors)."""
    return (s["steps_share_after"] > max(0.5, s["steps_share_before"]) and s["length_after"] > s["length_before"]
            and clearly_above(s["accuracy_after"], s["accuracy_before"], s["eval_problems"]))


def reading(s: dict) -> str:
    up = s["steps_share_after"] > max(0.5, s["steps_share_before"])
    longer = s["length_after"] > s["length_before"]
    return " ".join([
        f"After imitation, {s['steps_share_before']:.1%} of held-out greedy answers showed worked steps "
        f"(mean {s['length_before']:.1f} tokens) and {s['accuracy_before']:.1%} were right.",
        f"After {s['rl_steps']} RL steps on the correctness reward, {s['steps_share_after']:.1%} showed steps "
        f"(mean {s['length_after']:.1f} tokens: {'longer' if longer else 'not longer'}) and "
        f"{s['accuracy_after']:.1%} were right.",
        "The worked kind became the default and accuracy rose: the claim holds on this run." if holds(s)
        else "The claim does not hold on this run: " + ("the worked kind did not become the default." if not up
                                                         else "answers did not get longer." if not longer
                                                         else "accuracy did not rise."),
    ])


def figure(out: Path) -> Figure:
    """Accuracy and worked-step share (left) and mean length (right) at every evaluation."""
    evals = arm_evals(out, "rl")
    steps = [r["step"] for r in evals]
    fig, left, right = two_panels()
    left.plot(steps, [r["accuracy"] for r in evals], "o-", label="held-out accuracy")
    left.plot(steps, [r["steps_share"] for r in evals], "s-", label="share showing worked steps")
    left.set_ylim(-0.02, 1.02)
    right.plot(steps, [r["length"] for r in evals], "o-", color="#2ca02c", label="mean answer length")
    right.set_ylabel("tokens")
    finish_panels((left, "elicit: accuracy and worked steps"), (right, "elicit: response length"))
    return fig
