"""The first code that runs inside a sandbox process; stdlib only, never imported by rlvr. It runs in one
namespace after `guard.py` (the audit hook; `launch.HARNESS_SOURCE` joins the two).

`runner.py` starts `python -I -S -B -c BOOT CTRL_FD RESULT_FD`. BOOT reads one length-prefixed frame,
this module (compiled) and the job (code, tests, limits, a per-run random nonce), from CTRL_FD, which
stays open while the run lasts (the parent closing it, or dying, ends the run), executes this module in a
private namespace whose builtins are a copy, so nothing the candidate later does to `builtins` or to
modules changes the harness's own name look-ups, and calls `main(job, RESULT_FD, CTRL_FD)`. In order:

1. restores the signal mask and catches SIGXCPU (a PID namespace's init ignores default signals); when
   the parent asks (as root), drops to the pool slot's unprivileged uid/gid;
2. starts its own second thread, before any limit applies, so the candidate's limits cannot starve it;
3. sets rlimits (CPU, address space, file size, open files, no core; processes only where the count is
   the run's own, see `isolation.py`);
4. installs an audit hook (PEP 578; it cannot be removed) that refuses process creation, signals to other
   processes, sockets, ctypes, gc introspection, tracing, new audit hooks, rlimit changes and file access
   outside the working directory and the standard library; in test mode it also hides every frame (so the
   candidate cannot read the tests or the nonce from the harness's stack) and refuses threads;
5. writes `NONCE ack` on RESULT_FD: every layer is in place and the candidate's code is still untouched.
   A run without the ack is the sandbox's fault (retried), everything after it the candidate's;
6. runs the candidate. Script mode (stdin/stdout tests): as `__main__`, then exits with its status; the
   parent compares the output, so nothing the candidate says about itself counts. Test mode, in the second
   thread (only the main thread may install signal handlers, which would receive frames): the tests run
   one unit at a time in their own namespace with pristine builtins, each call of the candidate's
   functions must take and return plain built-in data (no `__eq__` tricks, no test objects leaking in),
   modules must be untouched, and after each unit the harness writes `NONCE INDEX pass|fail MESSAGE` to
   RESULT_FD, then `NONCE done P N`.

The parent trusts only nonce-bearing records and a `done` line that matches the number of tests it sent;
an early `sys.exit`/`os._exit`, a crash, a timeout or forged output therefore proves nothing.
"""

import builtins
import os
import sys

_write = os.write
_exit = os._exit
_getcwd = os.getcwd
_fspath = os.fspath
_normpath = os.path.normpath
_join = os.path.join
_modules = sys.modules
_FunctionType = type(lambda: None)
_ModuleType = type(sys)
# Attributes that change legitimately (importlib renames the frozen bootstrap modules on first import)
# or that nothing the tests do depends on.
_SYS_VOLATILE = frozenset({"stdout", "stderr", "stdin"})
_MODULE_VOLATILE = frozenset(
    {
        "__name__",
        "__package__",
        "__file__",
        "__cached__",
        "__doc__",
        "__warningregistry__",
        "__loader__",
        "__spec__",
    }
)
_REFUSE_SRC = "def refuse(*args, **kwargs):\n    raise RuntimeError('sandbox: threads and signal handlers are not allowed in test mode')\n"
def _record(fd, nonce, *fields):
    """One authenticated line on the result channel (all fields are exact str/int built here)."""
    _write(fd, (nonce + " " + " ".join(fields) + "\n").encode("utf-8", "replace"))


def _clean(msg, limit=300):
    """A one-line, printable, bounded copy of `msg` (exact `str`, whatever subclass came in)."""
    try:
        s = str.__str__(msg) if isinstance(msg, str) else str.__str__(str(msg))
    except BaseException:  # noqa: B036 - the candidate's __str__ may raise anything
        s = "<unprintable>"
    return ascii(s)[1:-1][:limit]


def _describe(exc):
    name = type.__dict__["__name__"].__get__(type(exc))
    violation = type(exc) is SandboxViolation  # noqa: F821 - defined by guard.py
    detail = _clean(exc) if violation or type(exc).__module__ == "builtins" else ""
    return name + (": " + detail if detail else "")


# The call wrapper and the plain-data check, as source: the harness executes it twice, once for itself
# and once into a scratch namespace for the wrappers that test code holds. Test code may hand its own
# functions to the candidate (a callback), and every function exposes its globals and closure; through
# the scratch copy that leads nowhere near the nonce or the result pipe.
_WRAPPER_SOURCE = '''
def is_plain(value, max_nodes=1_000_000):
    """True when `value` is built only from exact built-in data types (no subclasses, no objects)."""
    atoms = (int, float, complex, str, bytes, bool, type(None))
    containers = (list, tuple, dict, set, frozenset)
    stack, seen, nodes = [value], set(), 0
    while stack:
        v = stack.pop()
        nodes += 1
        if nodes > max_nodes:
            return False
        t = type(v)
        if t in atoms:
            continue
        if t not in containers:
            return False
        if id(v) in seen:
            continue
        seen.add(id(v))
        if t is dict:
            stack.extend(dict.keys(v))
            stack.extend(dict.values(v))
        else:
            stack.extend(t.__iter__(v))
    return True


def make_wrapper(fn, name, plain_returns, flagged):
    """What the tests call instead of the candidate's function `fn`: arguments and result must be
    plain data (when `plain_returns`); violations are appended to `flagged`."""

    def candidate(*args, **kwargs):
        # Plain arguments too: a function or object from the tests would hand the candidate the
        # tests' globals (and from there this wrapper, whose closure it could rewrite).
        if plain_returns and not is_plain((args, kwargs)):
            flagged.append("the tests pass " + name + " arguments that are not plain data (plain_returns=False)")
            raise TypeError("arguments that are not plain built-in data")
        result = fn(*args, **kwargs)
        if plain_returns and not is_plain(result):
            flagged.append(name + " returned something that is not plain built-in data")
            raise TypeError(name + " returned a " + type(result).__name__ + ", not plain built-in data")
        return result

    return candidate
'''
exec(_WRAPPER_SOURCE)  # is_plain() for the harness's own use


def _set_limits(limits):
    import resource

    def cap(which, soft, hard=None):
        try:
            resource.setrlimit(which, (soft, soft if hard is None else hard))
        except (ValueError, OSError):
            pass

    cap(resource.RLIMIT_CPU, limits["cpu_s"], limits["cpu_s"] + 1)
    cap(resource.RLIMIT_AS, limits["memory_mb"] << 20)
    cap(resource.RLIMIT_FSIZE, limits["file_mb"] << 20)
    if limits["max_procs"] is not None:  # only where the count is the run's own (see isolation.py)
        cap(resource.RLIMIT_NPROC, limits["max_procs"])
    cap(resource.RLIMIT_NOFILE, limits["max_files"])
    cap(resource.RLIMIT_CORE, 0)


def _deny_threads_and_signals():
    """Threads could race the checks and signal handlers receive frames: refuse both in test mode.

    Defence in depth: the candidate could rebuild these modules (`_imp.create_builtin`); what really
    keeps signal handlers out is that test mode runs outside the main thread (see `main`). The refusing
    function lives in a throw-away namespace: a function defined here would hand the candidate this
    module's globals through `__globals__`."""
    import _signal
    import _thread

    scratch = {"__builtins__": {"RuntimeError": RuntimeError}}
    exec(_REFUSE_SRC, scratch)
    refuse = scratch["refuse"]

    for name in ("start_new_thread", "start_new", "start_joinable_thread"):
        if hasattr(_thread, name):
            setattr(_thread, name, refuse)
    _signal.signal = refuse
    if "signal" in _modules:
        _modules["signal"].signal = refuse
    if "threading" in _modules:
        _modules["threading"]._start_new_thread = refuse


def _snapshot():
    """Identity snapshot of every loaded module's attributes and of the import machinery's lists."""
    mods = {name: (mod, dict(vars(mod))) for name, mod in list(_modules.items()) if type(mod) is _ModuleType}
    lists = {k: tuple(getattr(sys, k)) for k in ("meta_path", "path_hooks", "path")}
    return mods, lists


def _tampered(snap):
    """The first module attribute the candidate replaced since `snap`, or None."""
    mods, lists = snap
    for k, items in lists.items():
        current = getattr(sys, k)
        if (
            type(current) is not list
            or len(current) != len(items)
            or any(a is not b for a, b in zip(current, items))
        ):
            return "sys." + k
    for name, (mod, attrs) in mods.items():
        if _modules.get(name) is not mod:
            return "sys.modules[" + name + "]"
        current = vars(mod)
        for key, value in attrs.items():
            if key in _MODULE_VOLATILE or (name == "sys" and key in _SYS_VOLATILE):
                continue
            if current.get(key, current) is not value:
                return name + "." + key
    return None


def _run_script(code_obj):
    """Script mode: run as `__main__`, flush, exit with the program's status."""
    status = 0
    try:
        exec(code_obj, {"__name__": "__main__", "__builtins__": builtins})
    except SystemExit as e:
        code = e.code
        status = code if isinstance(code, int) else (0 if code is None else 1)
        if not isinstance(code, int) and code is not None:
            _write(2, (_clean(code) + "\n").encode())
    except BaseException as e:  # noqa: B036 - report whatever the program raised, then fail
        _write(2, ("Traceback: " + _describe(e) + "\n").encode())
        status = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: B036
            status = status or 1
    _exit(status & 0xFF)


def _run_tests(job, res_fd, nonce, violations, snap):
    """Test mode: candidate first, then each test unit; one authenticated record per test."""
    code_obj, error = _compile(job["code"])
    if error is not None:
        _record(res_fd, nonce, "syntax", _clean(error))
        _exit(0)
    pristine = dict(vars(builtins))
    pristine_items = tuple(pristine.items())
    scratch = {"__builtins__": dict(pristine)}
    exec(_WRAPPER_SOURCE, scratch)
    make_wrapper = scratch["make_wrapper"]
    units = [
        (compile(u["src"], f"<test {i}>", "exec", dont_inherit=True, optimize=0), u["test"])
        for i, u in enumerate(job["units"])
    ]
    total = sum(1 for _, is_test in units if is_test)
    entry = job.get("entry_point")
    plain_returns = job.get("plain_returns", True)
    bad_returns = []
    loaded_before = set(_modules)

    def finish(passed):
        _record(res_fd, nonce, "done", str(passed), str(total))
        _exit(0)

    def fail_all(reason):
        for i in range(total):
            _record(res_fd, nonce, str(i), "fail", _clean(reason))
        finish(0)

    user_ns = {"__name__": "solution", "__builtins__": builtins}
    try:
        exec(code_obj, user_ns)
    except BaseException as e:  # noqa: B036 - SystemExit and friends included: the code did not load
        if violations:
            fail_all("sandbox violation: " + _clean(violations[0]))
        fail_all("candidate code raised " + _describe(e))
    if violations:
        fail_all("sandbox violation: " + _clean(violations[0]))
    changed = _tampered(snap)
    if changed:
        fail_all("candidate changed " + changed)

    def wrap(fn, name):
        return make_wrapper(fn, name, plain_returns, bad_returns)

    # Modules the candidate imported are dropped so the tests import their own fresh copies.
    for name in [n for n in _modules if n not in loaded_before]:
        del _modules[name]
    test_ns = {"__name__": "__test__", "__builtins__": pristine}
    for key, value in dict.items(user_ns):
        if type(key) is not str or key.startswith("__") or key in pristine:
            continue
        t = type(value)
        if t is _FunctionType:
            test_ns[key] = wrap(value, key)
        elif t is _ModuleType:
            try:
                test_ns[key] = pristine["__import__"](value.__name__, fromlist=["_"])
            except BaseException:  # noqa: B036
                pass
        elif issubclass(t, type) and type.__dict__["__module__"].__get__(value) == "solution":
            test_ns[key] = value
        elif is_plain(value):  # noqa: F821 - defined by exec(_WRAPPER_SOURCE)
            test_ns[key] = value
    if entry:
        fn = user_ns.get(entry)
        if type(fn) is not _FunctionType and not issubclass(type(fn), type):
            fail_all(f"no function named {entry!r} in the candidate code")
        test_ns["candidate"] = test_ns[entry] = wrap(fn, entry) if type(fn) is _FunctionType else fn

    passed, index, broken = 0, 0, ""
    for code, is_test in units:
        ok, msg = True, ""
        if broken:
            ok, msg = False, broken
        else:
            n_bad, n_viol = len(bad_returns), len(violations)
            try:
                exec(code, test_ns)
            except BaseException as e:  # noqa: B036 - sys.exit() inside a test is a failure too
                ok, msg = False, _describe(e)
            if len(bad_returns) > n_bad:
                ok, msg = False, bad_returns[-1]
            if len(violations) > n_viol:
                ok, msg = False, "sandbox violation: " + _clean(violations[-1])
            changed = _tampered(snap)
            if len(pristine) != len(pristine_items) or any(
                pristine.get(k) is not v for k, v in pristine_items
            ):
                changed = "the tests' builtins"
            if changed:
                ok, msg = False, "candidate changed " + changed
                broken = msg
            if not ok and not is_test and not broken:
                broken = "test setup failed: " + msg
        if is_test:
            passed += ok
            _record(res_fd, nonce, str(index), "pass" if ok else "fail", _clean(msg))
            index += 1
    finish(passed)


def _compile(source):
    """(the candidate's code object, None) or (None, why it does not compile)."""
    try:
        return compile(source, "<candidate>", "exec", dont_inherit=True), None
    except (SyntaxError, ValueError, MemoryError, RecursionError) as e:
        return None, _describe(e)


def _watch(life_fd, select):
    """Block until the parent closes the control pipe (the run is over, or the parent died), then end
    the process, and with it (as PID 1 of its namespace) every process of the run. The pipe is
    non-blocking, so a candidate reading it gets nothing and cannot hang on it."""
    while True:
        try:
            select([life_fd], [], [])
            if not os.read(life_fd, 1 << 12):
                break
        except BlockingIOError:
            continue
        except BaseException:  # noqa: B036 - e.g. _thread.interrupt_main(), or the fd closed
            try:
                os.fstat(life_fd)
            except BaseException:  # noqa: B036
                break
    _exit(3)


def main(job, res_fd, life_fd):
    """Entry point, called by `sandbox.BOOT` with the job (already read from the control pipe `life_fd`,
    which the parent keeps open while the run lasts)."""
    nonce = job["nonce"]
    import _signal
    import _thread
    from select import select

    os.set_blocking(life_fd, False)

    # As the init of a PID namespace, signals left at their default action are dropped, so the soft CPU
    # limit's SIGXCPU needs a handler. It lives in a throw-away namespace (see _deny_threads_and_signals).
    _signal.pthread_sigmask(_signal.SIG_SETMASK, [])
    scratch = {"__builtins__": {}, "_exit": _exit}
    exec("def on_cpu_limit(signum, frame):\n    _exit(128 + signum)\n", scratch)
    _signal.signal(_signal.SIGXCPU, scratch["on_cpu_limit"])
    if job.get("uid") is not None:
        os.setgroups([])
        os.setgid(job["gid"])
        os.setuid(job["uid"])
    strict = job["mode"] == "tests"
    violations = []
    snap = None
    if strict:
        # Before the snapshot and the hook: importlib renames the frozen bootstrap modules when first
        # imported, and types reads a traceback's tb_frame at import time (refused later in test mode).
        import importlib  # noqa: F401
        import types  # noqa: F401
    # The harness's second thread exists before any limit applies and before the ack, so nothing the
    # candidate's limits count can keep the harness from running. Test mode runs the tests in it (only
    # the main thread may install signal handlers, which would receive frames from which the nonce is
    # one `f_back` away); script mode watches the parent in it.
    go = _thread.allocate_lock()
    go.acquire()

    def body():
        go.acquire()
        if strict:
            try:
                _run_tests(job, res_fd, nonce, violations, snap)  # ends the process itself
            finally:
                _exit(3)
        _watch(life_fd, select)

    _thread.start_new_thread(body, ())
    _set_limits(job["limits"])
    workdir = _getcwd()
    read_roots = tuple(p for p in sys.path if p) + tuple(job.get("read_only", ()))
    # `-S` skips site, which is what defines exit() and quit(); programs use them.
    builtins.exit = builtins.quit = sys.exit
    if strict:
        _deny_threads_and_signals()
        snap = _snapshot()
    if job.get("guard", True):
        sys.addaudithook(_make_hook(workdir, read_roots, strict, violations))  # noqa: F821 - guard.py
    # Every layer is in place and the candidate's code is still untouched: from here on, whatever
    # happens is the candidate's doing.
    _record(res_fd, nonce, "ack")
    go.release()
    if strict:
        _watch(life_fd, select)
    os.close(res_fd)
    code_obj, error = _compile(job["code"])
    if error is not None:
        _write(2, ("SyntaxError: " + _clean(error) + "\n").encode())
        _exit(1)
    _run_script(code_obj)
