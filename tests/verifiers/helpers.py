"""Helpers for the verifier tests: completions in the think/answer format, fast sandbox limits."""

from __future__ import annotations

from rlvr.verifiers import verify_text


def wrap(answer: str, think: str = "Let me work it out.") -> str:
    """A well-formatted completion whose final answer is `answer`."""
    return f"<think>{think}</think><answer>{answer}</answer>"


def code_answer(code: str) -> str:
    """A well-formatted completion whose answer is one ```python block."""
    return wrap(f"```python\n{code}\n```")


FAST = {"timeout_s": 2.0, "memory_mb": 256, "format_reward": 0.0}


def score_code(code: str, answer: dict, **options):
    """The code verifier through `verify_text`, with small limits (the path `rlvr verify` uses)."""
    return verify_text("code", answer, code_answer(code), **{**FAST, **options})


def assert_healthy() -> None:
    """The next execution works normally."""
    ok = score_code("def f(x):\n    return x + 1\n", {"tests": "assert f(1) == 2\n", "entry_point": "f"})
    assert ok.correct and ok.reward == 1.0, ok
