"""Weighted composition of reward functions from config, with user functions by import path."""

from __future__ import annotations

import textwrap

import pytest

from rlvr.types import Problem
from rlvr.verifiers import VerifierError, build_reward

from .helpers import wrap

P = Problem("c", "", "42", "math")


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_rewards.py").write_text(
        textwrap.dedent(
            """
            import time
            from rlvr.types import Score

            def short(problem, text, limit=50):
                return 1.0 if len(text) <= limit else 0.0

            def boom(problem, text):
                raise RuntimeError("broken reward")

            def hang(problem, text):
                time.sleep(30)

            def garbage(problem, text):
                return "yes"

            def nan(problem, text):
                return float("nan")

            class Rewards:
                @staticmethod
                def exact42(problem, text):
                    return Score(1.0 if "42" in text else 0.0, "42" in text, False, {})
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_rewards"


def test_weighted_sum_of_builtins():
    reward = build_reward([{"name": "math", "weight": 1.0}, {"name": "format", "weight": 0.1}])
    score = reward(P, wrap("42"))
    assert score.reward == pytest.approx(1.1) and score.correct and score.formatted
    assert set(score.details["components"]) == {"math", "format"}
    assert reward(P, "<answer>41</answer>").reward == 0.0  # no format bonus hidden inside math


def test_user_functions_by_import_path_with_options(user_module):
    reward = build_reward(
        [{"name": "numeric", "weight": 2.0}, {"name": f"{user_module}:short", "weight": 0.5, "limit": 100}]
    )
    assert reward(P, wrap("42")).reward == pytest.approx(2.5)
    nested = build_reward([{"name": f"{user_module}:Rewards.exact42"}])
    assert nested(P, "42").correct


@pytest.mark.parametrize("term,message", [
    ({"name": "boom"}, "raised RuntimeError: broken reward"),
    ({"name": "hang", "timeout_s": 0.2}, "timed out after 0.2s"),
    ({"name": "garbage"}, "expected Score or a number"),
    ({"name": "nan"}, "reward of nan, not a finite number"),
])
def test_a_failing_term_leaves_the_whole_sample_without_a_reward(user_module, caplog, term, message):
    term = {**term, "name": f"{user_module}:{term['name']}"}
    reward = build_reward([{"name": "math"}, term, {"name": "format", "weight": 0.1}])
    with pytest.raises(VerifierError, match=message) as caught:
        reward(P, wrap("42"))  # math alone would give 1.0: a sum with a term missing is not the reward configured
    assert caught.value.verifier == term["name"] and caught.value.problem_id == P.id
    assert term["name"] in caplog.text and message.split(":")[0] in caplog.text


@pytest.mark.parametrize(
    "spec,message",
    [
        ([], "non-empty list"),
        ([{"weight": 1}], "with a 'name'"),
        ([{"name": "nope"}], "neither a registered verifier"),
        ([{"name": "no_such_module_xyz:f"}], "cannot import"),
        ([{"name": "math", "weight": "heavy"}], "weight must be a number"),
    ],
)
def test_bad_specs_fail_at_build_time(spec, message):
    with pytest.raises(ValueError, match=message):
        build_reward(spec)


def test_option_typos_fail_at_build_time():
    with pytest.raises(ValueError, match=r"reward\[0\]: verifier 'numeric'"):
        build_reward([{"name": "numeric", "rel_tolerance": 0.1}])
