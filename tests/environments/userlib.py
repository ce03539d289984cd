"""User tools for the tests of `module:function` tools (imported by name, in this process or the sandbox)."""

import time


def lookup(word: str) -> str:
    """Look a word up in a tiny dictionary."""
    return {"cat": "a small feline", "dog": "a loyal canine"}.get(word, "not found")


def area(width: float, height: float) -> dict:
    return {"area": width * height}


def explode(word: str) -> str:
    raise RuntimeError(f"cannot handle {word}")


def slow(word: str) -> str:
    time.sleep(3)
    return word


def sandboxed_product(expression: str) -> str:
    """`a*b` of two integers, as the calculator answers it; it runs only where the environment was scrubbed,
    as in the sandbox (the tests' processes, Ray's included, have PYTHONPATH set): elsewhere it raises."""
    import os

    if "PYTHONPATH" in os.environ:
        raise RuntimeError("called outside the sandbox")
    left, _, right = expression.partition("*")
    return str(int(left) * int(right))
