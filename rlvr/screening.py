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
the step still has a batch (zero advantage, as an all-constant GRPO step). A round's top-ups are sampled in
one call with the next round's screens (alone, a few rows decode at nearly the cost of a full batch); every
call asks gcd(k, G) samples a prompt, a larger ask going as several parts on seeds of their own, so the
samples are the same however the calls are made up.

Rows that come back (dataset epochs) carry a running tally of their verdicts across epochs (`PassTally`): a
row whose history is mixed skips the screen and gets the full group at once. The tally is saved in
checkpoints, and every seed is a function of the run's seed and the candidate's stream position, so a
screened run resumes exactly.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from rlvr.faults import scored_group
from rlvr.rollout.base import sample_seed
from rlvr.tasks.filtering import problem_key
from rlvr.types import Problem, Rollout

MAX_TRACKED = 200_000  # rows in the running tally (oldest forgotten first): generators rarely repeat
TOP_UP = 1  # seed stream of the samples that complete a screened group
PART = 1 << 32  # salt step between the parts of one problem's samples (see `stream`)


def screen_passes(correct: list[int], screened: int) -> list[bool]:
    """Per candidate: `0 < correct < screened` (some right, some wrong), the mark of an informative prompt."""
    return [0 < c < screened for c in correct]


def salted_seed(seed: int, position: int, salt: int) -> int:
    """The sampling seed of stream position `position`: the trainer's `sample_seed` for salt 0, an
    independent stream for every other salt (a top-up must not repeat the screen's samples; see `stream`)."""
    base = sample_seed(seed, position)
    return base if salt == 0 else sample_seed(base, salt)


def stream(salt: int, part: int) -> int:
    """The salt of part `part` of a problem's samples asked as several prompts of `unit` samples each."""
    return salt + PART * part


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


# (problems, stream positions, samples per problem, seed salt of each, info) -> scored rollouts, contiguous per
# problem; a problem may be asked several times in one call (its parts, on salts of their own)
SampleFn = Callable[[list[Problem], list[int], int, list[int], dict], list[Rollout]]


def verdicts(rollouts: list[Rollout]) -> list[bool]:
    """The verdicts of the scored samples (a sample left without a reward has none)."""
    return [x.score.correct for x in rollouts if x.score is not None]


@dataclass
class _Round:
    """One round's candidates, their screens (None where a mixed history skipped the screen), and `chosen`:
    the passed candidates whose groups wait for their top-ups."""

    problems: list[Problem]
    positions: list[int]
    screens: list[list[Rollout] | None]
    chosen: list[int] = field(default_factory=list)


class Screener:
    """Finds `prompts_per_step` prompts with a reward spread, a few samples per candidate at a time."""

    def __init__(self, algorithm, group_size: int, prompts_per_step: int):
        self.k, self.rounds, self.oversample = algorithm.screen_samples, algorithm.screen_rounds, \
            algorithm.screen_oversample
        self.G, self.B = group_size, prompts_per_step
        # every call asks `unit` samples a prompt: a candidate's screen, top-up or group is asked as parts of
        # it, each on its own seed, so one call holds them all and the samples do not depend on how calls mix
        self.unit = math.gcd(self.k, self.G)
        self.merge = True  # a round's top-ups join the next round's call (False: their own call, as before)
        self.tally = PassTally()
        self.totals = {"screen/candidates_total": 0, "screen/passed_total": 0}

    def collect(self, draw: Callable[[int], tuple[list[Problem], int]], sample: SampleFn,
                observe: Callable[[Problem, list[bool]], None]) -> tuple[list[Rollout], list[Rollout], dict]:
        """(kept, sampled, info): kept is whole groups of G, contiguous; sampled is every sample drawn.
        `draw(n)` takes the next n problems of the stream and returns them with the first one's position.
        A round's top-ups are sampled in one call with the next round's screens: alone they are a few rows,
        decoded at nearly the cost of a full batch. The last round's top-ups go alone."""
        info = {"time/generate": 0.0, "time/verify": 0.0, "screen/rounds": 0, "screen/candidates": 0,
                "screen/passed": 0, "screen/direct": 0, "screen/samples": 0}
        kept: list[Rollout] = []
        sampled: list[Rollout] = []
        waiting: _Round | None = None  # the last round: its chosen groups still want their top-ups
        for r in range(self.rounds):
            missing = self.B - len(kept) // self.G - (len(waiting.chosen) if waiting else 0)
            if missing <= 0:
                break
            info["screen/rounds"] = r + 1
            problems, start = draw(missing * self.oversample)
            info["screen/candidates"] += len(problems)
            now = _Round(problems, list(range(start, start + len(problems))), [None] * len(problems))
            # rows whose history is mixed skip the screen and get the full group at once
            direct = [i for i, p in enumerate(problems) if self.tally.mixed(problem_key(p))][:missing]
            todo = [i for i in range(len(problems)) if i not in direct]
            info["screen/direct"] += len(direct)
            got = self._sample([(now, i, self.k, 0) for i in todo] + [(now, i, self.G, 0) for i in direct]
                               + self._top_up_asks(waiting), sample, info)
            sampled += [x for g in got for x in g]
            screens, groups = got[: len(todo)], got[len(todo): len(todo) + len(direct)]
            info["screen/samples"] += sum(map(len, screens))
            for i, g in zip(direct, groups):
                kept += g if scored_group(g) else []
                self._observe(problems[i], verdicts(g), observe, tally=True)
            kept += self._complete(waiting, got[len(todo) + len(direct):])
            mixed = screen_passes([sum(verdicts(s)) for s in screens], self.k)
            passes = [p and scored_group(s) for p, s in zip(mixed, screens)]
            info["screen/passed"] += sum(passes)
            now.chosen = [i for i, p in zip(todo, passes) if p][: missing - len(direct)]
            for i, s in zip(todo, screens):
                now.screens[i] = s
                # the curriculum sees the screen alone (the top-up went only to mixed screens: a screened group's
                # full verdicts would overstate the problems' spread); a chosen group's tally waits for the group
                self._observe(problems[i], verdicts(s), observe, tally=i not in now.chosen)
            waiting = now
            if not self.merge:
                kept += self._top_up(waiting, sample, info, sampled)
        kept += self._top_up(waiting, sample, info, sampled)
        if not kept and waiting:  # nothing passed: complete the last round's first candidates (zero advantage;
            # their screens are in the tally already)
            waiting.chosen = [i for i, s in enumerate(waiting.screens) if s is not None][: self.B]
            kept += self._top_up(waiting, sample, info, sampled, tally=False)
        self.totals["screen/candidates_total"] += info["screen/candidates"]
        self.totals["screen/passed_total"] += info["screen/passed"]
        return kept, sampled, {**info, **self.totals}

    def _observe(self, problem: Problem, seen: list[bool], observe, tally: bool) -> None:
        """Tell the task (its curriculum) a candidate's verdicts and, with `tally`, add them to its row's."""
        if seen:
            observe(problem, seen)
            if tally:
                self.tally.add(problem_key(problem), seen)

    def _top_up_asks(self, waiting: _Round | None) -> list[tuple[_Round, int, int, int]]:
        """G - k more samples (seed stream TOP_UP) for each of the waiting round's chosen candidates."""
        return [(waiting, i, self.G - self.k, TOP_UP) for i in waiting.chosen] if waiting else []

    def _top_up(self, waiting: _Round | None, sample: SampleFn, info: dict, sampled: list[Rollout],
                tally: bool = True) -> list[Rollout]:
        """The waiting round's chosen groups completed in a call of their own (`_complete`); the new samples
        are added to `sampled`."""
        top_ups = self._sample(self._top_up_asks(waiting), sample, info)
        sampled += [x for g in top_ups for x in g]
        return self._complete(waiting, top_ups, tally)

    def _complete(self, waiting: _Round | None, top_ups: list[list[Rollout]], tally: bool = True) -> list[Rollout]:
        """The waiting round's chosen groups, screen + top-up, those with every sample scored; with `tally`
        the tally gets each one's whole verdicts."""
        kept = []
        for i, t in zip(waiting.chosen if waiting else [], top_ups):
            g = waiting.screens[i] + t
            if tally and verdicts(g):
                self.tally.add(problem_key(waiting.problems[i]), verdicts(g))
            kept += g if scored_group(g) else []
        if waiting:
            waiting.chosen = []
        return kept

    def _sample(self, asks: list[tuple[_Round, int, int, int]], sample: SampleFn, info: dict) -> list[list[Rollout]]:
        """One sampling call for every (round, candidate, samples, salt) asked: each ask's samples."""
        parts = [(a, i, stream(salt, p)) for a, i, n, salt in asks for p in range(n // self.unit)]
        if not parts:
            return []
        rollouts = sample([a.problems[i] for a, i, _ in parts], [a.positions[i] for a, i, _ in parts], self.unit,
                          [s for *_, s in parts], info)
        out, at = [], 0
        for *_, n, _ in asks:
            out.append(rollouts[at: at + n])
            at += n
        return out

    def state_dict(self) -> dict:
        return {"tally": [[k, *v] for k, v in self.tally.counts.items()], "totals": dict(self.totals)}

    def load_state_dict(self, state: dict) -> None:
        self.tally.counts = OrderedDict((k, [c, n]) for k, c, n in state.get("tally", []))
        self.totals.update(state.get("totals", {}))
