"""Sandbox basics: modes, isolation report, authenticated results, the pool."""

from __future__ import annotations

import os
import time

from rlvr.verifiers import sandbox
from rlvr.verifiers.sandbox import Job, Limits, run, run_many

UNITS = [{"src": "assert f(2) == 4", "test": True}, {"src": "assert f(3) == 9", "test": True}]


def test_isolation_is_reported():
    iso = sandbox.isolation()
    assert iso["network"] in ("namespace", "interpreter") and sandbox.network_isolation() == iso["network"]
    assert os.path.exists(iso["python"]) and "user" in iso


def test_script_mode_reads_stdin_and_reports_exit_status():
    r = run(Job(code="import sys\nprint(sys.stdin.read().upper())", stdin="hello"))
    assert r.status == "ok" and r.stdout == "HELLO\n"
    r = run(Job(code="import sys\nprint('partial')\nsys.exit(4)"))
    assert r.status == "failed" and r.returncode == 4 and r.stdout == "partial\n"
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


def test_run_many_keeps_order_and_runs_in_parallel():
    jobs = [Job(code=f"import time\ntime.sleep(0.3)\nprint({i})") for i in range(2 * sandbox.pool_size())]
    start = time.monotonic()
    results = run_many(jobs)
    elapsed = time.monotonic() - start
    assert [r.stdout.strip() for r in results] == [str(i) for i in range(len(jobs))]
    assert elapsed < 0.3 * len(jobs) * 0.8  # faster than one after another


def test_without_namespaces_or_uid_change_the_interpreter_guard_still_holds(monkeypatch):
    """The fallback CI may get: no `unshare`, same user. Sockets and writes are refused by the guard."""
    plain = {
        **sandbox.isolation(),
        "prefix": [],
        "uid": None,
        "network": "interpreter",
        "pid_namespace": False,
    }
    monkeypatch.setattr(sandbox, "isolation", lambda: plain)
    assert run(Job(code="print(6 * 7)")).stdout == "42\n"
    r = run(Job(code="import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=1)"))
    assert r.status == "failed" and "socket" in r.stderr
    r = run(Job(code="def f(x):\n    return x * x", units=UNITS, entry_point="f"))
    assert r.status == "ok" and r.tests == [True, True]
    r = run(Job(code="while True:\n    pass", limits=Limits(wall_s=5, cpu_s=1)))
    assert r.status == "killed" and "CPU" in r.reason
