"""Weighted composition of reward functions from config, with user functions by import path."""

from __future__ import annotations

import textwrap

import pytest

from rlvr.types import Problem
from rlvr.verifiers import build_reward

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


def test_failing_rewards_give_zero_with_the_reason(user_module, caplog):
    reward = build_reward(
        [
            {"name": "math"},
            {"name": f"{user_module}:boom"},
            {"name": f"{user_module}:hang", "timeout_s": 0.2},
            {"name": f"{user_module}:garbage"},
        ]
    )
    score = reward(P, wrap("42"))
    parts = score.details["components"]
    assert score.reward == 1.0 and score.correct
    assert "RuntimeError: broken reward" in parts[f"{user_module}:boom"]["error"]
    assert "timed out" in parts[f"{user_module}:hang"]["error"]
    assert "expected Score or a number" in parts[f"{user_module}:garbage"]["error"]
    assert "broken reward" in caplog.text


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
