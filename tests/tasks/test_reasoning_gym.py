"""reasoning-gym generators as tasks: by name, own scorer, train and held-out seeds kept apart."""

from __future__ import annotations

import pytest

pytest.importorskip("reasoning_gym")

from rlvr.config import load_config  # noqa: E402
from rlvr.tasks.reasoning_gym import ReasoningGymTask  # noqa: E402
from rlvr.tasks.registry import build_task, list_tasks, sample_task  # noqa: E402
from rlvr.verifiers import VerifierError  # noqa: E402

CONFIG = {"min_terms": 2, "max_terms": 3, "min_digits": 1, "max_digits": 2}


def test_by_name_from_config_with_its_scorer():
    cfg = load_config(base={"task": {"name": "reasoning_gym/chain_sum", "params": CONFIG, "seed": 3}})
    task = build_task(cfg.task, eval_size=20)
    p = task.train_problem(0)
    assert p.task == "reasoning_gym/chain_sum" and p.meta["question"] == p.prompt
    assert task.verify(p, f"<think>add</think><answer>{p.answer}</answer>").reward == pytest.approx(1.1)
    wrong = task.verify(p, f"<think>add</think><answer>{int(p.answer) + 1}</answer>")
    assert not wrong.correct and wrong.reward == pytest.approx(0.1)
    assert not task.verify(p, "no answer tag").correct


def test_the_answer_format_style_pays_a_primed_reply_for_closing_its_tag():
    """Primed with model.response_prefix "<answer>", a reply can never be think-then-answer: with
    task.format_style answer the closed tag earns the format reward, right or wrong; an unclosed one nothing."""
    base = {"name": "reasoning_gym/chain_sum", "params": CONFIG, "format_reward": 0.1}
    answer_style = build_task(load_config(base={"task": {**base, "format_style": "answer"}}).task, eval_size=20)
    default = build_task(load_config(base={"task": base}).task, eval_size=20)
    p = answer_style.train_problem(0)
    wrong = f"<answer>{int(p.answer) + 1}</answer>"
    assert answer_style.verify(p, wrong).reward == pytest.approx(0.1) and default.verify(p, wrong).reward == 0.0
    assert answer_style.verify(p, f"<answer>{p.answer}</answer>").reward == pytest.approx(1.1)
    unclosed = answer_style.verify(p, f"<answer>{p.answer}")
    assert unclosed.reward == 0.0 and not unclosed.formatted
    with pytest.raises(ValueError, match="task.format_style"):
        load_config(base={"task": {**base, "format_style": "xml"}})


def test_a_scorer_that_raises_gives_no_reward_never_a_zero(monkeypatch):
    task = ReasoningGymTask("chain_sum", CONFIG, seed=0, eval_size=2)
    p = task.train_problem(0)

    def broken(answer, entry):
        raise KeyError("metadata")

    monkeypatch.setattr(task.eval_ds, "score_answer", broken)
    with pytest.raises(VerifierError, match="reasoning-gym chain_sum scorer failed on problem .*raised KeyError"):
        task.verify(p, f"<answer>{p.answer}</answer>")


def test_train_and_eval_streams_are_apart_and_deterministic():
    task = ReasoningGymTask("chain_sum", CONFIG, seed=0, eval_size=50)
    held = {p.meta["key"] for p in task.eval_problems()}
    train = [task.train_problem(i) for i in range(1100)]  # crosses a chunk boundary
    assert not {p.meta["key"] for p in train} & held
    assert task.eval_ds.seed == task.base_seed + 2**31  # training chunks are seeded below base + 2^30
    again = ReasoningGymTask("chain_sum", CONFIG, seed=0, eval_size=50)
    assert [again.train_problem(i).prompt for i in (1099, 5, 0)] == [train[i].prompt for i in (1099, 5, 0)]
    other = ReasoningGymTask("chain_sum", CONFIG, seed=1, eval_size=50)
    assert [other.train_problem(i).prompt for i in range(5)] != [train[i].prompt for i in range(5)]


def test_partial_credit_and_template():
    task = ReasoningGymTask(
        "countdown", seed=0, eval_size=2, partial_credit=True, template="Solve: {question}"
    )
    p = task.train_problem(0)
    assert p.prompt.startswith("Solve: ")
    assert task.verify(p, f"<answer>{p.answer}</answer>").correct
    partial = task.verify(p, "<answer>1+1</answer>")
    assert not partial.correct and 0 < partial.reward < 1


def test_bad_names_and_configs_say_what_is_wrong():
    with pytest.raises(ValueError, match="unknown reasoning-gym generator 'chain_sums'.*chain_sum"):
        ReasoningGymTask("chain_sums")
    with pytest.raises(ValueError, match="task.params: reasoning-gym 'chain_sum' refused its config"):
        ReasoningGymTask("chain_sum", {"no_such_option": 1})
    with pytest.raises(ValueError, match="task.verifier_options.bogus"):
        build_task(
            load_config(
                base={"task": {"name": "reasoning_gym/chain_sum", "verifier_options": {"bogus": 1}}}
            ).task
        )


def test_listed_and_sampled():
    names = {t.name: t for t in list_tasks()}
    assert "reasoning_gym/countdown" in names and names["arithmetic"].verifier == "integer"
    assert {"dataset", "mixture", "math", "numeric"} <= set(names)
    task, problems = sample_task("reasoning_gym/countdown", 2)
    assert len(problems) == 2 and all(p.answer for p in problems)


def test_each_problem_names_its_kind_from_its_own_difficulty_values():
    """meta["kind"] holds the difficulty values this entry was drawn with (here terms and digits), so held-out
    accuracy can be split by them; the values are the entry's own, not the ranges of the config."""
    task = build_task(load_config(base={"task": {"name": "reasoning_gym/basic_arithmetic", "params": CONFIG}}).task,
                      eval_size=40)
    kinds = set()
    for p in task.eval_problems(40):
        meta = p.meta["entry"]["metadata"]
        assert p.meta["kind"] == f"num_terms={meta['num_terms']}, num_digits={meta['num_digits']}"
        assert meta["expression"].count(" ") >= 2 * meta["num_terms"] - 2  # the terms are really there
        kinds.add(p.meta["kind"])
    assert len(kinds) == 4  # 2-3 terms x 1-2 digits all occur in 40 problems


def test_a_generator_mixing_question_types_names_the_type_as_its_kind():
    """aiw draws siblings, friends or colleagues questions by weight and records the one drawn as `task_type`,
    not beside its difficulty attributes: that is the kind held-out accuracy is split by."""
    task = build_task(load_config(base={"task": {"name": "reasoning_gym/aiw", "params": {}}}).task, eval_size=30)
    kinds = {}
    for p in task.eval_problems(30):
        kinds.setdefault(p.meta["kind"], []).append(p.meta["entry"]["question"])
    assert set(kinds) == {"task_type=siblings", "task_type=friends", "task_type=colleagues"}
    assert all("friends" in q for q in kinds["task_type=friends"])
    assert all("colleagues" in q for q in kinds["task_type=colleagues"])
