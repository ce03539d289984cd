"""Built-in generated tasks: held-out problems stay held out, seeded streams, the flawed teacher, the verifiers."""

from __future__ import annotations

import builtins
import random

import pytest

from rlvr.config import TaskConfig
from rlvr.tasks.arithmetic import ArithmeticTask
from rlvr.tasks.countdown import CountdownTask
from rlvr.tasks.registry import BUILTIN_TASKS, build_task
from rlvr.types import Problem

TASKS = {"arithmetic": ArithmeticTask, "countdown": CountdownTask}
# Pretraining draws its corpus from the first `pretrain.num_examples` (20000 in the demo) training indices.
TRAIN_INDICES = 30_000


@pytest.mark.parametrize("name", TASKS)
def test_held_out_problems_never_reach_training(name):
    task = build_task(TaskConfig(name=name), eval_size=200)
    held_out = {p.meta["key"] for p in task.eval_problems(200)}
    assert len(held_out) == 200  # distinct
    assert task.held_out_keys() == held_out
    train_keys = {task.train_problem(i).meta["key"] for i in range(TRAIN_INDICES)}
    assert not train_keys & held_out


def test_held_out_set_does_not_depend_on_how_many_are_evaluated():
    # e.g. `rlvr train` with eval.num_problems=50, then `rlvr eval --set eval.num_problems=200`.
    trained = ArithmeticTask(eval_size=50)
    evaluated = ArithmeticTask(eval_size=200)
    train_keys = {trained.train_problem(i).meta["key"] for i in range(TRAIN_INDICES)}
    assert not train_keys & evaluated.held_out_keys()


@pytest.mark.parametrize("cls", TASKS.values())
def test_streams_are_deterministic_by_seed_and_differ_across_seeds(cls):
    a, b, c = cls(seed=0), cls(seed=0), cls(seed=1)
    assert [a.train_problem(i) for i in range(50)] == [b.train_problem(i) for i in range(50)]
    assert [a.train_problem(i).prompt for i in range(50)] != [c.train_problem(i).prompt for i in range(50)]
    assert a.eval_problems(20) == b.eval_problems(20)
    assert [p.prompt for p in a.eval_problems(20)] != [p.prompt for p in c.eval_problems(20)]
    assert a.eval_problems(5) == a.eval_problems(20)[:5]
    # Index i is addressable on its own: the data cursor of a resumed run lands on the same problem.
    assert cls(seed=0).train_problem(4321) == a.train_problem(4321)


def test_eval_problems_beyond_the_held_out_set_are_refused():
    with pytest.raises(ValueError, match="holds out 10"):
        ArithmeticTask(eval_size=10).eval_problems(11)


def test_too_small_a_problem_space_is_refused_up_front():
    task = ArithmeticTask(difficulty=1, eval_size=200)
    try:
        problems = task.eval_problems(200)
    except ValueError as e:
        assert "difficulty" in str(e)
    else:
        assert len(problems) == 200


def _teacher_cases():
    return [
        ArithmeticTask(difficulty=3),
        ArithmeticTask(difficulty=1, eval_size=2),
        ArithmeticTask(difficulty=4, ops=("+", "*")),
        ArithmeticTask(difficulty=3, ops=("*",)),
        CountdownTask(difficulty=3),
        CountdownTask(difficulty=4),
    ]


@pytest.mark.parametrize(
    "task", _teacher_cases(), ids=lambda t: f"{t.name}-{t.difficulty}{''.join(getattr(t, 'ops', ()))}"
)
def test_correct_teacher_always_verifies(task):
    for i in range(400):
        p = task.train_problem(i)
        score = task.verify(p, task.solve(p, flawed=False))
        assert score.correct and score.formatted, (p.prompt, task.solve(p, flawed=False), score.details)
        assert score.reward == pytest.approx(1.0 + task.format_reward)


def _worked(task, n: int, seed: int = 0):
    rng = random.Random(seed)
    for i in range(n):
        p = task.train_problem(i)
        text, ok = task.worked_solution(p, rng)
        yield p, text, ok


def test_arithmetic_flawed_teacher_matches_flaw_rate():
    task = ArithmeticTask(difficulty=3, flaw_rate=0.3, blind_spot=0.5)
    rows = list(_worked(task, 4000))
    wrong = [p for p, _, ok in rows if not ok]
    # Dropping every carry is wrong unless no column carries (rare in the blind spot's big numbers).
    assert len(wrong) / len(rows) == pytest.approx(0.3, abs=0.035)
    assert all(task.in_blind_spot(p) for p in wrong)
    share_in_spot = sum(task.in_blind_spot(p) for p, _, _ in rows) / len(rows)
    assert share_in_spot == pytest.approx(0.5, abs=0.03)
    for p, text, ok in rows[:300]:  # `ok` is the verifier's verdict on the text, and wrong means flawed
        assert ok == task.verify(p, text).correct
        if not ok:
            assert text == task.solve(p, flawed=True)


@pytest.mark.parametrize("flaw_rate", [0.0, 0.15])
def test_arithmetic_flaw_rate_knob(flaw_rate):
    rows = list(_worked(ArithmeticTask(difficulty=3, flaw_rate=flaw_rate), 2000))
    assert sum(not ok for _, _, ok in rows) / len(rows) == pytest.approx(flaw_rate, abs=0.03)


def test_countdown_flawed_teacher_errs_only_in_its_blind_spot_at_flaw_rate():
    task = CountdownTask(difficulty=3, flaw_rate=0.3, blind_spot=0.5)
    rows = list(_worked(task, 4000))
    assert all(task.in_blind_spot(p) for p, _, ok in rows if not ok)
    assert sum(task.in_blind_spot(p) for p, _, _ in rows) / len(rows) == pytest.approx(0.5, abs=0.03)
    # Where the missing parentheses change the text, the teacher drops them flaw_rate / blind_spot of the time.
    telling = [
        (p, text)
        for p, text, _ in rows
        if task.in_blind_spot(p) and task.solve(p, flawed=True) != task.solve(p, flawed=False)
    ]
    assert len(telling) > 200
    flawed = sum(text == task.solve(p, flawed=True) for p, text in telling) / len(telling)
    assert flawed == pytest.approx(0.6, abs=0.08)
    outside = [text == task.solve(p, flawed=False) for p, text, _ in rows if not task.in_blind_spot(p)]
    assert all(outside)


def test_arithmetic_verify_rejects_wrong_answers():
    task = ArithmeticTask()
    p = task.train_problem(0)
    right = f"<think>x</think><answer>{p.answer}</answer>"
    assert task.verify(p, right).reward == pytest.approx(1.1)
    for text in (
        f"<think>x</think><answer>{p.answer + 1}</answer>",
        f"<think>x</think><answer>{p.answer}.5</answer>",
        f"<think><answer>{p.answer}</answer></think>",
        "no answer at all",
        f"<think>x</think><answer>{p.answer}</answer><answer>{p.answer + 1}</answer>",
    ):
        score = task.verify(p, text)
        assert not score.correct and score.reward <= task.format_reward, text
    unformatted = task.verify(p, f"<answer>{p.answer}</answer>")
    assert unformatted.correct and not unformatted.formatted and unformatted.reward == 1.0


def _countdown(numbers, target) -> Problem:
    return Problem(
        "c",
        f"{' '.join(map(str, numbers))}>{target}:",
        {"target": target, "numbers": numbers},
        "countdown",
        {"key": "k"},
    )


def _cd_verify(problem, expr):
    return CountdownTask().verify(problem, f"<think>t</think><answer>{expr}</answer>")


@pytest.mark.parametrize("expr", ["2*5", "5*2=10", "(2+3)+5 ", "5 * (5 - 3)"])
def test_countdown_accepts_valid_expressions(expr):
    problem = _countdown([2, 3, 5, 5], 10)
    assert _cd_verify(problem, expr).correct, expr


@pytest.mark.parametrize(
    "numbers, expr, reason",
    [
        ([2, 3, 5], "5+5", "not available"),
        ([2, 3, 5], "3+7", "not available"),
        ([3, 3, 5], "5/(3-3)", "division by zero"),
        ([2, 3, 5], "2+3", "not 10"),
        ([2, 3, 5], "-2+12", "bad expression"),
        ([2, 3, 5], "__import__('os')", "bad expression"),
        ([2, 3, 5], "2**5", "bad expression"),
        ([2, 3, 5], "(2+3", "bad expression"),
        ([2, 3, 5], "()", "bad expression"),
    ],
)
def test_countdown_refuses_with_a_reason(numbers, expr, reason):
    score = _cd_verify(_countdown(numbers, 10), expr)
    assert not score.correct and score.reward <= 0.1
    assert reason in score.details["reason"], score.details


def test_countdown_verifier_never_evaluates_text(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("the verifier must parse, never eval/exec")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    problem = _countdown([4, 5, 8], 10)
    assert _cd_verify(problem, "(8/4)*5").correct  # exact fractions, no float error
    assert _cd_verify(problem, "__import__('os').system('true')").reward == 0.1


def test_registry_builds_tasks_and_names_the_known_ones():
    assert {"arithmetic", "countdown"} <= set(BUILTIN_TASKS)
    task = build_task(TaskConfig(name="arithmetic", difficulty=2, params={"ops": ["*"]}), eval_size=5)
    assert task.difficulty == 2 and task.ops == ("*",) and len(task.eval_problems()) == 5
    with pytest.raises(ValueError, match="arithmetic"):
        build_task(TaskConfig(name="nosuch"))
    with pytest.raises(ValueError, match="task.params"):
        build_task(TaskConfig(name="arithmetic", params={"bogus": 1}))
    with pytest.raises(ValueError, match="ops"):
        build_task(TaskConfig(name="arithmetic", params={"ops": ["-"]}))


def test_a_small_problem_space_can_hold_out_a_larger_share():
    task = ArithmeticTask(difficulty=1, eval_size=50, held_out_share=0.5)
    held_out = task.held_out_keys()
    assert len(held_out) == 50
    assert not {task.train_problem(i).meta["key"] for i in range(500)} & held_out
    with pytest.raises(ValueError, match="held_out_share"):
        ArithmeticTask(held_out_share=1.0)
