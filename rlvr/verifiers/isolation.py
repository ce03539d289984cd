"""What isolation this machine gives sandboxed code, probed once and logged: the interpreter, the uid,
and whether `unshare` gives a network namespace (only loopback inside) and a PID namespace.

As root we want candidates to run as nobody, which needs an interpreter whose standard library nobody
can read (a virtualenv's may live under /root; then a system python is used). Without root, `unshare
--user --map-root-user` may still give the namespaces where the kernel allows unprivileged ones; without
`unshare` at all the network is refused inside the interpreter only (the harness's audit hook).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path

logger = logging.getLogger(__name__)

NOBODY = 65534
SYSTEM_PYTHONS = ("/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3")
NETNS_PREFIXES = (
    ("unshare", "--net", "--pid", "--fork", "--kill-child"),
    ("unshare", "--user", "--map-root-user", "--net", "--pid", "--fork", "--kill-child"),
    ("unshare", "--net"),
    ("unshare", "--user", "--map-root-user", "--net"),
)

_probe_lock = threading.Lock()
_isolation: dict | None = None


def _world_readable(path: str) -> bool:
    """True when every directory on the way to `path` is searchable and `path` readable by others."""
    p = Path(path).resolve()
    for d in [*reversed(p.parents), p]:
        try:
            mode = d.stat().st_mode
        except OSError:
            return False
        if stat.S_ISDIR(mode) and not mode & stat.S_IXOTH:
            return False
    return bool(p.stat().st_mode & stat.S_IROTH)


def _run_quietly(argv: list[str]) -> str | None:
    """stdout of `argv` (stripped), or None when it fails."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"})
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _stdlib_of(python: str) -> str | None:
    return _run_quietly([python, "-I", "-S", "-c", "import os;print(os.path.dirname(os.__file__))"])


def _pick_python() -> tuple[str, int | None]:
    """The interpreter for sandboxes and the uid to drop to (None: stay as we are).

    As root we want the candidate to run as nobody, which needs an interpreter whose standard library
    nobody can read; the virtualenv's may live under /root, so a system python is tried too."""
    if os.geteuid() != 0:
        return sys.executable, None
    for python in (sys.executable, *SYSTEM_PYTHONS):
        if not os.path.exists(python):
            continue
        stdlib = _stdlib_of(python)
        if stdlib and _world_readable(os.path.realpath(python)) and _world_readable(stdlib + "/os.py"):
            return python, NOBODY
    return sys.executable, None


def _probe_netns(python: str) -> tuple[str, ...]:
    """The first `unshare` prefix under which `python` runs and sees no network interface but lo."""
    if not shutil.which("unshare"):
        return ()
    check = "import socket;names=[n for _, n in socket.if_nameindex()];raise SystemExit(names != ['lo'])"
    for prefix in NETNS_PREFIXES:
        try:
            r = subprocess.run(
                [*prefix, python, "-I", "-S", "-c", check], capture_output=True, timeout=30, env={}
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if r.returncode == 0:
            return prefix
    return ()


def isolation() -> dict:
    """What isolation is in force (probed once, then cached and logged):

    `network`: "namespace" (own network namespace, only loopback) or "interpreter" (sockets refused by
    the harness only); `pid_namespace`: every process of a run dies with it; `user`: the uid candidates
    run as; `python`: the interpreter used; `prefix`: the command put in front of it."""
    global _isolation
    with _probe_lock:
        if _isolation is None:
            python, uid = _pick_python()
            prefix = _probe_netns(python)
            magic = _run_quietly(
                [python, "-I", "-S", "-c", "import importlib.util as u;print(u.MAGIC_NUMBER.hex())"]
            )
            _isolation = {
                "network": "namespace" if prefix else "interpreter",
                "pid_namespace": "--pid" in prefix,
                "user": f"uid {uid} (nobody)" if uid is not None else f"uid {os.geteuid()} (unchanged)",
                "uid": uid,
                "python": python,
                "prefix": list(prefix),
                "guard": "audit hook (processes, signals, sockets, files, frames)",
                # The harness is sent compiled when the sandbox interpreter reads this bytecode.
                "precompiled_harness": magic == importlib.util.MAGIC_NUMBER.hex(),
            }
            logger.info(
                "sandbox isolation: network=%s pid_namespace=%s user=%s python=%s",
                _isolation["network"],
                _isolation["pid_namespace"],
                _isolation["user"],
                python,
            )
        return _isolation


def network_isolation() -> str:
    """ "namespace" or "interpreter": see `isolation()`."""
    return isolation()["network"]
