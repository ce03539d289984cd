"""The seccomp filter of sandboxed runs, compiled in the parent by libseccomp and loaded by bubblewrap
(`--seccomp FD`) just before the interpreter starts; the harness itself stays stdlib-only.

The filter allows everything but what a program that computes answers never needs and an escape does:
debugging other processes, mounts and namespaces, kernel keyrings, BPF, module and kexec loading,
pidfds, perf events, io_uring (whose operations seccomp cannot see), and `clone` with a namespace flag.
Denied calls fail with EPERM (`clone3` with ENOSYS, so that the C library falls back to `clone`, whose
flags the filter can read). Syscalls of another ABI (i386, x32) kill the process (libseccomp's default
for a foreign architecture).

The binding is libseccomp's own (`import seccomp`, e.g. Debian's python3-seccomp) when installed, else
`pyseccomp`, a ctypes binding with the same API over the system's libseccomp.
"""

from __future__ import annotations

import errno
import functools
import logging
import os

logger = logging.getLogger(__name__)

DENIED_SYSCALLS = (
    # other processes' memory and state
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_open", "pidfd_send_signal",
    "pidfd_getfd", "perf_event_open",
    # mounts, roots and namespaces
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "fsopen", "fsconfig", "fsmount",
    "fspick", "move_mount", "open_tree", "mount_setattr", "open_by_handle_at", "name_to_handle_at",
    # the kernel itself
    "bpf", "keyctl", "add_key", "request_key", "kexec_load", "kexec_file_load", "init_module",
    "finit_module", "delete_module", "reboot", "swapon", "swapoff", "acct", "syslog", "userfaultfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register", "quotactl", "lookup_dcookie",
)  # fmt: skip
CLONE_NEW_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)


def _binding():
    """libseccomp's own Python module, else pyseccomp; None when neither (or libseccomp) is present."""
    try:
        import seccomp

        return seccomp
    except ImportError:
        pass
    try:
        import pyseccomp

        return pyseccomp
    except (ImportError, OSError, RuntimeError):  # pyseccomp raises RuntimeError without libseccomp
        return None


@functools.lru_cache(maxsize=1)
def seccomp_program() -> tuple[bytes, str] | None:
    """(the compiled BPF program, a description of what built it), or None where no binding works."""
    sc = _binding()
    if sc is None:
        return None
    try:
        f = sc.SyscallFilter(sc.ALLOW)
        for name in DENIED_SYSCALLS:
            try:
                f.add_rule(sc.ERRNO(errno.EPERM), name)
            except (RuntimeError, OSError, ValueError):  # unknown on this architecture
                logger.debug("seccomp: no syscall %s here", name)
        f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
        for flag in CLONE_NEW_FLAGS:
            f.add_rule(sc.ERRNO(errno.EPERM), "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
        fd = os.memfd_create("rlvr-seccomp", os.MFD_CLOEXEC)
        try:
            with open(fd, "wb", closefd=False) as out:
                f.export_bpf(out)
            program = os.pread(fd, 1 << 20, 0)
        finally:
            os.close(fd)
    except Exception as e:  # noqa: BLE001 - a broken libseccomp means no filter, reported, not a crash
        logger.warning("seccomp filter could not be built (%s: %s); runs go without it", type(e).__name__, e)
        return None
    return program, f"{sc.__name__} binding of libseccomp"
