"""Choice verifier: one option letter, decoration ignored."""

from __future__ import annotations

import pytest

from rlvr.types import Problem
from rlvr.verifiers.choice import parse_choice, verify_choice

from .helpers import wrap


@pytest.mark.parametrize(
    "text",
    ["B", "b", "(B)", "[B]", "B.", "B)", "**B**", "Option B", "Answer: B", "B. Paris", "The answer is (B)"],
)
def test_decoration_is_ignored(text):
    assert parse_choice(text) == "B"


def test_scoring_with_options_from_meta_and_index_answers():
    p = Problem("c", "", 2, "choice", meta={"choices": ["x", "y", "z"]})
    assert verify_choice(p, wrap("C")).correct
    assert "not one of the options" in verify_choice(p, wrap("D")).details["reason"]
    assert not verify_choice(Problem("c", "", "A", "choice"), wrap("B")).correct
