"""Verifier for the countdown game: reach a target from given numbers with + - * / and parentheses.

The expression is parsed by a small recursive-descent parser over exact fractions (never `eval`). Each
given number may be used at most once; numbers not among those given are refused; division by zero and
over-long or deeply nested expressions are refused.
"""

from __future__ import annotations

import re
from collections import Counter
from fractions import Fraction

from rlvr.types import Problem, Score
from rlvr.verifiers.reply import read_reply

TOKEN_RE = re.compile(r"\s*(?:(\d+)|(.))")
MAX_EXPR_CHARS = 200
MAX_DEPTH = 20


class ExprError(ValueError):
    """The expression is not a valid countdown expression."""


def _tokens(expr: str) -> list[str]:
    out = []
    for num, op in TOKEN_RE.findall(expr):
        if num:
            if not num.isascii():
                raise ExprError(f"non-ASCII digit in {num!r}")
            out.append(num)
        elif op.strip():
            if op not in "+-*/()×÷":
                raise ExprError(f"unexpected character {op!r}")
            out.append({"×": "*", "÷": "/"}.get(op, op))
    return out


def evaluate_expression(expr: str) -> tuple[Fraction, list[int]]:
    """Exact value of an arithmetic expression and the integer literals it uses, in order.

    Grammar: expr := term (('+'|'-') term)* ; term := factor (('*'|'/') factor)* ;
    factor := INT | '(' expr ')'. Unary minus is not allowed (countdown combines the given numbers only).
    """
    if len(expr) > MAX_EXPR_CHARS:
        raise ExprError(f"expression longer than {MAX_EXPR_CHARS} characters")
    toks = _tokens(expr)
    pos = 0
    used: list[int] = []

    def peek() -> str | None:
        return toks[pos] if pos < len(toks) else None

    def take() -> str:
        nonlocal pos
        if pos >= len(toks):
            raise ExprError("expression ends too early")
        pos += 1
        return toks[pos - 1]

    def factor(depth: int) -> Fraction:
        if depth > MAX_DEPTH:
            raise ExprError("expression nested too deeply")
        tok = take()
        if tok == "(":
            value = expr_(depth + 1)
            if take() != ")":
                raise ExprError("missing ')'")
            return value
        if tok.isdigit():
            used.append(int(tok))
            return Fraction(int(tok))
        raise ExprError(f"expected a number or '(', got {tok!r}")

    def term(depth: int) -> Fraction:
        value = factor(depth)
        while peek() in ("*", "/"):
            op = take()
            rhs = factor(depth)
            if op == "/":
                if rhs == 0:
                    raise ExprError("division by zero")
                value /= rhs
            else:
                value *= rhs
        return value

    def expr_(depth: int) -> Fraction:
        value = term(depth)
        while peek() in ("+", "-"):
            op = take()
            rhs = term(depth)
            value = value + rhs if op == "+" else value - rhs
        return value

    result = expr_(0)
    if pos != len(toks):
        raise ExprError(f"unexpected {toks[pos]!r} after the expression")
    return result, used


def verify_countdown(
    problem: Problem, text: str, format_reward: float = 0.1, extract: str = "answer_tag",
    format_style: str = "think_answer",
) -> Score:
    """Reward 1 if the final expression (found by `extract`) uses only the given numbers (each at most
    once) and equals the target; plus `format_reward` for the format (`format_style`). `problem.answer` is
    `{"target": int, "numbers": [int, ...]}`.
    """
    reply = read_reply(text, format_reward, extract, MAX_EXPR_CHARS, style=format_style)
    if reply.answer is None:
        return reply.missing()
    expr = reply.answer.split("=")[0] if reply.answer.count("=") == 1 else reply.answer
    try:
        value, used = evaluate_expression(expr)
    except ExprError as e:
        return reply.zero({"reason": f"bad expression: {e}", "parsed": expr})
    target, numbers = problem.answer["target"], problem.answer["numbers"]
    extra = Counter(used) - Counter(numbers)
    if extra:
        return reply.zero({"reason": f"numbers not available: {sorted(extra.elements())}", "parsed": expr})
    if len(used) == 0:
        return reply.zero({"reason": "no numbers used", "parsed": expr})
    correct = value == target
    details = {"parsed": expr, "value": str(value)}
    if not correct:
        details["reason"] = f"expression equals {value}, not {target}"
    return reply.scored(correct, details)
