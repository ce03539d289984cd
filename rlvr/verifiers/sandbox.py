"""Isolated execution of model-written code. Nothing untrusted runs anywhere else in rlvr.

Every execution is a fresh `python -I -S -B` process that starts with `harness.py` (read it for what
happens inside), in its own session and process group, with:
- rlimits on CPU time, address space, file size, processes and open files, and no core dumps;
- a wall-clock timeout after which the whole process group is killed (and, in a PID namespace, every
  process it made, even one that escaped the group);
- an empty temporary working directory, removed afterwards, which is also its HOME and TMPDIR;
- a scrubbed environment: nothing of the parent's (tokens, keys, proxies) is inherited;
- no network: a separate network namespace (`unshare --net`) where the kernel allows it, and in any case
  an in-interpreter refusal of sockets (the harness's audit hook); `isolation()` says which is in force;
- an unprivileged uid (nobody) when the parent runs as root and a world-readable interpreter exists;
- stdout and stderr capped (the run is killed when a stream passes the cap);
- in test mode, results on a private pipe, each line carrying a per-run random nonce, and a final count
  that must match the tests sent: printing "all tests passed" or exiting early proves nothing.

`run(job)` runs one; `run_many(jobs)` runs many through a pool sized to the machine (`pool_size()`). A
process-wide semaphore keeps concurrent executions at `pool_size()` whoever calls. Neither raises for
anything the candidate does: the outcome is a `RunResult` with a `status` and a `reason`.
"""

from __future__ import annotations

import functools
import logging
import marshal
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rlvr.verifiers.isolation import isolation, network_isolation

logger = logging.getLogger(__name__)

__all__ = ["Job", "Limits", "RunResult", "isolation", "network_isolation", "pool_size", "run", "run_many"]

HARNESS_SOURCE = Path(__file__).with_name("harness.py").read_text()
# Reads the harness and the job from the control pipe, runs the harness in a private namespace. Nothing is
# left in __main__'s globals but `_boot` itself (the job and the nonce live only in its frame).
BOOT = """def _boot():
    import marshal, os, sys
    ctrl, res = int(sys.argv[1]), int(sys.argv[2])
    del sys.argv[1:]
    chunks = []
    while True:
        chunk = os.read(ctrl, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(ctrl)
    harness, job = marshal.loads(b"".join(chunks))
    code = marshal.loads(harness) if type(harness) is bytes else compile(harness, "<rlvr-harness>", "exec")
    namespace = {"__builtins__": dict(vars(__builtins__)), "__name__": "rlvr_harness"}
    exec(code, namespace)
    namespace["main"](job, res)
_boot()
"""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one execution. Units: seconds, MiB, bytes for `max_output` (per stream)."""

    wall_s: float = 10.0
    cpu_s: int = 10
    memory_mb: int = 1024
    file_mb: int = 16
    max_procs: int = 32
    max_files: int = 64
    max_output: int = 1 << 20


@dataclass
class Job:
    """What to run. Script mode (`units is None`): `code` runs as `__main__` with `stdin`. Test mode:
    `code` is loaded, then each unit `{"src": str, "test": bool}` runs in order (see `harness.py`);
    `entry_point` names the function the tests call `candidate`."""

    code: str
    stdin: str = ""
    units: list[dict] | None = None
    entry_point: str | None = None
    plain_returns: bool = True
    limits: Limits = field(default_factory=Limits)
    guard: bool = True  # the in-interpreter audit hook; off only to test the OS-level limits


@dataclass
class RunResult:
    """Outcome of one execution.

    `status`: "ok" (ran to the end: exit 0 in script mode; an authenticated, complete report in test mode),
    "failed" (ran but exited non-zero / some test failed), "timeout", "output_limit", "killed" (by a signal:
    CPU or memory limit, or an attack on itself), "incomplete" (test mode: no valid complete report),
    "error" (the sandbox itself could not run it). `tests` holds one bool per test (test mode)."""

    status: str
    reason: str = ""
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    wall_s: float = 0.0
    tests: list[bool] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return sum(self.tests)

    def to_dict(self) -> dict:
        return asdict(self)


@functools.lru_cache(maxsize=1)
def _harness_code() -> bytes:
    return marshal.dumps(compile(HARNESS_SOURCE, "<rlvr-harness>", "exec", dont_inherit=True))


def _harness(iso: dict) -> bytes | str:
    """The harness compiled once here when the sandbox interpreter reads this bytecode, else its source."""
    return _harness_code() if iso["precompiled_harness"] else HARNESS_SOURCE


def pool_size() -> int:
    """Concurrent executions this machine runs: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


_slots = threading.BoundedSemaphore(pool_size())


def _scrubbed_env(workdir: str) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": workdir,
        "TMPDIR": workdir,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
    }


def _killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _exited(pid: int) -> bool:
    """Has `pid` exited? Leaves it unreaped, so its process group id cannot be reused yet."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def run(job: Job) -> RunResult:
    """Run `job` in a fresh sandbox and report what happened. Never raises for the candidate's doing."""
    iso = isolation()
    with _slots:
        try:
            return _run(job, iso)
        except Exception as e:  # the sandbox's own failure (e.g. no fds left): a reason, not a crash
            logger.exception("sandbox failed to run a job")
            return RunResult("error", f"sandbox error: {type(e).__name__}: {e}")


def _run(job: Job, iso: dict) -> RunResult:
    lim = job.limits
    nonce = secrets.token_hex(16)
    workdir = tempfile.mkdtemp(prefix="rlvr-sbx-")
    uid = iso["uid"]
    spec = {
        "nonce": nonce,
        "mode": "script" if job.units is None else "tests",
        "code": job.code,
        "units": job.units or [],
        "entry_point": job.entry_point,
        "plain_returns": job.plain_returns,
        "limits": {k: getattr(lim, k) for k in ("cpu_s", "memory_mb", "file_mb", "max_procs", "max_files")},
        "guard": job.guard,
        "uid": uid,
        "gid": uid,
    }
    ctrl_r, ctrl_w = os.pipe()
    res_r, res_w = os.pipe()
    # File objects close idempotently, so no fd number is ever closed twice (other threads reuse them).
    ctrl_file, res_file = os.fdopen(ctrl_w, "wb", buffering=0), os.fdopen(res_r, "rb", buffering=0)
    inherited = [ctrl_r, res_w]
    proc, cpu_s = None, 0.0
    try:
        if uid is not None:
            os.chown(workdir, uid, uid)
        argv = [
            *iso["prefix"],
            iso["python"],
            "-I",
            "-S",
            "-B",
            "-c",
            BOOT,
            str(ctrl_r),
            str(res_w),
        ]
        start = time.monotonic()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=workdir,
            env=_scrubbed_env(workdir),
            pass_fds=(ctrl_r, res_w),
            start_new_session=True,
            close_fds=True,
        )
        for fd in inherited:
            os.close(fd)
        inherited.clear()
        out = _pump(
            proc,
            lim,
            start,
            {
                "ctrl": (ctrl_file, marshal.dumps((_harness(iso), spec))),
                "stdin": (proc.stdin, job.stdin.encode()),
            },
            {"stdout": proc.stdout.fileno(), "stderr": proc.stderr.fileno(), "result": res_file.fileno()},
        )
        wall = time.monotonic() - start
    finally:
        if proc is not None:
            _killpg(proc.pid)
            cpu_s = _reap(proc)
            for f in (proc.stdin, proc.stdout, proc.stderr):
                try:
                    f.close()
                except OSError:
                    pass
        for fd in inherited:
            os.close(fd)
        for f in (ctrl_file, res_file):
            try:
                f.close()
            except OSError:
                pass
        shutil.rmtree(workdir, ignore_errors=True)
    return _judge(job, out, proc.returncode, nonce, wall, cpu_s)


def _reap(proc: subprocess.Popen) -> float:
    """Reap the child and return the CPU seconds it and its reaped descendants used. (Through
    `unshare --fork` the exit status of a killed child is lost, so the CPU limit is recognised by time.)"""
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except ChildProcessError:
        proc.wait()
        return 0.0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


def _pump(proc: subprocess.Popen, lim: Limits, start: float, writes: dict, reads: dict) -> dict:
    """Feed the child's input pipes and drain its output pipes until it ends, passes the wall-clock
    limit (kill) or an output cap (kill). Returns the bytes read and why it stopped."""
    sel = selectors.DefaultSelector()
    pending = {}
    files = {}
    for name, (f, data) in writes.items():
        files[name] = f
        if data:
            os.set_blocking(f.fileno(), False)
            sel.register(f.fileno(), selectors.EVENT_WRITE, ("w", name))
            pending[name] = memoryview(data)
        else:
            _close(f)
    buffers = {name: bytearray() for name in reads}
    for name, fd in reads.items():
        sel.register(fd, selectors.EVENT_READ, ("r", name))
    caps = {"stdout": lim.max_output, "stderr": lim.max_output, "result": 1 << 20}
    deadline = start + lim.wall_s
    stop, exit_seen = "", False
    while sel.get_map():
        now = time.monotonic()
        if now >= deadline:
            stop = stop or ("timeout" if not exit_seen else "")
            break
        for key, _ in sel.select(min(deadline - now, 0.1)):
            kind, name = key.data
            if kind == "w":
                try:
                    n = os.write(key.fd, pending[name][:65536])
                    pending[name] = pending[name][n:]
                except (BrokenPipeError, OSError):
                    pending[name] = memoryview(b"")
                if not pending[name]:
                    sel.unregister(key.fd)
                    _close(files[name])
                continue
            chunk = os.read(key.fd, 65536)
            if not chunk:
                sel.unregister(key.fd)
                continue
            buf = buffers[name]
            if len(buf) + len(chunk) > caps[name]:
                buf += chunk[: caps[name] - len(buf)]
                stop = f"output_limit:{name}"
                break
            buf += chunk
        if stop:
            break
        if not exit_seen and _exited(proc.pid):
            # The main process is gone; whatever it left behind is killed now, and the pipes get a
            # short grace to drain what was already written.
            exit_seen = True
            _killpg(proc.pid)
            deadline = min(deadline, time.monotonic() + 0.5)
    sel.close()
    for f in files.values():
        _close(f)
    _killpg(proc.pid)
    return {"stop": stop, "exit_seen": exit_seen, **{k: bytes(v) for k, v in buffers.items()}}


def _close(f) -> None:
    try:
        f.close()
    except OSError:
        pass


def _text(data: bytes, limit: int = 4000) -> str:
    s = data.decode("utf-8", "replace")
    return s if len(s) <= limit else s[:limit] + f"... [{len(s) - limit} more characters]"


def _judge(job: Job, out: dict, returncode: int, nonce: str, wall: float, cpu_s: float) -> RunResult:
    """Turn what came back into a `RunResult`; in test mode only nonce-bearing records count."""
    res = RunResult(
        "ok",
        returncode=returncode,
        stdout=out["stdout"].decode("utf-8", "replace"),
        stderr=_text(out["stderr"]),
        wall_s=wall,
    )
    stop = out["stop"]
    if stop == "timeout":
        res.status, res.reason = "timeout", f"wall-clock limit of {job.limits.wall_s:g}s exceeded"
    elif stop.startswith("output_limit"):
        stream = stop.split(":")[1]
        res.status, res.reason = "output_limit", f"{stream} exceeded {job.limits.max_output} bytes"
    elif cpu_s >= 0.95 * job.limits.cpu_s or returncode in (128 + signal.SIGXCPU, -signal.SIGXCPU):
        res.status, res.reason = "killed", f"CPU time limit of {job.limits.cpu_s}s exceeded"
    elif returncode is not None and returncode < 0:
        sig = signal.Signals(-returncode).name if -returncode in signal.valid_signals() else -returncode
        res.status = "killed"
        res.reason = {"SIGXCPU": "CPU time limit exceeded", "SIGXFSZ": "file size limit exceeded"}.get(
            str(sig), f"killed by {sig} (memory limit, CPU limit or the program itself)"
        )
    if job.units is None:
        if res.status == "ok" and returncode != 0:
            res.status, res.reason = "failed", f"exit status {returncode}"
        return res
    expected = sum(1 for u in job.units if u["test"])
    records, done, syntax, conflicting = {}, None, None, False
    for line in out["result"].decode("utf-8", "replace").splitlines():
        parts = line.split(" ", 3)
        if len(parts) < 2 or parts[0] != nonce:
            continue
        if parts[1] == "done" and len(parts) == 4:
            conflicting |= done is not None
            done = (parts[2], parts[3])
        elif parts[1] == "syntax":
            syntax = " ".join(parts[2:])
        elif parts[1].isdigit() and len(parts) >= 3 and parts[2] in ("pass", "fail"):
            conflicting |= int(parts[1]) in records
            records.setdefault(int(parts[1]), (parts[2] == "pass", parts[3] if len(parts) == 4 else ""))
    res.tests = [records[i][0] if i in records else False for i in range(expected)]
    res.messages = [records[i][1] if i in records else "" for i in range(expected)]
    if syntax is not None:
        res.status, res.reason, res.tests = (
            "failed",
            f"candidate code does not compile: {syntax}",
            [False] * expected,
        )
        return res
    # The harness writes each record once; two for one test means someone else knew the nonce.
    complete = (
        not conflicting
        and done is not None
        and done[1] == str(expected)
        and sorted(records) == list(range(expected))
    )
    if conflicting:
        res.tests = [False] * expected
    if res.status == "ok" and not complete:
        res.status = "incomplete"
        res.reason = f"the harness did not report all {expected} tests (exit status {returncode}); " + (
            "the candidate ended the process early" if done is None else "the report was inconsistent"
        )
    if res.status == "ok" and not all(res.tests):
        first = next(i for i, ok in enumerate(res.tests) if not ok)
        res.status, res.reason = "failed", f"test {first} failed: {res.messages[first]}"
    return res


def run_many(jobs: list[Job], max_workers: int | None = None) -> list[RunResult]:
    """Run `jobs` concurrently through a pool of `max_workers` (default `pool_size()`); results in order."""
    if not jobs:
        return []
    workers = max(1, min(len(jobs), max_workers or pool_size()))
    if workers == 1:
        return [run(j) for j in jobs]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rlvr-sandbox") as pool:
        return list(pool.map(run, jobs))
