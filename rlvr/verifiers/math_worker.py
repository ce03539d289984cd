"""The math-verify comparison itself, importable without the rest of rlvr (no torch), and the loop of a
worker process: `python math_worker.py` reads `[gold, pred, timeout_s]` JSON lines on stdin and answers
`[ok, reason]` lines on stdout, from its main thread, where math-verify's `signal.alarm` limit works."""

from __future__ import annotations

import json
import sys

_GOLD_CACHE: dict[tuple[str, int], list] = {}
_GOLD_CACHE_MAX = 4096


def _parse(s: str, timeout_s: int) -> list:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    s = s.strip()
    if not (s.startswith("$") or s.startswith("\\(") or s.startswith("\\[")):
        s = f"${s}$"
    config = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    return parse(s, extraction_config=config, parsing_timeout=timeout_s)


def _is_set(value) -> bool:
    from sympy import FiniteSet

    return isinstance(value, FiniteSet) and len(value) > 1


def equivalent_here(gold: str, pred: str, timeout_s: int) -> tuple[bool, str]:
    """Compare in this thread (it must be the main thread for the time limit to work)."""
    from math_verify import verify

    key = (gold, timeout_s)
    gold_parsed = _GOLD_CACHE.get(key)
    if gold_parsed is None:
        gold_parsed = _parse(gold, timeout_s)
        if not gold_parsed:  # the task's fault, not the candidate's: no verdict (rlvr.verifiers.VerifierError)
            raise ValueError(f"the reference answer {gold!r} does not parse as math")
        if len(_GOLD_CACHE) >= _GOLD_CACHE_MAX:
            _GOLD_CACHE.clear()
        _GOLD_CACHE[key] = gold_parsed
    pred_parsed = _parse(pred, timeout_s)
    if not pred_parsed:
        return False, "the answer does not parse as math (or parsing timed out)"
    if verify(gold_parsed, pred_parsed, timeout_seconds=timeout_s):
        return True, ""
    if _is_set(pred_parsed[0]) and not _is_set(gold_parsed[0]):
        return False, f"several candidate answers ({pred_parsed[-1]}) where one is expected"
    return False, "not equivalent to the reference (or the comparison timed out)"


def serve() -> None:
    """Worker loop; a failure is answered `[null, message]` (the caller raises it: no verdict, never a "wrong")
    and the worker keeps serving."""
    for line in sys.stdin:
        gold, pred, timeout_s = json.loads(line)
        try:
            out = equivalent_here(gold, pred, timeout_s)
        except Exception as e:  # noqa: BLE001
            out = (None, f"{type(e).__name__}: {e}")
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    serve()
