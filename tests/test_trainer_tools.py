"""The one training loop on multi-turn tool episodes: a tiny model that learned to call the calculator trains
on episodes, logs the episode metrics and transcripts, and a killed and resumed run equals an uninterrupted one."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from safetensors.torch import load_file

from rlvr.config import PretrainConfig, load_config
from rlvr.logging.metrics import read_jsonl
from rlvr.models.loading import encode_prompt, save_policy
from rlvr.models.tiny import build_tiny_llama
from rlvr.pretrain import pretrain
from rlvr.stories.tools import tool_corpus
from rlvr.tasks.tool_arithmetic import ToolArithmeticTask
from rlvr.trainer import Trainer
from tests.conftest import TINY_RUN


@pytest.fixture(scope="module")
def tool_model(tmp_path_factory, char_tokenizer):
    """A tiny Llama imitated on tool_arithmetic transcripts, half of them calling the calculator."""
    tok = char_tokenizer
    task = ToolArithmeticTask(tool_share=0.5, eval_size=4)
    corpus, share = tool_corpus(task, tok, lambda p: encode_prompt(p, tok), 256, seed=0)
    assert 0.3 < share < 0.7
    model = build_tiny_llama(tok, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                             max_position_embeddings=96)
    pretrain(model, tok, corpus, PretrainConfig(steps=150, batch_size=32, lr=1e-2, warmup_steps=10))
    path = tmp_path_factory.mktemp("tool_model")
    save_policy(model, tok, path)
    return path


def _config(model_dir, **overrides):
    data = copy.deepcopy(TINY_RUN)
    data["model"] = {"kind": "hf", "path": str(model_dir), "device": "cpu"}
    data["task"] = {"name": "tool_arithmetic", "tools": [{"name": "calculator"}], "params": {"tool_share": 0.5},
                    "episode": {"max_turns": 3, "max_tool_calls": 2}}
    data["rollout"] = {"num_generations": 4, "max_new_tokens": 72}
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


class Killed(Exception):
    pass


class KilledAfterStep2(Trainer):
    def step(self):
        if self.step_count == 2:
            raise Killed()
        return super().step()


def _rows(run):
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in read_jsonl(run / "metrics.jsonl")]


def test_a_killed_and_resumed_multi_turn_run_equals_an_uninterrupted_one(tmp_path, tool_model):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    t = Trainer(_config(tool_model), straight)
    t.run(progress=False)
    t.logger.close()
    t = KilledAfterStep2(_config(tool_model), killed)
    with pytest.raises(Killed):
        t.run(progress=False)
    t.logger.close()
    t = Trainer(load_config(killed / "config.yaml"), killed, resume=True)
    assert t.step_count == 2
    t.run(progress=False)
    t.logger.close()
    a, b = load_file(killed / "final/model.safetensors"), load_file(straight / "final/model.safetensors")
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    init = load_file(tool_model / "model.safetensors")
    assert any(not torch.equal(a[k], init[k]) for k in a if k in init)  # training moved the weights
    rows_k, rows_s = _rows(killed), _rows(straight)
    assert [r["step"] for r in rows_k] == [1, 2, 3, 4]
    assert sum(r["episode/tool_calls"] for r in rows_s) > 0  # the runs compared are multi-turn
    assert rows_k == rows_s
