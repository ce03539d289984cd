"""Sampling by kind: draw more training problems of the kinds whose groups currently carry a signal.

A generator rarely repeats a problem, so a pass rate per problem is never known before it is sampled (prompt
screening pays samples to learn it). Its problems do fall into kinds, though: reasoning-gym records the
difficulty values each entry was drawn with (`meta["kind"]`, e.g. `num_terms=3, num_digits=2`), and problems of
one kind are about as hard as each other. At a hard setting most kinds are never solved and a few are solved
always; the learning happens in the kinds between. `KindSampler` keeps, per kind, the verdicts of its last
`window` scored groups, estimates the share of that kind's groups of G that are informative (neither all right
nor all wrong: rlvr.algorithms.informative) and accepts a candidate problem from the task's stream with
probability proportional to it, with a `floor` so no kind is ever dropped (a kind the model cannot yet solve is
retried, and comes back when it starts to be solved); a kind not yet observed counts as fully informative.
No sample is spent on finding out: the estimate comes from groups the run trained on anyway. The held-out
problems are the task's own, unchanged, so evaluation stays at the configured distribution.

Measured (README, "Is there a signal?"): on reasoning-gym's chain_sum at level 2, where SmolLM2-135M solves
every kind rarely at the start, drawing by kind found no more signal than plain GRPO (8-11% of groups
informative) and gained +1.5 / +1.0 points; on top of the curriculum +6.5 / +0.0 against the curriculum's +11.0
/ +9.0. The kinds' shares differ too little there for the weights to concentrate the draws; `rlvr check` shows
the share it would reach (`kind_sampled_share`) without advising it.

The acceptance draws come from the task's seed and the stream position, and the kinds' histories and the stream
offset are the `state_dict` that checkpoints carry: a resumed run draws the same problems.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any

from rlvr.algorithms.informative import informative_share_of_groups
from rlvr.tasks.base import StreamWrapper, Task, derive_seed
from rlvr.types import Problem

MAX_REJECTIONS = 10_000


def kind_sampled_share(kinds: dict[str, tuple[int, float]], floor: float) -> float | None:
    """The informative share a `KindSampler` would reach once it has measured every kind: `kinds` maps each kind
    to (its problems in an unweighted sample, its informative share); each kind is drawn in proportion to its
    count times its weight (the share, at least `floor`), so the share is sum(n w s) / sum(n w). None for none."""
    mass = [(n * max(floor, s), s) for n, s in kinds.values() if n > 0]
    total = sum(m for m, _ in mass)
    return sum(m * s for m, s in mass) / total if total > 0 else None


def kind_of(problem: Problem) -> str:
    """The problem's kind (`meta["kind"]`); a clear error for a task whose problems name none."""
    kind = problem.meta.get("kind")
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"task.kind_sampling: the problems of task {problem.task!r} name no kind (meta['kind']); "
                         "reasoning-gym generators whose entries record difficulty values do")
    return kind


class KindSampler(StreamWrapper):
    """`task`'s training stream, thinned so that each kind is drawn in proportion to its informative share."""

    def __init__(self, task: Task, group_size: int, seed: int = 0, floor: float = 0.05, window: int = 8):
        if not 0.0 < floor <= 1.0:
            raise ValueError(f"task.kind_floor: must be in (0, 1], got {floor}")
        if window < 1:
            raise ValueError(f"task.kind_window: must be >= 1 groups, got {window}")
        if group_size < 2:
            raise ValueError(f"task.kind_sampling: needs groups of 2 or more samples, got {group_size}")
        super().__init__(task)
        self.group_size = group_size
        self.seed, self.floor, self.window = seed, floor, window
        self.seen: dict[str, deque[tuple[int, int]]] = {}  # kind -> (correct, samples) of its last groups
        self.offset = 0  # stream positions passed over so far
        self.handed = 0  # problems handed out
        self.weights: dict[str, float] = {}  # kind -> weight, until the kind's next observation

    def describe(self) -> str:
        return f"{self.task.describe()} (kinds sampled by informative share)"

    def weight(self, kind: str) -> float:
        """The kind's acceptance probability: its estimated informative share, at least `floor`; 1 if unseen.
        Kept until the kind is next observed (the estimate fits a prior by EM where groups are screens)."""
        if kind not in self.weights:
            seen = self.seen.get(kind)
            self.weights[kind] = max(self.floor, informative_share_of_groups(list(seen), self.group_size)) \
                if seen else 1.0
        return self.weights[kind]

    def train_problem(self, index: int) -> Problem:
        for _ in range(MAX_REJECTIONS):
            position = index + self.offset
            problem = self.task.train_problem(position)
            if random.Random(derive_seed("kind-sampling", self.seed, position)).random() < self.weight(kind_of(problem)):
                self.handed += 1
                return problem
            self.offset += 1
        raise RuntimeError(f"task.kind_sampling: {MAX_REJECTIONS} problems in a row were passed over")

    def observe(self, problem: Problem, correct: list[bool]) -> None:
        self.task.observe(problem, correct)
        if correct and isinstance(problem.meta.get("kind"), str):
            seen = self.seen.setdefault(problem.meta["kind"], deque(maxlen=self.window))
            seen.append((sum(correct), len(correct)))
            self.weights.pop(problem.meta["kind"], None)

    def stats(self) -> dict[str, float]:
        """The inner task's metrics, and: kinds seen, kinds above the floor (where the sampler sends the draws),
        and the share of stream problems passed over so far."""
        return {**self.task.stats(), "kinds/seen": len(self.seen),
                "kinds/above_floor": sum(self.weight(k) > self.floor for k in self.seen),
                "kinds/passed_over_frac": self.offset / max(self.offset + self.handed, 1)}

    def state_dict(self) -> dict[str, Any]:
        return {"task": self.task.state_dict(), "offset": self.offset, "handed": self.handed,
                "seen": {k: [list(s) for s in v] for k, v in self.seen.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        self.task.load_state_dict(state.get("task", {}))
        self.offset, self.handed = int(state["offset"]), int(state["handed"])
        self.seen = {k: deque(((int(c), int(n)) for c, n in v), maxlen=self.window) for k, v in state["seen"].items()}
        self.weights = {}
