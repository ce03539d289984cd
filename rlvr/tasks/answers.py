"""Is a reference answer usable by the verifier it names? One check for dataset rows and mined questions.

The check is the verifier itself: the reference, written as a perfect completion
(`<think></think><answer>REFERENCE</answer>`), must score correct. An answer that the verifier cannot
parse (a math expression math-verify rejects, "twelve" for `numeric`, "AB" for `choice`) fails it.
Verifiers whose reference is not itself an answer (`countdown`: a target and numbers, `code`: tests) get a
structural check instead.
"""

from __future__ import annotations

import string
from typing import Any

from rlvr.types import Problem
from rlvr.verifiers import VERIFIERS, VerifierError, get_verifier

SCALAR_TYPES: dict[str, tuple[type, ...]] = {
    "integer": (int, str),
    "math": (int, float, str),
    "numeric": (int, float, str, dict),
    "exact": (int, float, str, list),
    "choice": (int, str),
    "countdown": (dict,),
    "code": (dict, str),
}
TYPE_WORDS = {int: "an integer", float: "a number", str: "a string", dict: "a mapping", list: "a list"}


def render_answer(verifier: str, answer: Any) -> str | None:
    """The reference as a model would write it inside `<answer>`; None when it cannot be written."""
    if verifier == "numeric" and isinstance(answer, dict):
        return f"{answer.get('value')} {answer.get('unit', '') or ''}".strip()
    if verifier == "exact" and isinstance(answer, list):
        return str(answer[0]) if answer else None
    if verifier == "choice" and isinstance(answer, int):
        return string.ascii_uppercase[answer] if 0 <= answer < 26 else None
    if verifier in ("countdown", "code", "format"):
        return None
    return str(answer)


def _structure_error(verifier: str, answer: Any) -> str | None:
    if verifier == "countdown":
        ok = (
            isinstance(answer.get("target"), int)
            and isinstance(answer.get("numbers"), list)
            and all(isinstance(n, int) and not isinstance(n, bool) for n in answer["numbers"])
        )
        return None if ok else 'expected {"target": int, "numbers": [int, ...]}'
    if verifier == "code":
        from rlvr.verifiers.code import BadTestsError, split_tests

        if isinstance(answer, str):
            answer = {"tests": answer}
        if "io" in answer:
            cases = answer["io"]
            ok = (
                isinstance(cases, list) and cases and all(isinstance(c, dict) and "input" in c for c in cases)
            )
            return None if ok else 'expected {"io": [{"input": ..., "output": ...}, ...]}'
        if "tests" not in answer:
            return 'expected {"tests": ..., "entry_point": ...} or {"io": [...]}'
        try:
            split_tests(answer["tests"], answer.get("entry_point"))
        except BadTestsError as e:
            return str(e)
    return None


def check_answer(verifier: str, answer: Any, options: dict[str, Any] | None = None) -> str | None:
    """None when `answer` is a reference that `verifier` (with `options`) can check, else why not.

    Wrong types come first ("expected a string or a number, got list"), then the self-check: the reference
    written as a perfect completion must score correct (a verifier that raises on it cannot use it either)."""
    if answer is None or (isinstance(answer, str | list | dict) and not answer):
        return "missing or empty"
    if isinstance(answer, bool):
        return "expected an answer, got a boolean"
    if verifier not in VERIFIERS:
        return f"unknown verifier {verifier!r}; known: {', '.join(sorted(VERIFIERS))}"
    allowed = SCALAR_TYPES.get(verifier)
    if allowed and not isinstance(answer, allowed):
        words = " or ".join(dict.fromkeys(TYPE_WORDS[t] for t in allowed))
        return f"expected {words} for verifier {verifier!r}, got {type(answer).__name__} {answer!r:.60}"
    error = _structure_error(verifier, answer) if isinstance(answer, dict | str) else None
    if error or verifier in ("countdown", "code", "format"):
        return error
    text = render_answer(verifier, answer)
    if text is None:
        return f"cannot be written as an answer for verifier {verifier!r}"
    options = {k: v for k, v in (options or {}).items() if k != "extract"}
    try:
        score = get_verifier(verifier, **options)(Problem("check", "", answer, "check"), f"<answer>{text}</answer>")
    except VerifierError as e:  # the verifier cannot use this reference at all
        return f"verifier {verifier!r} raised on {text!r:.80}: {e.message}"
    if score.correct:
        return None
    reason = score.details.get("reason") or score.details.get("error") or "does not verify against itself"
    return f"verifier {verifier!r} cannot use {text!r:.80}: {reason}"
