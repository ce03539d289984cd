"""Code verifier: run the candidate program against tests, only ever inside `sandbox`.

`problem.answer` is either
- assert-style (HumanEval, MBPP): `{"tests": "<python source>" | ["<test>", ...], "entry_point": "name"}`.
  Each top-level `assert` (or bare call) of the source is one test, other statements are setup; when the
  source defines `check` and never calls it, `check(candidate)` is the test (HumanEval). The tests call
  the candidate's functions by name or as `candidate` (the entry point);
- stdin/stdout: `{"io": [{"input": "...", "output": "..."}, ...]}`: one sandboxed run per case, the
  output compared here (trailing whitespace ignored unless `exact_output`).

The program is the fenced ```python block inside the final `<answer>` (`extract="answer_tag"`) or the
last such block outside `<think>` (`extract="fenced"`). Reward 1 only if every test passes
(`partial_credit=True`: the fraction passed), plus `format_reward` for a well-formed completion whose
answer holds a code block.

`plain_returns` (default on): what the tests pass to the candidate's functions and what those return
must be plain built-in data (numbers, strings, bytes, None and lists/tuples/dicts/sets of them, exact
types). This stops `__eq__`-always-true results and keeps the tests' own objects out of the candidate's
reach. Tasks whose tests exchange functions or class instances with the candidate set it off.

A run that the sandbox itself could not carry out (after its retries) raises `InfraError`, and tests
that are unusable (they do not parse, hold no test, or `problem.answer` has the wrong shape) raise
`BadTestsError`: neither is the candidate's doing, so such a sample has no reward, not a reward of 0 (see
`sandbox.RunResult.fault` and `rlvr.verifiers.safe_score`).
"""

from __future__ import annotations

import ast
import json
import math

from rlvr.pyast import parse
from rlvr.types import Problem, Score
from rlvr.verifiers.extract import extract_code, is_well_formatted
from rlvr.verifiers.sandbox import InfraError, Job, Limits, RunResult, run, run_many


class BadTestsError(ValueError):
    """The problem's tests cannot be used (a dataset error, not the candidate's)."""


def split_tests(tests: str | list[str], entry_point: str | None = None) -> list[dict]:
    """Test units `{"src", "test"}` in order: each top-level `assert` or bare expression of `tests` is a
    test, anything else (imports, defs, assignments) is setup; a list gives one test per item. When the
    source defines `check` and never calls it, `check(candidate)` is appended as the only test."""
    if isinstance(tests, list):
        return [{"src": str(t), "test": True} for t in tests]
    try:
        tree = parse(tests)
    except SyntaxError as e:
        raise BadTestsError(f"the tests do not parse: {e}") from e
    units, defines_check = [], False
    for node in tree.body:
        is_test = isinstance(node, ast.Assert | ast.Expr) and not (
            isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        )
        defines_check |= isinstance(node, ast.FunctionDef) and node.name == "check"
        units.append({"src": ast.get_source_segment(tests, node) or ast.unparse(node), "test": is_test})
    if defines_check and not any(u["test"] for u in units):
        if not entry_point:
            raise BadTestsError("the tests define check(candidate) but the problem has no entry_point")
        units.append({"src": "check(candidate)", "test": True})
    if not any(u["test"] for u in units):
        raise BadTestsError("the tests contain no assert statement or check() call")
    return units


def _normalise_output(s: str) -> str:
    return "\n".join(line.rstrip() for line in s.strip("\n").splitlines()).rstrip()


def _spec(answer) -> dict:
    if isinstance(answer, str):
        try:
            answer = json.loads(answer)
        except json.JSONDecodeError as e:
            raise BadTestsError("problem.answer is a string that is not JSON") from e
    if not isinstance(answer, dict) or not ({"tests", "io"} & set(answer)):
        raise BadTestsError('problem.answer must be {"tests": ..., "entry_point": ...} or {"io": [...]}')
    return answer


def _raise_infra(results: list[RunResult]) -> None:
    bad = next((r for r in results if r.status == "infra"), None)
    if bad is not None:
        raise InfraError(f"the sandbox could not run the candidate ({bad.attempts} attempts): {bad.reason}")


def run_tests(
    code: str,
    answer: dict,
    *,
    timeout_s: float = 10.0,
    memory_mb: int = 1024,
    plain_returns: bool = True,
    exact_output: bool = False,
    max_output: int = 1 << 20,
    guard: bool = True,
) -> tuple[int, int, str, dict]:
    """Run `code` against the tests in `answer` (see module doc); returns (passed, total, reason, extra).
    Raises `InfraError` when the sandbox could not run it, `BadTestsError` when the tests are unusable.
    `guard=False` switches the in-interpreter audit hook off: only to test the OS layers alone."""
    spec = _spec(answer)
    limits = Limits(
        wall_s=timeout_s, cpu_s=max(1, math.ceil(timeout_s)), memory_mb=memory_mb, max_output=max_output
    )
    if "io" in spec:
        cases = spec["io"]
        if not cases:
            raise BadTestsError("the io test list is empty")
        results = run_many(
            [Job(code=code, stdin=str(c.get("input", "")), limits=limits, guard=guard) for c in cases]
        )
        _raise_infra(results)
        passed, reason = 0, ""
        for i, (case, r) in enumerate(zip(cases, results)):
            want, got = str(case.get("output", "")), r.stdout
            ok = r.status == "ok" and (
                got == want if exact_output else _normalise_output(got) == _normalise_output(want)
            )
            passed += ok
            if not ok and not reason:
                reason = f"case {i}: " + (r.reason if r.status != "ok" else "wrong output")
        first_bad = next((r for r in results if r.status != "ok"), results[0])
        return passed, len(cases), reason, {"stderr": first_bad.stderr[-500:]}
    units = split_tests(spec["tests"], spec.get("entry_point"))
    r: RunResult = run(
        Job(
            code=code,
            units=units,
            entry_point=spec.get("entry_point"),
            plain_returns=plain_returns,
            limits=limits,
            guard=guard,
        )
    )
    _raise_infra([r])
    total = sum(u["test"] for u in units)
    return r.passed, total, r.reason, {"status": r.status, "stderr": r.stderr[-500:]}


def verify_code(
    problem: Problem,
    text: str,
    format_reward: float = 0.1,
    extract: str = "answer_tag",
    partial_credit: bool = False,
    timeout_s: float = 10.0,
    memory_mb: int = 1024,
    plain_returns: bool = True,
    exact_output: bool = False,
    max_code_chars: int = 100_000,
    format_style: str = "think_answer",
) -> Score:
    """Reward 1 if the candidate's code passes every test of `problem.answer` in the sandbox (or the
    fraction passed with `partial_credit`), plus `format_reward` for the format. Raises `InfraError` (the
    sandbox's fault) and `BadTestsError` (the problem's tests are unusable: through `safe_score` a
    `VerifierError`), never for the candidate's doing; either way the sample has no reward, not a 0."""
    ext = extract_code(text, extract, max_code_chars)
    formatted = (
        is_well_formatted(text, format_style) and extract_code(text, "answer_tag", max_code_chars).answer is not None
    )
    bonus = format_reward if formatted else 0.0
    if ext.answer is None:
        return Score(bonus, False, formatted, {"reason": ext.reason})
    passed, total, reason, extra = run_tests(
        ext.answer,
        problem.answer,
        timeout_s=timeout_s,
        memory_mb=memory_mb,
        plain_returns=plain_returns,
        exact_output=exact_output,
    )
    # A program that passed its tests but then hung, crashed or was killed (a forked child that reported the
    # passes while the parent ran into the wall limit, say) did not pass: the io path asks the same of each case.
    ended = extra.get("status", "ok") == "ok"
    correct = total > 0 and passed == total and ended
    credited = passed if ended else min(passed, total - 1)  # partial credit is never full for such a run
    value = 1.0 if correct else (credited / total if partial_credit and total else 0.0)
    details = {"passed": passed, "total": total, **extra}
    if not correct:
        details["reason"] = reason or (f"{total - passed} of {total} tests failed" if passed < total
                                       else f"the program did not end cleanly ({extra.get('status')})")
    return Score(value + bonus, correct, formatted, details)
