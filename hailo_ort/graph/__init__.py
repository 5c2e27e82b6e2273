"""Stage 1, graph analysis: load, fix input shapes, infer shapes, fold constants, count FLOPs."""

from .loader import assign_node_names, load_model, prepare
from .prepared import PreparedModel
from .shapes import normalize_input_shapes, parse_input_shape, parse_input_shapes
from .subgraph import extract_subgraph, value_infos

__all__ = [
    "PreparedModel",
    "assign_node_names",
    "extract_subgraph",
    "load_model",
    "normalize_input_shapes",
    "parse_input_shape",
    "parse_input_shapes",
    "prepare",
    "value_infos",
]
