"""Shared test fixtures: paths to the real Hailo files in ../shared/fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_FIXTURES = REPO_ROOT.parent / "shared" / "fixtures"


def shared_fixture(relpath: str) -> Path:
    """Path of a file in ../shared/fixtures; skips the test when it is absent."""
    path = SHARED_FIXTURES / relpath
    if not path.exists():
        pytest.skip(f"shared fixture {relpath} not found at {path} (../shared/fixtures is absent)")
    return path
