"""Exact verifier: configurable normalisation."""

from __future__ import annotations

from rlvr.types import Problem
from rlvr.verifiers.exact import verify_exact

from .helpers import wrap


def test_normalisation_options():
    p = Problem("e", "", "New  York", "exact")
    assert verify_exact(p, wrap("new york")).correct
    assert not verify_exact(p, wrap("new york"), case_sensitive=True).correct
    assert not verify_exact(p, wrap("New York."), whitespace=True).correct
    assert verify_exact(p, wrap('"New York."'), strip_punctuation=True).correct


def test_several_accepted_answers():
    p = Problem("e", "", ["NYC", "New York City"], "exact")
    assert verify_exact(p, wrap("nyc")).correct and verify_exact(p, wrap("new york city")).correct
    assert not verify_exact(p, wrap("NY")).correct
