"""Per-architecture support tables (data in ``tables/<family>.json``) and the per-node check.

A table says, per ONNX op, whether the Hailo Dataflow Compiler of that family maps it to the
device and under which constraints. Users extend or override it with ``--ops FILE`` (same schema,
merged over the built-in table). The schema is documented in ``docs/support-tables.md``.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Callable

import numpy as np
import onnx

from ..archs import ARCHS, get_arch
from ..errors import SupportTableError
from .graphindex import GraphIndex, as_int_list, attrs, normalise_axis

SCHEMA_VERSION = 1
FAMILIES = sorted({a.family for a in ARCHS.values()})
_TOP_KEYS = {"schema_version", "family", "archs", "toolchain", "source", "defaults", "ops"}
_ENTRY_KEYS = {"supported", "constraints", "note"}
_DEFAULT_KEYS = {"data_ranks", "dtypes"}


def _is_int_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in v)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


# constraint name → (validator, description for error messages)
_CONSTRAINTS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "data_ranks": (_is_int_list, "a list of ints"),
    "dtypes": (
        lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
        "a list of strings",
    ),
    "constant_inputs": (_is_int_list, "a list of input indices"),
    "kernel_max": (_is_int, "a positive int"),
    "stride_max": (_is_int, "a positive int"),
    "dilation_max": (_is_int, "a positive int"),
    "group": (lambda v: v in ("any", "1", "1_or_depthwise"), '"any", "1" or "1_or_depthwise"'),
    "axis": (
        lambda v: (
            isinstance(v, list)
            and all(x == "last" or (isinstance(x, int) and not isinstance(x, bool)) for x in v)
        ),
        'a list of axes (ints or "last")',
    ),
    "reduce_axes": (
        lambda v: isinstance(v, list) and all(_is_int_list(x) for x in v),
        "a list of lists of ints",
    ),
    "attr_in": (
        lambda v: isinstance(v, dict) and all(isinstance(x, list) for x in v.values()),
        "an object of lists",
    ),
    "attr_defaults": (lambda v: isinstance(v, dict), "an object"),
    "broadcast": (lambda v: v in ("channel", "same"), '"channel" or "same"'),
    "reshape": (lambda v: v == "flatten", '"flatten"'),
    "resize": (lambda v: v == "integer_upscale", '"integer_upscale"'),
    "slice": (lambda v: v == "unit_step_no_batch", '"unit_step_no_batch"'),
    "perms": (
        lambda v: isinstance(v, list) and all(_is_int_list(x) for x in v),
        "a list of permutations",
    ),
}


@dataclass
class OpRule:
    """What the table says about one op."""

    supported: bool
    constraints: dict[str, Any] = field(default_factory=dict)
    note: str = ""


@dataclass
class SupportTable:
    """A support table for one architecture family."""

    family: str
    ops: dict[str, OpRule]
    defaults: dict[str, Any]
    toolchain: str = ""
    source: str = ""
    files: list[str] = field(default_factory=list)  # where it came from (built-in, then --ops)

    def rule(self, node: onnx.NodeProto) -> OpRule | None:
        """The table's rule for ``node``'s op (``domain::op`` outside the ONNX domain); None if unlisted."""
        return self.ops.get(_op_key(node))

    def check(self, node: onnx.NodeProto, gi: GraphIndex) -> tuple[str, str] | None:
        """None when the node can go to the device; else (kind, reason).

        kind is "unsupported", "dynamic" or "constraint"; reason is a one-line explanation.
        """
        return _check_node(self, node, gi)


def _op_key(node: onnx.NodeProto) -> str:
    """The op's key in a table: ``op_type``, or ``domain::op_type`` outside the ONNX domain."""
    return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"


def _table_error(origin: str, problem: str) -> SupportTableError:
    return SupportTableError(f"support table {origin}: {problem}")


def _validate(data: Any, origin: str, *, partial: bool) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise _table_error(origin, "the top level must be a JSON object")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise _table_error(origin, f"unknown key(s) {sorted(unknown)}; valid: {sorted(_TOP_KEYS)}")
    version = data.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise _table_error(
            origin, f"schema_version {version!r} is not supported (expected {SCHEMA_VERSION})"
        )
    if "family" in data and data["family"] not in FAMILIES:
        raise _table_error(
            origin, f"unknown family {data['family']!r}; valid: {', '.join(FAMILIES)}"
        )
    if not partial and "ops" not in data:
        raise _table_error(origin, "missing 'ops'")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise _table_error(origin, "'defaults' must be an object")
    for key, value in defaults.items():
        if key not in _DEFAULT_KEYS:
            raise _table_error(origin, f"unknown default {key!r}; valid: {sorted(_DEFAULT_KEYS)}")
        check, what = _CONSTRAINTS[key]
        if not check(value):
            raise _table_error(origin, f"defaults.{key} must be {what}")
    ops = data.get("ops", {})
    if not isinstance(ops, dict):
        raise _table_error(origin, "'ops' must be an object mapping op type to an entry")
    for op, entry in ops.items():
        where = f"ops.{op}"
        if not isinstance(entry, dict):
            raise _table_error(origin, f"{where} must be an object")
        bad = set(entry) - _ENTRY_KEYS
        if bad:
            raise _table_error(
                origin, f"{where}: unknown key(s) {sorted(bad)}; valid: {sorted(_ENTRY_KEYS)}"
            )
        if "supported" in entry and not isinstance(entry["supported"], bool):
            raise _table_error(origin, f"{where}.supported must be true or false")
        if not partial and "supported" not in entry:
            raise _table_error(origin, f"{where}: missing 'supported'")
        if "note" in entry and not isinstance(entry["note"], str):
            raise _table_error(origin, f"{where}.note must be a string")
        constraints = entry.get("constraints", {})
        if not isinstance(constraints, dict):
            raise _table_error(origin, f"{where}.constraints must be an object")
        for name, value in constraints.items():
            if name not in _CONSTRAINTS:
                raise _table_error(
                    origin,
                    f"{where}: unknown constraint {name!r}; valid: {', '.join(sorted(_CONSTRAINTS))}",
                )
            check, what = _CONSTRAINTS[name]
            if value is not None and not check(value):
                raise _table_error(origin, f"{where}.constraints.{name} must be {what}")
    return data


def _read_json(path: str | os.PathLike[str]) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise _table_error(str(path), "file not found") from None
    except json.JSONDecodeError as exc:
        raise _table_error(
            str(path), f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _table_error(str(path), f"cannot read ({exc})") from None


def builtin_table_data(family: str) -> dict[str, Any]:
    """The built-in table of a family as parsed JSON."""
    if family not in FAMILIES:
        raise _table_error(family, f"unknown family; valid: {', '.join(FAMILIES)}")
    ref = resources.files("hailo_ort.partition").joinpath("tables", f"{family}.json")
    try:
        data = json.loads(ref.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise _table_error(f"built-in {family}.json", f"cannot load ({exc})") from None
    return _validate(data, f"built-in {family}.json", partial=False)


def _merge(base: dict[str, Any], override: dict[str, Any], origin: str) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    if "family" in override and override["family"] != base["family"]:
        raise _table_error(
            origin,
            f"is for family {override['family']!r}, the target arch is of family {base['family']!r}",
        )
    merged["defaults"] = {**base.get("defaults", {}), **override.get("defaults", {})}
    for op, entry in override.get("ops", {}).items():
        current = merged["ops"].get(op)
        if current is None:
            if "supported" not in entry:
                raise _table_error(origin, f"ops.{op}: new op needs 'supported'")
            current = {"supported": entry["supported"], "constraints": {}, "note": ""}
        new = dict(current)
        if "supported" in entry:
            new["supported"] = entry["supported"]
        if "note" in entry:
            new["note"] = entry["note"]
        else:
            new["note"] = (current.get("note", "") + f" [overridden by {origin}]").strip()
        constraints = dict(current.get("constraints", {}))
        for name, value in entry.get("constraints", {}).items():
            if value is None:
                constraints.pop(name, None)
            else:
                constraints[name] = value
        new["constraints"] = constraints
        merged["ops"][op] = new
    return merged


def load_support_table(
    arch_or_family: str, ops: str | os.PathLike[str] | dict[str, Any] | None = None
) -> SupportTable:
    """The support table of an arch (or family), with ``ops`` (a JSON file path or a dict of the
    same schema) merged over it. Malformed tables raise SupportTableError naming the problem."""
    family = arch_or_family if arch_or_family in FAMILIES else get_arch(arch_or_family).family
    data = builtin_table_data(family)
    files = [f"built-in {family}.json"]
    if ops is not None:
        if isinstance(ops, dict):
            origin = "--ops (dict)"
            override = ops
        else:
            origin = os.fspath(ops)
            override = _read_json(origin)
        _validate(override, origin, partial=True)
        data = _merge(data, override, origin)
        files.append(origin)
    rules = {
        op: OpRule(bool(e["supported"]), dict(e.get("constraints", {})), e.get("note", ""))
        for op, e in data["ops"].items()
    }
    return SupportTable(
        family=family,
        ops=rules,
        defaults=dict(data.get("defaults", {})),
        toolchain=data.get("toolchain", ""),
        source=data.get("source", ""),
        files=files,
    )


# --- the per-node check ------------------------------------------------------------------------

_FLOAT_DTYPES_DEFAULT = ["float32", "float16"]


def _softmax_default_axis(gi: GraphIndex) -> int:
    return -1 if gi.opset >= 13 else 1


_AXIS_DEFAULTS: dict[str, Callable[[GraphIndex], int]] = {
    "Softmax": _softmax_default_axis,
    "LogSoftmax": _softmax_default_axis,
    "Split": lambda gi: 0,
    "Flatten": lambda gi: 1,
    "Gather": lambda gi: 0,
    "LayerNormalization": lambda gi: -1,
    "Concat": lambda gi: 0,
}


def _check_node(
    table: SupportTable, node: onnx.NodeProto, gi: GraphIndex
) -> tuple[str, str] | None:
    op = _op_key(node)
    rule = table.ops.get(op)
    if rule is None:
        return "unsupported", f"unsupported op: {op} is not in the {table.family} support table"
    if not rule.supported:
        note = f" ({rule.note})" if rule.note else ""
        inner = _subgraph_size(node)
        body = f" with subgraphs of {inner} nodes" if inner else ""
        return "unsupported", f"unsupported op: {op}{body} is not supported on {table.family}{note}"
    c = {**table.defaults, **rule.constraints}
    data_in = gi.data_inputs(node)
    outs = [o for o in node.output if o]
    for t in data_in + outs:
        if gi.shape(t) is None:
            return "dynamic", f"dynamic shape: tensor {t!r} has no static shape"
    dtypes = c.get("dtypes", _FLOAT_DTYPES_DEFAULT)
    for t in data_in + outs:
        dt = gi.dtype(t)
        if dt is not None and dt not in dtypes:
            return (
                "constraint",
                f"constraint violated: tensor {t!r} is {dt}, the device takes {'/'.join(dtypes)}",
            )
    if not data_in:
        return "constraint", "constraint violated: no non-constant input (constant computation)"
    ranks = c.get("data_ranks")
    if ranks:
        for t in data_in + outs:
            r = len(gi.shape(t) or [])
            if r not in ranks:
                return (
                    "constraint",
                    f"constraint violated: {op} on a {r}-D tensor {t!r} (device takes {_or(ranks)}-D)",
                )
    a = attrs(node)
    for idx in c.get("constant_inputs", []):
        if idx < len(node.input) and node.input[idx] and not gi.is_constant(node.input[idx]):
            return (
                "constraint",
                f"constraint violated: input {idx} of {op} ({node.input[idx]!r}) must be a constant",
            )
    rank = len(gi.shape(data_in[0]) or [])
    problem = _check_constraints(op, node, a, c, gi, data_in, rank)
    if problem:
        return "constraint", f"constraint violated: {problem}"
    return None


def _subgraph_size(node: onnx.NodeProto) -> int:
    """Nodes inside the subgraphs of a control-flow node (If/Loop/Scan), recursively."""
    total = 0
    for attr in node.attribute:
        graphs = ([attr.g] if attr.HasField("g") else []) + list(attr.graphs)
        for g in graphs:
            total += len(g.node) + sum(_subgraph_size(n) for n in g.node)
    return total


def _or(values: list[Any]) -> str:
    return "/".join(str(v) for v in values)


def _kernel(node: onnx.NodeProto, a: dict[str, Any], gi: GraphIndex) -> list[int]:
    if "kernel_shape" in a:
        return list(a["kernel_shape"])
    if node.op_type in ("Conv", "ConvTranspose") and len(node.input) > 1:
        w = gi.shape(node.input[1])
        if w:
            return w[2:]
    return []


def _check_constraints(
    op: str,
    node: onnx.NodeProto,
    a: dict[str, Any],
    c: dict[str, Any],
    gi: GraphIndex,
    data_in: list[str],
    rank: int,
) -> str | None:
    if "kernel_max" in c:
        k = _kernel(node, a, gi)
        if k and max(k) > c["kernel_max"]:
            return f"{op} kernel {'x'.join(map(str, k))} exceeds {c['kernel_max']}"
    if "stride_max" in c and a.get("strides") and max(a["strides"]) > c["stride_max"]:
        return f"{op} stride {a['strides']} exceeds {c['stride_max']}"
    if "dilation_max" in c and a.get("dilations") and max(a["dilations"]) > c["dilation_max"]:
        return f"{op} dilation {a['dilations']} exceeds {c['dilation_max']}"
    if "group" in c and c["group"] != "any":
        group = int(a.get("group", 1))
        if group != 1:
            in_shape = gi.shape(data_in[0]) or []
            channels = in_shape[1] if len(in_shape) > 1 else None
            w = gi.shape(node.input[1]) if len(node.input) > 1 else None
            depthwise = channels == group and (w is None or w[1] == 1)
            if c["group"] == "1" or not depthwise:
                return f"{op} group={group} (only {'1' if c['group'] == '1' else '1 or depthwise'})"
    defaults = c.get("attr_defaults", {})
    for name, allowed in c.get("attr_in", {}).items():
        if name in a:
            value = a[name]
        elif name in defaults:
            value = defaults[name]
        else:
            continue  # absent, no default given in the table: the ONNX default applies
        if value not in allowed:
            return f"{op} {name}={value!r} (allowed: {_or(allowed)})"
    if "axis" in c:
        if "axis" in a:
            axis = int(a["axis"])
        elif op in _AXIS_DEFAULTS:
            axis = _AXIS_DEFAULTS[op](gi)
        else:
            axis = 0
        norm = normalise_axis(axis, rank)
        allowed = [rank - 1 if x == "last" else normalise_axis(x, rank) for x in c["axis"]]
        if norm not in allowed:
            return f"{op} axis={axis} on a {rank}-D tensor (allowed: {_or(c['axis'])})"
    if "reduce_axes" in c:
        axes: list[int] | None = a.get("axes")
        if axes is None and len(node.input) > 1 and node.input[1]:
            value = gi.const_value(node.input[1])
            if value is None:
                return f"{op} axes are not constant"
            axes = as_int_list(value)
        if not axes:
            if int(a.get("noop_with_empty_axes", 0)):
                return None
            axes = list(range(rank))
        norm_axes = sorted({normalise_axis(int(x), rank) for x in axes})
        if norm_axes not in [sorted(x) for x in c["reduce_axes"]]:
            return (
                f"{op} over axes {norm_axes} (allowed: {' or '.join(map(str, c['reduce_axes']))})"
            )
    if c.get("broadcast"):
        problem = _check_broadcast(op, node, gi, c["broadcast"])
        if problem:
            return problem
    if c.get("reshape") == "flatten":
        src = gi.shape(data_in[0]) or []
        dst = gi.shape(node.output[0]) or []
        flatten = len(src) == 4 and len(dst) == 2 and dst[0] == src[0]
        unflatten = len(src) == 2 and len(dst) == 4 and dst[:2] == src and dst[2:] == [1, 1]
        if not (flatten or unflatten):
            return f"{op} {src} → {dst} (only flattening 4-D → [N, C·H·W] or [N, C] → [N, C, 1, 1])"
    if c.get("resize") == "integer_upscale":
        src = gi.shape(data_in[0]) or []
        dst = gi.shape(node.output[0]) or []
        if len(src) != 4 or len(dst) != 4 or src[:2] != dst[:2]:
            return f"{op} {src} → {dst} (only spatial resizing of 4-D maps)"
        if any(d < s or d % s for s, d in zip(src[2:], dst[2:])):
            return f"{op} {src[2:]} → {dst[2:]} (only integer upscale factors)"
    if c.get("slice") == "unit_step_no_batch":
        starts = gi.const_value(node.input[1]) if len(node.input) > 1 else None
        axes_v = gi.const_value(node.input[3]) if len(node.input) > 3 and node.input[3] else None
        steps_v = gi.const_value(node.input[4]) if len(node.input) > 4 and node.input[4] else None
        if starts is None and "starts" in a:
            axes_v = np.array(a.get("axes", range(len(a["starts"]))))
        n = len(as_int_list(starts)) if starts is not None else len(a.get("starts", []))
        axes_l = as_int_list(axes_v) if axes_v is not None else list(range(n))
        if any(normalise_axis(x, rank) == 0 for x in axes_l):
            return f"{op} over the batch axis"
        if steps_v is not None and any(s != 1 for s in as_int_list(steps_v)):
            return f"{op} with steps {as_int_list(steps_v)} (only step 1)"
    if "perms" in c:
        perm = list(a.get("perm", list(reversed(range(rank)))))
        if perm not in c["perms"]:
            return f"{op} perm={perm} (allowed: {c['perms']})"
    return None


def _check_broadcast(op: str, node: onnx.NodeProto, gi: GraphIndex, mode: str) -> str | None:
    ins = [t for t in node.input if t]
    data = [t for t in ins if not gi.is_constant(t)]
    consts = [t for t in ins if gi.is_constant(t)]
    out_shape = gi.shape(node.output[0]) or []
    for t in data:
        shape = gi.shape(t)
        if shape == out_shape:
            continue
        # a per-channel map [N, C, 1, 1] scaling a feature map (squeeze-and-excitation)
        if mode == "channel" and shape and len(shape) == len(out_shape) == 4:
            if shape[:2] == out_shape[:2] and shape[2:] == [1, 1]:
                continue
        return f"{op} broadcasts {shape} to {out_shape} (only same-shape or per-channel maps)"
    if mode == "same":
        for t in consts:
            if gi.shape(t) != out_shape:
                return f"{op} with a constant of shape {gi.shape(t)} (only same shape)"
        return None
    channels = out_shape[1] if len(out_shape) > 1 else None
    for t in consts:
        shape = gi.shape(t) or []
        size = int(np.prod(shape)) if shape else 1
        if size == 1:
            continue
        # per-channel: all dims 1 except the one aligned with axis 1 of the output
        aligned = [1] * (len(out_shape) - len(shape)) + list(shape)
        if (
            len(aligned) == len(out_shape)
            and channels
            and all(d == 1 for i, d in enumerate(aligned) if i != 1)
            and aligned[1] == channels
        ):
            continue
        return f"{op} with a constant of shape {shape} on {out_shape} (only scalar or per-channel)"
    return None
