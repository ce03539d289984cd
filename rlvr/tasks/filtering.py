"""Skip training problems the current policy always (or never) solves: their groups have equal rewards,
hence zero advantage, and cost a whole group of samples for nothing.

`SolvedFilter` wraps any task. The trainer reports each scored group with `observe(problem, correct)`
(a list of G booleans); a problem whose last group was all correct ("always") or all wrong ("never") is
skipped when the stream reaches it again. This matters for tasks whose problems repeat (dataset epochs);
fresh generator problems are rarely seen twice. Skipping shifts the stream, so `train_problem(i)` depends
on what was observed: `state_dict()` / `load_state_dict()` carry that into checkpoints.
"""

from __future__ import annotations

import logging
from typing import Any

from rlvr.tasks.base import StreamWrapper, Task
from rlvr.types import Problem

logger = logging.getLogger(__name__)

MODES = ("always", "never", "both")
MAX_CONSECUTIVE_SKIPS = 1000


def problem_key(problem: Problem) -> str:
    """What identifies a problem across visits: its task and `meta["key"]` (else its prompt)."""
    return f"{problem.task}\x00{problem.meta.get('key', problem.prompt)}"


class SolvedFilter(StreamWrapper):
    """`task` without the problems whose last observed group was all solved / all failed."""

    def __init__(self, task: Task, mode: str = "both"):
        if mode not in MODES:
            raise ValueError(f"task.filter_solved: {mode!r} is not one of none, {', '.join(MODES)}")
        super().__init__(task)
        self.mode = mode
        self.verdicts: dict[str, str] = {}  # key -> "always" | "never"
        self.offset = 0  # stream positions skipped so far
        self.skipped = {"always": 0, "never": 0}

    def describe(self) -> str:
        return f"{self.task.describe()} (skipping problems {self.mode} solved)"

    def observe(self, problem: Problem, correct: list[bool]) -> None:
        """Record one scored group of `problem`: all correct, all wrong, or mixed (forgets the verdict)."""
        key = problem_key(problem)
        if correct and all(correct):
            self.verdicts[key] = "always"
        elif correct and not any(correct):
            self.verdicts[key] = "never"
        else:
            self.verdicts.pop(key, None)

    def _skips(self, problem: Problem) -> str | None:
        verdict = self.verdicts.get(problem_key(problem))
        return verdict if verdict and self.mode in (verdict, "both") else None

    def train_problem(self, index: int) -> Problem:
        for _ in range(MAX_CONSECUTIVE_SKIPS):
            problem = self.task.train_problem(index + self.offset)
            verdict = self._skips(problem)
            if verdict is None:
                return problem
            self.offset += 1
            self.skipped[verdict] += 1
            total = sum(self.skipped.values())
            if total & (total - 1) == 0:  # log at 1, 2, 4, 8, ... skips
                logger.info(
                    "filter_solved: skipped %d always-solved and %d never-solved problems so far",
                    self.skipped["always"],
                    self.skipped["never"],
                )
        logger.warning(
            "filter_solved: %d problems in a row were filtered; training on one anyway", MAX_CONSECUTIVE_SKIPS
        )
        return problem

    def stats(self) -> dict[str, float]:
        """Metrics for the trainer's log."""
        return {
            "filter/skipped_always": self.skipped["always"],
            "filter/skipped_never": self.skipped["never"],
            "filter/known": len(self.verdicts),
        }

    def state_dict(self) -> dict[str, Any]:
        return {"verdicts": dict(self.verdicts), "offset": self.offset, "skipped": dict(self.skipped)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.verdicts, self.offset = dict(state["verdicts"]), int(state["offset"])
        self.skipped = dict(state["skipped"])
