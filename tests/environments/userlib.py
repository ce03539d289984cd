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
