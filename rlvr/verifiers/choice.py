"""Multiple-choice verifier: the final answer is one option letter.

Decoration is ignored: "B", "(B)", "[B]", "B.", "B)", "**B**", "Option B", "Answer: B", "B. Paris".
Several letters ("A or B", "A, C", "AB") give 0, as does a letter outside the options or a look-alike
letter (fullwidth 'Ｂ'). `problem.answer` is the letter (or its 0-based index); the options are `choices`
(default: as many letters as `problem.meta["choices"]` has entries, else A-J).
"""

from __future__ import annotations

import re
import string

from rlvr.types import Problem, Score
from rlvr.verifiers.reply import read_reply

DECOR_RE = re.compile(r"[*_`\"'“”]")
PREFIX_RE = re.compile(
    r"^(?:(?:the\s+)?(?:correct\s+)?(?:answer|option|choice)\s*(?:is|:)?\s*)+", re.IGNORECASE
)
LETTER_RE = re.compile(r"^[(\[]?\s*([A-Za-z])\s*[)\]]?(?:\s*[.:)\]-]\s*.*|\s*[.:])?$", re.DOTALL)
SEVERAL_RE = re.compile(
    r"^[(\[]?[A-Za-z][)\].]?(?:\s*(?:,|/|&|\bor\b|\band\b)\s*[(\[]?[A-Za-z][)\].]?)+$", re.IGNORECASE
)


def parse_choice(answer: str) -> str:
    """The single option letter (upper case) in `answer`; raises ValueError with the reason."""
    s = PREFIX_RE.sub("", DECOR_RE.sub("", answer).strip()).strip()
    if not s.isascii():
        raise ValueError(f"{answer!r} is not an ASCII option letter")
    if SEVERAL_RE.match(s) or (len(s) > 1 and s.isalpha() and s.isupper() and len(s) <= 5):
        raise ValueError(f"several options in {answer!r}")
    m = LETTER_RE.match(s)
    if not m:
        raise ValueError(f"{answer!r} is not one option letter")
    return m.group(1).upper()


def verify_choice(
    problem: Problem,
    text: str,
    format_reward: float = 0.1,
    extract: str = "answer_tag",
    format_style: str = "think_answer",
    choices: str | None = None,
) -> Score:
    """Reward 1 if the single option letter of the final answer is `problem.answer`, plus
    `format_reward` for the format (`format_style`)."""
    reply = read_reply(text, format_reward, extract, 300, style=format_style)
    if reply.answer is None:
        return reply.missing()
    if choices is None:
        n = len(problem.meta.get("choices", [])) or 10
        choices = string.ascii_uppercase[:n]
    gold = problem.answer
    gold = string.ascii_uppercase[gold] if isinstance(gold, int) else str(gold).strip().upper()
    try:
        letter = parse_choice(reply.answer)
    except ValueError as e:
        return reply.zero({"reason": str(e), "parsed": reply.answer})
    if letter not in choices.upper():
        return reply.zero({"reason": f"{letter} is not one of the options {choices}"})
    correct = letter == gold
    details = {"parsed": letter}
    if not correct:
        details["reason"] = f"chose {letter}"
    return reply.scored(correct, details)
