"""Attacks on the sandbox itself. Each ends with reward 0 and a reason, the host untouched, and the next
execution working normally. The main cases go through `verify_text` (the `rlvr verify` path) with the
in-interpreter guard on; the `*_os_layer` cases switch the guard off to show the OS limits hold alone."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from rlvr.verifiers import sandbox

from .helpers import assert_healthy, score_code

ONE_TEST = {"tests": "assert f() == 1\n", "entry_point": "f"}


def attack(body: str, answer: dict = ONE_TEST, **options):
    """Score `body` (module-level attack code) followed by `def f(): return 1`."""
    score = score_code(body + "\ndef f():\n    return 1\n", answer, **options)
    assert score.reward == 0.0 and not score.correct, score
    assert score.details.get("reason"), score
    assert_healthy()
    return score.details["reason"]


def run_script(code: str, **limits) -> sandbox.RunResult:
    return sandbox.run(
        sandbox.Job(code=code, guard=False, limits=sandbox.Limits(**{"wall_s": 3, "cpu_s": 3, **limits}))
    )


def processes_with(marker: str, settle_s: float = 2.0) -> list[int]:
    """Host processes whose command line holds `marker`, after giving dying ones `settle_s` to go."""
    deadline = time.monotonic() + settle_s
    while True:
        found = _scan(marker)
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def _scan(marker: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(int(pid))
        except OSError:
            pass
    return found


def test_fork_bomb():
    reason = attack("import os\nwhile True:\n    os.fork()")
    assert "os.fork" in reason


def test_fork_bomb_os_layer(nobody_sandbox):
    r = run_script(
        "import os\nn = 0\nwhile True:\n    try:\n        os.fork(); n += 1\n    except OSError:\n        pass",
        max_procs=16,
        wall_s=1.5,
    )
    assert r.status in ("timeout", "killed"), r
    assert not processes_with("rlvr-harness"), "fork bomb survivors"
    assert_healthy()


def test_memory_bomb():
    reason = attack("x = bytearray(8 << 30)")
    assert "MemoryError" in reason


def test_memory_bomb_growing_os_layer():
    r = run_script("x = []\nwhile True:\n    x.append(bytearray(1 << 24))", memory_mb=128)
    assert r.status == "failed" and "MemoryError" in r.stderr, r
    assert_healthy()


def test_infinite_loop():
    reason = attack("while True:\n    pass", timeout_s=1.0)
    assert "limit" in reason


def test_cpu_limit_before_wall_limit():
    r = run_script("while True:\n    pass", wall_s=10, cpu_s=1)
    assert r.status == "killed" and "CPU" in r.reason and r.wall_s < 5, r


def test_sleep_past_the_limit():
    start = time.monotonic()
    reason = attack("import time\ntime.sleep(60)", timeout_s=1.0)
    assert "wall-clock" in reason and time.monotonic() - start < 10


def test_gigabytes_of_output():
    reason = attack("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)")
    assert "exceeded" in reason and "stdout" in reason


def test_gigabytes_of_output_in_io_mode():
    reason = attack(
        "import os\nwhile True:\n    os.write(1, b'y' * 65536)", {"io": [{"input": "", "output": "1"}]}
    )
    assert "stdout" in reason


def test_writing_and_deleting_files_outside_its_directory(tmp_path):
    canary = tmp_path / "canary.txt"
    canary.write_text("intact")
    reason = attack(f"open({str(canary)!r}, 'w').write('pwned')")
    assert "sandbox violation: writing" in reason
    attack(f"import os\nos.remove({str(canary)!r})")
    attack(f"import shutil\nshutil.rmtree({str(tmp_path)!r})")
    attack(f"import os\nos.rename({str(canary)!r}, 'stolen')")
    assert canary.read_text() == "intact"


def test_writing_outside_os_layer(tmp_path, nobody_sandbox):
    canary = tmp_path / "canary.txt"
    canary.write_text("intact")
    r = run_script(f"import os\nopen({str(canary)!r}, 'w').write('pwned')\nos.remove({str(canary)!r})")
    assert r.status == "failed" and "PermissionError" in r.stderr, r
    assert canary.read_text() == "intact"


def test_reading_environment_secrets(monkeypatch):
    monkeypatch.setenv("SECRET_TOKEN", "tok-5ecret")
    answer = {"tests": "assert f() == 'tok-5ecret'\n", "entry_point": "f"}
    score = score_code("import os\ndef f():\n    return os.environ.get('SECRET_TOKEN', '')\n", answer)
    assert score.reward == 0.0 and "AssertionError" in score.details["reason"]
    r = run_script("import os\nprint(dict(os.environ))")
    assert "tok-5ecret" not in r.stdout and "SECRET_TOKEN" not in r.stdout, r.stdout
    assert_healthy()


def test_reading_ssh_keys_and_host_files(tmp_path, monkeypatch):
    key = tmp_path / "home" / ".ssh" / "id_ed25519"
    key.parent.mkdir(parents=True)
    key.write_text("PRIVATE-KEY")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    answer = {"tests": "assert 'PRIVATE' in f()\n", "entry_point": "f"}
    for path in (
        "os.path.expanduser('~/.ssh/id_ed25519')",
        repr(str(key)),
        "'/root/.ssh/id_rsa'",
        "'/proc/1/environ'",
    ):
        score = score_code(f"import os\ndef f():\n    return open({path}).read()\n", answer)
        assert score.reward == 0.0 and score.details["reason"], (path, score)
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


def test_network_connection(listener):
    port = listener.getsockname()[1]
    reason = attack(
        f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=1)\ns.sendall(b'pwned')"
    )
    assert "socket" in reason
    assert _nobody_connected(listener)


def test_network_connection_os_layer(listener):
    if sandbox.network_isolation() != "namespace":
        pytest.skip("no network namespace here: the interpreter guard is the only barrier")
    port = listener.getsockname()[1]
    r = run_script(
        f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=1)\ns.sendall(b'pwned')"
    )
    assert r.status == "failed" and ("ConnectionRefused" in r.stderr or "OSError" in r.stderr), r
    assert _nobody_connected(listener)


def test_signalling_or_killing_its_parent():
    me = os.getpid()
    reason = attack(f"import os, signal\nos.kill({me}, signal.SIGKILL)")
    assert "os.kill" in reason
    attack("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)")
    attack("import os, signal\nos.killpg(0, signal.SIGKILL)")
    assert os.getpid() == me


def test_killing_its_parent_os_layer(nobody_sandbox):
    me = os.getpid()
    r = run_script(
        f"import os, signal\nfor pid in ({me}, os.getppid(), 1):\n    try:\n        os.kill(pid, signal.SIGTERM)\n    except OSError as e:\n        print(type(e).__name__)"
    )
    assert "Error" in r.stdout, r
    assert_healthy()


def test_leaving_a_background_process_behind():
    reason = attack("import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(30)")
    assert "os.fork" in reason


def test_background_process_os_layer(nobody_sandbox):
    marker = "4242.4242"
    code = f"import os\nif os.fork() == 0:\n    os.setsid()\n    os.execv('/bin/sleep', ['sleep', '{marker}'])\nimport time\ntime.sleep(0.3)\nprint('parent done')"
    r = run_script(code)
    assert "parent done" in r.stdout, r
    time.sleep(0.2)
    assert not processes_with(marker), "a background process survived its sandbox"
    assert_healthy()


def test_working_directory_is_removed_and_empty():
    r = run_script("import os\nprint(os.getcwd(), os.listdir('.'))\nopen('left.txt', 'w').write('x')")
    cwd, listing = r.stdout.split(" ", 1)
    assert listing.strip() == "[]" and not os.path.exists(cwd), r
