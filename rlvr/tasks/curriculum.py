"""Curriculum by measured pass rate: a generator's difficulty moves so that training groups keep a reward
spread, while held-out problems are always drawn at the target difficulty.

`PassRateCurriculum` wraps one task per difficulty level (built by `make(level)`). The trainer reports every
scored problem with `observe(problem, correct)` (its verdicts, not chosen by their outcome: with prompt screening,
a candidate's screening samples only); after each `window` problems of the current level:
- informative share below `low`: the level moves one step away from the failure, easier when the pooled pass
  rate is below 1/2 (mostly wrong), harder otherwise. The share is that of groups of `group_size` (neither all
  right nor all wrong), estimated from the verdicts however many there are per problem
  (rlvr.algorithms.informative): a screen of 4 samples is mixed less often than a group of 8 of the same
  problem, so counting mixed screens would hold the level down;
- else, when the level is not the target, it moves one step toward it (the signal is there: try the goal).
A level whose last window was too easy (share below `low`, mostly right) is outgrown: the level never moves
back down into it, it stays where it is instead. Without that, a model that has mastered level L but not yet
L+1 goes back and forth between them, spending half its steps on groups that are all right.
The levels visited are a ladder (by default every one from the lowest to the highest): toward a reasoning-gym
task set beyond its generator's levels, each level is held to the target in the fields the task sets (a field
harder than the target's takes its value) and a level that comes out the same as a lower one is left off
(rlvr.tasks.registry `toward`); a move goes to the next level on the ladder.
Training index `i` is drawn from the current level's stream; a problem whose key is one of the target's
held-out problems is redrawn further along, so evaluation problems never reach training at any level.
At the lowest level a window with too little signal that is mostly wrong has nowhere easier to go: the level
stays, and after `STUCK_WINDOWS` such windows in a row the run is warned once (`curriculum/stuck_windows` counts
them). It happened on chain_sum when the policy collapsed into copying the first number: every group all right
or all wrong, no gradient, 512 of 520 steps at level 0 (README, "Is there a signal?").
The level, the window so far and the outgrown levels are the task's `state_dict`, which checkpoints carry: a
resumed run draws the same problems.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Collection, Sequence

from rlvr.algorithms.informative import informative_share_of_groups
from rlvr.tasks.base import Task
from rlvr.types import Problem, Score

REDRAW_STRIDE = 2**40
# windows in a row at the lowest level with too little signal and mostly wrong, after which the run is told
STUCK_WINDOWS = 4
logger = logging.getLogger(__name__)


def too_easy(share: float, pass_rate: float, low: float) -> bool:
    """A window whose groups are mostly all right: below the band, and mostly solved."""
    return share < low and pass_rate >= 0.5


def next_level(level: int, target: int, share: float, pass_rate: float, low: float, lowest: int,
               highest: int, outgrown: Collection[int] = ()) -> int:
    """The level after a window with this informative `share` and mean `pass_rate` (see the module doc);
    `outgrown`: levels last found too easy, which a move down does not enter."""
    if share < low:
        step = 1 if too_easy(share, pass_rate, low) else -1
        if step < 0 and level - 1 in outgrown:
            step = 0  # the easier level has nothing left to teach: stay
    else:
        step = (target > level) - (target < level)
    return min(highest, max(lowest, level + step))


class PassRateCurriculum(Task):
    """`make(level)` at a level that follows the measured informative share; held-out at `target`."""

    def __init__(self, make: Callable[[int], Task], target: int, start: int, lowest: int, highest: int,
                 low: float = 0.3, window: int = 16, group_size: int | None = None,
                 ladder: Sequence[int] | None = None):
        """`ladder`: the levels the curriculum may visit, in order (default every one from `lowest` to
        `highest`); a move goes to the next or previous level on it."""
        self.ladder = sorted(ladder) if ladder is not None else list(range(lowest, highest + 1))
        if start not in self.ladder or target not in self.ladder:
            raise ValueError(f"task.curriculum_start ({start}) and task.difficulty ({target}) must be levels of "
                             f"the curriculum: {', '.join(map(str, self.ladder))}")
        lowest, highest = self.ladder[0], self.ladder[-1]
        if window < 1:
            raise ValueError(f"task.curriculum_window: must be >= 1 groups, got {window}")
        self.make, self.target, self.lowest, self.highest = make, target, lowest, highest
        self.low, self.window = low, window
        self.group_size = group_size  # the training group's G; None: each observation's own size
        self.tasks: dict[int, Task] = {target: make(target)}
        self.name = self.tasks[target].name
        self.level = start
        self.seen: list[tuple[int, int]] = []  # (correct, samples) of this window's problems
        self.moves = 0
        self.outgrown: set[int] = set()  # levels whose last window was too easy
        self.last: tuple[float, float] | None = None  # (informative share, pass rate) of the last decided window
        self.stuck = 0  # windows in a row at the lowest level with too little signal, mostly wrong

    def _task(self, level: int) -> Task:
        if level not in self.tasks:
            self.tasks[level] = self.make(level)
        return self.tasks[level]

    def describe(self) -> str:
        return f"{self.tasks[self.target].describe()} (difficulty by measured pass rate, held out at {self.target})"

    def train_problem(self, index: int) -> Problem:
        held = {p.meta.get("key", p.prompt) for p in self.tasks[self.target].eval_problems()}
        task = self._task(self.level)
        for attempt in range(100):
            problem = task.train_problem(index + attempt * REDRAW_STRIDE)
            if problem.meta.get("key", problem.prompt) not in held:
                problem.meta["difficulty"] = self.level
                return problem
        raise RuntimeError(f"task {self.name}: could not draw a problem outside the held-out set")

    def eval_problems(self, n: int | None = None) -> list[Problem]:
        return self.tasks[self.target].eval_problems(n)

    def verify(self, problem: Problem, text: str) -> Score:
        return self._task(problem.meta.get("difficulty", self.target)).verify(problem, text)

    def worked_solution(self, problem: Problem, rng: random.Random) -> tuple[str, bool]:
        return self._task(problem.meta.get("difficulty", self.target)).worked_solution(problem, rng)

    def observe(self, problem: Problem, correct: list[bool]) -> None:
        if not correct or problem.meta.get("difficulty", self.level) != self.level:
            return  # a group drawn before the last move says nothing about this level
        self.seen.append((sum(correct), len(correct)))
        if len(self.seen) >= self.window:
            share = self.window_share()
            rate = sum(c for c, _ in self.seen) / sum(n for _, n in self.seen)
            easy = too_easy(share, rate, self.low)
            if easy:
                self.outgrown.add(self.level)
            else:
                self.outgrown.discard(self.level)
            pos = self.ladder.index  # moves are steps along the ladder
            level = self.ladder[next_level(pos(self.level), pos(self.target), share, rate, self.low, 0,
                                           len(self.ladder) - 1, {pos(v) for v in self.outgrown})]
            stuck = self.level == level == self.lowest and share < self.low and not easy
            self.stuck = self.stuck + 1 if stuck else 0
            if self.stuck == STUCK_WINDOWS:
                logger.warning("curriculum: %d windows in a row at the lowest level (%d) with an informative share "
                               "of %.2f (< %.2f) and a pass rate of %.2f: nothing to learn from and no easier level; "
                               "the policy may have collapsed onto one answer (see entropy), or the lowest level is "
                               "beyond the model (task.curriculum_start)", self.stuck, self.level, share, self.low,
                               rate)
            self.moves += level != self.level
            self.level, self.seen, self.last = level, [], (share, rate)

    def window_share(self) -> float:
        """The informative share of groups of `group_size` estimated from this window's problems (each
        observation's own size when no group size was given: the share of mixed observations)."""
        if self.group_size is None:
            return sum(0 < c < n for c, n in self.seen) / max(len(self.seen), 1)
        return informative_share_of_groups(self.seen, self.group_size)

    def stats(self) -> dict[str, float]:
        """The level, the moves so far and, once a window was decided, what it was decided on: the estimated
        informative share of groups (`window_share`, against the band's `low`) and the pooled pass rate."""
        out = {"curriculum/difficulty": self.level, "curriculum/moves": self.moves,
               "curriculum/stuck_windows": self.stuck}
        if self.last is not None:
            out["curriculum/window_share"], out["curriculum/window_pass_rate"] = self.last
        return out

    def state_dict(self) -> dict:
        return {"level": self.level, "seen": [list(s) for s in self.seen], "moves": self.moves,
                "last": None if self.last is None else list(self.last), "outgrown": sorted(self.outgrown),
                "stuck": self.stuck}

    def load_state_dict(self, state: dict) -> None:
        if state:
            self.level, self.moves = int(state["level"]), int(state["moves"])
            last = state.get("last")  # absent in older checkpoints
            self.last = None if last is None else (float(last[0]), float(last[1]))
            if self.level not in self.ladder:
                raise ValueError(f"curriculum: the checkpoint's level {self.level} is not one of this run's levels "
                                 f"({', '.join(map(str, self.ladder))}); an rlvr before the ladder (levels harder "
                                 "than a task.params target are skipped) wrote it: resume with that version")
            # absent in older checkpoints; a level off the ladder cannot be moved into anyway
            self.outgrown = {int(v) for v in state.get("outgrown", [])} & set(self.ladder)
            self.stuck = int(state.get("stuck", 0))  # absent in older checkpoints
            # a checkpoint of an older rlvr kept (informative, pass rate) pairs: its window starts afresh
            seen = [(a, b) for a, b in state["seen"] if not isinstance(a, bool)]
            self.seen = [(int(a), int(b)) for a, b in seen] if len(seen) == len(state["seen"]) else []
