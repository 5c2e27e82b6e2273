"""Quantization parameters never carry a negative zero (shown as "zp -0" otherwise)."""

from __future__ import annotations

import math

from hailo_ort.quant import QuantInfo, quant_from_range


def test_range_from_zero_gives_a_positive_zero_point():
    q = quant_from_range(0.0, 1.0)  # -lo / scale is -0.0 here
    assert q.zp == 0.0 and math.copysign(1.0, q.zp) == 1.0
    assert q.scale == 1.0 / 255


def test_to_dict_writes_no_negative_zero():
    d = QuantInfo(zp=-0.0, scale=0.5, zps=[-0.0, 3.0], scales=[0.5, 0.5]).to_dict()
    assert math.copysign(1.0, d["zp"]) == 1.0
    assert [math.copysign(1.0, v) for v in d["zps"]] == [1.0, 1.0]
    assert f"{d['zp']:g}" == "0"
