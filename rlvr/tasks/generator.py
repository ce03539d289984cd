"""Shared machinery for built-in generated tasks: seeded streams, held-out exclusion, the flawed teacher."""

from __future__ import annotations

import random
from abc import abstractmethod

from rlvr.tasks.base import Task, derive_seed
from rlvr.types import Problem
from rlvr.verifiers.extract import checked_format_style


class GeneratedTask(Task):
    """A task whose problems come from a seeded generator.

    A fixed share of all problems is held out, chosen by a hash of the problem's key; evaluation draws
    its problems from that region in its own stream, and training index `i` draws from
    `Random(seed, "train", i)` and redraws any problem in the region, so evaluation problems never reach
    training or pretraining, whatever `eval_size` either side used. `flaw_rate` is the share of worked solutions in which the teacher follows its systematic
    mistake; those mistakes all fall in a visible `blind_spot` (a share of problems, e.g. the biggest numbers).
    """

    def __init__(self, difficulty: int = 3, flaw_rate: float = 0.3, seed: int = 0, eval_size: int = 200,
                 format_reward: float = 0.1, blind_spot: float = 0.5, template: str | None = None,
                 held_out_share: float | None = None, format_style: str = "think_answer"):
        if not 0.0 <= flaw_rate <= blind_spot <= 1.0:
            raise ValueError(f"task.flaw_rate ({flaw_rate}) must be between 0 and task.blind_spot ({blind_spot}), "
                             "which must be at most 1: the teacher's mistakes all fall inside its blind spot")
        self.difficulty = difficulty
        self.flaw_rate = flaw_rate
        self.blind_spot = blind_spot
        self.seed = seed
        self.eval_size = eval_size
        self.format_reward = format_reward
        self.format_style = checked_format_style(format_style)
        if held_out_share is not None:  # task.params.held_out_share: small problem spaces hold out more
            if not 0.0 < held_out_share < 1.0:
                raise ValueError(f"task.params.held_out_share: must be in (0, 1), got {held_out_share}")
            self.HELD_OUT_SHARE = held_out_share
        self.template = template  # chat models: the user message, e.g. "{question} Answer in <answer></answer>."
        if template is not None and "{question}" not in template:
            raise ValueError(f"task.template: must contain {{question}}, got {template!r}")
        self._eval: list[Problem] | None = None

    # --- subclasses ---------------------------------------------------------------------------------
    @abstractmethod
    def generate(self, rng: random.Random, pid: str) -> Problem:
        """One fresh problem drawn with `rng`; `problem.meta["key"]` identifies it for de-duplication."""

    @abstractmethod
    def solve(self, problem: Problem, flawed: bool) -> str:
        """The teacher's worked completion; `flawed=True` follows the task's systematic mistake."""

    @abstractmethod
    def in_blind_spot(self, problem: Problem) -> bool:
        """Whether `problem` lies in the teacher's blind spot: a visible property of the problem (big
        numbers) that covers a `blind_spot` share of problems."""

    # --- Task ---------------------------------------------------------------------------------------
    # One problem in HELD_OUT_SHARE is held out, chosen by a hash of its key. The held-out region is fixed
    # by (task, seed) alone, so how many problems an evaluation asks for never changes what training sees.
    HELD_OUT_SHARE = 1 / 16

    def is_held_out(self, key: str) -> bool:
        return derive_seed(self.name, self.seed, "held-out", key) % 1_000_000 < self.HELD_OUT_SHARE * 1_000_000

    def eval_problems(self, n: int | None = None) -> list[Problem]:
        n = self.eval_size if n is None else n
        if n > self.eval_size:
            raise ValueError(f"asked for {n} held-out problems but the task holds out {self.eval_size}")
        if self._eval is None:
            rng = random.Random(derive_seed(self.name, self.seed, "eval"))
            seen: set[str] = set()
            problems = []
            for _ in range(max(20_000, int(self.eval_size / self.HELD_OUT_SHARE) * 20)):
                p = self.generate(rng, f"{self.name}-eval-{len(problems)}")
                key = p.meta["key"]
                if key not in seen and self.is_held_out(key):
                    seen.add(key)
                    problems.append(self._render(p))
                    if len(problems) == self.eval_size:
                        break
            if len(problems) < self.eval_size:
                raise ValueError(
                    f"task {self.name} at task.difficulty={self.difficulty} has too few distinct problems to hold "
                    f"out eval.num_problems={self.eval_size} (found {len(problems)}; one problem in "
                    f"{round(1 / self.HELD_OUT_SHARE)} is held out): raise task.difficulty or lower eval.num_problems"
                )
            self._eval = problems
            self._eval_keys = seen
        return self._eval[:n]

    def held_out_keys(self) -> set[str]:
        """Keys of the evaluation problems (all of them lie in the held-out region)."""
        self.eval_problems()
        return self._eval_keys

    def train_problem(self, index: int) -> Problem:
        rng = random.Random(derive_seed(self.name, self.seed, "train", index))
        for _ in range(1000):
            p = self.generate(rng, f"{self.name}-train-{index}")
            if not self.is_held_out(p.meta["key"]):
                return self._render(p)
        raise RuntimeError(f"task {self.name}: could not draw a problem outside the held-out set")

    def _render(self, p: Problem) -> Problem:
        """Apply `template` to the question a chat model sees (the raw prompt stays for tiny models)."""
        if self.template is not None:
            p.meta["question"] = self.template.format(question=p.meta.get("question", p.prompt))
        return p

    def worked_solution(self, problem: Problem, rng: random.Random) -> tuple[str, bool]:
        """The flawed teacher: inside its blind spot it follows its wrong procedure with probability
        `flaw_rate / blind_spot` (so `flaw_rate` of all solutions are flawed), elsewhere it is right.
        Inside the blind spot the wrong procedure is the teacher's *usual* behaviour, so a student that
        imitates it (and decodes its most likely answer) makes the mistake there every time."""
        flawed = self.in_blind_spot(problem) and rng.random() < self.flaw_rate / max(self.blind_spot, 1e-9)
        text = self.solve(problem, flawed)
        return text, self.verify(problem, text).correct
