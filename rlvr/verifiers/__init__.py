"""Verifiers: pure functions `verify(problem, text, **options) -> Score`. Untrusted code only ever runs in
`sandbox`.

Registered verifiers (`VERIFIERS`): integer, countdown (the built-in tasks), math (math-verify
equivalence), numeric (tolerance, units), exact (normalised string), choice (one option letter), code
(tests in the sandbox), format (think/answer shape). Answer-based ones take `extract="answer_tag" |
"boxed" | "final_answer_line"` and `format_reward` (default 0.1). `rlvr verify` and the test suites go
through `verify_text`; the trainer through `get_verifier` or `compose.build_reward`.

Every failure of a verifier is a reward of 0 with the reason, except `InfraError`: the sandbox (not the
candidate) could not run the code, so the sample has no reward at all. It passes through every wrapper
here; the trainer leaves such a sample out of the batch and counts it.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

from rlvr.types import Problem, Score
from rlvr.verifiers.arithmetic import verify_integer
from rlvr.verifiers.choice import verify_choice
from rlvr.verifiers.code import verify_code
from rlvr.verifiers.countdown import verify_countdown
from rlvr.verifiers.exact import verify_exact
from rlvr.verifiers.extract import EXTRACTORS
from rlvr.verifiers.format import verify_format
from rlvr.verifiers.math import verify_math
from rlvr.verifiers.numeric import verify_numeric
from rlvr.verifiers.sandbox import InfraError

logger = logging.getLogger(__name__)

Verifier = Callable[[Problem, str], Score]

VERIFIERS: dict[str, Callable[..., Score]] = {
    "integer": verify_integer,
    "countdown": verify_countdown,
    "math": verify_math,
    "numeric": verify_numeric,
    "exact": verify_exact,
    "choice": verify_choice,
    "code": verify_code,
    "format": verify_format,
}


def check_options(name: str, fn: Callable[..., Any], options: dict[str, Any]) -> None:
    """Raise ValueError naming the verifier when `options` do not fit `fn` (a typo in a config)."""
    params = [p for p in inspect.signature(fn).parameters if p not in ("problem", "text")]
    try:
        inspect.signature(fn).bind(None, "", **options)
    except TypeError as e:
        raise ValueError(f"verifier {name!r}: {e}; its options are {', '.join(params) or 'none'}") from e
    allowed = ("answer_tag", "fenced") if fn is verify_code else EXTRACTORS
    if "extract" in options and options["extract"] not in allowed:
        raise ValueError(
            f"verifier {name!r}: extract={options['extract']!r}; expected one of {', '.join(allowed)}"
        )


def get_verifier(name: str, **options) -> Verifier:
    """The verifier registered as `name`, with `options` (e.g. `format_reward=0.1`) bound and checked
    now. The returned function raises only `InfraError`: any other failure is reward 0 with the reason
    (see `safe_score`)."""
    if name not in VERIFIERS:
        raise KeyError(f"unknown verifier {name!r}; known: {', '.join(sorted(VERIFIERS))}")
    fn = VERIFIERS[name]
    check_options(name, fn, options)

    if fn is verify_code:
        from rlvr.verifiers import sandbox

        logger.info("%s", sandbox.describe())  # the layers in force, once at the start of a run

    def verify(problem: Problem, text: str) -> Score:
        return safe_score(fn, problem, text, **options)

    verify.__name__ = verify.__qualname__ = f"verify_{name}"
    return verify


def score_or_none(fn: Callable[..., Score], problem: Problem, text: str, **options) -> Score | None:
    """`safe_score`, but None where the sandbox could not run the candidate (`InfraError`): a reward is
    either true or not given, never a 0 for the host's fault. Callers leave such samples out and count them."""
    try:
        return safe_score(fn, problem, text, **options)
    except InfraError as e:
        logger.warning("no reward (sandbox fault, not the candidate's): %s", e)
        return None


def score_sample(fn: Callable[..., Score], problem: Problem, text: str, episode=None) -> Score | None:
    """The one scoring path of a sample: where its episode's environment gives the reward itself
    (`episode.env_scored`, the adapters of rlvr.environments.adapters), that reward, or None where the
    environment gave none (it failed, or the episode was cut before it finished: left out and counted, never
    a 0); else `score_or_none(fn, problem, text)`, the task's verifier on the transcript."""
    if episode is not None and episode.env_scored:
        return episode.env_score
    return score_or_none(fn, problem, text)


def safe_score(fn: Callable[..., Score], problem: Problem, text: str, **options) -> Score:
    """`fn(problem, text, **options)` (a verifier, or a task's `verify`), guarded: an exception or a result
    that is not a `Score` becomes reward 0 and a log line. The one guard every scoring path goes through
    (the trainer, rollout workers, verifier actors, `get_verifier`, `verify_text`, composed rewards), so a
    reward bug never stops training. The message goes in `details["reason"]`, the key every zero explains
    itself with, and in `details["error"]`, which marks the verifier's own fault (not the candidate's).
    `InfraError` alone passes through: the sandbox could not run the candidate, and a 0 for it would teach
    the policy noise."""
    try:
        score = fn(problem, text, **options)
        if not isinstance(score, Score):
            raise TypeError(f"returned {type(score).__name__}, not Score")
        return score
    except InfraError:
        raise
    except Exception as e:  # noqa: BLE001 - any failure of a reward is a zero reward, never a crash
        name = getattr(fn, "__qualname__", getattr(fn, "__name__", repr(fn)))
        logger.warning("reward %s failed on problem %s: %s: %s", name, problem.id, type(e).__name__, e)
        message = f"{name} raised {type(e).__name__}: {e}"
        return Score(0.0, False, False, {"reason": message, "error": message})


def verify_text(name: str, answer: Any, text: str, **options) -> Score:
    """Score `text` against the reference `answer` with the verifier `name` (one code path for
    `rlvr verify`, the hacking suite and the attack suite). Never raises for a bad completion; raises
    `InfraError` when the sandbox could not run it."""
    if name not in VERIFIERS:
        raise KeyError(f"unknown verifier {name!r}; known: {', '.join(sorted(VERIFIERS))}")
    problem = Problem(id=f"{name}-cli", prompt="", answer=answer, task=name)
    return safe_score(VERIFIERS[name], problem, text, **options)


from rlvr.verifiers.compose import build_reward  # noqa: E402 - compose uses the registry above

__all__ = [
    "InfraError",
    "VERIFIERS",
    "Verifier",
    "build_reward",
    "check_options",
    "get_verifier",
    "safe_score",
    "verify_text",
]
