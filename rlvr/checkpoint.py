"""Atomic checkpoints that resume a run exactly.

A checkpoint is a directory `checkpoints/step_<N>/` holding the policy in Hugging Face format (`model/`),
`state.pt` (optimiser, scheduler, every random generator, data cursor, policy version, reference weights)
and a copy of the run's metric files so far. It is written under a temporary name, flushed to disk, and
renamed into place; the `latest` pointer is replaced atomically afterwards. A kill at any moment leaves
either the previous checkpoint or the new one, never a broken one.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

from rlvr.atomic import write_text_atomic

COMPLETE = "COMPLETE"
METRIC_FILES = ("metrics.jsonl", "samples.jsonl", "eval.jsonl")


def _fsync_tree(path: Path) -> None:
    for p in sorted(path.rglob("*")):
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(run_dir: Path, step: int, save_model, state: dict, keep: int = 2) -> Path:
    """Write checkpoint `step`: `save_model(dir)` writes the policy, `state` goes to state.pt."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step}"
    tmp = root / f".tmp_step_{step}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_model(tmp / "model")
    torch.save(state, tmp / "state.pt")
    for name in METRIC_FILES:
        src = Path(run_dir) / name
        if src.exists():
            shutil.copy2(src, tmp / name)
    (tmp / COMPLETE).write_text(str(step))
    _fsync_tree(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    write_text_atomic(root / "latest", final.name)
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.exists():
        return []
    found = [p for p in root.glob("step_*") if (p / COMPLETE).exists()]
    return sorted(found, key=lambda p: int(p.name.split("_")[1]))


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint (the `latest` pointer when it is valid)."""
    root = Path(run_dir) / "checkpoints"
    pointer = root / "latest"
    if pointer.exists():
        candidate = root / pointer.read_text().strip()
        if (candidate / COMPLETE).exists():
            return candidate
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def restore_metric_files(checkpoint: Path, run_dir: Path) -> None:
    """Put the run's metric history back exactly as it was when the checkpoint was written."""
    for name in METRIC_FILES:
        src = checkpoint / name
        dst = Path(run_dir) / name
        if src.exists():
            shutil.copy2(src, dst)
        elif dst.exists():
            dst.unlink()
