"""A completion read the way every answer verifier reads it: the think/answer format (which earns the format
bonus) and the single final answer (see `extract.py`). Each verifier then only decides correctness."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rlvr.types import Score
from rlvr.verifiers.extract import MAX_ANSWER_CHARS, extract, is_well_formatted


@dataclass(frozen=True)
class Reply:
    """`formatted`: the format asked for (by default exactly `<think>...</think><answer>...</answer>`);
    `bonus`: the format reward it earns, added to every score (right or wrong, so the format never outweighs
    correctness: rewards stay below 1 unless correct); `answer`: the final answer, None when there is none, and then `reason` says why."""

    formatted: bool
    bonus: float
    answer: str | None
    reason: str = ""

    def missing(self) -> Score:
        """The score of a reply without a usable final answer: the bonus, and why."""
        return self.zero({"reason": self.reason})

    def zero(self, details: dict[str, Any]) -> Score:
        """Not correct: the format bonus only; `details` say why."""
        return Score(self.bonus, False, self.formatted, details)

    def scored(self, correct: bool, details: dict[str, Any], value: float | None = None) -> Score:
        """Reward = (1 if `correct` else 0, or `value` for partial credit) + the format bonus."""
        base = (1.0 if correct else 0.0) if value is None else value
        return Score(base + self.bonus, correct, self.formatted, details)


def read_reply(text: str, format_reward: float, method: str = "answer_tag",
               max_chars: int = MAX_ANSWER_CHARS, style: str = "think_answer") -> Reply:
    """`text` read for scoring: its format in `style` (`extract.FORMAT_STYLES`, earning `format_reward`) and
    its final answer found by `method` (one of `extract.EXTRACTORS`), at most `max_chars` characters long."""
    formatted = is_well_formatted(text, style)
    ext = extract(text, method, max_chars)
    return Reply(formatted, format_reward if formatted else 0.0, ext.answer, ext.reason)
