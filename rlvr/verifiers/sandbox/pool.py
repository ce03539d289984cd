"""One bounded sandbox pool per node, shared by every process on it (trainer, Ray verifier actors,
rollout workers, `rlvr verify` processes), with or without Ray.

The pool is N lock files `slot-0 .. slot-{N-1}` in a node-local directory (`/dev/shm`, else the temp
dir); a run holds one with `fcntl.flock` for its whole life. The kernel releases a lock when its holder
dies, so a crashed process never leaks a slot. N defaults to the node's cores, capped by its memory at
one slot per `SLOT_MEMORY_MB`: every process on the node computes the same N from the same facts, so
the bound holds whatever the number of processes. As root the slot also names the run's uid (see
`isolation`), which is why a slot must never be held twice at once.

Overrides (all processes of a node must agree): `RLVR_SANDBOX_SLOTS`, `RLVR_SANDBOX_POOL_DIR`, or
`configure_pool(slots=..., directory=...)` before the first run.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import random
import stat
import tempfile
import threading
import time
from pathlib import Path

logger = logging.getLogger(__name__)

SLOT_MEMORY_MB = 1024  # memory a slot may take at the default limits (Limits.memory_mb)


def node_slots() -> int:
    """Default pool size: the node's cores, at most one slot per `SLOT_MEMORY_MB` of its memory."""
    cores = os.cpu_count() or 1
    try:
        mem_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") >> 20
    except (ValueError, OSError):
        return max(1, cores)
    return max(1, min(cores, mem_mb // SLOT_MEMORY_MB))


def default_directory() -> Path:
    """Node-local and private to this user: the pool of root and the pool of a user are separate."""
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK | os.X_OK) else tempfile.gettempdir()
    return Path(base) / f"rlvr-sandbox-pool-{os.geteuid()}"


class SlotPool:
    """N slots shared through lock files in `directory` (see the module doc). Thread-safe; a process
    opens each lock file once and guards it with a thread lock, since `flock` is per open file."""

    def __init__(self, directory: str | Path, slots: int):
        if slots < 1:
            raise ValueError(f"a sandbox pool needs at least one slot, got {slots}")
        self.directory, self.slots = Path(directory), slots
        self._prepare()
        self._fds: list[int | None] = [None] * slots
        self._held = [threading.Lock() for _ in range(slots)]
        self._open_lock = threading.Lock()

    def _prepare(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = self.directory.lstat()
        # Someone else's (or a shared-writable) directory could hand out fake free slots.
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
            raise PermissionError(
                f"sandbox pool directory {self.directory} must be a directory owned by uid {os.geteuid()} "
                "and writable by it only; remove it or set RLVR_SANDBOX_POOL_DIR"
            )

    def _fd(self, slot: int) -> int:
        with self._open_lock:
            if self._fds[slot] is None:
                path = self.directory / f"slot-{slot}"
                self._fds[slot] = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            return self._fds[slot]

    def try_acquire(self) -> int | None:
        """A free slot, now, or None. Starts at a random slot so waiters spread over the pool."""
        start = random.randrange(self.slots)
        for i in range(self.slots):
            slot = (start + i) % self.slots
            if not self._held[slot].acquire(blocking=False):
                continue
            try:
                fcntl.flock(self._fd(slot), fcntl.LOCK_EX | fcntl.LOCK_NB)
                return slot
            except BlockingIOError:
                self._held[slot].release()
            except BaseException:
                self._held[slot].release()
                raise
        return None

    def acquire(self, timeout: float | None = None) -> int | None:
        """Wait for a free slot (polling with a capped, jittered back-off); None after `timeout` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.002
        while True:
            slot = self.try_acquire()
            if slot is not None:
                return slot
            if deadline is not None and time.monotonic() >= deadline:
                return None
            pause = delay * (0.5 + random.random())
            if deadline is not None:
                pause = min(pause, max(0.0, deadline - time.monotonic()))
            time.sleep(pause)
            delay = min(delay * 2, 0.05)

    def release(self, slot: int) -> None:
        fcntl.flock(self._fd(slot), fcntl.LOCK_UN)
        self._held[slot].release()

    @contextlib.contextmanager
    def slot(self, timeout: float | None = None):
        """`with pool.slot(timeout) as k:` k is the slot held, or None when none came free in time."""
        k = self.acquire(timeout)
        try:
            yield k
        finally:
            if k is not None:
                self.release(k)

    def describe(self) -> dict:
        return {"directory": str(self.directory), "slots": self.slots}


_pool: SlotPool | None = None
_pool_pid = 0
_pool_lock = threading.Lock()
_config: dict = {}


def configure_pool(slots: int | None = None, directory: str | Path | None = None) -> None:
    """Set this process's pool size or directory (a config knob; None: the env override or the default);
    call before the first run. Every process of a node must use the same values, or the bound is the
    largest of them."""
    global _pool
    with _pool_lock:
        _config.clear()
        _config.update({k: v for k, v in (("slots", slots), ("directory", directory)) if v is not None})
        _pool = None


def node_pool() -> SlotPool:
    """This node's pool (created on first use): env or `configure_pool` overrides, else the defaults."""
    global _pool, _pool_pid
    with _pool_lock:
        # A forked child shares its parent's open lock files: unlocking one would free the parent's slot.
        if _pool is None or _pool_pid != os.getpid():
            slots = _config.get("slots") or int(os.environ.get("RLVR_SANDBOX_SLOTS") or node_slots())
            directory = (
                _config.get("directory") or os.environ.get("RLVR_SANDBOX_POOL_DIR") or default_directory()
            )
            _pool, _pool_pid = SlotPool(directory, slots), os.getpid()
            logger.info("sandbox pool: %d slots per node in %s", slots, directory)
        return _pool
