"""The verifier actor's class, without Ray: order, counts, concurrency and a verifier that raises."""

from __future__ import annotations

import threading

from rlvr.distributed.actors import Verifier
from rlvr.types import Problem, Score


class _PairedTask:
    """Correct when the text equals the answer; every call waits for a second call to be in flight, so
    scoring one completion at a time breaks the barrier; "boom" makes the verifier itself raise."""

    def __init__(self, parties: int):
        self.barrier = threading.Barrier(parties, timeout=10)

    def verify(self, problem: Problem, text: str) -> Score:
        if text == "boom":
            raise ValueError("bad reward code")
        self.barrier.wait()
        ok = text == problem.answer
        return Score(float(ok), ok, True)


def _problems(n):
    return [Problem(id=f"p{i}", prompt=f"q{i}", answer=str(i), task="t") for i in range(n)]


def test_a_verifier_with_two_cpus_scores_two_completions_at_once_in_order():
    problems = _problems(4)
    texts = [["0", "x"], ["1", "1"], ["2", "9"], ["3", "3"]]  # a worker's 4 groups; groups 1..3 are asked for
    verifier = Verifier(_PairedTask(parties=2), cpus=2.0)
    scores = verifier.score(problems[1:4], texts, 1, 4)
    assert [[s.correct for s in group] for group in scores] == [[True, True], [True, False], [True, True]]
    assert all("reason" not in s.details for group in scores for s in group)  # no barrier was broken
    assert verifier.count() == 6


def test_one_cpu_scores_one_at_a_time_and_a_raising_verifier_gives_no_score():
    task = _PairedTask(parties=1)
    scores = Verifier(task, cpus=0.5).score(_problems(1), [["0", "boom"]], 0, 1)
    assert (scores[0][0].reward, scores[0][0].correct) == (1.0, True)
    assert scores[0][1] is None  # no reward, never a 0: the driver scores it again and counts the fault
