"""Graph containers and conversions."""

from graph_ntk.data.batch import GraphBatch, kernel_kwargs, one_hot
from graph_ntk.data.convert import graph_from_networkx, graph_from_scipy
from graph_ntk.data.encoding import InputEncoding
from graph_ntk.data.graph import Graph, GraphDataset, fit_encoding

__all__ = ["Graph", "GraphBatch", "GraphDataset", "InputEncoding", "fit_encoding", "graph_from_networkx", "graph_from_scipy",
           "kernel_kwargs", "one_hot"]
