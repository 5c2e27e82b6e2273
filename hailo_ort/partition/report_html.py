"""Self-contained HTML report of an inspection: summary tables and an inline SVG of the graph,
laid out in layers by topological depth and coloured by placement (no external resources)."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from .graphindex import GraphIndex

if TYPE_CHECKING:
    from .inspect import InspectResult

# Device partitions in cool colours, CPU reasons in warm or neutral ones, each easy to tell apart.
_PARTITION_COLOURS = ["#2e7d32", "#1565c0", "#6a1b9a", "#00838f", "#558b2f", "#4527a0", "#283593"]
_CPU_COLOURS = {
    "pre-processing": "#ef6c00",
    "post-processing": "#fdd835",
    "unsupported op": "#c62828",
    "constraint violated": "#f48fb1",
    "dynamic shape": "#8d6e63",
    "cycle avoidance": "#4e342e",
    "too small a partition": "#bdbdbd",
}
_CPU_DEFAULT = "#757575"


def _cpu_category(reason: str) -> str:
    return reason.split(":", 1)[0]


def _cpu_colour(reason: str) -> str:
    return _CPU_COLOURS.get(_cpu_category(reason), _CPU_DEFAULT)


def _text_colour(fill: str) -> str:
    """Black or white, whichever reads better on ``fill`` (``#rrggbb``)."""
    r, g, b = (int(fill[i : i + 2], 16) for i in (1, 3, 5))
    return "#111" if 0.299 * r + 0.587 * g + 0.114 * b > 150 else "#fff"


def layout(gi: GraphIndex) -> tuple[list[int], list[float]]:
    """Layer (longest path from a source) and in-layer position of every node.

    Positions follow the mean position of each node's producers (one barycentre pass), which keeps
    chains straight; O(nodes + edges + n log n)."""
    n = len(gi.nodes)
    depth = [0] * n
    for v in range(n):  # nodes are in topological order
        for u in gi.preds[v]:
            if depth[u] + 1 > depth[v]:
                depth[v] = depth[u] + 1
    layers: dict[int, list[int]] = {}
    for v in range(n):
        if gi.constant_node[v]:
            continue  # Constant nodes are not drawn (they would crowd layer 0)
        layers.setdefault(depth[v], []).append(v)
    pos = [0.0] * n
    widest = max((len(m) for m in layers.values()), default=1)
    for d in sorted(layers):
        members = layers[d]
        offset = (widest - len(members)) / 2  # centre each layer under the widest one
        keyed = []
        for v in members:
            preds = gi.preds[v]
            key = sum(pos[u] for u in preds) / len(preds) if preds else float(v)
            keyed.append((key, v))
        keyed.sort()
        for slot, (_, v) in enumerate(keyed):
            pos[v] = slot + offset
    return depth, pos


def render_svg(result: InspectResult, gi: GraphIndex) -> str:
    """The graph as an SVG, nodes coloured by placement."""
    n = len(gi.nodes)
    depth, pos = layout(gi)
    compact = n > 3000
    box_w, box_h = (14, 8) if compact else (120, 22)
    gap_x, gap_y = (4, 10) if compact else (16, 14)
    drawn = [v for v in range(n) if not gi.constant_node[v]]
    width_slots = int(max((pos[v] for v in drawn), default=0) + 1.5)
    height_layers = max((depth[v] for v in drawn), default=0) + 1
    width = width_slots * (box_w + gap_x) + 20 + box_w  # room on the right for bent edges
    height = height_layers * (box_h + gap_y) + 20

    def xy(v: int) -> tuple[float, float]:
        return 10 + pos[v] * (box_w + gap_x), 10 + depth[v] * (box_h + gap_y)

    reasons = {c.name: c.reason for c in result.cpu_nodes}
    out = [
        f'<svg width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="10">'
    ]
    # An edge to the next layer is a straight line; one that skips layers bends out to the right
    # of the column, dashed, so that it does not read as part of a chain it runs through.
    edges = ['<g stroke="#9e9e9e" stroke-width="0.8" fill="none">']
    skips = ['<g stroke="#b0b0b0" stroke-width="0.8" fill="none" stroke-dasharray="3 2">']
    bulge = box_w * 0.5 + gap_x
    for v in drawn:
        x2, y2 = xy(v)
        x2 += box_w / 2
        for u in gi.preds[v]:
            x1, y1 = xy(u)
            x1, y1 = x1 + box_w / 2, y1 + box_h
            if depth[v] - depth[u] <= 1:
                edges.append(f'<line x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2:.0f}"/>')
            else:
                dy = (y2 - y1) / 3
                skips.append(
                    f'<path d="M{x1:.0f},{y1:.0f} C{x1 + bulge:.0f},{y1 + dy:.0f} '
                    f'{x2 + bulge:.0f},{y2 - dy:.0f} {x2:.0f},{y2:.0f}"/>'
                )
    out.extend([*edges, "</g>", *skips, "</g>"])
    out.append("<g>")
    for v, node in enumerate(gi.nodes):
        if gi.constant_node[v]:
            continue
        name = gi.names[v]
        part = result.placement.get(name)
        if part is not None:
            colour = _PARTITION_COLOURS[part % len(_PARTITION_COLOURS)]
            where = f"device partition {part}"
        else:
            reason = reasons.get(name, "")
            colour = _cpu_colour(reason)
            where = f"CPU: {reason}"
        x, y = xy(v)
        title = escape(f"{name} ({node.op_type})\n{where}")
        out.append(
            f'<g><title>{title}</title><rect x="{x:.0f}" y="{y:.0f}" width="{box_w}" '
            f'height="{box_h}" rx="3" fill="{colour}"/>'
        )
        if not compact:
            label = escape(node.op_type[:18])
            out.append(
                f'<text x="{x + box_w / 2:.0f}" y="{y + box_h / 2 + 3.5:.0f}" '
                f'text-anchor="middle" fill="{_text_colour(colour)}">{label}</text>'
            )
        out.append("</g>")
    out.append("</g></svg>")
    return "\n".join(out)


_CSS = """
body{font-family:sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:2px 8px;text-align:left;vertical-align:top;font-size:13px}
th{background:#f0f0f0}
code,pre{background:#f6f6f6;font-size:12px}
pre{padding:.6em;white-space:pre-wrap;overflow-wrap:anywhere}
.note{background:#fff8e1;border-left:4px solid #f9a825;padding:.4em .8em;font-size:13px}
.legend span.item{white-space:nowrap;display:inline-block;margin-right:.2em}
.graph{overflow:auto;max-height:80vh;border:1px solid #ccc;background:#fafafa}
.swatch{display:inline-block;width:12px;height:12px;border-radius:2px;margin:0 4px 0 12px;vertical-align:middle;border:1px solid #0003}
"""


def render_html(result: InspectResult) -> str:
    """The whole report as one HTML string (inline CSS and SVG only)."""
    gi = result.graph_index or GraphIndex(result.prepared)
    h: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>hailo-ort inspect: {escape(result.model_label)} on {escape(result.arch)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{escape(result.model_label)} → {escape(result.arch)}</h1>",
        f"<p>Family <b>{escape(result.family)}</b>; {len(result.placement)} nodes; "
        f"{len(result.partitions)} device partition(s); {len(result.cpu_nodes)} CPU node(s); "
        f"{result.device_flops_share:.1%} of {result.total_flops:,} FLOPs on the device. "
        f"Support tables: {escape(', '.join(result.support_tables))}.</p>",
        "<h2>Device partitions</h2>",
    ]
    if result.partitions:
        h.append(
            "<table><tr><th>#</th><th>nodes</th><th>FLOPs</th><th>params</th><th>inputs</th>"
            "<th>outputs</th><th>start nodes</th><th>end nodes</th></tr>"
        )
        for p in result.partitions:
            ins = "<br>".join(escape(f"{t.name} {t.shape} {t.dtype}") for t in p.inputs)
            outs = "<br>".join(escape(f"{t.name} {t.shape} {t.dtype}") for t in p.outputs)
            h.append(
                f"<tr><td>{p.index}</td><td>{len(p.nodes)}</td><td>{p.flops:,}</td>"
                f"<td>{p.params:,}</td><td>{ins}</td><td>{outs}</td>"
                f"<td>{'<br>'.join(escape(s) for s in p.start_nodes)}</td>"
                f"<td>{'<br>'.join(escape(s) for s in p.end_nodes)}</td></tr>"
            )
        h.append("</table><h3>DFC parser</h3>")
        for p in result.partitions:
            h.append(f"<pre>{escape(result.parser_command(p))}</pre>")
        for note in result.parser_notes():
            h.append(f'<p class="note">{escape(note)}</p>')
    else:
        h.append("<p>No device partition: everything stays on the CPU.</p>")
    if result.normalization:
        h.append("<h2>Input normalisation (candidate for the DFC model script)</h2><ul>")
        for nm in result.normalization:
            h.append(
                f"<li><code>{escape(nm.input)}</code>: <code>{escape(nm.model_script())}</code> "
                f"(nodes {escape(', '.join(nm.nodes))})</li>"
            )
        h.append("</ul>")
    h.append(f"<h2>CPU nodes ({len(result.cpu_nodes)})</h2>")
    if result.cpu_nodes:
        h.append("<table><tr><th>node</th><th>op</th><th>reason</th></tr>")
        for c in result.cpu_nodes:
            h.append(
                f"<tr><td>{escape(c.name)}</td><td>{escape(c.op_type)}</td>"
                f"<td>{escape(c.reason)}</td></tr>"
            )
        h.append("</table>")
    h.append(
        "<h2>Graph</h2><p>Inputs at the top, one row per topological depth; dashed curves skip "
        "rows. Hover a node for its name and placement.</p>"
    )
    h.append('<p class="legend">')
    for k, p in enumerate(result.partitions):
        colour = _PARTITION_COLOURS[k % len(_PARTITION_COLOURS)]
        h.append(
            f'<span class="item"><span class="swatch" style="background:{colour}"></span>'
            f"partition {k} ({len(p.nodes)})</span>"
        )
    counts: dict[str, int] = {}
    for c in result.cpu_nodes:
        counts[_cpu_category(c.reason)] = counts.get(_cpu_category(c.reason), 0) + 1
    for label, count in counts.items():
        colour = _CPU_COLOURS.get(label, _CPU_DEFAULT)
        h.append(
            f'<span class="item"><span class="swatch" style="background:{colour}"></span>'
            f"CPU: {escape(label)} ({count})</span>"
        )
    h.append("</p>")
    h.append(f'<div class="graph">{render_svg(result, gi)}</div>')
    h.append("</body></html>")
    return "\n".join(h) + "\n"
