"""Ready-made architectures (``stax`` triples): the graph-level GNTK and node-level GNNs."""

from graph_ntk.models.gntk import gntk, hierarchical_gntk
from graph_ntk.models.node import gcn, gcnii, gin, node_kernel, sage

__all__ = ["gcn", "gcnii", "gin", "gntk", "hierarchical_gntk", "node_kernel", "sage"]
