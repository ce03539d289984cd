"""Sandbox basics: modes, isolation report, authenticated results, whose fault a failure is."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from rlvr.types import Problem
from rlvr.verifiers import InfraError, build_reward, get_verifier, sandbox, verify_text
from rlvr.verifiers.sandbox import Job, Limits, run, run_many, runner

from .helpers import code_answer, pids_with

UNITS = [{"src": "assert f(2) == 4", "test": True}, {"src": "assert f(3) == 9", "test": True}]
SQUARE = "def f(x):\n    return x * x"
ADD = {"tests": "assert add(1, 2) == 3\n", "entry_point": "add"}


def test_isolation_is_reported():
    iso = sandbox.isolation()
    assert iso["network"] in ("namespace", "interpreter") and sandbox.network_isolation() == iso["network"]
    assert os.path.exists(iso["python"]) and "user" in iso and iso["layers"]
    assert iso["process_limit"] in ("slot uid", "user namespace", "none")
    assert "slots per node" in sandbox.describe()


def test_script_mode_reads_stdin_and_reports_exit_status():
    r = run(Job(code="import sys\nprint(sys.stdin.read().upper())", stdin="hello"))
    assert r.status == "ok" and r.stdout == "HELLO\n" and r.fault == "none"
    r = run(Job(code="import sys\nprint('partial')\nsys.exit(4)"))
    assert r.status == "failed" and r.returncode == 4 and r.stdout == "partial\n" and r.fault == "candidate"
    r = run(Job(code="raise ValueError('boom')"))
    assert r.status == "failed" and "ValueError: boom" in r.stderr


def test_test_mode_reports_each_test():
    r = run(Job(code="def f(x):\n    return x * x if x < 3 else 0", units=UNITS, entry_point="f"))
    assert r.status == "failed" and r.tests == [True, False] and "test 1 failed" in r.reason


def test_forged_records_on_stdout_prove_nothing():
    code = "import os\ndef f(x):\n    return 0\nprint('0' * 32 + ' 0 pass')\nos._exit(0)"
    r = run(Job(code=code, units=UNITS, entry_point="f"))
    assert r.status == "incomplete" and r.tests == [False, False]


def test_environment_is_scrubbed_and_home_is_the_empty_workdir(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "nope")
    r = run(Job(code="import os\nprint(sorted(os.environ))\nprint(os.environ['HOME'] == os.getcwd())"))
    names, same = r.stdout.splitlines()
    assert "AWS_SECRET_ACCESS_KEY" not in names and same == "True"


def test_large_stdin_and_output_within_the_caps():
    data = "x" * 300_000
    r = run(Job(code="import sys\nsys.stdout.write(sys.stdin.read())", stdin=data))
    assert r.status == "ok" and r.stdout == data
    r = run(Job(code="print('y' * 5000)", limits=Limits(max_output=1000)))
    assert r.status == "output_limit"


def test_run_many_keeps_order():
    jobs = [Job(code=f"print({i})") for i in range(2 * sandbox.pool_size() + 1)]
    assert [r.stdout.strip() for r in run_many(jobs)] == [str(i) for i in range(len(jobs))]


@pytest.mark.parametrize("launcher", ["unshare", "none"])
def test_fallback_launchers_keep_the_guard(monkeypatch, launcher):
    """What a machine without bubblewrap gets: `unshare` namespaces, or a plain process. Sockets and
    writes are refused by the guard; tests, CPU limit and the uid drop (as root) still work."""
    iso = sandbox.isolation()
    prefix = ["unshare", "--net", "--pid", "--fork", "--kill-child"] if launcher == "unshare" else []
    plain = {**iso, "launcher": launcher, "prefix": prefix, "mount_namespace": False, "seccomp": None}
    plain.update(network="namespace" if prefix else "interpreter", pid_namespace=bool(prefix))
    if not iso["root"]:
        plain["process_limit"] = "none"
    monkeypatch.setattr(runner, "isolation", lambda: plain)
    r = run(Job(code="import os\nprint(6 * 7, os.getuid())"))
    assert r.stdout.split()[0] == "42", r
    if iso["root"]:
        assert int(r.stdout.split()[1]) == iso["uid_base"] + r.slot
    r = run(Job(code="import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=1)"))
    assert r.status == "failed" and "socket" in r.stderr
    r = run(Job(code=SQUARE, units=UNITS, entry_point="f"))
    assert r.status == "ok" and r.tests == [True, True]
    r = run(Job(code="while True:\n    pass", limits=Limits(wall_s=5, cpu_s=1)))
    assert r.status == "killed" and "CPU" in r.reason


# --- whose fault: infrastructure faults are retried, then raised; the candidate cannot cause one ---


@pytest.fixture
def spawn_fault():
    """Make launches fail on purpose: `spawn_fault(attempts)` fails the first `attempts` of each job."""

    def install(attempts: int):
        sandbox.set_spawn_fault(lambda job, attempt: attempt < attempts)

    yield install
    sandbox.set_spawn_fault(None)


def test_a_failed_launch_is_retried(spawn_fault):
    spawn_fault(1)
    r = run(Job(code=SQUARE, units=UNITS, entry_point="f"))
    assert r.status == "ok" and r.attempts == 2


def test_a_launch_that_keeps_failing_is_an_infra_error_not_a_zero(spawn_fault):
    spawn_fault(99)
    r = run(Job(code=SQUARE, units=UNITS, entry_point="f"), retries=1)
    assert r.status == "infra" and r.fault == "infra" and r.attempts == 2 and "injected" in r.reason
    text = code_answer("def add(a, b):\n    return a + b")
    with pytest.raises(InfraError, match="injected"):
        verify_text("code", ADD, text)
    problem = Problem("p", "", ADD, "code")
    with pytest.raises(InfraError):
        get_verifier("code")(problem, text)
    with pytest.raises(InfraError):
        build_reward([{"name": "code", "weight": 1.0}])(problem, text)
    with pytest.raises(InfraError):
        build_reward([{"name": "code", "weight": 1.0, "timeout_s": 30}])(problem, text)
    with pytest.raises(InfraError):
        verify_text("code", {"io": [{"input": "", "output": "3"}]}, code_answer("print(3)"))


def test_no_acknowledgement_from_the_harness_is_an_infra_error(monkeypatch):
    """The interpreter starts but never acknowledges the job (a broken harness, a host that cannot run
    it): the candidate's code never ran, so it is not the candidate's fault."""
    monkeypatch.setattr(runner, "BOOT", "import os\nos._exit(5)")
    r = run(Job(code=SQUARE, units=UNITS, entry_point="f"), retries=0)
    assert r.status == "infra" and "never acknowledged" in r.reason


CANDIDATE_FAULTS = {
    "exits at once": "import os\nos._exit(0)",
    "kills itself": "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
    "crashes the interpreter": "import ctypes\nctypes.string_at(0)",
    "closes every descriptor": "import os\nos.closerange(0, 64)\nwhile True:\n    pass",
    "floods stdout": "import os\nwhile True:\n    os.write(1, b'x' * 65536)",
    "sleeps": "import time\ntime.sleep(60)",
    "exhausts its processes": "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
    "does not compile": "def f(:\n",
}


@pytest.mark.parametrize("kind", list(CANDIDATE_FAULTS))
def test_whatever_the_candidate_does_is_its_own_fault(kind):
    """Everything after the ack is the candidate's: no policy can turn a wrong answer into a dropped
    sample. With the guard off, so the candidate can really do all of it."""
    job = Job(
        code=CANDIDATE_FAULTS[kind],
        units=UNITS,
        entry_point="f",
        guard=False,
        limits=Limits(wall_s=1.5, cpu_s=2),
    )
    r = run(job, retries=0)
    assert r.fault == "candidate" and r.passed == 0, r


def test_the_run_dies_with_its_parent(tmp_path):
    """A parent killed mid-run (a trainer OOM-killed, say) leaves no sandbox process behind."""
    if sandbox.isolation()["launcher"] != "bwrap":
        pytest.skip("only the bubblewrap launcher ties a run to its parent (--die-with-parent)")
    marker = f"7373.{os.getpid()}"
    script = tmp_path / "parent.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            from rlvr.verifiers.sandbox import Job, Limits, run
            print("started", flush=True)
            run(Job(code="import os\\nos.execv('/bin/sleep', ['sleep', '{marker}'])", guard=False,
                    limits=Limits(wall_s=60, cpu_s=60)))
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, env=env)
    assert parent.stdout.readline().strip() == b"started"
    deadline = time.monotonic() + 30
    while not pids_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pids_with(marker), "the sandboxed process never started"
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while pids_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pids_with(marker), "the sandbox outlived its parent"


@pytest.fixture
def tool():
    """A world-readable directory outside the working directory (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="rlvr-tool-"))
    path.chmod(0o755)
    (path / "helper.py").write_text("VALUE = 42\n")
    (path / "helper.py").chmod(0o644)
    yield path
    shutil.rmtree(path)


def test_read_only_paths_are_bound_on_purpose(tool, tmp_path):
    """What a run needs from outside (a user tool's module) is visible read-only, and only when asked."""
    read = f"import sys\nsys.path.insert(0, {str(tool)!r})\nimport helper\nprint(helper.VALUE)"
    write = f"open({str(tool / 'helper.py')!r}, 'w').write('VALUE = 0')"
    if sandbox.isolation()["mount_namespace"]:
        assert run(Job(code=read, guard=False)).status == "failed"  # not bound: not there at all
    for guard in (True, False):
        r = run(Job(code=read, read_only=(str(tool),), guard=guard))
        assert r.status == "ok" and r.stdout == "42\n", r
        assert run(Job(code=write, read_only=(str(tool),), guard=guard)).status == "failed"
    assert (tool / "helper.py").read_text() == "VALUE = 42\n"
    r = run(Job(code="pass", read_only=(str(tmp_path / "missing"),)))
    assert r.status == "infra" and "does not exist" in r.reason
