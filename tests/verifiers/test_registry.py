"""The registry: get_verifier checks options when binding; a verifier's own fault is no reward (`VerifierError`
naming it), never a 0."""

from __future__ import annotations

import pickle

import pytest

from rlvr.types import Problem, Score
from rlvr.verifiers import VERIFIERS, VerifierError, get_verifier, safe_score, verify_text
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


def test_a_verifier_that_raises_gives_no_reward_naming_it_the_problem_and_the_message():
    with pytest.raises(VerifierError, match="verify_countdown failed on problem c: raised KeyError") as caught:
        get_verifier("countdown")(Problem("c", "", {"no": "target"}, "countdown"), wrap("1+2"))
    e = caught.value
    assert (e.verifier, e.problem_id) == ("verify_countdown", "c") and "KeyError" in e.message
    assert str(pickle.loads(pickle.dumps(e))) == str(e)  # it crosses Ray and threads whole


@pytest.mark.parametrize("result,message", [("not a score", "returned str, not Score"),
                                            (Score(float("nan"), False, False), "reward of nan, not a finite"),
                                            (Score(float("inf"), True, True), "reward of inf, not a finite")])
def test_a_verifier_that_returns_garbage_gives_no_reward(result, message):
    def bad(problem, text):
        return result

    with pytest.raises(VerifierError, match=message):
        safe_score(bad, Problem("x", "", None, "x"), "t")


def test_a_wrong_or_unusable_answer_the_verifier_handles_is_still_a_zero_with_a_reason():
    assert not verify_text("numeric", "abc", wrap("1")).correct  # numeric reads a bad reference itself
    assert safe_score(lambda p, t: Score(0, False, False), Problem("x", "", None, "x"), "t").reward == 0
