"""The registry: get_verifier checks options when binding; verifiers never raise into the trainer."""

from __future__ import annotations

import pytest

from rlvr.types import Problem
from rlvr.verifiers import VERIFIERS, get_verifier, safe_score, verify_text
from rlvr.verifiers.arithmetic import verify_integer
from rlvr.verifiers.countdown import verify_countdown

from .helpers import wrap


def test_registered_names():
    assert {"integer", "countdown", "math", "numeric", "exact", "choice", "code", "format"} <= set(VERIFIERS)


def test_original_signatures_still_work():
    p = Problem("a", "", 7, "arithmetic")
    assert verify_integer(p, wrap("7"), format_reward=0.2).reward == pytest.approx(1.2)
    c = Problem("c", "", {"target": 10, "numbers": [2, 5]}, "countdown")
    assert verify_countdown(c, wrap("2*5"), 0.1).correct


def test_get_verifier_checks_options_when_binding():
    assert get_verifier("numeric", rel_tol=1e-3)(Problem("n", "", 1.0, "numeric"), wrap("1.0005")).correct
    with pytest.raises(ValueError, match="rel_tolerance.*its options are"):
        get_verifier("numeric", rel_tolerance=1e-3)
    with pytest.raises(ValueError, match="answer_tag, boxed, final_answer_line"):
        get_verifier("math", extract="last_number")
    with pytest.raises(KeyError, match="known:"):
        get_verifier("nope")


def test_a_verifier_that_raises_becomes_a_zero_with_the_reason():
    broken = get_verifier("countdown")(Problem("c", "", {"no": "target"}, "countdown"), wrap("1+2"))
    assert broken.reward == 0.0 and "KeyError" in broken.details["error"]

    def bad(problem, text):
        return "not a score"

    assert "not Score" in safe_score(bad, Problem("x", "", None, "x"), "t").details["error"]
    assert not verify_text("numeric", "abc", wrap("1")).correct  # a bad reference: a reason, no crash
