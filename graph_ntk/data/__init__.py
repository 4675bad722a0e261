"""Graph containers and conversions."""

from graph_ntk.data.adapters import (
    dataset_from_networkx,
    graph_to_networkx,
    graphs_from_batch,
    graphs_from_edge_index,
    graphs_from_jraph,
    graphs_from_pyg,
)
from graph_ntk.data.batch import GraphBatch, kernel_kwargs, one_hot
from graph_ntk.data.convert import graph_from_networkx, graph_from_scipy
from graph_ntk.data.encoding import InputEncoding
from graph_ntk.data.graph import Graph, GraphDataset, fit_encoding

__all__ = ["Graph", "GraphBatch", "GraphDataset", "InputEncoding", "dataset_from_networkx", "fit_encoding",
           "graph_from_networkx", "graph_from_scipy", "graph_to_networkx", "graphs_from_batch", "graphs_from_edge_index",
           "graphs_from_jraph", "graphs_from_pyg", "kernel_kwargs", "one_hot"]
