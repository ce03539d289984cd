"""`rlvr.pyast.parse`: threads parse one at a time (CPython 3.11's AST constructor state is shared between
threads: python/cpython#106905), and the code verifier parses through it."""

from __future__ import annotations

import ast
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import rlvr.pyast
from rlvr.verifiers.code import split_tests


def test_parses_in_many_threads_run_one_at_a_time(monkeypatch):
    inside, most, lock = 0, 0, threading.Lock()
    real = ast.parse

    def slow_parse(source, mode="exec"):
        nonlocal inside, most
        with lock:
            inside += 1
            most = max(most, inside)
        time.sleep(0.002)  # long enough for the other threads to arrive
        with lock:
            inside -= 1
        return real(source, mode=mode)

    monkeypatch.setattr(rlvr.pyast, "_ast_parse", slow_parse)
    with ThreadPoolExecutor(8) as pool:
        trees = list(pool.map(lambda i: rlvr.pyast.parse(f"x = {i}"), range(64)))
    assert most == 1
    assert [t.body[0].value.value for t in trees] == list(range(64))
    # the code verifier's test splitting goes through it
    units = split_tests("import math\nassert math.pi > 3\n")
    assert most == 1 and [u["test"] for u in units] == [False, True]
