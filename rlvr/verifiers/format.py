"""Format verifier: reward 1 for a well-formed `<think>...</think><answer>...</answer>` completion.

Meant to be composed with a small weight (`{"name": "format", "weight": 0.1}`). With `code=True` the
answer must also hold a fenced code block.
"""

from __future__ import annotations

from rlvr.types import Problem, Score
from rlvr.verifiers.extract import extract_code, is_well_formatted


def verify_format(problem: Problem, text: str, code: bool = False, format_style: str = "think_answer") -> Score:
    """Reward 1 (and `correct`) when `text` is exactly think-then-answer (with `format_style: answer`, exactly
    `<answer>...</answer>`), with a code block in the answer if `code`."""
    ok = is_well_formatted(text, format_style)
    if ok and code:
        ok = extract_code(text, "answer_tag").answer is not None
    details = (
        {}
        if ok
        else {"reason": "not " + ("<answer>...</answer>" if format_style == "answer" else
                                  "<think>...</think><answer>...</answer>") + (" with code" if code else "")}
    )
    return Score(1.0 if ok else 0.0, ok, ok, details)
