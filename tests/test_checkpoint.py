"""Checkpoints: only complete ones count, and a run killed with SIGKILL resumes to the same bits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
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
from rlvr.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
# One intra-op thread, as in this process (see conftest.py): the runs compared below are bit for bit.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


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


# The real CLI, with one change: the 4th step blocks, so the kill below always lands after checkpoint
# step_2 and after step 3 was logged (a row the resumed run must drop), never after the run finished.
STALL_AT_STEP_4 = """
import sys, time
import rlvr.trainer

step = rlvr.trainer.Trainer.step
def stalling_step(self):
    if self.step_count == 3:
        time.sleep(600)
    return step(self)
rlvr.trainer.Trainer.step = stalling_step

from rlvr.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _metric_rows(run: Path) -> list[dict]:
    rows = read_jsonl(run / "metrics.jsonl")
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]


def _wait_for_kill_point(proc: subprocess.Popen, run: Path, log: Path, timeout: float = 240.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(
                f"the run exited ({proc.returncode}) before it could be killed:\n{log.read_text()[-3000:]}"
            )
        if (run / "checkpoints/step_2" / COMPLETE).exists() and any(
            r.get("step") == 3 for r in read_jsonl(run / "metrics.jsonl")
        ):
            return
        time.sleep(0.05)
    pytest.fail("no checkpoint step_2 appeared in time")


def test_sigkill_then_resume_matches_an_uninterrupted_run_bit_for_bit(tmp_path, tiny_recipe):
    recipe = tiny_recipe(**{"train.steps": 6, "train.checkpoint_every": 2})
    killed, straight, log = tmp_path / "killed", tmp_path / "straight", tmp_path / "killed.log"
    argv = ["-c", STALL_AT_STEP_4, "train", "--config", str(recipe), "--out", str(killed), "--no-progress"]
    # Output goes to a file: a full pipe nobody reads would block the child.
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, *argv], cwd=REPO, env=ENV, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            # Meanwhile, the uninterrupted run (what `rlvr train` does, in this process).
            cfg = load_config(recipe)
            trainer = Trainer(cfg, straight)
            trainer.run(progress=False)
            trainer.logger.close()
            _wait_for_kill_point(proc, killed, log)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "final").exists()
    assert [r["step"] for r in read_jsonl(killed / "metrics.jsonl")] == [1, 2, 3]
    at_kill = load_file(killed / "checkpoints/step_2/model/model.safetensors")

    resumed = subprocess.run(
        [sys.executable, "-m", "rlvr.cli", "train", "--resume", str(killed), "--no-progress"],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    a = load_file(killed / "final/model.safetensors")
    b = load_file(straight / "final/model.safetensors")
    assert sorted(a) == sorted(b)
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"resumed weights differ from the uninterrupted run in {differ}"
    # The comparison means something: steps 3-6 were trained after the resume, and training moves weights.
    assert any(not torch.equal(a[k], at_kill[k]) for k in a)
    init, _ = load_policy(cfg.model, seed=cfg.train.seed)
    assert any(not torch.equal(a[k], v) for k, v in init.state_dict().items() if k in a)

    rows_killed, rows_straight = _metric_rows(killed), _metric_rows(straight)
    assert [r["step"] for r in rows_killed] == [1, 2, 3, 4, 5, 6]
    assert [r["reward/mean"] for r in rows_killed] == [r["reward/mean"] for r in rows_straight]
    assert rows_killed == rows_straight  # entropy, loss, grad norm, lengths, cursor: every number
