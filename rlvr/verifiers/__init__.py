"""Verifiers: pure functions `verify(problem, text, **options) -> Score`. Untrusted code only ever runs in
`sandbox`.

Registered verifiers (`VERIFIERS`): integer, countdown (the built-in tasks), math (math-verify
equivalence), numeric (tolerance, units), exact (normalised string), choice (one option letter), code
(tests in the sandbox), format (think/answer shape). Answer-based ones take `extract="answer_tag" |
"boxed" | "final_answer_line"` and `format_reward` (default 0.1). `rlvr verify` and the test suites go
through `verify_text`; the trainer through `get_verifier` or `compose.build_reward`.

A reward is either true or not given, never a silent 0. What the candidate got wrong is a reward of 0 with
the reason; a fault that is not the candidate's gives no reward at all, and passes through every wrapper here
as an exception: `InfraError` (the sandbox could not run the code) and `VerifierError` (the verifier itself
raised, returned something that is not a `Score` with a finite reward, or ran past its time). The trainer
leaves such a sample out of the batch and counts it (`verify/infra_errors`, `verify/verifier_errors`);
evaluation leaves it out too, neither right nor wrong.
"""

from __future__ import annotations

import inspect
import logging
import numbers
from collections.abc import Callable
from math import isfinite  # (`math` here is rlvr.verifiers.math, the submodule)
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


class VerifierError(RuntimeError):
    """The verifier itself failed on a sample: it raised, returned something that is not a `Score` with a
    finite reward, or (a composed term) ran past its `timeout_s`. Not the candidate's doing, so the sample has
    no reward (a 0 would teach the policy the verifier's bug). `verifier` names it, `problem_id` says where,
    `message` what happened."""

    def __init__(self, verifier: str, problem_id: str, message: str):
        super().__init__(verifier, problem_id, message)  # the args pickle it (Ray actors, threads)
        self.verifier, self.problem_id, self.message = verifier, problem_id, message

    def __str__(self) -> str:
        return f"verifier {self.verifier} failed on problem {self.problem_id}: {self.message}"


def verifier_name(fn: Callable[..., Any]) -> str:
    """How logs and errors name a reward function: its qualified name."""
    return getattr(fn, "__qualname__", getattr(fn, "__name__", repr(fn)))


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
    now. The returned function raises `InfraError` (the sandbox's fault) or `VerifierError` (the verifier's
    own, see `safe_score`), never anything else: both mean no reward."""
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
    either true or not given, never a 0 for the host's fault. Callers leave such samples out and count them.
    `VerifierError` (the verifier's own fault: no reward either) propagates, so that callers can count it
    apart and say which verifier failed."""
    try:
        return safe_score(fn, problem, text, **options)
    except InfraError as e:
        logger.warning("no reward (sandbox fault, not the candidate's): %s", e)
        return None


def score_sample(fn: Callable[..., Score], problem: Problem, text: str, episode=None) -> Score | None:
    """The one scoring path of a sample: where its episode's environment gives the reward itself
    (`episode.env_scored`, the adapters of rlvr.environments.adapters), that reward, or None where the
    environment gave none (it failed, or the episode was cut before it finished: left out and counted, never
    a 0); else `score_or_none(fn, problem, text)`, the task's verifier on the transcript, which raises
    `VerifierError` where the verifier itself failed (no reward either; the caller counts it)."""
    if episode is not None and episode.env_scored:
        return episode.env_score
    return score_or_none(fn, problem, text)


def safe_score(fn: Callable[..., Score], problem: Problem, text: str, **options) -> Score:
    """`fn(problem, text, **options)` (a verifier, or a task's `verify`), guarded: the one guard every scoring
    path goes through (the trainer, rollout workers, verifier actors, `get_verifier`, `verify_text`, composed
    rewards). Returns `fn`'s `Score` when its reward is a finite number. Anything else is the verifier's own
    fault, not the candidate's: an exception, or a result that is not such a `Score`, raises `VerifierError`
    naming `fn`, the problem and the message (and logs a warning). The sample then has no reward: a 0 for a
    reward bug would teach the policy noise, and so would a 0 for `InfraError` (the sandbox could not run the
    candidate), which passes through as it is, like a `VerifierError` raised by a verifier `fn` wraps.
    A verifier that scores a bad completion 0 returns that Score; it must not raise for it."""
    try:
        score = fn(problem, text, **options)
    except (InfraError, VerifierError):
        raise
    except Exception as e:  # noqa: BLE001 - any failure of a reward is no reward, counted by the caller
        raise verifier_fault(verifier_name(fn), problem, f"raised {type(e).__name__}: {e}") from e
    if not isinstance(score, Score):
        raise verifier_fault(verifier_name(fn), problem, f"returned {type(score).__name__}, not Score")
    if not isinstance(score.reward, numbers.Real) or not isfinite(score.reward):
        raise verifier_fault(verifier_name(fn), problem, f"returned a reward of {score.reward!r}, not a finite number")
    return score


def verifier_fault(verifier: str, problem: Problem, message: str) -> VerifierError:
    """The `VerifierError` of `verifier` on `problem`, logged once here (the one warning of each fault)."""
    error = VerifierError(verifier, problem.id, message)
    logger.warning("no reward (the verifier's fault, not the candidate's): %s", error)
    return error


def verify_text(name: str, answer: Any, text: str, **options) -> Score:
    """Score `text` against the reference `answer` with the verifier `name` (one code path for
    `rlvr verify`, the hacking suite and the attack suite). Never raises for a bad completion; raises
    `InfraError` when the sandbox could not run it and `VerifierError` when the verifier itself failed (e.g.
    on an unusable reference `answer`): no verdict either way."""
    if name not in VERIFIERS:
        raise KeyError(f"unknown verifier {name!r}; known: {', '.join(sorted(VERIFIERS))}")
    problem = Problem(id=f"{name}-cli", prompt="", answer=answer, task=name)
    return safe_score(VERIFIERS[name], problem, text, **options)


from rlvr.verifiers.compose import build_reward  # noqa: E402 - compose uses the registry above

__all__ = [
    "InfraError",
    "VERIFIERS",
    "Verifier",
    "VerifierError",
    "build_reward",
    "check_options",
    "get_verifier",
    "safe_score",
    "verify_text",
]
