"""Isolated execution of model-written code. Nothing untrusted runs anywhere else in rlvr.

Every execution is a fresh `python -I -S -B` process that starts with `harness.py` (read it for what
happens inside), with, where the machine allows (`isolation()` probes, says which, and falls back):
- bubblewrap's mount, PID, network, IPC and UTS namespaces: a read-only view of /usr and the interpreter
  only, private /tmp, /dev/shm and HOME (size-capped tmpfs), nothing of the project or the user's files,
  only loopback; capabilities dropped, no_new_privs, and a seccomp filter built with libseccomp
  (`launch.py`, `seccomp.py`);
- one uid per pool slot as root (nobody inside a user namespace otherwise), and a process limit that
  counts only the run's own processes (never RLIMIT_NPROC of a shared uid);
- rlimits on CPU time, address space, file size and open files, no core dumps; a wall-clock limit after
  which the whole run is killed (as PID 1 of its namespace, every process it made goes with it);
- a scrubbed environment: nothing of the parent's (tokens, keys, proxies) is inherited;
- stdout and stderr capped (the run is killed when a stream passes the cap);
- in test mode, results on a private pipe, each line carrying a per-run random nonce, and a final count
  that must match the tests sent: printing "all tests passed" or exiting early proves nothing;
- the harness's in-interpreter audit hook on top (`Job.guard`).

Concurrency is bounded per node, not per process: every process on a node shares one pool of slots
(`pool.py`), so verifier actors, rollout workers and the trainer together run at most `pool_size()`.

`run(job)` runs one; `run_many(jobs)` runs many through threads up to the pool size. Neither raises: the
outcome is a `RunResult` whose `status` says what happened and whose fault it was. "infra" (the process
never started, or the harness never acknowledged the job before the candidate's code began) is retried,
and then left to the caller: the code verifier raises `InfraError` for it, never a reward of 0.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from rlvr.verifiers.sandbox.isolation import isolation, network_isolation
from rlvr.verifiers.sandbox.job import InfraError, Job, Limits, RunResult
from rlvr.verifiers.sandbox.pool import configure_pool, node_pool
from rlvr.verifiers.sandbox.runner import run, set_spawn_fault

__all__ = [
    "InfraError",
    "Job",
    "Limits",
    "RunResult",
    "configure_pool",
    "describe",
    "isolation",
    "network_isolation",
    "node_pool",
    "pool_size",
    "run",
    "run_many",
    "set_spawn_fault",
]


def pool_size() -> int:
    """Concurrent executions on this node, all processes together (see `pool.py`)."""
    return node_pool().slots


def describe() -> str:
    """One paragraph on the layers in force and the pool, for the start of a run that runs code."""
    iso, pool = isolation(), node_pool().describe()
    return (
        f"sandbox: {iso['launcher']} launcher, {pool['slots']} slots per node ({pool['directory']}); "
        + "; ".join(iso["layers"])
    )


def run_many(jobs: list[Job], max_workers: int | None = None) -> list[RunResult]:
    """Run `jobs` concurrently, up to `max_workers` (default `pool_size()`) at once; results in order."""
    if not jobs:
        return []
    workers = max(1, min(len(jobs), max_workers or pool_size()))
    if workers == 1:
        return [run(j) for j in jobs]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rlvr-sandbox") as pool:
        return list(pool.map(run, jobs))
