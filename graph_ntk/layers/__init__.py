"""Graph layers as neural-tangents ``stax`` triples ``(init_fn, apply_fn, kernel_fn)``."""

from graph_ntk.layers.aggregate import Aggregate
from graph_ntk.layers.pooling import GlobalMaxPool, GlobalMeanPool, GlobalMinPool, GlobalSumPool
from graph_ntk.layers.scale import Scale

__all__ = ["Aggregate", "Scale", "GlobalMaxPool", "GlobalMeanPool", "GlobalMinPool", "GlobalSumPool"]
