"""Conversions from networkx graphs and scipy.sparse adjacency matrices to :class:`Graph`."""

from __future__ import annotations

from typing import Any

import numpy as np

from graph_ntk.data.encoding import InputEncoding
from graph_ntk.data.graph import Graph, as_float_array, check_finite


def graph_from_networkx(g: Any, *, node_attr: str | None = None, weight: str | None = None,
                        encoding: InputEncoding | None = None) -> Graph:
    """A :class:`Graph` from a ``networkx`` graph (nodes renumbered in ``g.nodes`` order).

    Undirected edges become two arcs. ``node_attr`` names an integer attribute (stored as
    ``node_labels``) or a float/vector attribute (stored as ``x``); without it each node
    gets the single feature 1. ``weight`` names an edge attribute used as edge weight.
    With ``encoding``, ``node_attr`` holds raw tags of any kind (e.g. strings ``'C'``),
    coded through it (:func:`graph_ntk.dataset_from_networkx` fits one over many graphs).

    Example:
        >>> import networkx as nx
        >>> graph_from_networkx(nx.path_graph(3)).num_edges
        4
    """
    if not (hasattr(g, "nodes") and hasattr(g, "edges") and hasattr(g, "is_directed")):
        raise TypeError(f"g must be a networkx graph, got {type(g).__name__}")
    for name, value in (("node_attr", node_attr), ("weight", weight)):
        if value is not None and not isinstance(value, str):
            raise TypeError(f"{name} must be the name of an attribute (a string) or None, got {value!r}")
    nodes = list(g.nodes)
    if not nodes:
        raise ValueError("the networkx graph has no nodes: empty graphs have no kernel")
    index = {v: i for i, v in enumerate(nodes)}
    arcs, weights = [], []
    for u, v, data in g.edges(data=True):
        w = _number(data.get(weight, 1.0), f"edge attribute weight={weight!r} of edge ({u!r}, {v!r})") if weight else 1.0
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
        if encoding is not None:
            labels = encoding.encode_tags(values, name=f"node_attr={node_attr!r}")
        elif all(isinstance(val, (int, np.integer)) and not isinstance(val, bool) for val in values):
            labels = np.array(values, dtype=np.int64)
        elif all(isinstance(val, (str, np.str_)) for val in values):
            raise TypeError(f"node_attr={node_attr!r} holds string tags ({values[0]!r}, ...): they need an input "
                            "encoding fitted on every graph; use graph_ntk.dataset_from_networkx(graphs, y, "
                            f"node_attr={node_attr!r}), or pass encoding=graph_ntk.InputEncoding.fit([...])")
        else:
            try:
                x = np.array(values, dtype=np.float64).reshape(len(nodes), -1)
            except (TypeError, ValueError):
                raise TypeError(f"node_attr={node_attr!r} must hold an integer tag or a number/vector of the "
                                f"same length on every node; node {nodes[0]!r} has {values[0]!r}") from None
    return Graph(len(nodes), edge_index, node_labels=labels, x=x, edge_weight=edge_weight,
                 encoding=encoding if labels is not None else None)


def graph_from_scipy(adjacency: Any, features: np.ndarray | None = None, *, node_labels: Any = None,
                     encoding: InputEncoding | None = None) -> Graph:
    """A :class:`Graph` from a square ``scipy.sparse`` (or dense) adjacency; entry ``[i, j]``
    is the weight of arc ``i -> j``. ``features`` are ``(n, F)`` node features;
    ``node_labels`` discrete tags (raw values coded through ``encoding`` when given).

    Example:
        >>> import scipy.sparse as sp
        >>> graph_from_scipy(sp.csr_matrix(np.ones((2, 2)) - np.eye(2)), np.ones((2, 1))).num_edges
        2
    """
    import scipy.sparse as sp

    if not sp.issparse(adjacency):
        adjacency = as_float_array(adjacency, "adjacency", "arc weights")
        if adjacency.ndim != 2:
            raise ValueError(f"adjacency must be a square 2-D matrix, got shape {adjacency.shape}")
    elif adjacency.dtype.kind not in "biuf":
        raise TypeError(f"adjacency must hold real arc weights, got dtype {adjacency.dtype}")
    a = sp.coo_matrix(adjacency)
    if a.shape[0] != a.shape[1]:
        raise ValueError(f"adjacency must be square, got shape {a.shape}")
    if a.shape[0] == 0:
        raise ValueError("adjacency is 0 x 0: empty graphs have no kernel")
    x = None
    if features is not None:
        x = as_float_array(features, "features", "node features")
        if x.ndim != 2 or x.shape[0] != a.shape[0]:
            raise ValueError(f"features must have shape ({a.shape[0]}, num_features) (one row per node of "
                             f"adjacency), got {x.shape}")
    w = a.data.astype(np.float64)
    check_finite(w, "adjacency", "give every arc a finite weight")
    weighted = not np.all(w == 1.0)
    labels = None
    if node_labels is not None:
        labels = encoding.encode_tags(list(np.asarray(node_labels).ravel()), name="node_labels") \
            if encoding is not None else node_labels
    if x is None and labels is None:
        raise ValueError("give features or node_labels: a graph needs node information for a kernel")
    return Graph(a.shape[0], np.stack([a.row, a.col]).astype(np.int64), node_labels=labels, x=x,
                 edge_weight=w if weighted else None, encoding=encoding if labels is not None else None)


def _number(value: Any, what: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a number, got {value!r}") from None
