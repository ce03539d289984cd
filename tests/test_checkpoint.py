"""Checkpoints: only complete ones count, and a run killed with SIGKILL resumes to the same bits."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rlvr.checkpoint import (
    COMPLETE,
    latest_checkpoint,
    list_checkpoints,
    restore_metric_files,
    save_checkpoint,
)
from rlvr.config import load_config
from rlvr.logging.metrics import read_jsonl
from rlvr.models.loading import load_policy
from tests.killed_runs import kill_resume_and_compare


def _complete(root: Path, step: int) -> Path:
    d = root / "checkpoints" / f"step_{step}"
    (d / "model").mkdir(parents=True)
    (d / COMPLETE).write_text(str(step))
    return d


def test_incomplete_checkpoints_are_ignored(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    _complete(tmp_path, 2)
    _complete(tmp_path, 4)
    root = tmp_path / "checkpoints"
    (root / "step_6" / "model").mkdir(parents=True)  # killed before its COMPLETE marker
    (root / ".tmp_step_8" / "model").mkdir(parents=True)  # killed mid-write, before the rename
    (root / ".tmp_step_8" / COMPLETE).write_text("8")
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_2", "step_4"]
    assert latest_checkpoint(tmp_path).name == "step_4"
    (root / "latest").write_text("step_6")  # a pointer to a broken checkpoint is not trusted
    assert latest_checkpoint(tmp_path).name == "step_4"
    (root / "latest").write_text("step_2")
    assert latest_checkpoint(tmp_path).name == "step_2"


def test_save_checkpoint_is_atomic_and_keeps_the_last_two(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n')

    def save_model(d: Path) -> None:
        d.mkdir(parents=True)
        (d / "model.safetensors").write_text("weights")

    for step in (1, 2, 3):
        path = save_checkpoint(tmp_path, step, save_model, {"step": step})
        assert path.name == f"step_{step}" and (path / COMPLETE).exists()
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_2", "step_3"]
    assert torch.load(tmp_path / "checkpoints/step_3/state.pt")["step"] == 3
    assert (tmp_path / "checkpoints/step_3/metrics.jsonl").read_text() == '{"step": 1}\n'

    def killed(d: Path) -> None:
        d.mkdir(parents=True)
        raise KeyboardInterrupt  # stands in for a kill half way through writing the model

    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, 4, killed, {"step": 4})
    assert not (tmp_path / "checkpoints/step_4").exists()
    assert latest_checkpoint(tmp_path).name == "step_3"
    # The next save at that step replaces the leftover temporary directory.
    assert save_checkpoint(tmp_path, 4, save_model, {"step": 4}).name == "step_4"
    assert not (tmp_path / "checkpoints/.tmp_step_4").exists()


def test_restore_metric_files_rewinds_the_history(tmp_path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2}\n')
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2}\n{"step": 3}\n')
    (tmp_path / "eval.jsonl").write_text('{"step": 3}\n')  # written after the checkpoint
    restore_metric_files(ckpt, tmp_path)
    assert [r["step"] for r in read_jsonl(tmp_path / "metrics.jsonl")] == [1, 2]
    assert not (tmp_path / "eval.jsonl").exists()


def test_sigkill_then_resume_matches_an_uninterrupted_run_bit_for_bit(tmp_path, tiny_recipe):
    recipe = tiny_recipe(**{"train.steps": 6, "train.checkpoint_every": 2})
    killed, _ = kill_resume_and_compare(recipe, tmp_path)
    cfg = load_config(recipe)
    init, _ = load_policy(cfg.model, seed=cfg.train.seed)
    a = load_file(killed / "final/model.safetensors")
    assert any(not torch.equal(a[k], v) for k, v in init.state_dict().items() if k in a)
