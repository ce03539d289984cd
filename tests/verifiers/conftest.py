"""Fixtures for the verifier tests."""

from __future__ import annotations

import pytest

from rlvr.verifiers import sandbox


@pytest.fixture
def nobody_sandbox():
    """Skip unless candidates run as an unprivileged uid (needed to test the OS layer without the guard)."""
    if sandbox.isolation()["uid"] is None:
        pytest.skip("sandbox runs as the same user here; the OS layer alone does not protect this host")
    return sandbox.isolation()
