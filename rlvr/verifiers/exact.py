"""Exact-match verifier: the final answer equals the reference after light, configurable normalisation.

By default whitespace runs collapse to one space and case is ignored; `strip_punctuation=True` also drops
surrounding punctuation and quotes. Unicode is NFC-normalised only, never NFKC, so look-alike characters
(fullwidth '４２', other scripts' digits) stay different. `problem.answer` is a string or a list of
accepted strings.
"""

from __future__ import annotations

import re
import string
import unicodedata

from rlvr.types import Problem, Score
from rlvr.verifiers.extract import MAX_ANSWER_CHARS
from rlvr.verifiers.reply import read_reply

SPACE_RE = re.compile(r"\s+")


def normalise(
    s: str, case_sensitive: bool = False, whitespace: bool = True, strip_punctuation: bool = False
) -> str:
    """`s` as compared by `verify_exact`."""
    s = unicodedata.normalize("NFC", s).strip()
    if whitespace:
        s = SPACE_RE.sub(" ", s)
    if strip_punctuation:
        s = s.strip(string.punctuation + "“”‘’ ").strip()
    return s if case_sensitive else s.casefold()


def verify_exact(
    problem: Problem,
    text: str,
    format_reward: float = 0.1,
    extract: str = "answer_tag",
    format_style: str = "think_answer",
    case_sensitive: bool = False,
    whitespace: bool = True,
    strip_punctuation: bool = False,
    max_answer_chars: int = MAX_ANSWER_CHARS,
) -> Score:
    """Reward 1 if the normalised final answer equals one normalised accepted answer, plus
    `format_reward` for the format (`format_style`)."""
    reply = read_reply(text, format_reward, extract, max_answer_chars, style=format_style)
    if reply.answer is None:
        return reply.missing()
    accepted = problem.answer if isinstance(problem.answer, list | tuple) else [problem.answer]
    norm = {
        "case_sensitive": case_sensitive,
        "whitespace": whitespace,
        "strip_punctuation": strip_punctuation,
    }
    got = normalise(reply.answer, **norm)
    correct = any(got == normalise(str(a), **norm) for a in accepted)
    details = {"parsed": reply.answer}
    if not correct:
        details["reason"] = "does not match the reference"
    return reply.scored(correct, details)
