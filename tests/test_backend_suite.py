"""The ONNX backend test suite through hailo_ort.backend vs onnxruntime.backend.

Every case onnxruntime's backend passes on this machine must pass through hailo-ort. Each suite
takes about a minute here, hence ``slow``; run with ``pytest -m slow tests/test_backend_suite.py``.
"""

from __future__ import annotations

import unittest
import warnings

import numpy as np
import pytest

# Suites with local data (OnnxBackendRealModelTest downloads models: left out).
SUITES = (
    "OnnxBackendNodeModelTest",
    "OnnxBackendSimpleModelTest",
    "OnnxBackendPyTorchConvertedModelTest",
    "OnnxBackendPyTorchOperatorModelTest",
)


def _outcomes(backend: object) -> dict[str, str]:
    """Per-case outcome ("pass", "fail", "error", "skip") of the local backend suites on CPU."""
    import onnx.backend.test

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt = onnx.backend.test.BackendTest(backend, "suite")
    result = unittest.TestResult()
    loader = unittest.TestLoader()
    ran: list[str] = []
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        for name in SUITES:
            suite = loader.loadTestsFromTestCase(bt.test_cases[name])
            cpu = unittest.TestSuite(t for t in suite if t.id().endswith("_cpu"))
            ran.extend(t.id().rsplit(".", 1)[-1] for t in cpu)
            cpu.run(result)
    bad = {}
    for test, _ in result.failures:
        bad[test.id().rsplit(".", 1)[-1]] = "fail"
    for test, _ in result.errors:
        bad[test.id().rsplit(".", 1)[-1]] = "error"
    for test, _ in result.skipped:
        bad[test.id().rsplit(".", 1)[-1]] = "skip"
    return {case: bad.get(case, "pass") for case in ran}


@pytest.mark.slow
def test_every_case_onnxruntime_passes_also_passes_through_hailo_ort() -> None:
    import onnxruntime.backend

    import hailo_ort.backend

    reference = _outcomes(onnxruntime.backend)
    ours = _outcomes(hailo_ort.backend)
    assert set(reference) == set(ours)
    passed = [case for case, outcome in reference.items() if outcome == "pass"]
    assert len(passed) > 1000, f"onnxruntime passes only {len(passed)} cases here"
    regressions = sorted(case for case in passed if ours[case] != "pass")
    assert not regressions, f"{len(regressions)} cases pass on onnxruntime only: {regressions[:20]}"
