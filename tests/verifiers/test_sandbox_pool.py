"""One sandbox pool per node: the bound holds across processes, whatever their number."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rlvr.verifiers import sandbox
from rlvr.verifiers.sandbox import pool as pool_module
from rlvr.verifiers.sandbox.pool import SlotPool

ROOT = Path(__file__).resolve().parents[2]
# Each child process runs 4 sandboxed jobs at once; a shared counter (under its own lock) records how
# many runs were in flight at the same time on the whole "node", across all processes.
CHILD = textwrap.dedent(
    """
    import fcntl, json, os, sys, threading, types

    # The sandbox needs nothing of rlvr's or rlvr.verifiers' own __init__ (torch, the math verifiers:
    # seconds per process): bare package objects stand in for them.
    for name in ("rlvr", "rlvr.verifiers"):
        package = types.ModuleType(name)
        package.__path__ = [os.path.join(os.getcwd(), *name.split("."))]
        sys.modules[name] = package
    from rlvr.verifiers.sandbox import Job, run, runner

    counter = sys.argv[1]

    def bump(delta):
        with open(counter, "r+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            now, peak = map(int, f.read().split())
            now += delta
            f.seek(0)
            f.truncate()
            f.write(f"{now} {max(peak, now)}")

    real = runner._attempt

    def counted(*args, **kwargs):
        bump(1)
        try:
            return real(*args, **kwargs)
        finally:
            bump(-1)

    runner._attempt = counted
    results = []
    def one():
        results.append(run(Job(code="import time\\ntime.sleep(0.05)\\nprint('ok')")))
    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps([(r.status, r.slot) for r in results]))
    """
)


def test_the_bound_holds_across_processes(tmp_path):
    counter = tmp_path / "counter"
    counter.write_text("0 0")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "RLVR_SANDBOX_POOL_DIR": str(tmp_path / "pool"),
        "RLVR_SANDBOX_SLOTS": "2",
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(counter)], stdout=subprocess.PIPE, env=env, cwd=str(ROOT)
        )
        for _ in range(3)
    ]
    results = [json.loads(p.communicate(timeout=300)[0]) for p in procs]
    runs = [r for rs in results for r in rs]
    assert len(runs) == 12 and all(status == "ok" for status, _ in runs), runs
    assert {slot for _, slot in runs} <= {0, 1}
    now, peak = map(int, counter.read_text().split())
    assert now == 0 and 1 <= peak <= 2, peak


def test_slots_are_exclusive_between_processes_and_threads(tmp_path):
    pool = SlotPool(tmp_path, 2)
    a, b = pool.try_acquire(), pool.try_acquire()
    assert {a, b} == {0, 1} and pool.try_acquire() is None
    # Another process sees the same two slots taken.
    # pool.py alone (no rlvr import: the package would import the math verifiers, seconds per process)
    probe = (
        "import importlib.util, sys\n"
        "spec = importlib.util.spec_from_file_location('pool', sys.argv[2])\n"
        "pool = importlib.util.module_from_spec(spec)\nspec.loader.exec_module(pool)\n"
        "print(pool.SlotPool(sys.argv[1], 2).try_acquire())"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path), pool_module.__file__],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.stdout.strip() == "None", out.stderr
    pool.release(a)
    out = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path), pool_module.__file__],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.stdout.strip() == str(a), out.stderr
    pool.release(b)


def test_a_slot_held_by_a_dead_process_comes_back(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time\nf = open(sys.argv[1], 'a')\nfcntl.flock(f, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(60)",
            str(tmp_path / "slot-0"),
        ],
        stdout=subprocess.PIPE,
    )
    assert holder.stdout.readline().strip() == b"held"
    pool = SlotPool(tmp_path, 1)
    assert pool.acquire(timeout=0.1) is None
    holder.kill()
    holder.wait()
    assert pool.acquire(timeout=30) == 0
    pool.release(0)


@pytest.fixture
def one_slot_pool(tmp_path):
    sandbox.configure_pool(slots=1, directory=tmp_path / "pool")
    yield sandbox.node_pool().directory
    sandbox.configure_pool()


def test_a_run_waits_for_a_slot_and_a_full_node_is_an_infra_fault(one_slot_pool):
    """`run` goes through the node pool: with the only slot held elsewhere, it waits, then reports the
    host's fault (never the candidate's)."""
    fd = os.open(one_slot_pool / "slot-0", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        r = sandbox.run(sandbox.Job(code="print(1)"), slot_wait_s=0.2)
        assert r.status == "infra" and "slot" in r.reason
    finally:
        os.close(fd)
    r = sandbox.run(sandbox.Job(code="print(1)"))
    assert r.status == "ok" and r.slot == 0


def test_the_pool_directory_must_be_private(tmp_path):
    d = tmp_path / "shared"
    d.mkdir(mode=0o777)
    os.chmod(d, 0o777)
    with pytest.raises(PermissionError, match="writable by it only"):
        SlotPool(d, 2)
