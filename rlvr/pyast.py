"""`ast.parse` that threads may call at once. CPython 3.11 keeps the AST constructor's recursion depth in state
shared by the interpreter's threads, and parses running in several threads can trip its consistency check
(`SystemError: AST constructor recursion depth mismatch`, python/cpython#106905): a code verifier parsing tests
in a thread pool then failed on sound tests (seen once in the suite: HumanEval's canonical solutions, 4 threads).
Parsing takes microseconds next to running the tests in the sandbox, so one lock around it costs nothing."""

from __future__ import annotations

import ast
import threading

_LOCK = threading.Lock()
_ast_parse = ast.parse  # (a name of this module's own, so a test can watch the calls)


def parse(source: str, mode: str = "exec") -> ast.AST:
    """`ast.parse(source, mode=mode)`, one thread at a time."""
    with _LOCK:
        return _ast_parse(source, mode=mode)
