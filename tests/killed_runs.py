"""A real `rlvr train` process killed with SIGKILL after a checkpoint, resumed with `--resume`, and compared
with an uninterrupted run of the same recipe: shared by the single-turn and the multi-turn tests."""

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

from rlvr.checkpoint import COMPLETE
from rlvr.config import load_config
from rlvr.logging.metrics import read_jsonl
from rlvr.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
# One intra-op thread, as in this process (see conftest.py): the runs compared below are bit for bit.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}

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


def metric_rows(run: Path) -> list[dict]:
    """The run's metrics.jsonl rows without the wall-time keys (the only numbers two equal runs differ in)."""
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


def kill_resume_and_compare(recipe: Path, tmp_path: Path) -> tuple[Path, Path]:
    """Run `recipe` (at least 4 steps, a checkpoint every 2) twice: once in a `rlvr train` process that is
    SIGKILLed during step 4 and then resumed by `rlvr train --resume`, once uninterrupted in this process.
    Asserts that the final weights are equal bit for bit, that the resumed run trained past the kill point,
    and that every logged number but wall times is equal. Returns (killed run dir, uninterrupted run dir)."""
    cfg = load_config(recipe)
    assert cfg.train.steps >= 4 and cfg.train.checkpoint_every == 2, "the kill lands after checkpoint step_2"
    killed, straight, log = tmp_path / "killed", tmp_path / "straight", tmp_path / "killed.log"
    argv = ["-c", STALL_AT_STEP_4, "train", "--config", str(recipe), "--out", str(killed), "--no-progress"]
    # Output goes to a file: a full pipe nobody reads would block the child.
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, *argv], cwd=REPO, env=ENV, stdout=out, stderr=subprocess.STDOUT)
        try:
            # Meanwhile, the uninterrupted run (what `rlvr train` does, in this process).
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

    resumed = subprocess.run([sys.executable, "-m", "rlvr.cli", "train", "--resume", str(killed), "--no-progress"],
                             cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    a = load_file(killed / "final/model.safetensors")
    b = load_file(straight / "final/model.safetensors")
    assert sorted(a) == sorted(b)
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"resumed weights differ from the uninterrupted run in {differ}"
    # The comparison means something: steps 3.. were trained after the resume, and training moves weights.
    assert any(not torch.equal(a[k], at_kill[k]) for k in a)

    rows_killed, rows_straight = metric_rows(killed), metric_rows(straight)
    assert [r["step"] for r in rows_killed] == list(range(1, cfg.train.steps + 1))
    assert [r["reward/mean"] for r in rows_killed] == [r["reward/mean"] for r in rows_straight]
    assert rows_killed == rows_straight  # entropy, loss, grad norm, lengths, cursor: every number
    return killed, straight
