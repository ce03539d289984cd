"""Mixtures: several tasks in one run, drawn by weight, each problem labelled with its member's name.

Training index `i` picks member `k` with probability `w_k(i) / sum(w(i))` from a uniform number derived
from `(seed, i)` alone, and hands that member its own next index (how many times it was picked before
`i`), so a dataset member still walks through its epochs in order and the whole stream is a function of
`i`: a resumed run continues exactly. `problem.task` is the member's label, which is what the trainer's
`accuracy/<task>` metrics and evaluation's `by_task` group by.

Curriculum (`curriculum: N` training problems): members are listed easiest first; the first is on from
the start and member `k >= 1` of `K` fades in linearly while the progress `p = i / N` goes from `k/K` to
`(k+1)/K`, so the first `N/K` problems come from the easiest member only and from `p = 1` on the declared
weights hold: gate_0 = 1, gate_k(p) = clamp(p*K - k, 0, 1).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from rlvr.tasks.base import Task, derive_seed
from rlvr.types import Problem, Score

SNAPSHOT_EVERY = 1024


@dataclass
class Member:
    """One task of a mixture with its weight and the label its problems carry."""

    task: Task
    weight: float
    label: str


def unique_labels(names: list[str]) -> list[str]:
    """`names` with repeats numbered (`arithmetic`, `arithmetic#2`), so per-task metrics stay apart."""
    out, seen = [], {}
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return out


def curriculum_gates(progress: float, k: int) -> list[float]:
    """gate_0 = 1, gate_j = clamp(progress * k - j, 0, 1) for members j = 1..k-1 (easiest first)."""
    return [1.0] + [min(1.0, max(0.0, progress * k - j)) for j in range(1, k)]


def share_counts(n: int, weights: list[float]) -> list[int]:
    """`n` split by `weights` (largest remainders), at least one each when `n` allows."""
    total = sum(weights)
    raw = [n * w / total for w in weights]
    counts = [int(r) for r in raw]
    for j in sorted(range(len(raw)), key=lambda j: raw[j] - counts[j], reverse=True)[: n - sum(counts)]:
        counts[j] += 1
    for j, c in enumerate(counts):  # take from the largest so every member is evaluated
        if c == 0 and weights[j] > 0 and n >= len(weights):
            counts[counts.index(max(counts))] -= 1
            counts[j] = 1
    return counts


class MixtureTask(Task):
    """Several tasks by weight, with an optional curriculum; metrics are reported per member label."""

    name = "mixture"

    def __init__(self, members: list[Member], seed: int = 0, curriculum: int = 0):
        if not members:
            raise ValueError("task.mixture: list at least one task")
        for i, m in enumerate(members):
            if not m.weight >= 0:
                raise ValueError(f"task.mixture[{i}].weight: must be >= 0, got {m.weight!r}")
        if sum(m.weight for m in members) <= 0:
            raise ValueError("task.mixture: at least one weight must be > 0")
        if curriculum < 0:
            raise ValueError(f"task.curriculum: must be >= 0 training problems, got {curriculum}")
        self.members, self.seed, self.curriculum = members, seed, curriculum
        self._by_label = {m.label: j for j, m in enumerate(members)}
        self._snapshots: dict[int, list[int]] = {0: [0] * len(members)}

    def describe(self) -> str:
        total = sum(m.weight for m in self.members)
        parts = ", ".join(f"{m.label} {m.weight / total:.0%}" for m in self.members)
        return f"mixture of {parts}" + (
            f", curriculum over {self.curriculum} problems" if self.curriculum else ""
        )

    def weights_at(self, index: int) -> list[float]:
        """Sampling weights at training index `index` (the curriculum gates applied)."""
        weights = [m.weight for m in self.members]
        if not self.curriculum or index >= self.curriculum:
            return weights
        gates = curriculum_gates(index / self.curriculum, len(weights))
        gated = [w * g for w, g in zip(weights, gates)]
        return gated if sum(gated) > 0 else weights

    def member_at(self, index: int) -> int:
        """Which member training index `index` draws from."""
        weights = self.weights_at(index)
        u = derive_seed("mixture", self.seed, index) / 2**63 * sum(weights)
        for j, w in enumerate(weights):
            u -= w
            if u < 0 and w > 0:
                return j
        return max(j for j, w in enumerate(weights) if w > 0)

    def _counts_before(self, index: int) -> list[int]:
        """How often each member was drawn at indices < `index` (from the nearest snapshot)."""
        start = max(s for s in self._snapshots if s <= index)
        counts = list(self._snapshots[start])
        for i in range(start, index):
            if i % SNAPSHOT_EVERY == 0:
                self._snapshots[i] = list(counts)
            counts[self.member_at(i)] += 1
        return counts

    def member_problem(self, j: int, index: int) -> Problem:
        """Training problem `index` of member `j`'s own stream, labelled as the mixture labels it."""
        return self._label(self.members[j].task.train_problem(index), j)

    def _label(self, problem: Problem, j: int) -> Problem:
        return replace(problem, task=self.members[j].label, meta={**problem.meta, "member": j})

    def train_problem(self, index: int) -> Problem:
        j = self.member_at(index)
        return self._label(self.members[j].task.train_problem(self._counts_before(index)[j]), j)

    def eval_problems(self, n: int | None = None) -> list[Problem]:
        """Held-out problems of every member, `n` split by the (final) weights."""
        if n is None:
            return [self._label(p, j) for j, m in enumerate(self.members) for p in m.task.eval_problems()]
        counts = share_counts(n, [m.weight for m in self.members])
        return [
            self._label(p, j)
            for j, (m, c) in enumerate(zip(self.members, counts))
            if c
            for p in m.task.eval_problems(c)
        ]

    def _member(self, problem: Problem) -> Task:
        j = problem.meta.get("member", self._by_label.get(problem.task))
        if j is None:
            raise KeyError(f"problem {problem.id} of task {problem.task!r} is not from this mixture")
        return self.members[j].task

    def verify(self, problem: Problem, text: str) -> Score:
        return self._member(problem).verify(problem, text)

    def worked_solution(self, problem: Problem, rng: random.Random) -> tuple[str, bool]:
        return self._member(problem).worked_solution(problem, rng)
