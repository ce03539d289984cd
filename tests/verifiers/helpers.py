"""Helpers for the verifier tests: completions in the think/answer format, fast sandbox limits."""

from __future__ import annotations

import os
from pathlib import Path

from rlvr.verifiers import verify_text


def wrap(answer: str, think: str = "Let me work it out.") -> str:
    """A well-formatted completion whose final answer is `answer`."""
    return f"<think>{think}</think><answer>{answer}</answer>"


def code_answer(code: str) -> str:
    """A well-formatted completion whose answer is one ```python block."""
    return wrap(f"```python\n{code}\n```")


FAST = {"timeout_s": 2.0, "memory_mb": 256, "format_reward": 0.0}


def score_code(code: str, answer: dict, **options):
    """The code verifier through `verify_text`, with small limits (the path `rlvr verify` uses)."""
    return verify_text("code", answer, code_answer(code), **{**FAST, **options})


def assert_healthy() -> None:
    """The next execution works normally."""
    ok = score_code("def f(x):\n    return x + 1\n", {"tests": "assert f(1) == 2\n", "entry_point": "f"})
    assert ok.correct and ok.reward == 1.0, ok


def pids_with(marker: str) -> list[int]:
    """Host processes whose command line holds `marker`, leaving out a sibling test process's (below)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes() and not _a_sibling_s(int(pid)):
                found.append(int(pid))
        except OSError:
            pass
    return found


def _parent(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    return 0


def _a_sibling_s(pid: int) -> bool:
    """Whether `pid` descends from a sibling of this process (another pytest-xdist worker, whose sandbox runs
    hold the same marker). A run of this process's descends from it, and a survivor that escaped its run
    was handed to init or a subreaper (at most this process's parent itself), never to a sibling."""
    me, parent, start = os.getpid(), os.getppid(), pid
    while pid > 1 and pid != me:
        up = _parent(pid)
        if up == parent:
            return pid != start
        pid = up
    return False
