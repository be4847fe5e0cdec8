"""Skip a test whose external part is missing, or fail it under CI=true."""

from __future__ import annotations

import os

import pytest

CI = os.environ.get("CI") == "true"


def missing(what: str, how: str) -> None:
    """Skip the calling test (fail it under CI=true) because *what* is missing."""
    message = f"{what} is missing; {how}"
    if CI:
        pytest.fail(f"{message} (CI=true: a missing part is a failure)", pytrace=False)
    pytest.skip(message)


def need_module(name: str) -> None:
    """Skip (fail under CI) when module *name* cannot be imported."""
    try:
        __import__(name)
    except ImportError:
        missing(
            f"Python package {name!r}",
            "run scripts/setup.d/30-python.sh (or scripts/test.sh), which installs "
            "clients/python/requirements-test.txt into a venv",
        )
