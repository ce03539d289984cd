"""The `rlvr` command: listing tasks, errors as exit code 2 naming the key, and a tiny end-to-end demo."""

from __future__ import annotations

import json

import pytest

from rlvr.cli import main
from rlvr.config import load_config, save_config

TINY_DEMO = [
    "pretrain.steps=5",
    "train.steps=2",
    "eval.num_problems=8",
    "model.hidden_size=32",
    "model.num_layers=1",
    "pretrain.num_examples=200",
    "train.prompts_per_step=2",
]


def _sets(overrides: list[str]) -> list[str]:
    return [arg for o in overrides for arg in ("--set", o)]


def test_tasks_lists_the_builtin_tasks(capsys):
    assert main(["tasks"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert {"arithmetic", "countdown"} <= set(names)


def test_tasks_show_samples_problems_with_worked_solutions(capsys):
    assert main(["tasks", "show", "arithmetic", "-n", "4"]) == 0
    out = capsys.readouterr().out
    assert out.count("prompt: ") == 4 and out.count("answer: ") == 4
    assert out.count("worked solution (") == 4 and "<think>" in out and "</answer>" in out


@pytest.mark.parametrize(
    "argv, needle", [(["tasks", "show", "nosuch"], "nosuch"), (["tasks", "show"], "name a task")]
)
def test_tasks_show_errors(capsys, argv, needle):
    assert main(argv) == 2
    assert needle in capsys.readouterr().err


def test_train_with_a_bad_key_exits_2_naming_it(capsys, tiny_recipe):
    assert main(["train", "--config", str(tiny_recipe()), "--set", "train.lrr=0.1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "train.lrr" in err and "allowed keys" in err


def test_train_with_a_bad_value_exits_2_naming_it(capsys, tiny_recipe):
    assert main(["train", "--config", str(tiny_recipe()), "--set", "train.steps=abc", "--no-progress"]) == 2
    assert "train.steps" in capsys.readouterr().err


def test_train_without_config_exits_2(capsys):
    assert main(["train", "--no-progress"]) == 2
    assert "--config" in capsys.readouterr().err


def test_resume_without_a_checkpoint_exits_2(capsys, tmp_path, tiny_recipe):
    run = tmp_path / "run"
    run.mkdir()
    save_config(load_config(tiny_recipe()), run / "config.yaml")  # a run killed before its first checkpoint
    assert main(["train", "--resume", str(run), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--resume" in err and "no complete checkpoint" in err
    assert main(["train", "--resume", str(tmp_path / "nowhere"), "--no-progress"]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_tiny_demo_then_eval_and_report(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--no-progress", *_sets(TINY_DEMO)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    for key in (
        "task",
        "data_accuracy",
        "pretrain_accuracy",
        "rl_accuracy",
        "eval_problems",
        "rl_steps",
        "wall_seconds",
    ):
        assert key in summary, key
    assert summary["task"] == "arithmetic" and summary["eval_problems"] == 8 and summary["rl_steps"] == 2
    assert summary["story"] == "chef" and "more_imitation_accuracy" in summary
    assert 0.55 < summary["data_accuracy"] < 0.85  # the flawed teacher of configs/demo.yaml
    assert 0 <= summary["pretrain_accuracy"] <= 1 and 0 <= summary["rl_accuracy"] <= 1
    report = (out / "report.html").read_text()
    assert report.lstrip().lower().startswith("<!doctype html") or "<html" in report.lower()
    assert (out / "imitation" / "model" / "model.safetensors").exists() and (
        out / "rl" / "final" / "model.safetensors"
    ).exists()
    capsys.readouterr()

    assert main(["eval", "--model", str(out / "rl" / "final"), "--show", "2", *_sets(TINY_DEMO)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(printed[printed.index("{") :])
    assert result["n"] == 8 and 0 <= result["accuracy"] <= 1
    # stop strings are read from text: `rlvr eval` builds its engine with the tokenizer (it raised without one)
    assert main(["eval", "--model", str(out / "rl" / "final"), *_sets(TINY_DEMO), "--set", 'eval.stop=["</answer>"]']) == 0
    printed = capsys.readouterr().out
    assert json.loads(printed[printed.index("{") :])["n"] == 8

    (out / "rl" / "report.html").unlink()
    assert main(["report", str(out / "rl")]) == 0
    assert (out / "rl" / "report.html").exists()
