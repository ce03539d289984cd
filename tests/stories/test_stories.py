"""Every story end to end at toy size: the summary has the issue's keys and every number in it is read from
the run's own logs (editing a log changes the summary), and the logged evaluations agree with the answers."""

from __future__ import annotations

import json

import pytest

from rlvr.cli import main
from rlvr.logging.metrics import read_jsonl
from rlvr.stories import STORIES, story_module, summarize
from rlvr.verifiers.steps import readability, shows_steps

TOY = ["pretrain.steps=2", "pretrain.num_examples=64", "pretrain.batch_size=8", "train.steps=2",
       "train.prompts_per_step=2", "rollout.num_generations=2", "rollout.max_new_tokens=16", "eval.num_problems=4",
       "eval.every=1", "model.hidden_size=32", "model.num_layers=1", "model.intermediate_size=64"]
COMMON = ["story", "seed", "wall_seconds", "eval_problems", "accuracy_before", "accuracy_after"]
KEYS = {
    "chef": ["data_accuracy", "pretrain_accuracy", "rl_accuracy", "more_imitation_accuracy"],
    "elicit": ["steps_share_before", "steps_share_after", "length_before", "length_after"],
    "hacking": ["binary_true_accuracy", "graded_true_accuracy", "graded_reward_start", "graded_reward_end",
                "hack_rate"],
    "zero": ["format_rate_before", "format_rate_after", "readability", "chef_readability"],
    "tools": ["tool_rate_before", "tool_rate_after", "data_tool_share"],
}
# (arm, eval.jsonl key, summary key, which evaluation): a logged number and the summary entry it becomes.
FROM_LOGS = {
    "chef": [("rl", "accuracy", "rl_accuracy", -1), ("rl", "accuracy", "pretrain_accuracy", 0),
             ("more_imitation", "accuracy", "more_imitation_accuracy", -1)],
    "elicit": [("rl", "steps_share", "steps_share_after", -1), ("rl", "length", "length_before", 0)],
    "hacking": [("graded", "hack_rate", "hack_rate", -1), ("graded", "graded_reward", "graded_reward_end", -1),
                ("binary", "accuracy", "binary_true_accuracy", -1)],
    "zero": [("zero", "format_rate", "format_rate_after", -1), ("chef", "readability", "chef_readability", -1)],
    "tools": [("rl", "tool_rate", "tool_rate_after", -1), ("rl", "tool_rate", "tool_rate_before", 0)],
}


@pytest.fixture(scope="module")
def stories(tmp_path_factory):
    root = tmp_path_factory.mktemp("stories")
    for name in STORIES:
        args = ["demo", "--story", name, "--seed", "1", "--out", str(root / name), "--no-progress"]
        assert main(args + [a for o in TOY for a in ("--set", o)]) == 0
    return root


@pytest.mark.parametrize("name", STORIES)
def test_summary_has_the_keys_and_is_rebuilt_from_the_logs(stories, name):
    out = stories / name
    summary = json.loads((out / "summary.json").read_text())
    for key in COMMON + KEYS[name]:
        assert key in summary, key
    assert summary["story"] == name and summary["seed"] == 1 and summary["eval_problems"] == 4
    assert summary == summarize(name, out)
    assert (out / "figure.png").exists() and "Reading:" in (out / "report.html").read_text()


@pytest.mark.parametrize("name", STORIES)
def test_editing_the_logs_changes_the_summary(stories, tmp_path, name):
    import shutil

    out = tmp_path / name
    shutil.copytree(stories / name, out)
    for i, (arm, key, summary_key, which) in enumerate(FROM_LOGS[name]):
        path = out / arm / "eval.jsonl"
        rows = read_jsonl(path)
        rows[which][key] = 0.1 + 0.01 * i  # a value no run here produces
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        assert summarize(name, out)[summary_key] == pytest.approx(0.1 + 0.01 * i), summary_key
    main_arm = story_module(name).MAIN_ARM
    rows = read_jsonl(out / main_arm / "eval.jsonl")
    rows[-1]["accuracy"] = 0.55
    (out / main_arm / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert summarize(name, out)["accuracy_after"] == 0.55


@pytest.mark.parametrize("name", STORIES)
def test_logged_evaluations_agree_with_the_answers(stories, name):
    """With 4 held-out problems every answer is kept, so each logged measure can be recomputed from them."""
    out = stories / name
    arm = story_module(name).MAIN_ARM
    answers = read_jsonl(out / arm / "answers.jsonl")
    for row in read_jsonl(out / arm / "eval.jsonl"):
        at = [a for a in answers if a["step"] == row["step"] and a["phase"] == row["phase"]]
        texts = [a["completion"] for a in at]
        assert len(at) == row["n"] == 4
        assert row["accuracy"] == sum(a["correct"] for a in at) / 4
        assert row["steps_share"] == sum(map(shows_steps, texts)) / 4
        assert row["length"] == sum(a["length"] for a in at) / 4
        assert row["readability"] == readability(texts)[0]


def test_chef_control_trains_as_many_tokens_as_rl(stories):
    summary = json.loads((stories / "chef" / "summary.json").read_text())
    rl_metrics = [r for r in read_jsonl(stories / "chef" / "rl" / "metrics.jsonl") if r.get("phase") == "rl"]
    assert summary["rl_tokens"] == rl_metrics[-1]["sampled_tokens"] > 0
    # whole imitation batches: at least the RL arm's tokens, less than one batch more
    assert summary["rl_tokens"] <= summary["more_imitation_tokens"]
    assert summary["more_imitation_steps"] == 1 or summary["more_imitation_tokens"] < 2 * summary["rl_tokens"]


def test_report_overlays_seeds_with_a_band(stories, tmp_path):
    out = tmp_path / "compare.html"
    assert main(["report", str(stories / "chef"), str(stories / "hacking"), "--out", str(out)]) == 0
    html = out.read_text()
    assert "chef: rl" in html and "hacking: graded" in html and "Format rate" in html
    (stories / "zero" / "report.html").unlink()
    assert main(["report", str(stories / "zero")]) == 0  # a story directory gets its story page again
    assert "Reading:" in (stories / "zero" / "report.html").read_text()


def test_tools_story_counts_the_episodes_that_called_a_tool(stories):
    from rlvr.environments.parsing import parse_call

    out = stories / "tools"
    answers = read_jsonl(out / "rl" / "answers.jsonl")
    for row in read_jsonl(out / "rl" / "eval.jsonl"):
        texts = [a["completion"] for a in answers if a["step"] == row["step"] and a["phase"] == row["phase"]]
        assert row["tool_rate"] == sum(parse_call(t) is not None for t in texts) / 4
    assert json.loads((out / "summary.json").read_text())["data_tool_share"] > 0
