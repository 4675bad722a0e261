"""graph_ntk: exact infinite-width kernels (NNGP and NTK) of graph neural networks.

Graph layers are neural-tangents ``stax`` triples ``(init_fn, apply_fn, kernel_fn)`` that
compose with ``neural_tangents.stax`` combinators, so one description gives both a finite
network and its exact GNNGP / GNTK.
"""

from graph_ntk import _compat  # noqa: F401  (must run before neural_tangents is imported)
from graph_ntk.data import (
    Graph,
    GraphBatch,
    GraphDataset,
    graph_from_networkx,
    graph_from_scipy,
    kernel_kwargs,
    one_hot,
)
from graph_ntk.layers import Aggregate, GlobalMaxPool, GlobalMeanPool, GlobalMinPool, GlobalSumPool, Scale
from graph_ntk.models import gntk

__version__ = "0.1.0"

__all__ = [
    "Aggregate",
    "GlobalMaxPool",
    "GlobalMeanPool",
    "GlobalMinPool",
    "GlobalSumPool",
    "Graph",
    "GraphBatch",
    "GraphDataset",
    "Scale",
    "gntk",
    "graph_from_networkx",
    "graph_from_scipy",
    "kernel_kwargs",
    "one_hot",
]
