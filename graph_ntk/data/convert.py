"""Conversions from networkx graphs and scipy.sparse adjacency matrices to :class:`Graph`."""

from __future__ import annotations

from typing import Any

import numpy as np

from graph_ntk.data.graph import Graph


def graph_from_networkx(g: Any, *, node_attr: str | None = None, weight: str | None = None) -> Graph:
    """A :class:`Graph` from a ``networkx`` graph (nodes renumbered in ``g.nodes`` order).

    Undirected edges become two arcs. ``node_attr`` names an integer attribute (stored as
    ``node_labels``) or a float/vector attribute (stored as ``x``); without it each node
    gets the single feature 1. ``weight`` names an edge attribute used as edge weight.

    Example:
        >>> import networkx as nx
        >>> graph_from_networkx(nx.path_graph(3)).num_edges
        4
    """
    nodes = list(g.nodes)
    if not nodes:
        raise ValueError("the networkx graph has no nodes: empty graphs have no kernel")
    index = {v: i for i, v in enumerate(nodes)}
    arcs, weights = [], []
    for u, v, data in g.edges(data=True):
        w = float(data.get(weight, 1.0)) if weight else 1.0
        arcs.append((index[u], index[v]))
        weights.append(w)
        if not g.is_directed() and u != v:
            arcs.append((index[v], index[u]))
            weights.append(w)
    edge_index = np.array(arcs, dtype=np.int64).T.reshape(2, -1)
    edge_weight = np.array(weights) if weight else None
    labels = x = None
    if node_attr is None:
        x = np.ones((len(nodes), 1))
    else:
        missing = [v for v in nodes if node_attr not in g.nodes[v]]
        if missing:
            raise ValueError(f"node_attr={node_attr!r} is missing on node {missing[0]!r}")
        values = [g.nodes[v][node_attr] for v in nodes]
        if all(isinstance(val, (int, np.integer)) and not isinstance(val, bool) for val in values):
            labels = np.array(values, dtype=np.int64)
        else:
            x = np.array(values, dtype=np.float64).reshape(len(nodes), -1)
    return Graph(len(nodes), edge_index, node_labels=labels, x=x, edge_weight=edge_weight)


def graph_from_scipy(adjacency: Any, features: np.ndarray | None = None) -> Graph:
    """A :class:`Graph` from a square ``scipy.sparse`` (or dense) adjacency; entry ``[i, j]``
    is the weight of arc ``i -> j``. ``features`` are ``(n, F)`` node features.

    Example:
        >>> import scipy.sparse as sp
        >>> graph_from_scipy(sp.csr_matrix(np.ones((2, 2)) - np.eye(2)), np.ones((2, 1))).num_edges
        2
    """
    import scipy.sparse as sp

    a = sp.coo_matrix(adjacency)
    if a.shape[0] != a.shape[1]:
        raise ValueError(f"adjacency must be square, got shape {a.shape}")
    if features is not None and np.shape(features)[0] != a.shape[0]:
        raise ValueError(f"features has {np.shape(features)[0]} rows but adjacency has {a.shape[0]} nodes")
    w = a.data.astype(np.float64)
    weighted = not np.all(w == 1.0)
    return Graph(a.shape[0], np.stack([a.row, a.col]).astype(np.int64),
                 x=None if features is None else np.asarray(features, dtype=np.float64),
                 edge_weight=w if weighted else None)
