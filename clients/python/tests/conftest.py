"""Shared fixtures: the fake service for unit tests, and the real twilioguard
server, web apps and proxy for end-to-end tests (see _e2e.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
# Test the working tree's package, installed or not.
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

from _e2e import (  # noqa: E402,F401  (fixtures)
    account,
    app_factory,
    other_account,
    stoppable_server,
    twilioguard_binary,
    twilioguard_server,
)
from _fake import FakeService  # noqa: E402


@pytest.fixture
def fake_service() -> Iterator[FakeService]:
    """A fake VerifierService on a free loopback port."""
    service = FakeService()
    yield service
    service.close()
