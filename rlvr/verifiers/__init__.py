"""Verifiers: pure functions `verify(problem, text) -> Score`. Untrusted code only ever runs in `sandbox`."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from rlvr.types import Problem, Score
from rlvr.verifiers.arithmetic import verify_integer
from rlvr.verifiers.countdown import verify_countdown

Verifier = Callable[[Problem, str], Score]

VERIFIERS: dict[str, Callable[..., Score]] = {
    "integer": verify_integer,
    "countdown": verify_countdown,
}


def get_verifier(name: str, **options) -> Verifier:
    """The verifier registered as `name`, with `options` (e.g. `format_reward=0.1`) bound."""
    if name not in VERIFIERS:
        raise KeyError(f"unknown verifier {name!r}; known: {', '.join(sorted(VERIFIERS))}")
    return partial(VERIFIERS[name], **options)
