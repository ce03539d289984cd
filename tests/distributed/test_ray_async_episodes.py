"""Asynchronous Ray runs (`distributed.async_rollouts`) on a task with tools: the workers run tool episodes of
the next step while the learners update, and those episodes train with their observations masked."""

from __future__ import annotations

import copy

import pytest

ray = pytest.importorskip("ray")

from rlvr.config import load_config  # noqa: E402
from rlvr.distributed.trainer import RayTrainer  # noqa: E402
from rlvr.logging.metrics import read_jsonl  # noqa: E402
from tests.distributed.test_ray import RAY, SANDBOXED_CALCULATOR, cluster  # noqa: E402, F401


def test_async_tool_episodes_train_one_version_behind(cluster, tool_model, tmp_path):  # noqa: F811
    from tests.conftest import TINY_RUN, tool_run

    steps, B, G = 3, 2, 4
    data = {**copy.deepcopy(TINY_RUN), **tool_run(tool_model, [SANDBOXED_CALCULATOR])}
    data["train"].update({"steps": steps, "prompts_per_step": B, "checkpoint_every": 0})
    data["distributed"] = {**RAY, "async_rollouts": True, "prefetch_steps": 1, "max_staleness": 1}
    cfg = load_config(base=data)
    trainer = RayTrainer(cfg, tmp_path / "ray")
    trained = []
    collect = trainer.collect

    def record():
        collected = collect()
        trained.append([(trainer.step_count - r.policy_version, r.completion_mask) for r in collected.kept])
        return collected

    trainer.collect = record
    trainer.run(progress=False)
    trainer.logger.close()
    trainer.close()
    rows = read_jsonl(tmp_path / "ray" / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(1, steps + 1)) and len(trained) == steps
    assert all(len(kept) == B * G for kept in trained)
    staleness = [s for kept in trained for s, _ in kept]
    assert max(staleness) == 1  # later steps trained on episodes sampled while the previous step updated
    assert all(r["offpolicy/active"] == 1.0 for r in rows)  # ... corrected against the workers' log-probs
    masks = [m for kept in trained for _, m in kept]
    assert any(m is not None and 0 in m for m in masks)  # episodes with observations reached the learner
    assert sum(r["episode/tool_calls"] for r in rows) > 0 and sum(r["episode/observation_tokens"] for r in rows) > 0
    assert rows[-1]["verify/scored"] == steps * B * G
    samples = read_jsonl(tmp_path / "ray" / "samples.jsonl")
    assert any(p["role"] == "observation" for s in samples for p in s["transcript"])
