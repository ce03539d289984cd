"""Mixtures: weights, determinism by index, per-task labels, curriculum, solved-problem filtering, and one
training step mixing a JSONL file, a reasoning-gym generator and a built-in task."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from rlvr.config import TaskConfig, load_config
from rlvr.tasks.filtering import SolvedFilter
from rlvr.tasks.mixture import Member, MixtureTask, curriculum_gates, share_counts
from rlvr.tasks.registry import build_task


def mix(weights=(3.0, 1.0), curriculum=0, seed=0):
    tasks = [
        build_task(TaskConfig(name="arithmetic", difficulty=2), 10),
        build_task(TaskConfig(name="countdown", difficulty=3), 10),
    ]
    return MixtureTask(
        [Member(t, w, t.name) for t, w in zip(tasks, weights)], seed=seed, curriculum=curriculum
    )


def test_weights_labels_and_routing():
    task = mix()
    problems = [task.train_problem(i) for i in range(800)]
    share = Counter(p.task for p in problems)["arithmetic"] / 800
    assert 0.70 < share < 0.80
    for p in problems[:20]:
        good = p.answer if p.task == "arithmetic" else None
        if good is not None:
            assert task.verify(p, f"<think>x</think><answer>{good}</answer>").correct
    ids = [p.id for p in problems if p.task == "arithmetic"]
    assert ids[:3] == [
        "arithmetic-train-0",
        "arithmetic-train-1",
        "arithmetic-train-2",
    ]  # members keep their order


def test_deterministic_by_index_and_random_access():
    a, b = mix(), mix()
    sequential = [a.train_problem(i).prompt for i in range(1500)]
    assert [b.train_problem(i).prompt for i in (1499, 900, 7, 0)] == [
        sequential[i] for i in (1499, 900, 7, 0)
    ]
    assert [mix(seed=1).train_problem(i).prompt for i in range(30)] != sequential[:30]


def test_eval_split_by_weight_and_labelled():
    task = mix()
    problems = task.eval_problems(8)
    assert Counter(p.task for p in problems) == {"arithmetic": 6, "countdown": 2}
    assert share_counts(3, [10, 0.1, 0.1]) == [1, 1, 1]


def test_curriculum_fades_harder_members_in():
    assert curriculum_gates(0.0, 3) == [1.0, 0.0, 0.0] and curriculum_gates(1.0, 3) == [1.0, 1.0, 1.0]
    assert curriculum_gates(0.5, 3) == pytest.approx([1.0, 0.5, 0.0])
    task = mix(weights=(1.0, 1.0), curriculum=400)
    early = Counter(task.train_problem(i).task for i in range(0, 200))
    late = Counter(task.train_problem(i).task for i in range(400, 800))
    assert early["countdown"] == 0
    assert 160 < late["countdown"] < 240


def test_config_mixture_with_duplicate_names_and_errors():
    cfg = load_config(
        base={
            "task": {
                "name": "mixture",
                "mixture": [
                    {"name": "arithmetic", "difficulty": 1, "weight": 1},
                    {"name": "arithmetic", "difficulty": 3, "weight": 1},
                ],
            }
        }
    )
    task = build_task(cfg.task, eval_size=4)
    assert {p.task for p in task.eval_problems(4)} == {"arithmetic", "arithmetic#2"}
    with pytest.raises(ValueError, match=r"task.mixture\[1\] \(dataset\): task.path"):
        build_task(
            load_config(base={"task": {"mixture": [{"name": "arithmetic"}, {"name": "dataset"}]}}).task
        )
    with pytest.raises(ValueError, match="at least one weight"):
        build_task(load_config(base={"task": {"mixture": [{"name": "arithmetic", "weight": 0}]}}).task)
    with pytest.raises(Exception, match=r"task.mixture\[0\].wieght"):
        load_config(base={"task": {"mixture": [{"name": "arithmetic", "wieght": 1}]}})


def test_solved_filter_skips_always_and_never_solved():
    task = SolvedFilter(build_task(TaskConfig(name="arithmetic", difficulty=1), 5), "always")
    first = [task.train_problem(i) for i in range(10)]
    task.observe(first[0], [True, True])
    task.observe(first[1], [False, False])
    task.offset = 0  # replay the same stream: the always-solved problem is skipped, the never-solved kept
    replay = task.train_problem(0)
    assert replay.prompt != first[0].prompt and task.stats()["filter/skipped_always"] >= 1
    state = task.state_dict()
    both = SolvedFilter(task.task, "both")
    both.load_state_dict(state)
    both.offset = 0
    assert both._skips(first[1]) == "never" and both._skips(first[0]) == "always"
    both.observe(first[0], [True, False])
    assert both._skips(first[0]) is None
    cfg = load_config(base={"task": {"name": "arithmetic", "filter_solved": "both"}})
    assert isinstance(build_task(cfg.task, 10), SolvedFilter)


def test_training_step_mixes_jsonl_reasoning_gym_and_builtin(tmp_path):
    pytest.importorskip("reasoning_gym")
    from rlvr.trainer import Trainer

    data = tmp_path / "sub.jsonl"
    data.write_text(
        "".join(
            json.dumps({"question": f"{a}-{b}", "answer": str(a - b)}) + "\n"
            for a in range(20, 40)
            for b in range(1, 6)
        )
    )
    cfg = load_config(
        base={
            "model": {
                "kind": "tiny",
                "hidden_size": 32,
                "num_layers": 1,
                "num_heads": 2,
                "intermediate_size": 64,
                "max_position_embeddings": 128,
            },
            "task": {
                "name": "mixture",
                "mixture": [
                    {"name": "dataset", "path": str(data), "verifier": "integer", "template": "{question}="},
                    {
                        "name": "reasoning_gym/chain_sum",
                        "params": {"min_terms": 2, "max_terms": 2, "max_digits": 1},
                    },
                    {"name": "arithmetic", "difficulty": 1},
                ],
            },
            "rollout": {"num_generations": 2, "max_new_tokens": 4},
            "train": {"steps": 1, "prompts_per_step": 12, "checkpoint_every": 0},
            "eval": {"num_problems": 6},
            "logging": {"progress": False},
        }
    )
    trainer = Trainer(cfg, tmp_path / "run")
    metrics = trainer.step()
    assert {"accuracy/dataset/sub", "accuracy/reasoning_gym/chain_sum", "accuracy/arithmetic"} <= set(metrics)
    result = trainer.run_eval("rl")
    assert set(result["by_task"]) == {"dataset/sub", "reasoning_gym/chain_sum", "arithmetic"}
    trainer.logger.close()
