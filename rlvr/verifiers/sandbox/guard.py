"""The in-interpreter guard of a sandboxed run: the audit hook (PEP 578) that the harness installs
before the candidate's code. Stdlib only, never imported by rlvr: `launch.HARNESS_SOURCE` is this file
followed by `harness.py`, compiled as one module, so each uses the other's names.

The hook refuses process creation, signals to other processes, sockets, ctypes, gc introspection,
tracing, new audit hooks, rlimit changes, candidate-made code objects and file access outside the
working directory and the standard library; in test mode it also hides every frame. Refusals raise
inside the candidate; hostile ones are also remembered, so the run fails even if the candidate
swallows the exception. It is one layer of several (see `isolation.py`): the OS layers hold without it.
"""

import os
import sys

_fspath = os.fspath
_normpath = os.path.normpath
_join = os.path.join
_getcwd = os.getcwd
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_IMPORT_DENY = frozenset(
    {
        "ctypes",
        "_ctypes",
        "_posixsubprocess",
        "_testcapi",
        "_testinternalcapi",
        "_xxsubinterpreters",
        "cffi",
        "_cffi_backend",
    }
)
# Re-importing these after `del sys.modules[...]` would bring back what test mode switched off.
_IMPORT_DENY_STRICT = _IMPORT_DENY | {"_thread", "_signal"}
_PROCESS_EVENTS = frozenset(
    {
        "os.fork",
        "os.forkpty",
        "os.system",
        "os.exec",
        "os.posix_spawn",
        "os.spawn",
        "subprocess.Popen",
        "os.kill",
        "os.killpg",
        "pty.spawn",
        "resource.setrlimit",
        "resource.prlimit",
        "sys.addaudithook",
        "sys.settrace",
        "sys.setprofile",
        "gc.get_objects",
        "gc.get_referrers",
        "gc.get_referents",
        "sys._current_frames",
        "sys._current_exceptions",
        "os.symlink",
        "os.link",
        "os.setuid",
        "os.chroot",
        "sys.remote_exec",
        "os.add_dll_directory",
        "pdb.Pdb",
        "code.__new__",  # types.CodeType(...) and code.replace(...): see _bytecode_check
    }
)
_PATH_WRITE_EVENTS = frozenset(
    {
        "os.remove",
        "os.rmdir",
        "os.mkdir",
        "os.rename",
        "os.truncate",
        "os.chmod",
        "os.chown",
        "os.utime",
        "os.chflags",
        "os.lchflags",
        "os.setxattr",
        "os.removexattr",
        "shutil.rmtree",
        "shutil.copyfile",
        "shutil.copytree",
        "shutil.move",
        "shutil.chown",
        "os.mkfifo",
        "os.mknod",
    }
)
_FRAME_ATTRS = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_back"})
_DEV_READ = frozenset({"/dev/null", "/dev/urandom", "/dev/random", "/dev/zero", "/etc/localtime"})


class SandboxViolation(RuntimeError):
    """Raised inside the candidate when it tries something the sandbox refuses."""


def _bytecode_check(read_roots, inside):
    """(is_self_call(event), legit(args)): `legit` tells whether a `marshal.loads(data)` is importlib
    loading a cached module of the standard library, i.e. its caller is importlib's own
    `_compile_bytecode` and `data` is immutable and, byte for byte, what that .pyc file holds.
    Candidate-made bytecode (marshal, `types.CodeType`, `code.replace`) is the classic way past an audit
    hook: the interpreter trusts bytecode, so crafted bytecode reads and writes memory at will."""
    import _frozen_importlib_external
    import _thread

    compile_bytecode = _frozen_importlib_external._compile_bytecode.__code__
    getframe, get_ident = sys._getframe, _thread.get_ident
    self_calls = set()

    def is_self_call(event):
        return event == "sys._getframe" and bool(self_calls) and get_ident() in self_calls

    def legit(args):
        data = args[0] if args else None
        if not (type(data) is bytes or (type(data) is memoryview and type(data.obj) is bytes)):
            return False
        tid = get_ident()
        self_calls.add(tid)
        try:
            frame = getframe(2)  # 0: here, 1: the hook, 2: whoever called marshal.loads
        finally:
            self_calls.discard(tid)
        if frame.f_code is not compile_bytecode:
            return False
        path = frame.f_locals.get("bytecode_path")
        if type(path) is not str or not inside(_normpath(path), read_roots):
            return False
        chunks = []
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                while True:
                    chunk = os.read(fd, 1 << 20)
                    if not chunk:
                        break
                    chunks.append(chunk)
            finally:
                os.close(fd)
        except OSError:
            return False
        return b"".join(chunks)[16:] == bytes(data)

    return is_self_call, legit


def _make_hook(workdir, read_roots, strict, violations):
    """The audit hook. Refusals raise inside the candidate; hostile ones are also remembered in
    `violations` so the run fails even if the candidate swallows the exception."""
    workdir_prefix = workdir.rstrip("/") + "/"

    def resolve(path):
        try:
            path = _fspath(path)
        except TypeError:
            return None
        if isinstance(path, bytes):
            path = path.decode("utf-8", "surrogateescape")
        if not isinstance(path, str):
            return None
        return _normpath(_join(_getcwd(), path))

    def inside(path, roots):
        return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)

    def deny(what, hostile=True):
        if hostile and len(violations) < 20:
            violations.append(what)
        raise SandboxViolation(f"sandbox: {what} is not allowed")

    import_deny = _IMPORT_DENY_STRICT if strict else _IMPORT_DENY
    is_self_call, legit_bytecode = _bytecode_check(read_roots, inside)

    def hook(event, args):
        if is_self_call(event):
            return
        if event == "open":
            path = args[0]
            mode = args[1] if len(args) > 1 else None
            flags = args[2] if len(args) > 2 else None
            if isinstance(path, int):
                if path in (0, 1, 2):
                    return
                deny(f"open(fd {path})")
            p = resolve(path)
            if p is None:
                return
            writing = (isinstance(flags, int) and flags & _WRITE_FLAGS) or (
                isinstance(mode, str) and any(c in mode for c in "wax+")
            )
            if p == workdir or p.startswith(workdir_prefix):
                return
            if not writing and (p in _DEV_READ or inside(p, read_roots)):
                return
            deny(f"{'writing' if writing else 'reading'} {p}")
        elif event == "import":
            name = args[0]
            if name in import_deny or name.split(".")[0] in import_deny:
                deny(f"import {name}")
        elif event in _PROCESS_EVENTS or event.startswith(("ctypes.", "socket.", "sys.monitoring")):
            deny(event)
        elif event in ("marshal.loads", "marshal.load"):
            if event == "marshal.load" or not legit_bytecode(args):
                deny(f"{event} of bytecode not from the standard library")
        elif event in _PATH_WRITE_EVENTS or event == "os.chdir":
            for a in args[:2] if event in ("os.rename", "shutil.copyfile", "shutil.move") else args[:1]:
                if isinstance(a, int):
                    continue
                p = resolve(a)
                if p is not None and not (p == workdir or p.startswith(workdir_prefix)):
                    deny(f"{event}({p})")
        elif event in ("os.listdir", "os.scandir"):
            p = resolve(args[0] if args[0] is not None else ".")
            if p is not None and not (p == workdir or p.startswith(workdir_prefix) or inside(p, read_roots)):
                deny(f"{event}({p})")
        elif strict:
            if event == "sys._getframe":
                # As if the stack were shallow: libraries that peek at their caller (namedtuple, enum,
                # typing) fall back gracefully on ValueError, and nothing sees the harness's frames.
                raise ValueError("call stack is not deep enough")
            if event == "object.__getattr__" and args[1] in _FRAME_ATTRS:
                deny(f"access to {args[1]}", hostile=False)

    return hook
