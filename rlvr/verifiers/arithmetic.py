"""Verifier for integer-answer tasks (the built-in `arithmetic` task)."""

from __future__ import annotations

import re

from rlvr.types import Problem, Score
from rlvr.verifiers.extract import MAX_ANSWER_CHARS
from rlvr.verifiers.reply import read_reply

INT_RE = re.compile(r"[+-]?[0-9]+")


def verify_integer(
    problem: Problem,
    text: str,
    format_reward: float = 0.1,
    extract: str = "answer_tag",
    format_style: str = "think_answer",
    max_answer_chars: int = MAX_ANSWER_CHARS,
) -> Score:
    """Reward = 1 if the final answer (found by `extract`, see `extract.py`) is exactly the integer
    `problem.answer` (ASCII digits only, optional sign, nothing else), plus `format_reward` for the
    think/answer format.

    Correct answers score `1 + format_reward` when well formatted; anything else scores at most
    `format_reward`, so the format never outweighs correctness.
    """
    reply = read_reply(text, format_reward, extract, max_answer_chars, style=format_style)
    if reply.answer is None:
        return reply.missing()
    candidate = (
        reply.answer.replace(",", "") if re.fullmatch(r"[+-]?\d{1,3}(,\d{3})+", reply.answer) else reply.answer
    )
    if not (INT_RE.fullmatch(candidate) and candidate.isascii()):
        return reply.zero({"reason": "answer is not a plain integer", "parsed": reply.answer})
    correct = int(candidate) == int(problem.answer)
    details = {"parsed": int(candidate)} if correct else {"parsed": int(candidate), "reason": "wrong number"}
    return reply.scored(correct, details)
