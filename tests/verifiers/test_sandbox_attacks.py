"""Attacks on the sandbox itself. Each ends with reward 0 and a reason, the host untouched, and the next
execution working normally. Every attack runs twice: through `verify_text` (the `rlvr verify` path) with
the in-interpreter guard on, and with the guard off (`guard=False`), where the OS layers must hold alone.
Result forging is the exception: candidate and harness share an interpreter, so it is a guard test
(tests/verifiers/test_hacking.py)."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest

from rlvr.verifiers import sandbox
from rlvr.verifiers.code import run_tests

from .helpers import FAST, assert_healthy, pids_with, score_code

ONE_TEST = {"tests": "assert f() == 1\n", "entry_point": "f"}
LAYERS = {
    "mount": lambda iso: iso["mount_namespace"],
    "pid": lambda iso: iso["pid_namespace"],
    "net": lambda iso: iso["network"] == "namespace",
    "nproc": lambda iso: iso["process_limit"] != "none",
    "uid_or_mount": lambda iso: iso["uid"] is not None or iso["mount_namespace"],
}


@pytest.fixture(params=[True, False], ids=["guard", "os_layer"])
def guard(request):
    return request.param


def require(guard: bool, *layers: str) -> None:
    """Skip the guard-off case where this machine lacks a layer the attack needs (reported, not hidden)."""
    iso = sandbox.isolation()
    missing = [name for name in layers if not LAYERS[name](iso)]
    if not guard and missing:
        pytest.skip(
            f"no {', '.join(missing)} layer here ({iso['launcher']} launcher): the guard is the barrier"
        )


def attack(body: str, guard: bool, answer: dict = ONE_TEST, **options) -> str:
    """Score `body` (module-level attack code) followed by `def f(): return 1`; returns the reason."""
    code = body + "\ndef f():\n    return 1\n"
    if guard:
        score = score_code(code, answer, **options)
        assert score.reward == 0.0 and not score.correct, score
        reason = score.details.get("reason")
    else:
        opts = {k: v for k, v in {**FAST, **options}.items() if k != "format_reward"}
        passed, total, reason, extra = run_tests(code, answer, guard=False, **opts)
        # not a pass: a test failed, or the run did not end cleanly (verify_code scores that 0 too)
        assert passed < total or extra.get("status", "ok") != "ok", (passed, total, reason)
    assert reason
    assert_healthy()
    return reason


def processes_with(marker: str, settle_s: float = 2.0) -> list[int]:
    """Host processes whose command line holds `marker`, after giving dying ones `settle_s` to go."""
    deadline = time.monotonic() + settle_s
    while True:
        found = pids_with(marker)
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_fork_bomb(guard):
    require(guard, "pid", "nproc")
    reason = attack("import os\nwhile True:\n    os.fork()", guard)
    assert not guard or "os.fork" in reason
    assert not processes_with("rlvr-harness"), "fork bomb survivors"


def test_fork_bomb_that_swallows_errors_leaves_nothing(guard):
    require(guard, "pid", "nproc")
    # Without the guard, forks past the process limit fail fast: 10,000 tries could end inside the timeout on a
    # quick machine (then the run ends cleanly and its test passes). Ten million keep forking until the timeout.
    tries = 10_000 if guard else 10_000_000
    body = f"import os\nfor _ in range({tries}):\n    try:\n        os.fork()\n    except OSError:\n        pass"
    attack(body, guard, timeout_s=1.5)
    assert not processes_with("rlvr-harness"), "fork bomb survivors"


def test_memory_bomb(guard):
    reason = attack("x = bytearray(8 << 30)", guard)
    assert "MemoryError" in reason


def test_memory_bomb_growing(guard):
    reason = attack("x = []\nwhile True:\n    x.append(bytearray(1 << 24))", guard, memory_mb=128)
    assert "MemoryError" in reason


def test_infinite_loop(guard):
    reason = attack("while True:\n    pass", guard, timeout_s=1.0)
    assert "limit" in reason


def test_cpu_limit_before_wall_limit():
    r = sandbox.run(
        sandbox.Job(code="while True:\n    pass", guard=False, limits=sandbox.Limits(wall_s=10, cpu_s=1))
    )
    assert r.status == "killed" and "CPU" in r.reason and r.fault == "candidate", r


def test_sleep_past_the_limit(guard):
    reason = attack("import time\ntime.sleep(60)", guard, timeout_s=1.0)
    assert "wall-clock" in reason


def test_gigabytes_of_output(guard):
    reason = attack("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)", guard)
    assert "exceeded" in reason and "stdout" in reason


def test_gigabytes_of_output_in_io_mode(guard):
    reason = attack(
        "import os\nwhile True:\n    os.write(1, b'y' * 65536)", guard, {"io": [{"input": "", "output": "1"}]}
    )
    assert "stdout" in reason


def test_writing_and_deleting_files_outside_its_directory(tmp_path, guard):
    require(guard, "uid_or_mount")
    canary = tmp_path / "canary.txt"
    canary.write_text("intact")
    reason = attack(f"open({str(canary)!r}, 'w').write('pwned')", guard)
    assert not guard or "sandbox violation: writing" in reason
    attack(f"import os\nos.remove({str(canary)!r})", guard)
    attack(f"import shutil\nshutil.rmtree({str(tmp_path)!r})", guard)
    attack(f"import os\nos.rename({str(canary)!r}, 'stolen')", guard)
    assert canary.read_text() == "intact"


def test_writing_tmp_and_dev_shm_from_a_second_process(guard):
    """A forked child writes to /tmp and /dev/shm and lingers: nothing of it reaches the host."""
    require(guard, "mount", "pid")
    marker = f"rlvr-canary-{os.getpid()}-{time.monotonic_ns()}"
    body = (
        "import os, time\n"
        "if os.fork() == 0:\n"
        f"    for d in ('/tmp', '/dev/shm'):\n        open(os.path.join(d, {marker!r}), 'w').write('x')\n"
        "    time.sleep(30)\n"
        "time.sleep(0.3)\n"
        f"open('/tmp/{marker}-main', 'w').write('x')\n"
        "raise SystemExit(1)"
    )
    attack(body, guard)
    for d in ("/tmp", "/dev/shm"):
        assert not [n for n in os.listdir(d) if n.startswith(marker)], f"a write reached the host's {d}"


def test_reading_environment_secrets(monkeypatch, guard):
    monkeypatch.setenv("SECRET_TOKEN", "tok-5ecret")
    attack("import os\nassert os.environ.get('SECRET_TOKEN') != 'tok-5ecret'\nraise SystemExit(1)", guard)
    r = sandbox.run(sandbox.Job(code="import os\nprint(dict(os.environ))", guard=guard))
    assert "tok-5ecret" not in r.stdout and "SECRET_TOKEN" not in r.stdout, r.stdout


def test_reading_files_outside_the_working_directory(tmp_path, monkeypatch, guard):
    """Host secrets (an SSH key, a Hugging Face token, a checkpoint of the project, /etc/passwd) are out
    of reach: the candidate returns what it read and the test would pass if it read anything. Without
    the guard, only a mount namespace hides the world-readable ones (a checkpoint, /etc/passwd)."""
    require(guard, "mount")
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("PRIVATE-KEY")
    (home / ".cache" / "huggingface").mkdir(parents=True)
    (home / ".cache" / "huggingface" / "token").write_text("PRIVATE-hf_token")
    ckpt = Path.cwd() / "runs" / f"attack-{os.getpid()}" / "checkpoint.txt"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    ckpt.write_text("PRIVATE-weights")
    monkeypatch.setenv("HOME", str(home))
    answer = {"tests": "assert 'PRIVATE' in f() or 'root:' in f()\n", "entry_point": "f"}
    paths = [
        "os.path.expanduser('~/.ssh/id_ed25519')",
        repr(str(home / ".cache" / "huggingface" / "token")),
        repr(str(ckpt)),
        "'/etc/passwd'",
        "'/root/.ssh/id_rsa'",
        "'/proc/1/environ'",
    ]
    try:
        for path in paths:
            code = f"import os\ndef f():\n    try:\n        return open({path}).read()\n    except OSError:\n        return ''\n"
            if guard:
                score = score_code(code, answer)
                assert score.reward == 0.0, (path, score)
            else:
                passed, total, reason, _ = run_tests(code, answer, guard=False, timeout_s=2.0, memory_mb=256)
                assert passed == 0, (path, reason)
    finally:
        ckpt.unlink()
        ckpt.parent.rmdir()
    assert_healthy()


@pytest.fixture
def listener():
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(5)
    srv.settimeout(0.3)
    yield srv
    srv.close()


def _nobody_connected(srv: socket.socket) -> bool:
    try:
        conn, _ = srv.accept()
    except TimeoutError:
        return True
    conn.close()
    return False


def test_network_connection(listener, guard):
    require(guard, "net")
    port = listener.getsockname()[1]
    reason = attack(
        f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=1)\ns.sendall(b'pwned')",
        guard,
    )
    assert ("socket" in reason) if guard else ("Connection" in reason or "OSError" in reason)
    assert _nobody_connected(listener)


def test_signalling_or_killing_its_parent(guard):
    require(guard, "pid")
    me = os.getpid()
    reason = attack(f"import os, signal\nos.kill({me}, signal.SIGKILL)", guard)
    assert not guard or "os.kill" in reason
    attack("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nraise SystemExit(1)", guard)
    attack("import os, signal\nos.killpg(0, signal.SIGKILL)\nraise SystemExit(1)", guard)
    assert os.getpid() == me


def test_pidfd_signal_to_the_parent(guard):
    """`os.pidfd_open` + `signal.pidfd_send_signal` have no audit event: the PID namespace (the test
    process does not exist in there) and seccomp (pidfd_* denied) stop them."""
    require(guard, "pid")
    me = os.getpid()
    old = signal.signal(signal.SIGUSR1, lambda *a: pytest.fail("the sandbox signalled the test process"))
    try:
        for target in (str(me), "os.getppid()", "1"):
            attack(
                f"import os, signal\nfd = os.pidfd_open({target})\nsignal.pidfd_send_signal(fd, signal.SIGUSR1)\n"
                "raise SystemExit(1)",
                guard,
            )
    finally:
        signal.signal(signal.SIGUSR1, old)


def test_leaving_a_background_process_behind(guard):
    require(guard, "pid")
    marker = f"4242.{os.getpid()}"
    body = f"import os, time\nif os.fork() == 0:\n    os.setsid()\n    os.execv('/bin/sleep', ['sleep', '{marker}'])\ntime.sleep(0.3)\nraise SystemExit(1)"
    reason = attack(body, guard)
    assert not guard or "os.fork" in reason
    assert not processes_with(marker), "a background process survived its sandbox"


CODE_OBJECTS = {
    "code.replace": "def g():\n    pass\ng.__code__ = g.__code__.replace(co_consts=(None, 1))",
    "types.CodeType": "import types\nc = (lambda: 0).__code__\ntypes.CodeType(*[getattr(c, 'co_' + a) for a in ('argcount', 'posonlyargcount', 'kwonlyargcount', 'nlocals', 'stacksize', 'flags', 'code', 'consts', 'names', 'varnames', 'filename', 'name', 'qualname', 'firstlineno', 'linetable', 'exceptiontable')])",
    "marshal.loads": "import marshal\nexec(marshal.loads(marshal.dumps(compile('x = 1', 's', 'exec'))))",
    "importlib's loader": "import marshal, importlib._bootstrap_external as ext\nexec(ext._compile_bytecode(marshal.dumps(compile('x = 1', 's', 'exec')), bytecode_path=ext.__file__ or '/usr/lib/x.pyc'))",
}


@pytest.mark.parametrize("kind", list(CODE_OBJECTS))
def test_candidate_made_code_objects(kind, tmp_path, guard):
    """Crafted bytecode is the classic way past an audit hook. With the guard on, making a code object
    is refused; with it off, what the code objects then do (write a host file) reaches nothing."""
    require(guard, "uid_or_mount")
    canary = tmp_path / "canary.txt"
    canary.write_text("intact")
    body = CODE_OBJECTS[kind] + f"\nopen({str(canary)!r}, 'w').write('pwned')"
    reason = attack(body, guard)
    assert not guard or ("code.__new__" in reason or "marshal.loads" in reason), reason
    assert canary.read_text() == "intact"


def test_imports_still_load_the_standard_library_bytecode():
    """The marshal rule lets importlib load the standard library's own cached bytecode."""
    r = sandbox.run(sandbox.Job(code="import json, re, typing, dataclasses\nprint(json.dumps([1]))"))
    assert r.status == "ok" and r.stdout == "[1]\n", r


def test_working_directory_is_private_and_empty(guard):
    r = sandbox.run(
        sandbox.Job(
            code="import os\nprint(os.getcwd(), os.listdir('.'))\nopen('left.txt', 'w').write('x')",
            guard=guard,
        )
    )
    cwd, listing = r.stdout.split(" ", 1)
    assert listing.strip() == "[]" and not os.path.exists(os.path.join(cwd, "left.txt")), r
