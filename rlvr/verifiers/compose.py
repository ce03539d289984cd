"""Weighted composition of reward functions, built from config.

A task's reward is a list of entries, e.g. `[{"name": "math", "weight": 1.0}, {"name": "format",
"weight": 0.1}]`. `name` is a registered verifier or an import path `"package.module:function"` to a
function `f(problem, text, **options) -> Score | float`. Other keys of an entry, or its `options` dict,
are passed to the function; `timeout_s` bounds a user function's time.

reward = sum_i weight_i * reward_i. `correct` is the first entry's (the primary reward); `formatted` is
true when any entry says so; `details["components"][name]` holds each entry's reward, weight and details.
Built-in verifiers get `format_reward=0` unless the entry sets it: the format is its own entry.

The reward is all of its terms or none: a weighted sum with a term missing is not the reward configured.
A function that raises, returns garbage (not a `Score` or number, or a reward that is not finite) or runs
past `timeout_s` raises `VerifierError` naming the entry, the problem and what happened, and the whole
completion has no reward (the trainer leaves it out and counts it in `verify/verifier_errors`);
`InfraError` (the sandbox could not run the code) propagates as it is: no reward either.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rlvr.timeouts import CallTimeout, call_with_timeout
from rlvr.types import Problem, Score
from rlvr.verifiers import VERIFIERS, check_options, safe_score, verifier_fault

ENTRY_KEYS = {"name", "weight", "options", "timeout_s"}
DEFAULT_USER_TIMEOUT_S = 30.0


@dataclass
class RewardTerm:
    """One weighted reward function of a composed reward."""

    name: str
    fn: Callable[..., Any]
    weight: float = 1.0
    options: dict[str, Any] = field(default_factory=dict)
    timeout_s: float | None = None  # None: call inline (built-ins bound their own time)


def resolve(name: str) -> Callable[..., Any]:
    """A registered verifier, or the object at import path `module:attr` (dots allowed in attr)."""
    if name in VERIFIERS:
        return VERIFIERS[name]
    if ":" not in name:
        raise ValueError(
            f"reward {name!r} is neither a registered verifier ({', '.join(sorted(VERIFIERS))}) "
            "nor an import path like 'mypkg.rewards:my_reward'"
        )
    module_name, _, attr = name.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"reward {name!r}: cannot import it ({type(e).__name__}: {e})") from e
    if not callable(obj):
        raise ValueError(f"reward {name!r} is a {type(obj).__name__}, not a function")
    return obj


def _term(i: int, entry: dict) -> RewardTerm:
    if not isinstance(entry, dict) or "name" not in entry:
        raise ValueError(f"reward[{i}] must be a mapping with a 'name', got {entry!r}")
    name = entry["name"]
    fn = resolve(name)
    options = dict(entry.get("options") or {})
    options.update({k: v for k, v in entry.items() if k not in ENTRY_KEYS})
    try:
        weight = float(entry.get("weight", 1.0))
    except (TypeError, ValueError) as e:
        raise ValueError(f"reward[{i}].weight must be a number, got {entry.get('weight')!r}") from e
    builtin = name in VERIFIERS
    if builtin and "format_reward" in inspect.signature(fn).parameters:
        options.setdefault("format_reward", 0.0)
    try:
        check_options(name, fn, options)
    except ValueError as e:
        raise ValueError(f"reward[{i}]: {e}") from e
    timeout = entry.get("timeout_s", None if builtin else DEFAULT_USER_TIMEOUT_S)
    return RewardTerm(name, fn, weight, options, None if timeout is None else float(timeout))


def _as_score(value: Any) -> Score:
    if isinstance(value, Score):
        return value
    if isinstance(value, bool | int | float):
        return Score(float(value), bool(value), False, {})
    raise TypeError(f"returned {type(value).__name__}, expected Score or a number")


def _call(term: RewardTerm, problem: Problem, text: str) -> Score:
    """One term's score. Its failure, garbage or timeout raises `VerifierError` naming the term; `InfraError`
    propagates."""

    def fn(p: Problem, t: str, **o) -> Score:
        return _as_score(term.fn(p, t, **o))

    fn.__qualname__ = term.name  # what a VerifierError names: the entry as the config wrote it
    if term.timeout_s is None:
        return safe_score(fn, problem, text, **term.options)
    try:
        return call_with_timeout(safe_score, term.timeout_s, fn, problem, text, **term.options)
    except CallTimeout:  # a hung user function cannot be killed, but it no longer holds up training
        raise verifier_fault(term.name, problem, f"timed out after {term.timeout_s:g}s (timeout_s)") from None


def build_reward(spec: list[dict]) -> Callable[[Problem, str], Score]:
    """A reward function `(problem, text) -> Score` from a weighted list of named reward functions.

    Raises ValueError at build time for a bad spec (unknown name, bad import path, bad weight); the
    built function raises `InfraError` or `VerifierError` when any term could not give its reward (then the
    completion has no reward at all), never for a bad completion."""
    if not isinstance(spec, list) or not spec:
        raise ValueError(f"a reward spec is a non-empty list of {{name, weight, ...}} entries, got {spec!r}")
    terms = [_term(i, entry) for i, entry in enumerate(spec)]

    def reward(problem: Problem, text: str) -> Score:
        total, components, formatted = 0.0, {}, False
        scores = [_call(t, problem, text) for t in terms]
        for t, s in zip(terms, scores):  # every reward is a finite number (safe_score checked it)
            value = float(s.reward)
            total += t.weight * value
            formatted |= bool(s.formatted)
            key = t.name if t.name not in components else f"{t.name}#{len(components)}"
            components[key] = {"reward": value, "weight": t.weight, "correct": s.correct, **s.details}
        return Score(total, bool(scores[0].correct), formatted, {"components": components})

    reward.terms = terms  # type: ignore[attr-defined]
    return reward
