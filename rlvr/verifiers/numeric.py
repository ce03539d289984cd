"""Numeric verifier: one number, compared with relative/absolute tolerance, with optional units.

The answer must be a single number literal: `-3`, `2.50`, `1,000`, `6.02e23`, `3/4`, `\\frac{3}{4}`,
optionally followed by a unit. Expressions, several numbers ("3 or 4", "3, 4, 5") and look-alike digits
give 0. `problem.answer` is a number (or numeric string), or `{"value": x, "unit": "m"}`.

Units: `units={"m": 1, "cm": 0.01, "km": 1000}` maps each accepted unit to its factor in the reference's
unit (`{"value": 2, "unit": "m"}` alone accepts "m" with factor 1). A unit that is not listed gives 0;
no unit is accepted unless `require_unit=True`.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

from rlvr.types import Problem, Score
from rlvr.verifiers.extract import MAX_ANSWER_CHARS
from rlvr.verifiers.reply import read_reply

_NUM = r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?(?:[eE][+-]?\d+)?|[+-]?\.\d+(?:[eE][+-]?\d+)?"
NUMBER_RE = re.compile(rf"^(?P<num>{_NUM})(?:\s*/\s*(?P<den>{_NUM}))?\s*(?P<unit>.*?)$", re.DOTALL)
FRAC_RE = re.compile(
    r"^(?P<sign>[+-]?)\\[dt]?frac\{\s*(?P<num>[^{}]+?)\s*\}\{\s*(?P<den>[^{}]+?)\s*\}\s*(?P<unit>.*)$"
)
ANY_NUMBER_RE = re.compile(r"(?<![\^\w])\d+(?:\.\d+)?")
TEXT_RE = re.compile(r"\\(?:text|mathrm|mbox|operatorname)\s*\{([^{}]*)\}")


class NumberError(ValueError):
    """The answer is not one number (with an accepted unit)."""


def _to_number(s: str) -> Fraction:
    s = s.replace(",", "")
    try:
        return Fraction(s)
    except (ValueError, ZeroDivisionError) as e:
        raise NumberError(f"{s!r} is not a number") from e


def parse_number(answer: str) -> tuple[Fraction | float, str]:
    """The exact value and the unit text (stripped, may be "") of a single-number answer."""
    s = TEXT_RE.sub(
        r" \1", answer.strip().strip("$").replace("\\,", "").replace("\\!", "").replace("\\ ", " ")
    )
    s = s.strip()
    m = FRAC_RE.match(s)
    if m:
        num, den = _to_number(m["num"]), _to_number(m["den"])
        value_num, unit = (-num if m["sign"] == "-" else num), m["unit"]
    else:
        m = NUMBER_RE.match(s)
        if not m:
            raise NumberError(f"{answer!r} is not a number")
        value_num, den, unit = (
            _to_number(m["num"]),
            (_to_number(m["den"]) if m["den"] else Fraction(1)),
            m["unit"],
        )
    if den == 0:
        raise NumberError("division by zero")
    unit = unit.strip().strip("{}").strip()
    if ANY_NUMBER_RE.search(unit):
        raise NumberError(f"several numbers in {answer!r}")
    return value_num / den, unit


def verify_numeric(
    problem: Problem,
    text: str,
    format_reward: float = 0.1,
    extract: str = "answer_tag",
    format_style: str = "think_answer",
    rel_tol: float = 1e-6,
    abs_tol: float = 1e-9,
    units: dict[str, float] | None = None,
    require_unit: bool = False,
    max_answer_chars: int = 100,
) -> Score:
    """Reward 1 if the single final number (converted by its unit) is within `rel_tol`/`abs_tol` of the
    reference, plus `format_reward` for the format (`format_style`)."""
    reply = read_reply(text, format_reward, extract, min(max_answer_chars, MAX_ANSWER_CHARS), style=format_style)
    if reply.answer is None:
        return reply.missing()
    gold = problem.answer
    gold_unit = ""
    if isinstance(gold, dict):
        gold, gold_unit = gold["value"], gold.get("unit", "")
    table = dict(units or {})
    if gold_unit:
        table.setdefault(gold_unit, 1.0)
    try:
        value, unit = parse_number(reply.answer)
        if unit and unit not in table:
            raise NumberError(f"unit {unit!r} is not accepted (accepted: {sorted(table) or 'none'})")
        if not unit and require_unit:
            raise NumberError("a unit is required")
        value = float(value) * float(table.get(unit, 1.0))
        gold_value = float(_to_number(str(gold)) if isinstance(gold, str) else gold)
    except (NumberError, OverflowError, TypeError, ValueError) as e:
        return reply.zero({"reason": str(e), "parsed": reply.answer})
    correct = math.isfinite(value) and math.isclose(value, gold_value, rel_tol=rel_tol, abs_tol=abs_tol)
    details = {"parsed": reply.answer, "value": value}
    if not correct:
        details["reason"] = f"{value} is not within tolerance of {gold_value}"
    return reply.scored(correct, details)
