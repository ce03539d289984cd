"""The `Task` interface: a source of verifiable problems that names its verifier.

Training problems are addressed by an integer index so that the run's data cursor is a single int that a
checkpoint stores and a resumed run continues from. Held-out problems are drawn from a separate stream and a
task guarantees that none of them is ever returned by `train_problem` (or used in pretraining).
"""

from __future__ import annotations

import hashlib
import random
from abc import ABC, abstractmethod

from rlvr.types import Problem, Score


def derive_seed(*parts: object) -> int:
    """A stable 63-bit seed from any parts (Python's `hash` is salted per process, this is not)."""
    digest = hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


class Task(ABC):
    """A source of problems. Subclasses set `name` and implement the three methods below."""

    name: str = "task"

    @abstractmethod
    def train_problem(self, index: int) -> Problem:
        """The training problem at position `index` of this task's (seeded, endless or cycling) stream."""

    @abstractmethod
    def eval_problems(self, n: int) -> list[Problem]:
        """`n` held-out problems, disjoint from every training problem."""

    @abstractmethod
    def verify(self, problem: Problem, text: str) -> Score:
        """Score one completion of `problem`."""

    def worked_solution(self, problem: Problem, rng: random.Random) -> tuple[str, bool]:
        """A worked completion for imitation learning and whether it is correct. Generators with a teacher
        override this; tasks without one raise."""
        raise NotImplementedError(f"task {self.name!r} has no worked-solution writer (pretraining needs one)")

    # --- feedback from training (default: none). A task whose stream depends on what it observed keeps
    # that in `state_dict()`, which checkpoints carry so a resumed run draws the same problems.
    def observe(self, problem: Problem, correct: list[bool]) -> None:
        """One scored group of `problem` (G verdicts)."""
        return None

    def stats(self) -> dict[str, float]:
        """Metrics for the trainer's per-step log."""
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        return None

    def describe(self) -> str:
        """One line for `rlvr tasks`."""
        return (self.__doc__ or self.name).strip().splitlines()[0]


class StreamWrapper(Task):
    """A task that changes `task`'s training stream (which problems it hands out, in what order) and leaves the
    rest to it: held-out problems, scoring and worked solutions are `task`'s own."""

    def __init__(self, task: Task):
        self.task, self.name = task, task.name

    def eval_problems(self, n: int | None = None) -> list[Problem]:
        return self.task.eval_problems(n)

    def verify(self, problem: Problem, text: str) -> Score:
        return self.task.verify(problem, text)

    def worked_solution(self, problem: Problem, rng: random.Random) -> tuple[str, bool]:
        return self.task.worked_solution(problem, rng)

