"""Stage 1, graph analysis: load, fix input shapes, infer shapes, fold constants, count FLOPs."""

from .prepared import PreparedModel
from .subgraph import extract_subgraph, value_infos

__all__ = ["PreparedModel", "extract_subgraph", "value_infos"]
