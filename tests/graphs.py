"""Random test graphs shared by the test modules (pytest puts tests/ on sys.path)."""

import numpy as np

from graph_ntk import Graph


def random_graphs(seed, sizes, *, p, weighted, features=3):
    """Erdős–Rényi graphs of the given ``sizes`` (both arcs per edge) with Gaussian features
    and, if ``weighted``, edge weights in [0.5, 2]."""
    rng = np.random.default_rng(seed)
    graphs = []
    for n in sizes:
        a = np.triu(rng.random((n, n)) < p, 1)
        s, r = np.nonzero(a | a.T)
        w = rng.uniform(0.5, 2.0, size=len(s)) if weighted else None
        graphs.append(Graph(n, np.stack([s, r]), x=rng.normal(size=(n, features)), edge_weight=w))
    return graphs
