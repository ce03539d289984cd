"""Built-in `arithmetic`: multi-digit addition and multiplication, worked digit by digit.

Prompt: `347+285=`. Worked solution (least significant digit first, carries written out):
`<think>7+5=12 4+8+1=13 3+2+1=6</think><answer>632</answer>`. Multiplication uses a one-digit multiplier:
`347*6=` -> `<think>7*6=42 4*6+4=28 3*6+2=20</think><answer>2082</answer>`.
The flawed teacher gets careless with big numbers: when the first number is in the top `blind_spot` share
of its range, it usually drops every carry (`4+8=12`, writes the last digit, never carries), and overall
`flaw_rate` of its solutions are flawed. Because the blind spot is visible in the problem and the mistake is
the teacher's usual behaviour there, a student that imitates it copies the mistake exactly there.
"""

from __future__ import annotations

import random

from rlvr.tasks.generator import GeneratedTask
from rlvr.types import Problem, Score
from rlvr.verifiers.arithmetic import verify_integer


class ArithmeticTask(GeneratedTask):
    """Multi-digit addition and multiplication with digit-by-digit worked solutions (difficulty = digits)."""

    name = "arithmetic"

    def __init__(self, ops: tuple[str, ...] | list[str] = ("+",), **kwargs):
        super().__init__(**kwargs)
        bad = [op for op in ops if op not in ("+", "*")]
        if bad or not ops:
            raise ValueError(f"task.params.ops: {bad or ops!r} not allowed; use a list of '+' and '*'")
        self.ops = tuple(ops)

    def _number(self, rng: random.Random, digits: int) -> int:
        return rng.randint(10 ** (digits - 1), 10**digits - 1) if digits > 1 else rng.randint(0, 9)

    def generate(self, rng: random.Random, pid: str) -> Problem:
        op = rng.choice(self.ops)
        a = self._number(rng, self.difficulty)
        b = self._number(rng, self.difficulty if op == "+" else 1)
        answer = a + b if op == "+" else a * b
        question = f"{a}{op}{b}"
        return Problem(
            id=pid,
            prompt=f"{question}=",
            answer=answer,
            task=self.name,
            meta={"key": question, "question": f"What is {a} {'plus' if op == '+' else 'times'} {b}?",
                  "a": a, "b": b, "op": op},
        )

    def blind_spot_threshold(self) -> int:
        """First operands at or above this value are in the teacher's blind spot."""
        lo, hi = (10 ** (self.difficulty - 1), 10**self.difficulty - 1) if self.difficulty > 1 else (0, 9)
        return hi + 1 - round(self.blind_spot * (hi - lo + 1))

    def in_blind_spot(self, problem: Problem) -> bool:
        return problem.meta["a"] >= self.blind_spot_threshold()

    def solve(self, problem: Problem, flawed: bool) -> str:
        a, b, op = problem.meta["a"], problem.meta["b"], problem.meta["op"]
        da = [int(c) for c in reversed(str(a))]
        db = [int(c) for c in reversed(str(b))]
        steps, digits, carry = [], [], 0
        for i, x in enumerate(da):
            if op == "+":
                y = db[i] if i < len(db) else 0
                total = x + y + carry
                steps.append(f"{x}+{y}+{carry}={total}" if carry else f"{x}+{y}={total}")
            else:
                y = db[0]
                total = x * y + carry
                steps.append(f"{x}*{y}+{carry}={total}" if carry else f"{x}*{y}={total}")
            digits.append(total % 10)
            carry = 0 if flawed else total // 10
        answer = (str(carry) if carry else "") + "".join(str(d) for d in reversed(digits))
        answer = answer.lstrip("0") or "0"
        return f"<think>{' '.join(steps)}</think><answer>{answer}</answer>"

    def verify(self, problem: Problem, text: str) -> Score:
        return verify_integer(problem, text, format_reward=self.format_reward, format_style=self.format_style)
