"""Prompt screening (online difficulty filtering, as in Polaris and Skywork-OR1): spend a few samples on each
fresh candidate prompt first, and give the full group of G only to candidates with some right and some wrong.

Where the policy solves a task a few percent of the time, almost every group of G is all wrong: zero
advantage, nothing learned, a whole group paid for. DAPO's dynamic sampling pays for the whole group before
it throws it away; screening pays `k = screen_samples` per candidate, and the k screening samples join
their prompt's group (they come from the same policy, at the same step), so a kept group costs only G - k
more. A candidate passes when its screen has 0 < correct < k. Every sample, passed or not, is counted in
the run's sampled tokens.

Per round, `screen_oversample` candidates are drawn from the training stream for each prompt still missing;
after `screen_rounds` rounds the batch trains on the groups found (fewer than `prompts_per_step` is allowed,
as with dynamic sampling); when none passed, the first candidates of the last round are completed to G so
the step still has a batch (zero advantage, as an all-constant GRPO step).

Rows that come back (dataset epochs) carry a running tally of their verdicts across epochs (`PassTally`): a
row whose history is mixed skips the screen and gets the full group at once. The tally is saved in
checkpoints, and every seed is a function of the run's seed and the candidate's stream position, so a
screened run resumes exactly.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from rlvr.rollout.base import sample_seed
from rlvr.tasks.filtering import problem_key
from rlvr.types import Problem, Rollout

MAX_TRACKED = 200_000  # rows in the running tally (oldest forgotten first): generators rarely repeat
TOP_UP = 1  # seed stream of the samples that complete a screened group


def screen_passes(correct: list[int], screened: int) -> list[bool]:
    """Per candidate: `0 < correct < screened` (some right, some wrong), the mark of an informative prompt."""
    return [0 < c < screened for c in correct]


def salted_seed(seed: int, position: int, salt: int) -> int:
    """The sampling seed of stream position `position`: the trainer's `sample_seed` for salt 0, an
    independent stream for every other salt (a top-up must not repeat the screen's samples)."""
    base = sample_seed(seed, position)
    return base if salt == 0 else sample_seed(base, salt)


class PassTally:
    """Running (correct, total) verdicts per problem key, across epochs; the oldest rows are forgotten past
    `limit` so a generator's endless stream stays bounded."""

    def __init__(self, limit: int = MAX_TRACKED):
        self.limit = limit
        self.counts: OrderedDict[str, list[int]] = OrderedDict()

    def add(self, key: str, verdicts: list[bool]) -> None:
        c = self.counts.pop(key, [0, 0])
        self.counts[key] = [c[0] + sum(verdicts), c[1] + len(verdicts)]
        while len(self.counts) > self.limit:
            self.counts.popitem(last=False)

    def mixed(self, key: str) -> bool:
        """The row was seen both right and wrong."""
        c = self.counts.get(key)
        return c is not None and 0 < c[0] < c[1]

    def pass_rate(self, key: str) -> float | None:
        c = self.counts.get(key)
        return c[0] / c[1] if c else None


# (problems, stream positions, samples per problem, seed salt, info) -> scored rollouts, contiguous per problem
SampleFn = Callable[[list[Problem], list[int], int, int, dict], list[Rollout]]


class Screener:
    """Finds `prompts_per_step` prompts with a reward spread, a few samples per candidate at a time."""

    def __init__(self, algorithm, group_size: int, prompts_per_step: int):
        self.k, self.rounds, self.oversample = algorithm.screen_samples, algorithm.screen_rounds, \
            algorithm.screen_oversample
        self.G, self.B = group_size, prompts_per_step
        self.tally = PassTally()
        self.totals = {"screen/candidates_total": 0, "screen/passed_total": 0}

    def collect(self, draw: Callable[[int], tuple[list[Problem], int]], sample: SampleFn,
                observe: Callable[[Problem, list[bool]], None]) -> tuple[list[Rollout], list[Rollout], dict]:
        """(kept, sampled, info): kept is whole groups of G, contiguous; sampled is every sample drawn.
        `draw(n)` takes the next n problems of the stream and returns them with the first one's position."""
        info = {"time/generate": 0.0, "time/verify": 0.0, "screen/rounds": 0, "screen/candidates": 0,
                "screen/passed": 0, "screen/direct": 0, "screen/samples": 0}
        kept: list[Rollout] = []
        sampled: list[Rollout] = []
        last: tuple[list[Problem], list[int], list[list[Rollout]]] = ([], [], [])
        for r in range(self.rounds):
            missing = self.B - len(kept) // self.G
            if missing <= 0:
                break
            info["screen/rounds"] = r + 1
            problems, start = draw(missing * self.oversample)
            positions = list(range(start, start + len(problems)))
            info["screen/candidates"] += len(problems)
            groups, screens = self._screen(problems, positions, sample, info)
            sampled += [x for g in screens if g for x in g]
            last = (problems, positions, screens)
            chosen = [i for i, g in enumerate(groups) if g is not None][:missing]
            for i, g in zip(chosen, self._complete(problems, positions, screens, chosen, sample, info)):
                groups[i] = g
                sampled += g[len(screens[i] or []):]  # the screening samples are counted above
                if all(x.score is not None for x in g):
                    kept += g
            for i, p in enumerate(problems):
                verdicts = [x.score.correct for x in (groups[i] or screens[i] or []) if x.score is not None]
                if verdicts:
                    # the curriculum sees the screen alone where there was one: the top-up went only to mixed
                    # screens, so a screened group's full verdicts would overstate the problems' spread
                    observe(p, verdicts[: len(screens[i])] if screens[i] else verdicts)
                    self.tally.add(problem_key(p), verdicts)
        if not kept and last[0]:  # nothing passed: complete the last round's first candidates (zero advantage)
            problems, positions, screens = last
            chosen = list(range(min(self.B, len(problems))))
            for i, g in zip(chosen, self._complete(problems, positions, screens, chosen, sample, info)):
                sampled += g[len(screens[i] or []):]
                if all(x.score is not None for x in g):
                    kept += g
        self.totals["screen/candidates_total"] += info["screen/candidates"]
        self.totals["screen/passed_total"] += info["screen/passed"]
        return kept, sampled, {**info, **self.totals}

    def _screen(self, problems: list[Problem], positions: list[int], sample: SampleFn, info: dict):
        """Screen the candidates without a mixed history. Returns (groups, screens): groups[i] is not None for
        a candidate that goes on to a full group (passed, or known mixed), screens[i] its screening samples."""
        direct = [self.tally.mixed(problem_key(p)) for p in problems]
        todo = [i for i, d in enumerate(direct) if not d]
        screens: list[list[Rollout] | None] = [None] * len(problems)
        if todo:
            rollouts = sample([problems[i] for i in todo], [positions[i] for i in todo], self.k, 0, info)
            info["screen/samples"] += len(rollouts)
            for j, i in enumerate(todo):
                screens[i] = rollouts[j * self.k : (j + 1) * self.k]
        correct = [sum(bool(x.score and x.score.correct) for x in s) if s else 0 for s in screens]
        unscored = [s is not None and any(x.score is None for x in s) for s in screens]
        passes = screen_passes(correct, self.k)
        groups: list[list[Rollout] | None] = [[] if d or (p and not u) else None
                                             for d, p, u in zip(direct, passes, unscored)]
        info["screen/direct"] += sum(direct)
        info["screen/passed"] += sum(p and not u for p, u in zip(passes, unscored))
        return groups, screens

    def _complete(self, problems, positions, screens, chosen: list[int], sample: SampleFn, info: dict):
        """Full groups of G for the `chosen` candidates: their screening samples plus G - k more (seed stream
        TOP_UP), or G fresh ones for those that were not screened."""
        out: list[list[Rollout]] = []
        for need, salt in ((self.G - self.k, TOP_UP), (self.G, 0)):
            idx = [i for i in chosen if (screens[i] is not None) == (need < self.G)]
            if not idx:
                continue
            rollouts = sample([problems[i] for i in idx], [positions[i] for i in idx], need, salt, info)
            for j, i in enumerate(idx):
                out.append((i, (screens[i] or []) + rollouts[j * need : (j + 1) * need]))
        out.sort(key=lambda t: t[0])
        return [g for _, g in out]

    def state_dict(self) -> dict:
        return {"tally": [[k, *v] for k, v in self.tally.counts.items()], "totals": dict(self.totals)}

    def load_state_dict(self, state: dict) -> None:
        self.tally.counts = OrderedDict((k, [c, n]) for k, c, n in state.get("tally", []))
        self.totals.update(state.get("totals", {}))
