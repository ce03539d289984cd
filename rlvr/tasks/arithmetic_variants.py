"""Variants of the built-in `arithmetic` task for the demo stories (`rlvr demo --story`).

Each keeps the task's name, seed streams and held-out region, so a story's arms and the chef story draw
the very same training and held-out problems; only the teacher, the prompt or the reward differs.
- `TwoKindsArithmeticTask` (elicit): the teacher either works step by step (long, right except for the
  usual carry-dropping flaw) or answers at once (short; on problems that need a carry it usually drops it).
- `GradedArithmeticTask` (hacking): the reward is the gameable digit credit of `verifiers/graded.py`.
- `PlainArithmeticTask` (zero): the pretraining text is bare equations (`312+555=867`, some wrong: no steps,
  no tags), and the prompt shows the tags before the question, as R1-Zero's prompt told its model the format.
"""

from __future__ import annotations

import random

from rlvr.tasks.arithmetic import ArithmeticTask
from rlvr.types import Problem, Score
from rlvr.verifiers.graded import verify_graded


def answer_of(worked: str) -> str:
    """The `<answer>` of one of the teacher's worked solutions."""
    return worked.split("<answer>")[1].split("</answer>")[0]


class TwoKindsArithmeticTask(ArithmeticTask):
    """Arithmetic whose teacher answers at once `short_share` of the time (dropping every carry with
    probability `short_slip` when the problem needs one) and otherwise works step by step."""

    def __init__(self, short_share: float = 0.7, short_slip: float = 0.6, **kwargs):
        super().__init__(**kwargs)
        for key, value in (("short_share", short_share), ("short_slip", short_slip)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"task.params.{key}: must be in [0, 1], got {value}")
        self.short_share, self.short_slip = short_share, short_slip

    def needs_carry(self, problem: Problem) -> bool:
        """Whether any column carries (dropping the carries changes the answer): hard to answer at once."""
        return self.solve(problem, flawed=True) != self.solve(problem, flawed=False)

    def worked_solution(self, problem: Problem, rng: random.Random) -> tuple[str, bool]:
        if rng.random() >= self.short_share:
            return super().worked_solution(problem, rng)
        slip = self.needs_carry(problem) and rng.random() < self.short_slip
        text = f"<think></think><answer>{answer_of(self.solve(problem, flawed=slip))}</answer>"
        return text, self.verify(problem, text).correct


class GradedArithmeticTask(ArithmeticTask):
    """Arithmetic scored by the graded digit credit (`verifiers/graded.py`); `Score.correct` stays binary."""

    def verify(self, problem: Problem, text: str) -> Score:
        return verify_graded(problem, text, format_reward=self.format_reward, format_style=self.format_style)


# The format shown to the zero model: the four tags in order, nothing inside them.
TAG_HINT = "<think> </think><answer> </answer>\n"


class PlainArithmeticTask(ArithmeticTask):
    """Arithmetic whose prompt shows the tags (`TAG_HINT` + `312+555=`) and whose pretraining text is bare
    equations written by the flawed teacher (`plain_text`)."""

    def generate(self, rng: random.Random, pid: str) -> Problem:
        problem = super().generate(rng, pid)
        problem.prompt = TAG_HINT + problem.prompt
        return problem

    def plain_text(self, problem: Problem, rng: random.Random) -> tuple[str, bool]:
        """`312+555=867`: the flawed teacher's answer with no steps and no tags, and whether it is right."""
        worked, _ = self.worked_solution(problem, rng)
        answer = answer_of(worked)
        return f"{problem.meta['key']}={answer}", answer == str(problem.answer)
