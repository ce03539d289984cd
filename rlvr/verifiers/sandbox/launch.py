"""The command line that starts one sandboxed interpreter, for each launcher `isolation()` may pick.

- "bwrap" (bubblewrap): new mount, PID, network, IPC and UTS namespaces (and a user namespace when not
  root); the root is an empty tmpfs holding read-only binds of /usr and of the interpreter's own
  installation (plus the job's `read_only` paths), a fresh /proc of the run's PID namespace, a minimal
  /dev, and private size-capped tmpfs for /tmp, /dev/shm and the working directory (also HOME). Nothing
  of /etc, /home, /root, /work or the project is visible. bubblewrap always runs unprivileged (as root,
  the parent starts it as the pool slot's uid), so the run is nobody in a user namespace of its own,
  with no capabilities, no_new_privs, and the seccomp filter loaded last. The interpreter is PID 1 of its
  namespace, so when it ends every process of the run ends with it, and it dies with bubblewrap, which
  dies with the parent (`--die-with-parent`).
- "unshare": network and PID namespaces only (the older layer; host files guarded by uid and the hook).
- "none": a plain child process; only the uid change (as root) and the harness's audit hook.
"""

from __future__ import annotations

import functools
import marshal
from pathlib import Path

# The guard (audit hook) and the harness, one module inside the sandbox.
HARNESS_SOURCE = "\n".join(Path(__file__).with_name(f).read_text() for f in ("guard.py", "harness.py"))
# Reads one length-prefixed frame (the harness and the job) from the control pipe, which stays open for
# the run's life, and runs the harness in a private namespace. Nothing is left in __main__'s globals but
# `_boot` itself (the job and the nonce live only in its frame).
BOOT = """def _boot():
    import marshal, os, sys
    ctrl, res = int(sys.argv[1]), int(sys.argv[2])
    del sys.argv[1:]
    def read(n):
        chunks = []
        while n:
            chunk = os.read(ctrl, min(n, 1 << 16))
            if not chunk:
                os._exit(2)
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)
    harness, job = marshal.loads(read(int.from_bytes(read(8), "big")))
    code = marshal.loads(harness) if type(harness) is bytes else compile(harness, "<rlvr-harness>", "exec")
    namespace = {"__builtins__": dict(vars(__builtins__)), "__name__": "rlvr_harness"}
    exec(code, namespace)
    namespace["main"](job, res, ctrl)
_boot()
"""
WORKDIR = "/sandbox"  # the run's working directory and HOME inside a mount namespace


@functools.lru_cache(maxsize=1)
def _harness_code() -> bytes:
    return marshal.dumps(compile(HARNESS_SOURCE, "<rlvr-harness>", "exec", dont_inherit=True))


def harness_payload(iso: dict) -> bytes | str:
    """The harness compiled once here when the sandbox interpreter reads this bytecode, else its source."""
    return _harness_code() if iso["precompiled_harness"] else HARNESS_SOURCE


def env(workdir: str, tmpdir: str) -> dict[str, str]:
    """The scrubbed environment: nothing of the parent's (tokens, keys, proxies) is inherited."""
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": workdir,
        "TMPDIR": tmpdir,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
    }


def bwrap_args(
    iso: dict,
    *,
    file_mb: int,
    read_only: tuple[str, ...] = (),
    seccomp_fd: int | None = None,
    info_fd: int | None = None,
) -> list[str]:
    """bubblewrap's arguments up to (not including) the interpreter's command line."""
    args = [iso["bwrap"], "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts"]
    args += ["--unshare-cgroup-try", "--die-with-parent", "--new-session", "--as-pid-1", "--cap-drop", "ALL"]
    # Always unprivileged (as root the launcher itself runs as the slot's uid): the run gets a user
    # namespace of its own, in which it is nobody and may not make another.
    args += ["--unshare-user", "--disable-userns", "--uid", "65534", "--gid", "65534"]
    for path in iso["system_binds"]:
        args += ["--ro-bind", path, path]
    for link, target in iso["system_links"]:
        args += ["--symlink", target, link]
    size = str(max(file_mb, 1) << 20)
    args += ["--proc", "/proc", "--dev", "/dev"]
    for path in ("/tmp", "/dev/shm", WORKDIR):
        args += ["--perms", "1777", "--size", size, "--tmpfs", path]
    for path in read_only:  # after the tmpfs mounts, which would cover a path under /tmp
        args += ["--ro-bind", path, path]
    args += ["--chdir", WORKDIR, "--clearenv"]
    for key, value in env(WORKDIR, "/tmp").items():
        args += ["--setenv", key, value]
    if seccomp_fd is not None:
        args += ["--seccomp", str(seccomp_fd)]
    if info_fd is not None:
        args += ["--info-fd", str(info_fd)]
    return args
