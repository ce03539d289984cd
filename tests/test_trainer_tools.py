"""The one training loop on multi-turn tool episodes: a tiny model that learned to call the calculator trains
on episodes, logs the episode metrics and transcripts, and a run killed with SIGKILL and resumed equals an
uninterrupted one, bit for bit."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import yaml
from safetensors.torch import load_file

from rlvr.config import load_config
from rlvr.logging.metrics import read_jsonl
from rlvr.trainer import Trainer
from tests.conftest import TINY_RUN, tool_run
from tests.killed_runs import kill_resume_and_compare, metric_rows


def _config(model_dir, **overrides):
    data = copy.deepcopy(TINY_RUN)
    data.update(tool_run(model_dir))
    data["train"].update({"steps": 4, "checkpoint_every": 2})
    data["eval"] = {"num_problems": 4}
    return load_config(base=data, overrides=[f"{k}={v}" for k, v in overrides.items()])


def test_the_loop_trains_on_episodes_and_logs_what_the_tools_did(tmp_path, tool_model):
    trainer = Trainer(_config(tool_model, **{"train.steps": 2}), tmp_path)
    trainer.run(progress=False)
    trainer.logger.close()
    rows = read_jsonl(tmp_path / "metrics.jsonl")
    calls = sum(r["episode/tool_calls"] for r in rows)
    assert calls > 0, rows  # the imitated model calls the calculator
    # the episodes are sampled from the learner's own module: nothing to correct (auto stays off)
    assert "off-policy correction off" in trainer.header() and all(r["offpolicy/active"] == 0.0 for r in rows)
    for r in rows:
        assert r["episode/turns"] >= 1 and r["episode/model_tokens"] > 0
        assert 0.0 <= r["episode/tool_error_rate"] <= 1.0 and 0.0 <= r["episode/tool_rate"] <= 1.0
        if r["episode/tool_calls"]:
            assert r["episode/observation_tokens"] > 0
            by_tool = {k: v for k, v in r.items() if k.startswith("episode/tool_calls/")}
            assert sum(by_tool.values()) == pytest.approx(r["episode/tool_calls"])
    samples = read_jsonl(tmp_path / "samples.jsonl")
    with_tool = [s for s in samples if any(p["role"] == "observation" for p in s["transcript"])]
    assert with_tool, "no logged sample shows a tool's answer"
    s = with_tool[0]
    assert "".join(p["text"] for p in s["transcript"]).replace("<eos>", "").replace("<pad>", "") == s["completion"]
    assert all(p["text"].startswith("<result>") for p in s["transcript"] if p["role"] == "observation")


def test_held_out_evaluation_reports_the_share_of_episodes_that_called_a_tool(tmp_path, tool_model):
    from rlvr.environments.parsing import parse_call

    trainer = Trainer(_config(tool_model, **{"eval.num_problems": 8}), tmp_path)
    result = trainer.run_eval("initial")
    trainer.logger.close()
    called = [parse_call(e["completion"]) is not None for e in result["examples"]]
    assert len(called) == 8 and sum(called) > 0  # the imitated model calls the tool
    assert result["tool_rate"] == pytest.approx(sum(called) / 8)
    assert read_jsonl(tmp_path / "eval.jsonl")[0]["tool_rate"] == pytest.approx(result["tool_rate"])


def test_rlvr_check_samples_episodes_and_reports_how_often_a_tool_was_called(tmp_path, tool_model):
    import yaml

    from rlvr.cli import main

    recipe, out = tmp_path / "recipe.yaml", tmp_path / "check.json"
    recipe.write_text(yaml.safe_dump(_config(tool_model).to_dict()))
    assert main(["check", "--config", str(recipe), "--problems", "4", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    # the imitated model calls the calculator, and the calls were answered (episodes, as in `rlvr train`)
    assert report["at_temperature"]["tool_rate"] > 0 and report["greedy"]["tool_rate"] > 0


def test_a_killed_multi_turn_run_resumes_to_the_uninterrupted_one_bit_for_bit(tmp_path, tool_model):
    """A real `rlvr train` process on the tool task, SIGKILLed during step 4 (after checkpoint step_2) and
    resumed with `--resume`, against an uninterrupted run: the same weights, bit for bit, and the same
    metrics (rewards, episode turns, tool calls, observation tokens, losses)."""
    recipe = tmp_path / "tools.yaml"
    recipe.write_text(yaml.safe_dump(_config(tool_model).to_dict()))
    killed, straight = kill_resume_and_compare(recipe, tmp_path)
    init = load_file(tool_model / "model.safetensors")
    final = load_file(killed / "final/model.safetensors")
    assert any(not torch.equal(final[k], init[k]) for k in final if k in init)  # training moved the weights
    rows = metric_rows(straight)
    assert sum(r["episode/tool_calls"] for r in rows) > 0  # the runs compared are multi-turn
    assert sum(r["episode/observation_tokens"] for r in rows[2:]) > 0  # also after the resume point
