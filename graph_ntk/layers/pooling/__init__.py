"""Graph pooling layers: global readouts, structure-only coarsening, learned pools."""

from graph_ntk.layers.pooling.coarsening import (
    StructurePool,
    coarsen,
    coarsen_graph,
    graclus,
    kmis,
    node_decimation,
    pool_adjacency,
    pool_kernel,
)
from graph_ntk.layers.pooling.global_pool import GlobalMaxPool, GlobalMeanPool, GlobalMinPool, GlobalSumPool
from graph_ntk.layers.pooling.learned import *  # noqa: F403  (the learned pools define __all__)
from graph_ntk.layers.pooling.learned import __all__ as _learned

__all__ = [
    "GlobalMaxPool",
    "GlobalMeanPool",
    "GlobalMinPool",
    "GlobalSumPool",
    "StructurePool",
    "coarsen",
    "coarsen_graph",
    "graclus",
    "kmis",
    "node_decimation",
    "pool_adjacency",
    "pool_kernel",
    *_learned,
]
