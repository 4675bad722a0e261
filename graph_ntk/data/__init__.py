"""Graph containers and conversions."""

from graph_ntk.data.graph import Graph, GraphDataset

__all__ = ["Graph", "GraphDataset"]
