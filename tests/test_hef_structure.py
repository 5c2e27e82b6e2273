"""Structures the real fixtures do not contain, in synthetic HEFs: multi-context groups,
partial network groups, net-flow NMS ops, mux and planes edge layers, per-feature scales.

The bodies are written with the reader's own message types (whose field numbers the real
fixtures check), wrapped in headers by the independent encoder of ``_hef_testdata``.
"""

from __future__ import annotations

import warnings

import pytest
from _hef_testdata import build_hef

import hailo_ort.hef as hef_mod
from hailo_ort.hef import HefWarning
from hailo_ort.hef.schema import message_class

BOUNDARY, INTERMEDIATE = 0, 1
H2D, D2H = 0, 1


def _new_hef(name: str = "net", hw_arch: int = 3, periph: bool = True):
    msg = message_class("HefFile")()
    msg.header.hw_arch = hw_arch
    msg.header.sdk_version = b"3.31.0"
    if periph:
        msg.extensions.add(
            type_index=26,
            name=b"Periph configuration calculated in HailoRT (PERIPH_CALCULATION_IN_HAILORT)",
        )
    ng = msg.network_groups.add()
    ng.network_group_metadata.network_group_name = name.encode()
    return msg, ng


def _edge(ctx, name, direction, shape=(8, 8, 4), fmt=1, connection=BOUNDARY, pad=None, **q):
    e = ctx.metadata.edge_layers.add(direction=direction)
    e.context_switch_info.edge_connection_type = connection
    if pad is not None:
        e.pad_index = pad
    _fill_info(e.layer_info, name, shape, fmt, **q)
    return e


def _fill_info(info, name, shape, fmt=1, zp=0.0, scale=1.0, lo=0.0, hi=255.0, data_bytes=1):
    info.name = name.encode()
    b = info.edge_layer_base
    b.height, b.width, b.features = shape
    b.format = fmt
    b.data_bytes = data_bytes
    info.numeric_info.qp_zp = zp
    info.numeric_info.qp_scale = scale
    info.numeric_info.limvals_min = lo
    info.numeric_info.limvals_max = hi


def _read(msg):
    return hef_mod.read(build_hef(msg.SerializeToString(), 0))


def test_multi_context_dedupes_boundary_streams_and_skips_intermediate():
    msg, ng = _new_hef()
    for i in range(3):
        ctx = ng.contexts.add(context_index=i)
        if i == 0:
            _edge(ctx, "net/input_layer1", H2D, (16, 16, 3))
        _edge(ctx, f"net/inter{i}", D2H, connection=INTERMEDIATE)
        _edge(ctx, "net/out", D2H, (1, 1, 10), fmt=2, data_bytes=2, zp=3, scale=0.5)
        if i == 2:
            _edge(ctx, "net/out", D2H, (1, 1, 10), fmt=2, data_bytes=2)  # repeated
    ng.sorted_outputs_order.append(b"net/out")
    hef = _read(msg)
    g = hef.network_group("net")
    assert g.contexts == 3 and g.is_multi_context
    assert [s.name for s in g.inputs] == ["net/input_layer1"]
    assert [s.name for s in g.outputs] == ["net/out"]
    out = g.outputs[0]
    assert out.format_type == "UINT16" and out.dtype == "uint16"
    assert out.format_order == "NC" and out.quant.zp == 3 and out.quant.scale == 0.5
    assert hef.hw_arch_name == "HAILO8L" and hef.runs_on("HAILO8L")


def test_outputs_follow_sorted_outputs_order():
    msg, ng = _new_hef()
    ctx = ng.contexts.add()
    _edge(ctx, "net/in", H2D)
    for n in ("a", "b", "c", "d"):
        _edge(ctx, f"net/{n}", D2H)
    ng.sorted_outputs_order.extend([b"net/c", b"net/a", b"net/d", b"net/b"])
    g = _read(msg).network_group()
    assert [o.name for o in g.outputs] == ["net/c", "net/a", "net/d", "net/b"]


def test_name_comes_from_partial_network_group():
    msg, ng = _new_hef(name="outer")
    part = ng.partial_network_groups.add().network_group
    part.network_group_metadata.network_group_name = b"inner"
    ctx = part.contexts.add()
    _edge(ctx, "inner/in", H2D)
    _edge(ctx, "inner/out", D2H)
    g = _read(msg).network_group()
    assert g.name == "inner"
    assert [s.name for s in g.inputs] == ["inner/in"]
    assert [s.name for s in g.outputs] == ["inner/out"]


def test_per_feature_scales_kept_when_they_differ():
    msg, ng = _new_hef()
    ctx = ng.contexts.add()
    _edge(ctx, "net/in", H2D)
    e = _edge(ctx, "net/out", D2H, (2, 2, 3))
    e.layer_info.numeric_info.qp_scales.extend([0.1, 0.2, 0.3])
    e.layer_info.numeric_info.qp_zps.extend([1, 2, 3])
    e2 = _edge(ctx, "net/uniform", D2H, (2, 2, 3))
    e2.layer_info.numeric_info.qp_scales.extend([0.5, 0.5, 0.5])
    e2.layer_info.numeric_info.qp_zps.extend([7, 7, 7])
    outs = {o.name: o for o in _read(msg).network_group().outputs}
    q = outs["net/out"].quant
    assert q.per_feature
    assert q.scales == pytest.approx([0.1, 0.2, 0.3]) and q.zps == [1, 2, 3]
    assert not outs["net/uniform"].quant.per_feature  # uniform lists are per-tensor


def test_transposed_layer_swaps_height_and_width():
    msg, ng = _new_hef()
    ctx = ng.contexts.add()
    e = _edge(ctx, "net/in", H2D, (10, 20, 3))
    e.layer_info.transposed = True
    assert _read(msg).network_group().inputs[0].shape == (20, 10, 3)


def _nms_hef(connected: bool = True):
    msg, ng = _new_hef(name="yolov8n")
    core = ng.ops.add(name=b"core")
    core_ng = core.core_op
    ctx = core_ng.contexts.add()
    _edge(ctx, "yolov8n/input_layer1", H2D, (640, 640, 3))
    _edge(ctx, "yolov8n/conv41", D2H, (80, 80, 64), pad=1)
    _edge(ctx, "yolov8n/conv42", D2H, (80, 80, 80), pad=2)
    _edge(ctx, "yolov8n/extra", D2H, (1, 1, 4), pad=3)
    nms = ng.ops.add(name=b"nms")
    nms.input_pads.add(index=11, name=b"reg")
    nms.input_pads.add(index=12, name=b"cls")
    nms.output_pads.add(index=13, name=b"yolov8_nms_postprocess")
    nms.nms_op.nms_score_th = 0.2
    nms.nms_op.nms_iou_th = 0.7
    nms.nms_op.max_proposals_per_class = 100
    nms.nms_op.classes = 80
    nms.nms_op.yolov8.image_height = 640
    nms.nms_op.yolov8.image_width = 640
    if connected:
        ng.pad_edges.add(src=1, dst=11)
        ng.pad_edges.add(src=2, dst=12)
    return msg


def test_netflow_nms_op_replaces_the_outputs_it_consumes():
    hef = _read(_nms_hef())
    g = hef.network_group()
    assert g.name == "yolov8n"
    assert [s.name for s in g.inputs] == ["yolov8n/input_layer1"]
    assert [o.name for o in g.outputs] == ["yolov8n/extra", "yolov8n/yolov8_nms_postprocess"]
    assert g.sorted_output_names == [o.name for o in g.outputs]
    nms_out = g.outputs[1]
    assert nms_out.is_nms and nms_out.format_type == "FLOAT32"
    assert nms_out.format_order == "HAILO_NMS_BY_CLASS"
    assert nms_out.nms_classes == 80 and nms_out.nms_max_bboxes_per_class == 100
    (op,) = [o for o in g.ops if o.kind == "nms"]
    assert op.input_streams == ["yolov8n/conv41", "yolov8n/conv42"]
    assert op.output_name == "yolov8n/yolov8_nms_postprocess"
    assert op.nms.meta_arch == "yolov8"
    assert op.nms.classes == 80 and op.nms.max_proposals_per_class == 100
    assert op.nms.score_threshold == pytest.approx(0.2)
    assert op.nms.iou_threshold == pytest.approx(0.7)
    assert op.nms.image_height == 640
    assert [o.kind for o in g.ops] == ["core", "nms"]


def test_unconnected_nms_op_keeps_core_outputs_and_warns():
    with pytest.warns(HefWarning, match="not connected"):
        hef = _read(_nms_hef(connected=False))
    names = [o.name for o in hef.network_group().outputs]
    assert "yolov8n/conv41" in names and "yolov8n/yolov8_nms_postprocess" in names


def test_mux_layer_exposes_its_predecessors():
    msg, ng = _new_hef()
    ctx = ng.contexts.add()
    _edge(ctx, "net/in", H2D)
    e = ctx.metadata.edge_layers.add(direction=D2H, edge_layer_type=1)
    e.context_switch_info.edge_connection_type = BOUNDARY
    e.layer_mux.name = b"net/mux"
    for n in ("p0", "p1"):
        _fill_info(e.layer_mux.predecessors.add().layer_info, f"net/{n}", (4, 4, 2))
    g = _read(msg).network_group()
    assert [o.name for o in g.outputs] == ["net/p0", "net/p1"]


def test_planes_input_is_one_stream():
    msg, ng = _new_hef()
    ctx = ng.contexts.add()
    e = ctx.metadata.edge_layers.add(direction=H2D, edge_layer_type=2)
    e.context_switch_info.edge_connection_type = BOUNDARY
    p = e.layer_planes
    p.name = b"net/input_layer1"
    p.planes_format = 0
    p.height, p.width, p.features = 480, 640, 3
    _fill_info(p.planes.add().layer_info, "net/y", (480, 640, 1))
    _fill_info(p.planes.add().layer_info, "net/uv", (240, 320, 2))
    _edge(ctx, "net/out", D2H)
    (inp,) = _read(msg).network_group().inputs
    assert inp.name == "net/input_layer1"
    assert inp.format_order == "NV12" and inp.shape == (480, 640, 3)


def test_unreadable_edge_layer_is_skipped_with_a_warning():
    msg, ng = _new_hef()
    ctx = ng.contexts.add()
    _edge(ctx, "net/in", H2D)
    e = ctx.metadata.edge_layers.add(direction=D2H)  # no layer_info / mux / planes
    e.context_switch_info.edge_connection_type = BOUNDARY
    e2 = ctx.metadata.edge_layers.add(direction=D2H, edge_layer_type=1)
    e2.context_switch_info.edge_connection_type = BOUNDARY
    e2.layer_mux.name = b"net/empty_mux"
    _edge(ctx, "net/out", D2H)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hef = _read(msg)
    assert [o.name for o in hef.network_group().outputs] == ["net/out"]
    assert any("unknown kind" in w for w in hef.warnings)
    assert any("net/empty_mux" in w for w in hef.warnings)
    assert len([w for w in caught if issubclass(w.category, HefWarning)]) == len(hef.warnings)


def test_unknown_format_code_is_reported_not_fatal():
    msg, ng = _new_hef()
    ctx = ng.contexts.add()
    _edge(ctx, "net/in", H2D, fmt=99)
    assert _read(msg).network_group().inputs[0].format_order == "UNKNOWN(99)"


def test_extension_without_a_name_is_recognised_by_index():
    msg, ng = _new_hef(periph=False)
    msg.extensions.add(type_index=26)
    ctx = ng.contexts.add()
    _edge(ctx, "net/in", H2D)
    with warnings.catch_warnings():
        warnings.simplefilter("error", HefWarning)
        hef = _read(msg)
    assert not hef.is_outdated
