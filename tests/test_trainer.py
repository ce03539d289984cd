"""A whole (tiny) RL run: metrics, samples, checkpoints and a final policy that loads with transformers."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from rlvr.checkpoint import COMPLETE, latest_checkpoint, list_checkpoints
from rlvr.config import load_config
from rlvr.logging.metrics import read_jsonl
from rlvr.models.loading import load_policy
from rlvr.trainer import Trainer, safe_verify
from rlvr.types import Problem

REQUIRED = [
    "reward/mean",
    "accuracy",
    "format_rate",
    "response_length/mean",
    "response_length/max",
    "entropy",
    "clip_frac",
    "time/generate",
    "time/verify",
    "time/update",
]


@pytest.fixture
def three_step_run(tmp_path, tiny_recipe):
    cfg = load_config(tiny_recipe())
    trainer = Trainer(cfg, tmp_path / "run")
    last = trainer.run(progress=False)
    yield cfg, trainer, last
    trainer.logger.close()


def test_three_steps_write_metrics_samples_and_checkpoints(three_step_run):
    cfg, trainer, last = three_step_run
    run = trainer.run_dir
    rows = read_jsonl(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3]
    for r in rows:
        missing = [k for k in REQUIRED if k not in r]
        assert not missing, missing
        assert r["phase"] == "rl"
        assert 0 < r["response_length/mean"] <= r["response_length/max"] <= cfg.rollout.max_new_tokens
        assert r["entropy"] > 0 and 0 <= r["accuracy"] <= 1
        assert r["cursor"] == r["step"] * cfg.train.prompts_per_step
    assert last["reward/mean"] == rows[-1]["reward/mean"]

    samples = read_jsonl(run / "samples.jsonl")
    assert {s["step"] for s in samples} == {1, 2, 3}
    assert all({"prompt", "completion", "reward", "correct"} <= set(s) for s in samples)
    assert all("<eos>" not in s["completion"] for s in samples)

    # checkpoint_every 1 with the last two kept; `latest` names the newest.
    assert [p.name for p in list_checkpoints(run)] == ["step_2", "step_3"]
    assert latest_checkpoint(run).name == "step_3" and (run / "checkpoints/step_3" / COMPLETE).exists()
    assert load_config(run / "config.yaml") == cfg


def test_final_policy_loads_with_transformers(three_step_run):
    cfg, trainer, _ = three_step_run
    final = AutoModelForCausalLM.from_pretrained(trainer.run_dir / "final")
    trained = trainer.model.state_dict()
    assert all(torch.equal(v, trained[k]) for k, v in final.state_dict().items())
    ckpt = AutoModelForCausalLM.from_pretrained(trainer.run_dir / "checkpoints/step_3/model")
    assert all(torch.equal(v, trained[k]) for k, v in ckpt.state_dict().items())
    # and training did change the weights (entropy bonus and KL give every step a gradient)
    fresh, _ = load_policy(cfg.model, seed=cfg.train.seed)
    assert not torch.equal(fresh.model.layers[0].mlp.up_proj.weight, final.model.layers[0].mlp.up_proj.weight)


def test_eval_writes_a_row(three_step_run):
    _, trainer, _ = three_step_run
    result = trainer.run_eval("final")
    assert result["n"] == 4 and 0 <= result["accuracy"] <= 1
    (row,) = read_jsonl(trainer.run_dir / "eval.jsonl")
    assert row["step"] == 3 and row["phase"] == "final" and row["n"] == 4


def test_a_raising_verifier_gives_zero_reward_with_the_reason():
    class Broken:
        def verify(self, problem, text):
            raise KeyError("answer")

    score = safe_verify(Broken(), Problem("p", "1+1=", 2, "t"), "2")
    assert score.reward == 0.0 and not score.correct
    assert "KeyError" in score.details["reason"]
