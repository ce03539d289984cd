"""Built-in `countdown`: reach a target from given numbers with + - * / (any valid expression is accepted).

Prompt: `3 7 25>46:` (numbers, then the target). Worked solution: the operations one at a time, then the
whole expression: `<think>25+3=28 28+7=35</think><answer>(25+3)+7</answer>`.
The flawed teacher mis-orders operations: when the first number shown is in the top `blind_spot` share of
its range, it usually writes the chain without the parentheses it needs (`12+3*4` for "12+3=15, 15*4=60"), which
standard precedence evaluates differently.
"""

from __future__ import annotations

import random

from rlvr.tasks.generator import GeneratedTask
from rlvr.types import Problem, Score
from rlvr.verifiers.countdown import verify_countdown

PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}


class CountdownTask(GeneratedTask):
    """Reach the target from the given numbers with + - * / (difficulty = how many numbers)."""

    name = "countdown"

    def __init__(self, max_number: int = 20, **kwargs):
        super().__init__(**kwargs)
        if self.difficulty < 2:
            raise ValueError("task.difficulty: countdown needs at least 2 numbers")
        self.max_number = max_number

    def generate(self, rng: random.Random, pid: str) -> Problem:
        for _ in range(1000):
            numbers = [rng.randint(1, self.max_number) for _ in range(self.difficulty)]
            value, chain = numbers[0], []
            ok = True
            for x in numbers[1:]:
                op = rng.choice("+-*/")
                if op == "/" and (x == 0 or value % x):
                    op = rng.choice("+*")
                nxt = {"+": value + x, "-": value - x, "*": value * x, "/": value // x if x else 0}[op]
                if nxt <= 0 or nxt > 999:
                    ok = False
                    break
                chain.append((value, op, x, nxt))
                value = nxt
            if ok:
                break
        shown = sorted(numbers)
        rng.shuffle(shown)
        key = f"{' '.join(map(str, sorted(numbers)))}>{value}"
        return Problem(
            id=pid,
            prompt=f"{' '.join(map(str, shown))}>{value}:",
            answer={"target": value, "numbers": numbers},
            task=self.name,
            meta={"key": key, "chain": chain,
                  "question": f"Using the numbers {', '.join(map(str, shown))} at most once each and + - * /, "
                              f"write an expression equal to {value}."},
        )

    def in_blind_spot(self, problem: Problem) -> bool:
        first = int(problem.prompt.split()[0])  # uniform over 1..max_number
        return first > self.max_number - round(self.blind_spot * self.max_number)

    def solve(self, problem: Problem, flawed: bool) -> str:
        chain = problem.meta["chain"]
        steps = [f"{a}{op}{b}={c}" for a, op, b, c in chain]
        expr, prec = str(chain[0][0]), 3
        for _, op, b, _ in chain:
            # Left-to-right chains only need brackets when a lower-precedence prefix meets * or /.
            if not flawed and prec < PRECEDENCE[op]:
                expr = f"({expr})"
            expr = f"{expr}{op}{b}"
            prec = PRECEDENCE[op]
        return f"<think>{' '.join(steps)}</think><answer>{expr}</answer>"

    def verify(self, problem: Problem, text: str) -> Score:
        return verify_countdown(problem, text, format_reward=self.format_reward, format_style=self.format_style)
