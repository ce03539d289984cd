"""Math verifier: symbolic equivalence of the final answer and the reference, built on `math-verify`.

`math-verify` parses LaTeX and plain expressions (fractions, decimals, percentages, sets, intervals,
matrices, equations like `x = 3`) into SymPy and compares them. Its time limit uses `signal.alarm`, which
only works in the main thread, so:
- in the main thread, comparisons run inline with math-verify's own time limit (whole seconds);
- in any other thread (a reward pool, a trainer's worker), they go to a small pool of worker processes
  whose main thread runs the same code; a worker that does not answer within the limit plus a grace is
  killed and replaced (SymPy can hang inside C code where no signal reaches it).

A guess list ("3, 4, 5", "3 or 4", two boxes) is a set to math-verify and never equals a single value.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import select
import subprocess
import sys
import threading
from pathlib import Path

from rlvr.types import Problem, Score
from rlvr.verifiers.extract import MAX_ANSWER_CHARS
from rlvr.verifiers.math_worker import equivalent_here
from rlvr.verifiers.reply import read_reply

logger = logging.getLogger(__name__)

WORKER_GRACE_S = 30.0  # beyond 3 x the limit (two parses and a comparison): worker start-up, slow machines


def _wait_s(timeout_s: int) -> float:
    """How long a worker may take to answer before it is killed."""
    return 3 * timeout_s + WORKER_GRACE_S


class _Worker:
    """One comparison process: JSON lines in, JSON lines out; restarted when it hangs or dies."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None

    def _start(self) -> None:
        # Run as a script (importing the rlvr package would pull in torch for nothing), with -I so that
        # this directory (math.py, code.py) does not shadow the standard library.
        self.proc = subprocess.Popen(
            [sys.executable, "-I", str(Path(__file__).with_name("math_worker.py"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def call(self, gold: str, pred: str, timeout_s: int, tries: int = 2) -> tuple[bool, str]:
        """(equivalent, why not). A comparison that runs past the limit is not equivalent (the answer's own
        doing: SymPy stuck on a pathological expression), and the worker is replaced. A worker that dies, or
        a comparison that raises (e.g. a reference that does not parse), is no verdict: after `tries` workers
        it raises `RuntimeError` (no reward, never a "wrong")."""
        for _ in range(tries):
            if self.proc is None or self.proc.poll() is not None:
                self._start()
            proc = self.proc
            timed_out, line = False, ""
            try:
                proc.stdin.write(json.dumps([gold, pred, timeout_s]) + "\n")
                proc.stdin.flush()
                timed_out = not select.select([proc.stdout], [], [], _wait_s(timeout_s))[0]
                line = "" if timed_out else proc.stdout.readline()
            except (OSError, ValueError):  # the worker's pipe broke: it died
                pass
            if line:
                ok, reason = json.loads(line)
                if ok is None:
                    raise RuntimeError(f"math comparison failed: {reason}")
                return ok, reason
            self.stop()
            if timed_out:
                return False, f"math comparison did not finish within {3 * timeout_s}s (worker killed)"
        raise RuntimeError(f"the math comparison worker died {tries} times in a row")


_workers: queue.Queue[_Worker] | None = None
_workers_lock = threading.Lock()


def _worker_pool() -> queue.Queue[_Worker]:
    global _workers
    with _workers_lock:
        if _workers is None:
            _workers = queue.Queue()
            for _ in range(max(1, len(os.sched_getaffinity(0)))):
                _workers.put(_Worker())
        return _workers


def equivalent(gold: str, pred: str, timeout_s: int = 5) -> tuple[bool, str]:
    """Whether `pred` is mathematically equivalent to `gold` (both LaTeX or plain), and why not.

    Each parse and the comparison are limited to `timeout_s` whole seconds, from any thread."""
    timeout_s = max(1, int(timeout_s))
    if threading.current_thread() is threading.main_thread():
        return equivalent_here(gold, pred, timeout_s)
    pool = _worker_pool()
    worker = pool.get()
    try:
        return worker.call(gold, pred, timeout_s)
    finally:
        pool.put(worker)


def verify_math(
    problem: Problem,
    text: str,
    format_reward: float = 0.1,
    extract: str = "answer_tag",
    format_style: str = "think_answer",
    timeout_s: int = 5,
    max_answer_chars: int = MAX_ANSWER_CHARS,
) -> Score:
    """Reward 1 if the single final answer (found by `extract`) is equivalent to `problem.answer`
    under math-verify, plus `format_reward` for the format (`format_style`)."""
    reply = read_reply(text, format_reward, extract, max_answer_chars, style=format_style)
    if reply.answer is None:
        return reply.missing()
    ok, reason = equivalent(str(problem.answer), reply.answer, timeout_s)
    details = {"parsed": reply.answer}
    if not ok:
        details["reason"] = reason
    return reply.scored(ok, details)
