"""Graph pooling layers."""

from graph_ntk.layers.pooling.global_pool import GlobalMaxPool, GlobalMeanPool, GlobalMinPool, GlobalSumPool

__all__ = ["GlobalMaxPool", "GlobalMeanPool", "GlobalMinPool", "GlobalSumPool"]
