"""Proposals and the filters every proposal passes before it is written.

1. `malformed`: a question (ending in "?") and a short answer (at most `MAX_ANSWER_CHARS`) for a verifier
   the pipeline writes (`numeric`, `integer`, `math`, `exact`);
2. `answer_not_in_passage`: the answer is in the source passage: its text (spacing and case aside) or, for
   numbers, the same value written there (`1,000` for `1000`);
3. `question_contains_answer`: the question neither holds the answer's text nor a number equal to it;
4. `answer_unparsable`: the reference passes `check_answer` with the verifier it names (and a `math`
   answer holds a digit or a math symbol: math-verify reads plain words as products of variables);
5. `duplicate`: the normalised question was already accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from rlvr.tasks.answers import check_answer
from rlvr.tasks.datasets import normalise_question

MAX_ANSWER_CHARS = 60
VERIFIERS = ("numeric", "integer", "math", "exact")
FILTERS = ("malformed", "answer_not_in_passage", "question_contains_answer", "answer_unparsable", "duplicate")
NUMBER_RE = re.compile(r"(?<![\w.])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\w])")
SPACE_RE = re.compile(r"\s+")
MATH_RE = re.compile(r"[\d=+\-*/^\\]")


@dataclass
class Proposal:
    """A question about a passage, as a proposer wrote it; `answer` is the short answer text."""

    question: str
    answer: str
    verifier: str = "numeric"
    proposer: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def number_value(text: str) -> Fraction | None:
    """The value of a plain number literal (`1,000`, `-2.5`), else None."""
    try:
        return Fraction(text.replace(",", ""))
    except (ValueError, ZeroDivisionError):
        return None


def numbers_in(text: str) -> set[Fraction]:
    """Values of every number literal in `text`."""
    return {v for m in NUMBER_RE.finditer(text) if (v := number_value(m.group())) is not None}


def split_quantity(answer: str) -> tuple[Fraction, str] | None:
    """`"30 days"` -> (30, "days"), `"45%"` -> (45, "%"), `"$20"` -> (20, "$"); None if not one number."""
    text = answer.strip()
    m = re.fullmatch(r"\$\s*(?P<num>[\d,.]+)", text)
    if m:
        value = number_value(m["num"])
        return (value, "$") if value is not None else None
    m = re.fullmatch(r"(?P<num>[-+]?[\d,]*\.?\d+)\s*(?P<unit>[^\d\s][^\d]{0,24})?", text)
    if not m:
        return None
    value = number_value(m["num"])
    return (value, (m["unit"] or "").strip()) if value is not None else None


def reference(proposal: Proposal) -> Any:
    """What the written row's `answer` holds: `{"value", "unit"}` or a number for numeric, else the text."""
    if proposal.verifier in ("numeric", "integer"):
        parsed = split_quantity(proposal.answer)
        if parsed is None:
            return proposal.answer
        value, unit = parsed
        number: int | float = int(value) if value.denominator == 1 else float(value)
        if proposal.verifier == "integer" or not unit:
            return number
        return {"value": number, "unit": "dollars" if unit == "$" else unit}
    return proposal.answer.strip()


def _norm(text: str) -> str:
    return SPACE_RE.sub(" ", text).strip().casefold()


def answer_in_passage(proposal: Proposal, passage: str) -> bool:
    """The answer's text is in the passage, or (numbers) a literal of the same value is."""
    if _norm(proposal.answer) in _norm(passage):
        return True
    parsed = split_quantity(proposal.answer) if proposal.verifier in ("numeric", "integer") else None
    if parsed is None:
        return False
    value, unit = parsed
    unit_ok = not unit or unit == "$" or _norm(unit) in _norm(passage)
    return value in numbers_in(passage) and unit_ok


def question_has_answer(proposal: Proposal) -> bool:
    """The question gives the answer away: its text, or a number of the same value."""
    answer = _norm(proposal.answer)
    if re.search(rf"(?<!\w){re.escape(answer)}(?!\w)", _norm(proposal.question)):
        return True
    parsed = split_quantity(proposal.answer)
    return parsed is not None and parsed[0] in numbers_in(proposal.question)


def rejection(proposal: Proposal, passage: str, seen: set[str]) -> str | None:
    """The first filter `proposal` fails (one of `FILTERS`), or None when it is accepted (and then its
    question key is added to `seen`)."""
    q, a = proposal.question.strip(), proposal.answer.strip()
    if (
        not q.endswith("?")
        or len(q) < 10
        or not a
        or len(a) > MAX_ANSWER_CHARS
        or proposal.verifier not in VERIFIERS
    ):
        return "malformed"
    if not answer_in_passage(proposal, passage):
        return "answer_not_in_passage"
    if question_has_answer(proposal):
        return "question_contains_answer"
    if check_answer(proposal.verifier, reference(proposal)) is not None or (
        proposal.verifier == "math" and not MATH_RE.search(a)
    ):  # math-verify reads "the notice" as t*h*e...
        return "answer_unparsable"
    key = normalise_question(q)
    if key in seen:
        return "duplicate"
    seen.add(key)
    return None
