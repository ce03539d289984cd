"""Answer extraction shared by every verifier.

The answer is the content of the final `<answer>...</answer>` outside any `<think>` block. Text inside
`<think>` never counts. A completion with no answer tag has no answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

THINK_RE = re.compile(r"<think>.*?(?:</think>|$)", re.DOTALL)
ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
FORMAT_RE = re.compile(r"^\s*<think>(?:(?!<think>|</think>|<answer>|</answer>).)*</think>\s*"
                       r"<answer>(?:(?!<think>|</think>|<answer>|</answer>).)+</answer>\s*$", re.DOTALL)


@dataclass
class Extraction:
    """What was found: `answer` is None when there is no usable final answer; `reason` says why."""

    answer: str | None
    reason: str = ""


def strip_think(text: str) -> str:
    """Remove every `<think>...</think>` block (an unclosed one runs to the end of the text)."""
    return THINK_RE.sub(" ", text)


def extract_answer_tag(text: str) -> Extraction:
    """The content of the last `<answer>` tag outside `<think>`, stripped of surrounding whitespace."""
    outside = strip_think(text)
    found = ANSWER_RE.findall(outside)
    if not found:
        return Extraction(None, "no <answer>...</answer> outside <think>")
    answer = found[-1].strip()
    if not answer:
        return Extraction(None, "empty <answer>")
    distinct = {f.strip() for f in found}
    if len(distinct) > 1:
        return Extraction(None, f"several different answers: {sorted(distinct)[:5]}")
    return Extraction(answer)


def is_well_formatted(text: str) -> bool:
    """True for exactly `<think>...</think><answer>...</answer>` with nothing else around them."""
    return FORMAT_RE.match(text) is not None
