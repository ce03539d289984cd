"""Sampling by kind (rlvr.tasks.kinds): draws follow each kind's measured informative share, unseen kinds are
tried, no kind is dropped, held-out problems are the task's own, and the sampler's state resumes exactly."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from rlvr.check import base_task, check_problems
from rlvr.config import TaskConfig
from rlvr.tasks.base import Task
from rlvr.tasks.kinds import KindSampler
from rlvr.tasks.registry import build_task
from rlvr.types import Problem, Score

KINDS = ("easy", "mid", "hard")


class _Kinds(Task):
    """Problem i is of kind KINDS[i % 3] (or of no kind with `kinds=False`); held out: three problems apart."""

    name = "kinds"

    def __init__(self, kinds: bool = True):
        self.kinds, self.observed = kinds, []

    def train_problem(self, index):
        meta = {"kind": KINDS[index % 3]} if self.kinds else {}
        return Problem(id=f"p{index}", prompt=f"q{index}", answer="0", task=self.name, meta=meta)

    def eval_problems(self, n=None):
        return [Problem(id=f"e{i}", prompt=f"e{i}", answer="0", task=self.name, meta={"kind": "hard"})
                for i in range(n or 3)]

    def verify(self, problem, text):
        return Score(1.0, True, True)

    def observe(self, problem, correct):
        self.observed.append(problem.id)


def _feed(sampler: KindSampler, rates: dict[str, tuple[int, int]], groups: int = 8) -> None:
    """`groups` scored groups of each kind, `rates[kind]` = (correct, G) each."""
    for kind, (c, n) in rates.items():
        for _ in range(groups):
            sampler.observe(Problem(id="x", prompt="x", answer="0", task="kinds", meta={"kind": kind}),
                            [True] * c + [False] * (n - c))


def test_unseen_kinds_are_all_drawn_and_observations_reach_the_inner_task():
    inner = _Kinds()
    sampler = KindSampler(inner, group_size=8)
    assert [sampler.train_problem(i).id for i in range(6)] == [f"p{i}" for i in range(6)]  # nothing passed over
    sampler.observe(sampler.train_problem(6), [True, False])
    assert inner.observed == ["p6"]
    assert sampler.eval_problems(3) == inner.eval_problems(3)


def test_draws_follow_the_informative_share_and_keep_a_floor():
    sampler = KindSampler(_Kinds(), group_size=8, floor=0.05)
    _feed(sampler, {"easy": (8, 8), "mid": (4, 8), "hard": (0, 8)})
    # mixed groups of 4 right in 8: every group of 8 drawn from them is informative
    assert sampler.weight("mid") == pytest.approx(1.0)
    assert sampler.weight("easy") == sampler.weight("hard") == 0.05  # constant groups: the floor
    drawn = Counter(sampler.train_problem(i).meta["kind"] for i in range(600))
    assert drawn["mid"] > 8 * (drawn["easy"] + drawn["hard"])
    assert drawn["easy"] > 0 and drawn["hard"] > 0  # retried, not dropped
    stats = sampler.stats()
    assert stats["kinds/seen"] == 3 and stats["kinds/above_floor"] == 1
    assert 0.5 < stats["kinds/passed_over_frac"] < 1


def test_a_kind_comes_back_when_it_starts_to_be_solved():
    sampler = KindSampler(_Kinds(), group_size=8, window=4)
    _feed(sampler, {"hard": (0, 8)}, groups=4)
    assert sampler.weight("hard") == 0.05
    _feed(sampler, {"hard": (2, 8)}, groups=4)  # the window holds the last 4 groups only
    assert sampler.weight("hard") == pytest.approx(1.0)


def test_state_round_trips_through_json_and_the_resumed_sampler_draws_the_same():
    sampler = KindSampler(_Kinds(), group_size=8, seed=3)
    _feed(sampler, {"easy": (8, 8), "mid": (3, 8), "hard": (0, 8)})
    first = [sampler.train_problem(i).id for i in range(20)]
    state = json.loads(json.dumps(sampler.state_dict()))
    resumed = KindSampler(_Kinds(), group_size=8, seed=3)
    resumed.load_state_dict(state)
    assert resumed.state_dict() == sampler.state_dict()
    assert [resumed.train_problem(20 + i).id for i in range(30)] == [sampler.train_problem(20 + i).id
                                                                       for i in range(30)]
    assert first != [f"p{i}" for i in range(20)]  # the weights did pass problems over


def test_a_task_without_kinds_and_bad_fields_are_refused_by_name():
    with pytest.raises(ValueError, match=r"task.kind_sampling: .*name no kind"):
        KindSampler(_Kinds(kinds=False), group_size=8).train_problem(0)
    with pytest.raises(ValueError, match="task.kind_floor"):
        KindSampler(_Kinds(), group_size=8, floor=0.0)
    with pytest.raises(ValueError, match="task.kind_window"):
        KindSampler(_Kinds(), group_size=8, window=0)


def test_a_reasoning_gym_task_is_wrapped_its_held_out_set_unchanged_and_the_check_reads_under_it():
    pytest.importorskip("reasoning_gym")
    params = {"min_terms": 2, "max_terms": 4, "min_digits": 1, "max_digits": 3}
    plain = build_task(TaskConfig(name="reasoning_gym/chain_sum", params=params), eval_size=20, group_size=8)
    sampled = build_task(TaskConfig(name="reasoning_gym/chain_sum", params=params, kind_sampling=True),
                         eval_size=20, group_size=8)
    assert isinstance(sampled, KindSampler) and base_task(sampled) is sampled.task
    assert [p.prompt for p in sampled.eval_problems()] == [p.prompt for p in plain.eval_problems()]
    held = {p.prompt for p in plain.eval_problems()}
    # two-term sums half solved, everything else never: the draws go to the two-term kinds
    for i in range(90):
        p = sampled.train_problem(i)
        sampled.observe(p, [True] * 4 + [False] * 4 if "num_terms=2" in p.meta["kind"] else [False] * 8)
    later = [sampled.train_problem(90 + i) for i in range(200)]
    assert not held & {p.prompt for p in later}
    assert sum("num_terms=2" in p.meta["kind"] for p in later) > 150  # a third of the stream unweighted
    # the check's problems come from the task under the sampler: the same whatever it has observed
    assert [p.prompt for p in check_problems(sampled, 5, seed=0)] == [p.prompt
                                                                      for p in check_problems(plain, 5, seed=0)]
