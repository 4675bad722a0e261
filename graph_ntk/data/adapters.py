"""Graphs from the formats users already have: PyTorch Geometric's ``Data`` / ``Batch`` and flat
``(x, edge_index, batch)`` arrays, jraph / jraphx ``GraphsTuple``, networkx (both ways), and
padded :class:`GraphBatch` objects.

None of these libraries is a dependency: objects are read by their attributes (duck typing)
and tensors through ``numpy.asarray`` (``.detach().cpu()`` first when they have it).

Example:
    >>> import numpy as np
    >>> gs = graphs_from_edge_index(np.ones((3, 1)), np.array([[0, 1], [1, 0]]), np.array([0, 0, 1]))
    >>> [g.num_nodes for g in gs]
    [2, 1]
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from graph_ntk.data.encoding import InputEncoding
from graph_ntk.data.graph import Graph, GraphDataset, as_edge_index, as_float_array, as_integers, check_finite

__all__ = ["dataset_from_networkx", "foreign_hint", "graph_to_networkx", "graphs_from_batch",
           "graphs_from_edge_index", "graphs_from_jraph", "graphs_from_pyg"]


def _array(value: Any) -> Any:
    """A NumPy view of a torch tensor or JAX array (no torch import); anything else as given,
    for the checks of :mod:`graph_ntk.data.graph` to judge."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        return np.asarray(value.detach().cpu())
    if hasattr(value, "__array__") and not isinstance(value, np.ndarray):
        return np.asarray(value)
    return value


def graphs_from_edge_index(x: Any, edge_index: Any, batch: Any, *, edge_weight: Any = None,
                           edge_type: Any = None) -> list[Graph]:
    """Graphs from PyG-style concatenated arrays: ``x`` ``(total_nodes, F)``, ``edge_index``
    ``(2, total_arcs)`` with global node ids, ``batch`` ``(total_nodes,)`` the graph of each
    node (sorted ids ``0..B-1``).

    Example:
        >>> gs = graphs_from_edge_index(np.eye(3), np.array([[0, 1], [1, 0]]), np.array([0, 0, 1]))
        >>> gs[0].num_edges, gs[1].x.tolist()
        (2, [[0.0, 0.0, 1.0]])
    """
    x = as_float_array(_array(x), "x", "node features")
    if x.ndim != 2:
        raise ValueError(f"x must have shape (total_nodes, features), got {x.shape}")
    check_finite(x, "x", "clean or impute the node features first")
    batch = as_integers(_array(batch), "batch", "integer graph ids")
    if batch.shape != (x.shape[0],):
        raise ValueError(f"batch must give one graph id per node ({x.shape[0]}), got shape {batch.shape}")
    if batch.size == 0:
        raise ValueError("batch is empty: give at least one graph")
    if not np.issubdtype(batch.dtype, np.integer):
        raise TypeError(f"batch must hold integer graph ids, got dtype {batch.dtype}")
    if (np.diff(batch) < 0).any() or batch.min() != 0:
        raise ValueError("batch must be sorted graph ids starting at 0 (as PyG's Batch.batch)")
    ei = as_edge_index(_array(edge_index), x.shape[0])
    extras = {}
    for name, value in (("edge_weight", edge_weight), ("edge_type", edge_type)):
        if value is not None:
            arr = np.asarray(_array(value))
            if arr.shape != (ei.shape[1],):
                raise ValueError(f"{name} must have one value per arc ({ei.shape[1]}), got shape {arr.shape}")
            extras[name] = arr
    if ei.size and (batch[ei[0]] != batch[ei[1]]).any():
        raise ValueError("edge_index has arcs between different graphs of batch")
    counts = np.bincount(batch)
    if (counts == 0).any():
        raise ValueError(f"batch skips graph id(s) {np.flatnonzero(counts == 0).tolist()}: empty graphs")
    starts = np.concatenate([[0], np.cumsum(counts)])
    arc_graph = batch[ei[0]] if ei.size else np.zeros(0, np.int64)
    graphs = []
    for b in range(len(counts)):
        sel = arc_graph == b
        graphs.append(Graph(int(counts[b]), ei[:, sel] - starts[b], x=x[starts[b]:starts[b + 1]],
                            **{k: v[sel] for k, v in extras.items()}))
    return graphs


def graphs_from_pyg(data: Any) -> list[Graph]:
    """Graphs from a PyTorch Geometric ``Data`` (one graph) or ``Batch`` (several), read by
    attribute: ``x`` (node features; required), ``edge_index``, optional ``batch``,
    ``edge_weight`` and, for 1-D integer ``edge_attr``, edge types. torch is not needed.

    Example:
        >>> class Data:  # anything with PyG's attributes
        ...     x, edge_index = np.ones((2, 1)), np.array([[0, 1], [1, 0]])
        >>> graphs_from_pyg(Data())[0].num_edges
        2
    """
    x = getattr(data, "x", None)
    if x is None or not hasattr(data, "edge_index"):
        raise TypeError(f"a PyTorch Geometric Data/Batch needs node features .x and .edge_index; "
                        f"{type(data).__name__} lacks {'x' if x is None else 'edge_index'}")
    x = as_float_array(_array(x), "x", "node features")
    batch = getattr(data, "batch", None)
    batch = np.zeros(x.shape[0], np.int64) if batch is None else _array(batch)
    edge_attr = getattr(data, "edge_attr", None)
    edge_type = None
    if edge_attr is not None:
        attr = _array(edge_attr)
        if attr.ndim == 1 and np.issubdtype(attr.dtype, np.integer):
            edge_type = attr
    return graphs_from_edge_index(x, data.edge_index, batch, edge_weight=getattr(data, "edge_weight", None),
                                  edge_type=edge_type)


def graphs_from_jraph(graphs_tuple: Any) -> list[Graph]:
    """Graphs from a jraph / jraphx ``GraphsTuple`` (``nodes``, ``senders``, ``receivers``,
    ``n_node``, ``n_edge``; scalar ``edges`` are arc weights). Graphs with no nodes (jraph's
    padding graph) are dropped.

    Example:
        >>> from collections import namedtuple
        >>> GT = namedtuple("GT", "nodes edges senders receivers globals n_node n_edge")
        >>> gt = GT(np.ones((3, 1)), None, np.array([0, 1]), np.array([1, 0]), None, np.array([2, 1]), np.array([2, 0]))
        >>> [g.num_nodes for g in graphs_from_jraph(gt)]
        [2, 1]
    """
    for name in ("nodes", "senders", "receivers", "n_node", "n_edge"):
        if not hasattr(graphs_tuple, name):
            raise TypeError(f"a jraph GraphsTuple needs .{name}; {type(graphs_tuple).__name__} lacks it")
    if graphs_tuple.nodes is None:
        raise ValueError("the GraphsTuple has nodes=None: give node features (e.g. ones((n, 1)))")
    nodes = as_float_array(_array(graphs_tuple.nodes), "nodes", "node features")
    n_node = as_integers(_array(graphs_tuple.n_node), "n_node", "node counts")
    n_edge = as_integers(_array(graphs_tuple.n_edge), "n_edge", "edge counts")
    senders = as_integers(_array(graphs_tuple.senders), "senders", "node ids")
    receivers = as_integers(_array(graphs_tuple.receivers), "receivers", "node ids")
    if nodes.ndim != 2 or n_node.sum() != nodes.shape[0] or n_edge.sum() != senders.size \
            or senders.size != receivers.size:
        raise ValueError(f"the GraphsTuple is inconsistent: {nodes.shape[0]} node rows for n_node summing to "
                         f"{int(n_node.sum())}, {senders.size} senders for n_edge summing to {int(n_edge.sum())}")
    weights = None
    if graphs_tuple.edges is not None:
        e = np.asarray(_array(graphs_tuple.edges))
        if e.ndim == 1 or (e.ndim == 2 and e.shape[1] == 1):
            weights = e.reshape(-1)
    node_start = np.concatenate([[0], np.cumsum(n_node)])
    edge_start = np.concatenate([[0], np.cumsum(n_edge)])
    out = []
    for g in range(n_node.size):
        if n_node[g] == 0:
            continue
        a, b = edge_start[g], edge_start[g + 1]
        lo = node_start[g]
        ei = np.stack([senders[a:b] - lo, receivers[a:b] - lo])
        out.append(Graph(int(n_node[g]), ei, x=nodes[lo:node_start[g + 1]],
                         edge_weight=None if weights is None else weights[a:b]))
    if not out:
        raise ValueError("the GraphsTuple holds no graph with nodes")
    return out


def graphs_from_batch(batch: Any) -> list[Graph]:
    """The graphs of a padded :class:`GraphBatch` (node features as ``x``; padding dropped).

    Example:
        >>> from graph_ntk.data.batch import GraphBatch
        >>> g = Graph(2, np.array([[0, 1], [1, 0]]), x=np.ones((2, 1)))
        >>> graphs_from_batch(GraphBatch.from_graphs([g, g]))[1].num_edges
        2
    """
    out = []
    for b, n in enumerate(np.asarray(batch.n_nodes).tolist()):
        x = np.asarray(batch.x[b, :n])
        types = None
        if batch.adjacency is not None:
            adj = np.asarray(batch.adjacency[b])
            if adj.ndim == 3:  # one adjacency per edge type
                t, s, r = np.nonzero(adj[:, :n, :n])
                w, types = adj[t, s, r], t
            else:
                s, r = np.nonzero(adj[:n, :n])
                w = adj[s, r]
        else:
            e = np.asarray(batch.edges[b])
            real = (e[:, 0] >= 0) & (e[:, 0] < n)
            s, r = e[real, 0], e[real, 1]
            w = None if batch.edge_weight is None else np.asarray(batch.edge_weight[b])[real]
            types = None if batch.edge_type is None else np.asarray(batch.edge_type[b])[real]
        weight = None if w is None or np.all(w == 1.0) else w
        out.append(Graph(int(n), np.stack([s, r]).astype(np.int64), x=x, edge_weight=weight, edge_type=types))
    return out


def graph_to_networkx(g: Graph):
    """A networkx ``DiGraph`` of ``g``: node attributes ``label`` (the raw tag, through the
    graph's encoding) and ``x``, arc attributes ``weight`` and ``type``.

    Example:
        >>> g = Graph(2, np.array([[0, 1], [1, 0]]), node_labels=np.array([0, 1]))
        >>> sorted(graph_to_networkx(g).nodes(data="label"))
        [(0, 0), (1, 1)]
    """
    import networkx as nx

    out = nx.DiGraph()
    tags = None
    if g.node_labels is not None:
        tags = g.encoding.decode_tags(g.node_labels) if g.encoding is not None and g.encoding.tags else \
            g.node_labels.tolist()
    for v in range(g.num_nodes):
        attrs = {}
        if tags is not None:
            attrs["label"] = tags[v]
        if g.x is not None:
            attrs["x"] = g.x[v]
        out.add_node(v, **attrs)
    for e, (s, r) in enumerate(g.edge_index.T.tolist()):
        attrs = {}
        if g.edge_weight is not None:
            attrs["weight"] = float(g.edge_weight[e])
        if g.edge_type is not None:
            attrs["type"] = int(g.edge_type[e])
        out.add_edge(s, r, **attrs)
    return out


def dataset_from_networkx(graphs: Sequence[Any], y: Any, *, node_attr: str | None = None,
                          weight: str | None = None, name: str = "networkx") -> GraphDataset:
    """A :class:`GraphDataset` of networkx graphs whose ``node_attr`` holds raw tags of any
    hashable kind (ints, strings such as ``'C'``/``'O'``): one :class:`InputEncoding` is
    fitted on every graph's tags, so each graph's kernel is the same in any company.

    Example:
        >>> import networkx as nx
        >>> a, b = nx.path_graph(2), nx.path_graph(3)
        >>> nx.set_node_attributes(a, "C", "atom"); nx.set_node_attributes(b, "O", "atom")
        >>> dataset_from_networkx([a, b], [0, 1], node_attr="atom").encoding.tags
        ('C', 'O')
    """
    from graph_ntk.data.convert import graph_from_networkx

    graphs = list(graphs)
    if node_attr is None:
        return GraphDataset(name, [graph_from_networkx(g, weight=weight) for g in graphs], y)
    raw = []
    for i, g in enumerate(graphs):
        if not hasattr(g, "nodes"):
            raise TypeError(f"graphs[{i}] is a {type(g).__name__}, not a networkx graph")
        missing = [v for v in g.nodes if node_attr not in g.nodes[v]]
        if missing:
            raise ValueError(f"graphs[{i}]: node_attr={node_attr!r} is missing on node {missing[0]!r}")
        raw.append([g.nodes[v][node_attr] for v in g.nodes])
    encoding = InputEncoding.fit(raw)
    converted = [graph_from_networkx(g, node_attr=node_attr, weight=weight, encoding=encoding) for g in graphs]
    return GraphDataset(name, converted, y, encoding=encoding)


def foreign_hint(obj: Any) -> str:
    """The converter to use for a graph object of another library (empty when unknown)."""
    module = type(obj).__module__ or ""
    if module.startswith("networkx"):
        return "; convert it with graph_ntk.graph_from_networkx (or dataset_from_networkx for string tags)"
    if hasattr(obj, "edge_index") and hasattr(obj, "x"):
        return "; convert it with graph_ntk.graphs_from_pyg"
    if hasattr(obj, "n_node") and hasattr(obj, "senders"):
        return "; convert it with graph_ntk.graphs_from_jraph"
    if hasattr(obj, "n_nodes") and hasattr(obj, "x") and hasattr(obj, "adjacency"):
        return "; pass the GraphBatch itself as graphs, or use graph_ntk.graphs_from_batch"
    if hasattr(obj, "tocoo") or hasattr(obj, "toarray"):
        return "; convert it with graph_ntk.graph_from_scipy"
    return ""
