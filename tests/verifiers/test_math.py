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
