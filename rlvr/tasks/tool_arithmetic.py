"""Built-in `tool_arithmetic`: 3-digit by 2-digit multiplication (`347*26=`), hard to do in one's head, easy
with a `calculator` (the tools story, `rlvr demo --story tools`).

The teacher answers at once `<think>347*26</think><answer>9022</answer>` (the student must multiply in its
head), or, in `tool_share` of its solutions, calls the calculator in the tag form of rlvr.environments:
`<think><call>calculator 347*26</call><result>9022</result></think><answer>9022</answer>`, where
`<result>...</result>` is the tool's observation (the environment writes it; imitation does not train on it).
The teacher is always right (`flaw_rate` is not used); the task runs as episodes when `task.tools` lists
`calculator`, and as plain single-turn answers otherwise (a call then gets no answer).
"""

from __future__ import annotations

import random

from rlvr.tasks.generator import GeneratedTask
from rlvr.types import Problem, Score
from rlvr.verifiers.arithmetic import verify_integer


class ToolArithmeticTask(GeneratedTask):
    """Multiplication of a `difficulty`-digit by a `multiplier_digits`-digit number; some worked solutions call a calculator."""

    name = "tool_arithmetic"

    def __init__(self, tool_share: float = 0.2, multiplier_digits: int = 2, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= tool_share <= 1.0:
            raise ValueError(f"task.params.tool_share: must be in [0, 1], got {tool_share}")
        if multiplier_digits < 1:
            raise ValueError(f"task.params.multiplier_digits: must be >= 1, got {multiplier_digits}")
        self.tool_share = tool_share
        self.multiplier_digits = multiplier_digits

    def generate(self, rng: random.Random, pid: str) -> Problem:
        a = rng.randint(10 ** (self.difficulty - 1), 10**self.difficulty - 1)
        b = rng.randint(10 ** (self.multiplier_digits - 1), 10**self.multiplier_digits - 1)
        return Problem(id=pid, prompt=f"{a}*{b}=", answer=a * b, task=self.name,
                       meta={"key": f"{a}*{b}", "question": f"What is {a} times {b}?", "a": a, "b": b})

    def in_blind_spot(self, problem: Problem) -> bool:
        return False

    def solve(self, problem: Problem, flawed: bool = False, tool: bool = False) -> str:
        a, b = problem.meta["a"], problem.meta["b"]
        if tool:
            return f"<think><call>calculator {a}*{b}</call><result>{a * b}</result></think><answer>{a * b}</answer>"
        return f"<think>{a}*{b}</think><answer>{a * b}</answer>"

    def worked_solution(self, problem: Problem, rng: random.Random) -> tuple[str, bool]:
        text = self.solve(problem, tool=rng.random() < self.tool_share)
        return text, self.verify(problem, text).correct

    def verify(self, problem: Problem, text: str) -> Score:
        return verify_integer(problem, text, format_reward=self.format_reward, format_style=self.format_style)
