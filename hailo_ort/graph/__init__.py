"""Stage 1, graph analysis: load a model, fix input shapes, infer shapes, fold constants, count FLOPs."""

from .subgraph import extract_subgraph, value_infos

__all__ = ["extract_subgraph", "value_infos"]
