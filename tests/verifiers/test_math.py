"""Math verifier: math-verify equivalence, from the main thread and from worker threads."""

from __future__ import annotations

import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from rlvr.types import Problem
from rlvr.verifiers import math as vmath
from rlvr.verifiers.math import equivalent, verify_math

from .helpers import wrap

EQUIVALENT = [
    ("1/2", r"\frac{1}{2}"),
    (r"\frac12", "0.5"),
    (r"50\%", "0.5"),
    (r"\{1, 2\}", r"\{2, 1\}"),
    ("[1, 2)", "[1,2)"),
    (r"\begin{pmatrix}1 & 2\\3 & 4\end{pmatrix}", r"\begin{pmatrix}1&2\\3&4\end{pmatrix}"),
    (r"\frac{\sqrt{2}}{2}", r"\sqrt{2}/2"),
    ("3", "x = 3"),
    ("1000", "1,000"),
]
DIFFERENT = [("(1,2]", "[1,2)"), ("3", "3.5"), ("42", "142"), (r"\{1,2\}", r"\{1,3\}")]


@pytest.mark.parametrize("gold,pred", EQUIVALENT)
def test_equivalent_answers(gold, pred):
    assert equivalent(gold, pred)[0]


@pytest.mark.parametrize("gold,pred", DIFFERENT)
def test_different_answers(gold, pred):
    ok, reason = equivalent(gold, pred)
    assert not ok and reason


def test_score_and_format_reward():
    p = Problem("m", "", "\\frac{3}{4}", "math")
    assert verify_math(p, wrap("0.75")).reward == pytest.approx(1.1)
    assert verify_math(p, "<answer>0.75</answer>").reward == 1.0
    assert verify_math(p, wrap("0.7")).reward == pytest.approx(0.1)
    assert verify_math(p, r"work... \boxed{3/4}", extract="boxed").correct


def test_from_worker_threads_uses_worker_processes():
    p = Problem("m", "", "2", "math")
    texts = [wrap(a) for a in ("2", r"\frac{4}{2}", "3", "2.0")]
    with ThreadPoolExecutor(2) as pool:
        got = [s.correct for s in pool.map(lambda t: verify_math(p, t), texts)]
    assert got == [True, True, False, True]
    assert threading.current_thread() is threading.main_thread()


def test_a_hung_worker_is_killed_and_replaced(monkeypatch):
    worker = vmath._Worker()
    worker.call("1", "1", 1)  # start it
    monkeypatch.setattr(vmath, "_wait_s", lambda timeout_s: 0.5)
    os.kill(worker.proc.pid, signal.SIGSTOP)  # simulate a hang no signal inside can interrupt
    ok, reason = worker.call("1", "1", 1)
    assert not ok and "worker killed" in reason
    monkeypatch.undo()
    assert worker.call("1", "1", 1) == (True, "")
    worker.stop()


def test_pathological_input_is_time_limited():
    ok, _ = equivalent("2", "2^{2^{2^{30}}}", timeout_s=1)
    assert not ok


def test_a_reference_that_does_not_parse_is_no_verdict_never_a_wrong_answer():
    """The task's fault, not the candidate's: the sample gets no reward (VerifierError), from the main thread
    and from a worker process alike."""
    from rlvr.verifiers import VerifierError, safe_score

    p = Problem("m", "", "", "math")
    with pytest.raises(VerifierError, match="does not parse"):
        safe_score(verify_math, p, wrap("2"))
    with ThreadPoolExecutor(1) as pool, pytest.raises(VerifierError, match="does not parse"):
        pool.submit(safe_score, verify_math, p, wrap("2")).result()


def test_a_worker_that_dies_is_replaced_and_then_no_verdict(monkeypatch):
    """A worker that dies mid-comparison (not a time-out) is restarted for a second try; when that one dies
    too the comparison raises (no reward), where a time-out is the answer's own doing (not equivalent)."""
    import subprocess
    import sys

    starts = []

    def dying(self):  # reads the request, then exits without an answer
        starts.append(1)
        self.proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.readline()"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    monkeypatch.setattr(vmath._Worker, "_start", dying)
    worker = vmath._Worker()
    with pytest.raises(RuntimeError, match="died 2 times"):
        worker.call("1", "1", 1)
    assert len(starts) == 2
    monkeypatch.undo()
    assert worker.call("1", "1", 1) == (True, "")  # a healthy worker afterwards
    worker.stop()
