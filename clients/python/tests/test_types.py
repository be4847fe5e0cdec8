"""The package is fully typed: mypy --strict finds nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from _need import need_module

SRC = Path(__file__).resolve().parents[1] / "src"


def test_mypy_strict(tmp_path: Path) -> None:
    need_module("mypy")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--ignore-missing-imports", "--cache-dir", str(tmp_path),
         str(SRC / "twilioguard")],
        capture_output=True, text=True, timeout=600,
    )
    if result.returncode != 0:
        pytest.fail(f"mypy --strict found problems:\n{result.stdout}{result.stderr}")
