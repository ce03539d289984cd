"""Non-root is a first-class case: when the suite runs as root, the sandbox's parent side also runs
under an unprivileged uid, from a world-readable interpreter, with 64 extra threads started before
scoring (a trainer's torch and Ray threads), and must still score right."""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path

import pytest

from rlvr.verifiers.sandbox import selfcheck
from rlvr.verifiers.sandbox.isolation import _world_readable

NONROOT_UID = 61234  # no account needed: the kernel only sees the number


def _readable_by_others() -> bool:
    project = Path(selfcheck.__file__).resolve().parents[3]
    paths = [
        project / "rlvr" / "__init__.py",
        Path(sysconfig.get_paths()["purelib"]) / "sympy" / "__init__.py",
    ]
    return all(p.exists() and _world_readable(str(p)) for p in paths)


@pytest.mark.skipif(
    os.geteuid() != 0, reason="the suite runs unprivileged: every sandbox test is the non-root case"
)
def test_a_non_root_threaded_parent_scores_right():
    if not _readable_by_others():
        pytest.skip("the project or its packages are not readable by other users here")
    summary = selfcheck.check(processes=1, checks=4, threads=64, as_uid=NONROOT_UID)
    assert summary["correct"] == {"checks": 4, "scored_1": 4, "scored_0": 0, "infra_errors": 0}, summary
    assert summary["broken"] == {"checks": 4, "scored_1": 0, "scored_0": 4, "infra_errors": 0}, summary
    assert all(summary["attacks_scored_0"].values()), summary["attacks_scored_0"]
    assert not any("RLIMIT_NPROC of a shared" in layer for layer in summary["isolation"])
