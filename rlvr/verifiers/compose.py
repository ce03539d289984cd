"""Weighted composition of reward functions, built from config.

A task's reward is a list of entries, e.g. `[{"name": "math", "weight": 1.0}, {"name": "format",
"weight": 0.1}]`. `name` is a registered verifier or an import path `"package.module:function"` to a
function `f(problem, text, **options) -> Score | float`. Other keys of an entry, or its `options` dict,
are passed to the function; `timeout_s` bounds a user function's time.

reward = sum_i weight_i * reward_i. `correct` is the first entry's (the primary reward); `formatted` is
true when any entry says so. A function that raises, returns garbage or runs past `timeout_s` gives 0
for that completion with the reason in `details["components"][name]` (and a log line), never an
exception, except `InfraError` (the sandbox could not run the code: no reward at all). Built-in verifiers get `format_reward=0` unless the entry sets it: the format is its own entry.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rlvr.timeouts import CallTimeout, call_with_timeout
from rlvr.types import Problem, Score
from rlvr.verifiers import VERIFIERS, check_options, safe_score

logger = logging.getLogger(__name__)

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
    """One term's score; a failure or timeout is a zero with the reason; `InfraError` propagates."""

    def fn(p: Problem, t: str, **o) -> Score:
        return _as_score(term.fn(p, t, **o))

    if term.timeout_s is None:
        return safe_score(fn, problem, text, **term.options)
    try:  # InfraError propagates: no reward, not a zero
        return call_with_timeout(safe_score, term.timeout_s, fn, problem, text, **term.options)
    except CallTimeout:  # a hung user function cannot be killed, but it no longer holds up training
        logger.warning("reward %s timed out after %.1fs on problem %s", term.name, term.timeout_s, problem.id)
        return Score(0.0, False, False, {"error": f"{term.name} timed out after {term.timeout_s:g}s"})


def build_reward(spec: list[dict]) -> Callable[[Problem, str], Score]:
    """A reward function `(problem, text) -> Score` from a weighted list of named reward functions.

    Raises ValueError at build time for a bad spec (unknown name, bad import path, bad weight); the
    built function raises only `InfraError`."""
    if not isinstance(spec, list) or not spec:
        raise ValueError(f"a reward spec is a non-empty list of {{name, weight, ...}} entries, got {spec!r}")
    terms = [_term(i, entry) for i, entry in enumerate(spec)]

    def reward(problem: Problem, text: str) -> Score:
        total, components, formatted = 0.0, {}, False
        scores = [_call(t, problem, text) for t in terms]
        for t, s in zip(terms, scores):
            value = s.reward if isinstance(s.reward, int | float) and s.reward == s.reward else 0.0
            total += t.weight * value
            formatted |= bool(s.formatted)
            key = t.name if t.name not in components else f"{t.name}#{len(components)}"
            components[key] = {"reward": value, "weight": t.weight, "correct": s.correct, **s.details}
        return Score(total, bool(scores[0].correct), formatted, {"components": components})

    reward.terms = terms  # type: ignore[attr-defined]
    return reward
