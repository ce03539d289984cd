"""Numeric verifier: a single number, tolerance, units."""

from __future__ import annotations

import pytest

from rlvr.types import Problem
from rlvr.verifiers.numeric import parse_number, verify_numeric

from .helpers import wrap


@pytest.mark.parametrize(
    "text,value,unit",
    [
        ("42", 42, ""),
        ("-2.5", -2.5, ""),
        ("1,234.5", 1234.5, ""),
        ("6.02e23", 6.02e23, ""),
        ("3/4", 0.75, ""),
        (r"\frac{3}{4}", 0.75, ""),
        (r"-\frac{1}{2}", -0.5, ""),
        ("12 km", 12, "km"),
        (r"9.8 \text{m/s^2}", 9.8, "m/s^2"),
    ],
)
def test_parse_number(text, value, unit):
    v, u = parse_number(text)
    assert float(v) == pytest.approx(value) and u == unit


@pytest.mark.parametrize("text", ["3 or 4", "1, 2", "2*21", "x", "1/0"])
def test_not_one_number(text):
    with pytest.raises(ValueError):
        parse_number(text)


def test_tolerance():
    p = Problem("n", "", 3.14159, "numeric")
    assert verify_numeric(p, wrap("3.14159")).correct
    assert not verify_numeric(p, wrap("3.14")).correct
    assert verify_numeric(p, wrap("3.14"), rel_tol=1e-3).correct
    assert verify_numeric(Problem("n", "", 0, "numeric"), wrap("1e-12")).correct


def test_units():
    p = Problem("n", "", {"value": 2, "unit": "m"}, "numeric")
    assert verify_numeric(p, wrap("2 m")).correct
    assert verify_numeric(p, wrap("2")).correct
    assert not verify_numeric(p, wrap("2"), require_unit=True).correct
    assert "not accepted" in verify_numeric(p, wrap("2 kg")).details["reason"]
    assert verify_numeric(p, wrap("200 cm"), units={"cm": 0.01}).correct
