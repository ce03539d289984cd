"""Format verifier: reward 1 for the think/answer shape (and a code block when asked)."""

from __future__ import annotations

from rlvr.types import Problem
from rlvr.verifiers.format import verify_format

P = Problem("f", "", None, "format")


def test_format_reward():
    assert verify_format(P, "<think>a</think><answer>b</answer>").reward == 1.0
    assert verify_format(P, "<answer>b</answer>").reward == 0.0


def test_code_format_needs_a_block_in_the_answer():
    assert not verify_format(P, "<think>a</think><answer>b</answer>", code=True).correct
    assert verify_format(P, "<think>a</think><answer>```python\nx = 1\n```</answer>", code=True).correct
