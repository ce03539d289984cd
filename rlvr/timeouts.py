"""Calling in-process code that may hang (a user's reward function, a trusted tool, an adapted environment)
with a wall-clock limit."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class CallTimeout(Exception):
    """The call ran past its limit (its thread runs on: see `call_with_timeout`)."""


def call_with_timeout(fn: Callable, timeout_s: float, /, *args: Any, **kwargs: Any) -> Any:
    """`fn(*args, **kwargs)` run in a daemon thread of its own and waited for at most `timeout_s` seconds: its
    return value, or the exception it raised, re-raised here; `CallTimeout` when it runs past `timeout_s`.

    Python cannot kill a thread: a call that runs past goes on in the background until it returns, and what
    it returns then is dropped. Being a daemon thread (one per call, not a slot of a pool), it neither holds
    up the process's exit nor keeps later calls waiting behind it."""
    box: list[tuple[bool, Any]] = []

    def work() -> None:
        try:
            box.append((True, fn(*args, **kwargs)))
        except BaseException as e:  # noqa: BLE001 - handed to the caller as is
            box.append((False, e))

    worker = threading.Thread(target=work, daemon=True, name=f"rlvr-call-{getattr(fn, '__name__', 'fn')}")
    worker.start()
    worker.join(timeout_s)
    if not box:
        raise CallTimeout(f"ran past {timeout_s:g} s")
    ok, value = box[0]
    if not ok:
        raise value
    return value
