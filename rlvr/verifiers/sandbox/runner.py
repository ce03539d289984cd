"""Run one job in a fresh sandbox: hold a node pool slot, launch the interpreter under the layers that
`isolation()` found, feed it the job, drain its pipes under the limits, judge what came back, and retry
what was the sandbox's own fault.

No thread is started here: the caller's thread feeds and drains the run's pipes with a selector.
"""

from __future__ import annotations

import logging
import marshal
import os
import random
import secrets
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable

from rlvr.verifiers.sandbox import launch
from rlvr.verifiers.sandbox.isolation import _world_readable, isolation
from rlvr.verifiers.sandbox.job import Job, Limits, RunResult
from rlvr.verifiers.sandbox.judge import judge
from rlvr.verifiers.sandbox.launch import BOOT, harness_payload
from rlvr.verifiers.sandbox.pool import node_pool
from rlvr.verifiers.sandbox.seccomp import seccomp_program

logger = logging.getLogger(__name__)

RETRIES = 2  # extra attempts after an infrastructure fault
RETRY_DELAY_S = 0.2  # doubled after each attempt
SLOT_WAIT_S = 3600.0  # a slot is held at most startup_s + wall_s, so waiting longer means a stuck node
RESULT_CAP = 1 << 20

_spawn_fault: Callable[[Job, int], bool] | None = None


def set_spawn_fault(fn: Callable[[Job, int], bool] | None) -> None:
    """Fault injection for tests: `fn(job, attempt)` is asked before each launch and a True makes that
    launch fail as if the host could not start a process (`None` removes it). In other processes (Ray
    actors) set `RLVR_SANDBOX_SPAWN_FAULT_RATE` to the share of launches that fail. Never in production."""
    global _spawn_fault
    _spawn_fault = fn


def _inject_fault(job: Job, attempt: int) -> None:
    rate = float(os.environ.get("RLVR_SANDBOX_SPAWN_FAULT_RATE") or 0.0)
    if (_spawn_fault is not None and _spawn_fault(job, attempt)) or (rate and random.random() < rate):
        raise OSError("injected spawn fault (set_spawn_fault / RLVR_SANDBOX_SPAWN_FAULT_RATE)")


def run(job: Job, retries: int = RETRIES, slot_wait_s: float = SLOT_WAIT_S) -> RunResult:
    """Run `job` in a fresh sandbox and report what happened. Never raises: the candidate's doing is a
    status with a reason; the sandbox's own fault is retried `retries` times, then status "infra"."""
    iso = isolation()
    unreachable = _unreachable(job.read_only, iso)
    if unreachable:
        return RunResult("infra", unreachable)
    pool = node_pool()
    res = RunResult("infra", "not run")
    for attempt in range(retries + 1):
        with pool.slot(slot_wait_s) as slot:
            if slot is None:
                return RunResult(
                    "infra", f"no sandbox slot of {pool.describe()} came free within {slot_wait_s:g}s"
                )
            try:
                res = _attempt(job, iso, slot, attempt)
            except Exception as e:  # the sandbox's own failure (no fds, no memory, a failed fork...)
                res = RunResult("infra", f"the sandbox could not start the run: {type(e).__name__}: {e}")
        res.attempts, res.slot = attempt + 1, slot
        if res.status != "infra":
            return res
        logger.warning(
            "sandbox infrastructure fault, attempt %d of %d: %s", attempt + 1, retries + 1, res.reason
        )
        if attempt < retries:
            time.sleep(RETRY_DELAY_S * 2**attempt)
    return res


def _unreachable(paths: tuple[str, ...], iso: dict) -> str:
    """Why a `read_only` path cannot be bound (it must exist and, as root, be readable by others: the
    run's uid is not root), or ""."""
    for path in paths:
        if not os.path.exists(path):
            return f"read_only path {path} does not exist"
        if iso["uid_base"] is not None and not _world_readable(path):
            return f"read_only path {path} is not readable by other users (runs drop to a slot's uid)"
    return ""


def _spec(job: Job, iso: dict, nonce: str, uid: int | None) -> dict:
    lim = job.limits
    limits = {k: getattr(lim, k) for k in ("cpu_s", "memory_mb", "file_mb", "max_procs", "max_files")}
    if iso["process_limit"] == "none":
        limits["max_procs"] = None  # RLIMIT_NPROC would count a shared uid's processes: never
    return {
        "nonce": nonce,
        "mode": "script" if job.units is None else "tests",
        "code": job.code,
        "units": job.units or [],
        "entry_point": job.entry_point,
        "plain_returns": job.plain_returns,
        "limits": limits,
        "guard": job.guard,
        "uid": uid,
        "gid": uid,
        "read_only": [os.path.realpath(p) for p in job.read_only],
    }


class _Run:
    """The host side of one launch: its pipes, its process, and how to kill everything it made."""

    def __init__(self):
        self.fds: list[int] = []  # ours, closed at the end
        self.child_fds: list[int] = []  # the child's ends, closed once it started
        self.proc: subprocess.Popen | None = None
        self.pidfd: int | None = None

    def pipe(self, child_end: str) -> tuple[int, int]:
        r, w = os.pipe()
        self.fds.append(w if child_end == "r" else r)
        self.child_fds.append(r if child_end == "r" else w)
        return r, w

    def close_fd(self, fd: int) -> None:
        """Close one of our ends now (each fd number is closed once: other threads reuse numbers)."""
        self.fds.remove(fd)
        os.close(fd)

    def started(self) -> None:
        for fd in self.child_fds:
            os.close(fd)
        self.child_fds.clear()

    def kill(self) -> None:
        """SIGKILL the sandboxed interpreter (PID 1 of its namespace: all of the run goes with it) and
        the launcher's process group."""
        if self.pidfd is not None:
            try:
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            except (ProcessLookupError, OSError):
                pass
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def close(self) -> None:
        for fd in self.child_fds + self.fds + ([self.pidfd] if self.pidfd is not None else []):
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds, self.child_fds, self.pidfd = [], [], None


def _attempt(job: Job, iso: dict, slot: int, attempt: int) -> RunResult:
    lim = job.limits
    nonce = secrets.token_hex(16)
    uid = iso["uid_base"] + slot if iso["uid_base"] is not None else None
    bwrap = iso["launcher"] == "bwrap"
    # As root, bubblewrap itself starts as the slot's uid (unprivileged, so its --die-with-parent holds
    # for the run); the other launchers start as root and the harness drops to the uid.
    spec = _spec(job, iso, nonce, None if bwrap else uid)
    as_user, setpriv = {}, []
    if bwrap and uid is not None:
        # `setpriv` keeps Popen on vfork (a uid change in Popen itself forces a full fork of this
        # process, which costs tens of ms in a large trainer).
        if iso.get("setpriv"):
            setpriv = [iso["setpriv"], "--reuid", str(uid), "--regid", str(uid), "--clear-groups", "--"]
        else:
            as_user = {"user": uid, "group": uid, "extra_groups": []}
    workdir = None if bwrap else tempfile.mkdtemp(prefix="rlvr-sbx-")
    r = _Run()
    out, wall, cpu_s = None, 0.0, 0.0
    try:
        ctrl_r, ctrl_w = r.pipe("r")
        res_r, res_w = r.pipe("w")
        interpreter = [iso["python"], "-I", "-S", "-B", "-c", BOOT, str(ctrl_r), str(res_w)]
        if bwrap:
            program = seccomp_program()
            seccomp_fd = None
            if program is not None:
                seccomp_fd, w = r.pipe("r")
                os.write(w, program[0])  # a few hundred bytes: fits the pipe buffer
                r.close_fd(w)  # bubblewrap reads the program up to EOF
            info_r, info_w = r.pipe("w")
            argv = launch.bwrap_args(
                iso,
                file_mb=lim.file_mb,
                read_only=tuple(spec["read_only"]),
                seccomp_fd=seccomp_fd,
                info_fd=info_w,
            )
            argv, cwd, env = [*setpriv, *argv, *interpreter], "/", launch.env("/", "/tmp")
        else:
            if uid is not None:
                os.chown(workdir, uid, uid)
            argv, cwd, env = [*iso["prefix"], *interpreter], workdir, launch.env(workdir, workdir)
        _inject_fault(job, attempt)
        start = time.monotonic()
        r.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=env,
            pass_fds=tuple(r.child_fds),
            start_new_session=True,
            close_fds=True,
            **as_user,
        )
        r.started()
        if bwrap:
            r.pidfd = _child_pidfd(info_r, r.proc, start + lim.startup_s)
        frame = marshal.dumps((harness_payload(iso), spec))
        out = _pump(
            r,
            lim,
            start,
            {
                "ctrl": (ctrl_w, len(frame).to_bytes(8, "big") + frame, True),
                "stdin": (r.proc.stdin, job.stdin.encode(), False),
            },
            {"stdout": r.proc.stdout.fileno(), "stderr": r.proc.stderr.fileno(), "result": res_r},
            f"{nonce} ack\n".encode(),
        )
        wall = out["wall"]
    finally:
        r.kill()
        if r.proc is not None:
            cpu_s = _reap(r.proc)
            for f in (r.proc.stdin, r.proc.stdout, r.proc.stderr):
                _close(f)
        r.close()
        if workdir is not None:
            if uid is not None and not iso["pid_namespace"]:
                _kill_uid(uid)  # no PID namespace: whatever the slot's uid left behind goes now
            shutil.rmtree(workdir, ignore_errors=True)
    return judge(job, out, r.proc.returncode, nonce, wall, cpu_s)


def _child_pidfd(info_r: int, proc: subprocess.Popen, deadline: float) -> int | None:
    """A pidfd of bubblewrap's child (the sandboxed interpreter), from `--info-fd`'s JSON; a pidfd
    cannot hit a recycled pid. None when the launcher ended first (the judge then finds no ack)."""
    data = b""
    while b"," not in data and b"}" not in data:
        left = deadline - time.monotonic()
        if left <= 0 or not selectors_ready(info_r, left):
            return None
        chunk = os.read(info_r, 4096)
        if not chunk:
            return None
        data += chunk
    try:
        pid = int(data.split(b'"child-pid":', 1)[1].split(b",")[0].split(b"}")[0])
        pidfd = os.pidfd_open(pid)
        with open(f"/proc/{pid}/stat", "rb") as f:
            ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
    except (IndexError, ValueError, OSError):
        return None
    if ppid != proc.pid:  # not bubblewrap's child any more: never signal it
        os.close(pidfd)
        return None
    return pidfd


def selectors_ready(fd: int, timeout: float) -> bool:
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        return bool(sel.select(timeout))


def _kill_uid(uid: int) -> None:
    """SIGKILL every process of `uid` (a slot's own uid, root only) via `kill -9 -1` run as that uid."""
    try:
        subprocess.run(
            ["kill", "-9", "-1"], user=uid, group=uid, extra_groups=[], timeout=10, capture_output=True
        )
    except (OSError, subprocess.SubprocessError):
        logger.warning("could not clean up the processes of sandbox uid %d", uid)


def _reap(proc: subprocess.Popen) -> float:
    """Reap the launcher and return the CPU seconds it and its reaped descendants used."""
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except ChildProcessError:
        proc.wait()
        return 0.0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


def _exited(pid: int) -> bool:
    """Has `pid` exited? Leaves it unreaped, so its process group id cannot be reused yet."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def _pump(r: _Run, lim: Limits, start: float, writes: dict, reads: dict, ack: bytes) -> dict:
    """Feed the child's input pipes and drain its output pipes until it ends, passes a limit (kill), or
    an output cap (kill). Until the harness's `ack` arrives the clock is `startup_s`; from the ack on,
    `wall_s`. Returns the bytes read, why it stopped ("", "startup", "timeout", "output_limit:STREAM")
    and the candidate's wall time."""
    sel = selectors.DefaultSelector()
    pending, files = {}, {}
    for name, (f, data, keep_open) in writes.items():
        fd = f if isinstance(f, int) else f.fileno()
        files[name] = (f, keep_open)
        if data:
            os.set_blocking(fd, False)
            sel.register(fd, selectors.EVENT_WRITE, ("w", name))
            pending[name] = memoryview(data)
        elif not keep_open:
            _close(f)  # a file object: closes idempotently
    buffers = {name: bytearray() for name in reads}
    for name, fd in reads.items():
        sel.register(fd, selectors.EVENT_READ, ("r", name))
    caps = {"stdout": lim.max_output, "stderr": lim.max_output, "result": RESULT_CAP}
    deadline, began = start + lim.startup_s, start
    stop, exit_seen, is_acked = "", False, False
    while sel.get_map():
        now = time.monotonic()
        if now >= deadline:
            stop = stop or ("" if exit_seen else "timeout" if is_acked else "startup")
            break
        for key, _ in sel.select(min(deadline - now, 0.1)):
            kind, name = key.data
            if kind == "w":
                try:
                    n = os.write(key.fd, pending[name][:65536])
                    pending[name] = pending[name][n:]
                except OSError:
                    pending[name] = memoryview(b"")
                if not pending[name]:
                    sel.unregister(key.fd)
                    if not files[name][1]:
                        _close(files[name][0])
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
            if name == "result" and not is_acked and buf.startswith(ack):
                # The candidate's clock starts now; a slow start on a loaded host is not its time.
                is_acked, began = True, time.monotonic()
                deadline = began + lim.wall_s if not exit_seen else deadline
        if stop:
            break
        if not exit_seen and _exited(r.proc.pid):
            # The launcher is gone; whatever the run left behind is killed now, and the pipes get a
            # short grace to drain what was already written.
            exit_seen = True
            r.kill()
            deadline = min(deadline, time.monotonic() + 0.5)
    wall = time.monotonic() - began
    sel.close()
    r.kill()
    # The ack is the first line written, before the candidate ran: whatever stopped the loop (another
    # stream's cap, say), read what is already in the result pipe so the verdict rests on it.
    buffers["result"] += _drain(reads["result"], caps["result"] - len(buffers["result"]))
    for f, _ in files.values():
        if not isinstance(f, int):  # our raw fds are closed once, by _Run.close
            _close(f)
    return {"stop": stop, "wall": wall, **{k: bytes(v) for k, v in buffers.items()}}


def _drain(fd: int, limit: int) -> bytes:
    data = b""
    try:
        os.set_blocking(fd, False)
        while len(data) < limit:
            chunk = os.read(fd, min(65536, limit - len(data)))
            if not chunk:
                break
            data += chunk
    except (BlockingIOError, OSError):
        pass
    return data


def _close(f) -> None:
    try:
        f.close()
    except OSError:
        pass
