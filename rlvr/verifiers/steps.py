"""Reading the reasoning of an arithmetic answer: its steps, whether they are in the documented step format,
and how readable the reasoning is.

The step format is the one the built-in arithmetic teacher writes inside `<think>`, one column per step,
separated by spaces: `x+y=s` or `x+y+c=s` (addition), `x*y=s` or `x*y+c=s` (one-digit multiplication),
where x, y, c are single digits and s is a number. A step is *valid* when it has that form and its
arithmetic is true (`4+8+1=13`; a teacher that drops a carry still writes valid steps).

`readability` of a set of answers: the share of their reasoning items (the whitespace-separated pieces of
text inside `<think>...</think>`) that are valid steps. An answer with an empty `<think>` adds no items;
when no answer has any reasoning, readability is undefined (None), not 0.
"""

from __future__ import annotations

import re

STEP_RE = re.compile(r"^(\d)([+*])(\d)(?:\+(\d))?=(\d+)$")
THINK_BODY_RE = re.compile(r"<think>(.*?)(?:</think>|$)", re.DOTALL)


def reasoning_items(text: str) -> list[str]:
    """The whitespace-separated pieces of the first `<think>` block (an unclosed one runs to the end)."""
    m = THINK_BODY_RE.search(text)
    return m.group(1).split() if m else []


def is_step(item: str) -> bool:
    """`item` has the step format (whatever its arithmetic)."""
    return STEP_RE.match(item) is not None


def is_valid_step(item: str) -> bool:
    """`item` has the step format and its arithmetic is true."""
    m = STEP_RE.match(item)
    if m is None:
        return False
    x, op, y, c, s = m.groups()
    value = (int(x) + int(y) if op == "+" else int(x) * int(y)) + int(c or 0)
    return value == int(s)


def shows_steps(text: str) -> bool:
    """The answer shows worked steps: at least one reasoning item in the step format."""
    return any(is_step(i) for i in reasoning_items(text))


def readability(texts: list[str]) -> tuple[float | None, int, int]:
    """(valid steps / reasoning items, valid steps, reasoning items) over `texts`; None when no items."""
    items = [i for t in texts for i in reasoning_items(t)]
    valid = sum(is_valid_step(i) for i in items)
    return (valid / len(items) if items else None), valid, len(items)
