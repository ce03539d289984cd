"""Does this node score code right under load? `python -m rlvr.verifiers.sandbox.selfcheck`.

Starts `--processes` processes at once (optionally as another, unprivileged uid: `--as-uid`, root only),
each with `--threads` extra idle threads (a trainer's torch and Ray threads) and `--checks / processes`
concurrent code verifications of a correct `add(a, b)`, then of a broken one, then a few attacks, with
the guard on and off. A node that is right scores every correct check 1 and everything else 0; a check
that raised `InfraError` is counted apart (the sandbox's fault, never a score).

Used by `benchmarks/verifiers.py` (the numbers in the README) and by the non-root test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import sysconfig
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ADD = {"tests": "assert add(1, 2) == 3\nassert add(-4, 4) == 0\n", "entry_point": "add"}
SOLUTIONS = {
    "correct": "import time\ndef add(a, b):\n    time.sleep({sleep})\n    return a + b",
    "broken": "import time\ndef add(a, b):\n    time.sleep({sleep})\n    return a - b",
}
# Module-level attacks followed by a correct add(): each must score 0, with the guard on and off.
ATTACKS = {
    "fork bomb": "import os\nwhile True:\n    os.fork()",
    "write outside": "open('/tmp/rlvr-selfcheck-pwned', 'w').write('x')\nraise SystemExit(1)",
    "read /etc/passwd": "assert 'root:' not in open('/etc/passwd').read()\nraise SystemExit(1)",
    "signal the parent": "import os, signal\nos.kill(os.getppid() or 1, signal.SIGKILL)\nraise SystemExit(1)",
    "network": "import socket\nsocket.create_connection(('127.0.0.1', 22), timeout=1)",
}


def _completion(code: str) -> str:
    return f"<think>t</think><answer>```python\n{code}\n```</answer>"


def _score(code: str, guard: bool = True) -> float | str:
    """The reward of `code` against ADD, or "infra" when the sandbox could not run it."""
    from rlvr.verifiers import InfraError, verify_text
    from rlvr.verifiers.code import run_tests

    try:
        if guard:
            return verify_text("code", ADD, _completion(code), format_reward=0.0).reward
        passed, total, _, _ = run_tests(code, ADD, timeout_s=5.0, guard=False)
        return float(passed == total)
    except InfraError:
        return "infra"


def worker(checks: int, threads: int, sleep: float, attacks: bool) -> dict:
    """One process's share: `threads` idle threads first, then `checks` concurrent checks of each kind."""
    from rlvr.verifiers import sandbox

    stop = threading.Event()
    idle = [threading.Thread(target=stop.wait, daemon=True) for _ in range(threads)]
    for t in idle:
        t.start()
    out: dict = {"threads": threading.active_count(), "isolation": sandbox.isolation()["layers"]}
    try:
        with ThreadPoolExecutor(max(1, checks)) as pool:
            for kind, template in SOLUTIONS.items():
                start = time.perf_counter()
                out[kind] = list(pool.map(_score, [template.format(sleep=sleep)] * checks))
                out[f"{kind}_s"] = time.perf_counter() - start
        if attacks:
            tail = "\ndef add(a, b):\n    return a + b\n"
            out["attacks"] = {
                f"{name} ({'guard' if guard else 'os layer'})": _score(body + tail, guard)
                for name, body in ATTACKS.items()
                for guard in (True, False)
            }
    finally:
        stop.set()
    return out


def _child_env(uid: int | None) -> tuple[str, dict]:
    """The interpreter and environment of a child process; for another uid, a world-readable python
    and the project and its packages on PYTHONPATH (the virtualenv's python may live under /root)."""
    project = str(Path(__file__).resolve().parents[3])
    env = {k: v for k, v in os.environ.items() if not k.startswith("RLVR_SANDBOX_POOL")}
    if uid is None:
        return sys.executable, {**env, "PYTHONPATH": project}
    from rlvr.verifiers.sandbox.isolation import _pick_python

    python = _pick_python(root=True)[0]
    paths = [project, sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    home = f"/tmp/rlvr-selfcheck-home-{uid}"
    os.makedirs(home, exist_ok=True)
    os.chown(home, uid, uid)
    env.update(PYTHONPATH=os.pathsep.join(dict.fromkeys(paths)), HOME=home, PYTHONDONTWRITEBYTECODE="1")
    return python, env


def check(
    processes: int,
    checks: int,
    threads: int,
    sleep: float = 0.0,
    as_uid: int | None = None,
    attacks: bool = True,
) -> dict:
    """Run `processes` workers at once (see the module doc) and add up what they scored."""
    python, env = _child_env(as_uid)
    argv = [
        python,
        "-m",
        "rlvr.verifiers.sandbox.selfcheck",
        "--worker",
        "--checks",
        str(checks // processes),
    ]
    argv += ["--threads", str(threads), "--sleep", str(sleep)] + ([] if attacks else ["--no-attacks"])
    user = {"user": as_uid, "group": as_uid, "extra_groups": []} if as_uid is not None else {}
    start = time.perf_counter()
    procs = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd="/", **user)
        for _ in range(processes)
    ]
    outs = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=1800)
        if p.returncode != 0:
            raise RuntimeError(f"selfcheck worker failed ({p.returncode}): {stderr.decode()[-2000:]}")
        outs.append(json.loads(stdout))
    wall = time.perf_counter() - start
    summary = {
        "uid": as_uid if as_uid is not None else os.geteuid(),
        "processes": processes,
        "extra_threads_per_process": threads,
        "wall_s": round(wall, 2),
        "isolation": outs[0]["isolation"],
    }
    for kind in SOLUTIONS:
        scores = [s for o in outs for s in o[kind]]
        summary[kind] = {
            "checks": len(scores),
            "scored_1": sum(s == 1.0 for s in scores),
            "scored_0": sum(s == 0.0 for s in scores),
            "infra_errors": sum(s == "infra" for s in scores),
        }
    if attacks:
        summary["attacks_scored_0"] = {
            k: all(o["attacks"][k] == 0.0 for o in outs) for k in outs[0]["attacks"]
        }
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--processes", type=int, default=4)
    ap.add_argument("--checks", type=int, default=64, help="concurrent checks in all, per solution kind")
    ap.add_argument("--threads", type=int, default=64, help="extra idle threads in each process")
    ap.add_argument("--sleep", type=float, default=0.0, help="seconds each solution sleeps")
    ap.add_argument("--as-uid", type=int, help="run the processes as this uid (root only)")
    ap.add_argument("--no-attacks", action="store_true")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.checks, args.threads, args.sleep, not args.no_attacks)))
        return 0
    summary = check(args.processes, args.checks, args.threads, args.sleep, args.as_uid, not args.no_attacks)
    print(json.dumps(summary, indent=2))
    good = (
        summary["correct"]["scored_1"] == summary["correct"]["checks"]
        and summary["broken"]["scored_0"] == summary["broken"]["checks"]
    )
    return 0 if good and all(summary.get("attacks_scored_0", {}).values()) else 1


if __name__ == "__main__":
    sys.exit(main())
