r"""Padded batches of variable-size graphs, in the formats ``Aggregate`` consumes.

A :class:`GraphBatch` holds ``B`` graphs padded to ``N`` nodes:

* ``x``: node features ``(B, N, F)``, zero on padded nodes;
* either ``adjacency`` ``(B, N, N)`` (``adjacency[b, i, j]`` = weight of arc ``i -> j``,
  ``Aggregate(implementation='DENSE')``) or ``edges`` ``(B, E, 2)`` sender/receiver pairs
  padded with ``-1`` plus ``edge_weight`` ``(B, E)`` (``Aggregate(implementation='SPARSE')``);
* with ``T`` edge types (``num_edge_types``, relational ``Aggregate(edge_types=T)``):
  ``adjacency`` ``(B, T, N, N)``, one adjacency per type, or ``edge_type`` ``(B, E)``
  next to ``edges`` (``-1`` on padded arcs);
* ``n_nodes`` ``(B,)``, and ``node_mask`` ``(B, N)`` (True on real nodes), which graph_ntk's
  layers read to keep padded nodes out of every aggregation and pool.

Pass :meth:`GraphBatch.apply_kwargs` to ``apply_fn`` and :func:`kernel_kwargs` to
``kernel_fn``::

    out = apply_fn(params, batch.x, **batch.apply_kwargs())
    k = kernel_fn(b1.x, b2.x, 'ntk', **kernel_kwargs(b1, b2))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from graph_ntk.checks import as_count, as_flag
from graph_ntk.data.graph import Graph, as_edge_index, as_float_array, as_integers, check_finite

#: Widest one-hot encoding accepted. Integer tags this large are almost always raw ids
#: (atom numbers, database keys) that should have been renumbered; the one-hot features
#: would cost num_nodes * num_tags floats per graph.
MAX_NUM_TAGS = 1 << 16


def one_hot(labels: np.ndarray, num_tags: int) -> np.ndarray:
    """One-hot rows for integer node labels in ``[0, num_tags)``.

    Example:
        >>> one_hot(np.array([1, 0]), 2).tolist()
        [[0.0, 1.0], [1.0, 0.0]]
    """
    num_tags = as_count(num_tags, "num_tags")
    labels = as_integers(labels, "labels", "integer node tags")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"node labels must be integer tags, got dtype {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_tags):
        raise ValueError(f"node labels must lie in [0, {num_tags}), got range [{labels.min()}, {labels.max()}]: "
                         "raise num_tags or renumber the labels")
    if num_tags > MAX_NUM_TAGS:
        raise ValueError(f"num_tags={num_tags} asks for one-hot node features {num_tags} wide (at most "
                         f"{MAX_NUM_TAGS}); renumber the node labels to 0..T-1 with T the number of distinct "
                         "tags (np.unique(labels, return_inverse=True)) or pass them as features x")
    out = np.zeros((labels.size, num_tags))
    out[np.arange(labels.size), labels.reshape(-1)] = 1.0
    return out.reshape(labels.shape + (num_tags,))


def _node_features(g: Graph, num_tags: int | None) -> np.ndarray:
    parts = []
    if g.node_labels is not None and num_tags is not None:
        enc = g.encoding
        if enc is not None and enc.handle_unknown == "ignore" and enc.num_tags == num_tags:
            # the unknown-tag code num_tags gets the zero row (InputEncoding's handle_unknown)
            parts.append(one_hot(g.node_labels, num_tags + 1)[:, :num_tags])
        else:
            parts.append(one_hot(g.node_labels, num_tags))
    if g.x is not None:
        parts.append(g.x)
    if not parts:
        raise ValueError("graphs carry neither node_labels (with num_tags) nor features x; "
                         "give node features, or labels and num_tags")
    return np.concatenate(parts, axis=1)


def _edge_types(graphs: Sequence[Graph], num_edge_types: int) -> list[np.ndarray]:
    """Every graph's arc types, checked to lie in ``0..num_edge_types-1``."""
    num_edge_types = as_count(num_edge_types, "num_edge_types")
    out = []
    for i, g in enumerate(graphs):
        if g.edge_type is None:
            raise ValueError(f"graphs[{i}] has no edge_type but num_edge_types={num_edge_types} was given; "
                             "give every graph edge_type, or leave num_edge_types=None to ignore types")
        if g.edge_type.size and g.edge_type.max() >= num_edge_types:
            raise ValueError(f"graphs[{i}] has edge type {int(g.edge_type.max())}, outside 0..{num_edge_types - 1}; "
                             "raise num_edge_types")
        out.append(g.edge_type)
    return out


@dataclass(frozen=True, eq=False)
class GraphBatch:
    """``B`` graphs padded to a common node count (see the module docstring).

    Example:
        >>> g = Graph(2, np.array([[0, 1], [1, 0]]), node_labels=np.array([0, 1]))
        >>> b = GraphBatch.from_graphs([g, g], num_tags=2)
        >>> b.x.shape, b.adjacency.shape
        ((2, 2, 2), (2, 2, 2))
    """

    x: np.ndarray
    n_nodes: np.ndarray
    adjacency: np.ndarray | None = None
    edges: np.ndarray | None = None
    edge_weight: np.ndarray | None = None
    edge_type: np.ndarray | None = None
    num_edge_types: int | None = None

    def __post_init__(self) -> None:
        if (self.adjacency is None) == (self.edges is None):
            raise ValueError("give exactly one of adjacency (dense) or edges (sparse)")
        x = as_float_array(self.x, "x", "node features")
        if x.ndim != 3:
            raise ValueError(f"x must have shape (graphs, nodes, features), got {x.shape}")
        check_finite(x, "x", "clean or impute the node features first")
        b, n, _ = x.shape
        n_nodes = np.asarray(self.n_nodes)
        if n_nodes.shape != (b,) or not np.issubdtype(n_nodes.dtype, np.integer):
            raise ValueError(f"n_nodes must be {b} integer node counts (one per graph), got {n_nodes!r}")
        if (n_nodes < 1).any() or (n_nodes > n).any():
            raise ValueError(f"n_nodes must be {b} counts in [1, {n}], got {n_nodes!r}")
        t = self.num_edge_types
        if t is not None and (self.edges is not None) != (self.edge_type is not None):
            raise ValueError("with num_edge_types, give adjacency (B, T, N, N) or edges with edge_type (B, E)")
        if t is None and self.edge_type is not None:
            raise ValueError("edge_type needs num_edge_types (the number T of edge types)")
        if self.adjacency is not None:
            want = (b, n, n) if t is None else (b, t, n, n)
            adj = as_float_array(self.adjacency, "adjacency", "arc weights")
            if adj.shape != want:
                raise ValueError(f"adjacency must have shape {want}, got {adj.shape}")
            check_finite(adj, "adjacency", "give every arc a finite weight")
        if self.edges is not None:
            e = np.asarray(self.edges)
            if e.ndim != 3 or e.shape[0] != b or e.shape[2] != 2:
                raise ValueError(f"edges must have shape ({b}, num_edges, 2), got {e.shape}")
            if e.size and not np.issubdtype(e.dtype, np.integer):
                raise TypeError(f"edges must hold integer node ids (-1 for padding), got dtype {e.dtype}")
            if e.size and (e.min() < -1 or e.max() >= n):
                raise ValueError(f"edges must hold node ids in 0..{n - 1} or -1 for padding, got range "
                                 f"[{e.min()}, {e.max()}]")
            if self.edge_weight is not None:
                w = as_float_array(self.edge_weight, "edge_weight", "arc weights")
                if w.shape != e.shape[:2]:
                    raise ValueError(f"edge_weight must have shape {e.shape[:2]}, got {w.shape}")
                check_finite(w, "edge_weight", "give every arc a finite weight")
            if self.edge_type is not None and np.shape(self.edge_type) != e.shape[:2]:
                raise ValueError(f"edge_type must have shape {e.shape[:2]}, got {np.shape(self.edge_type)}")
        elif self.edge_weight is not None:
            raise ValueError("edge_weight goes with edges (sparse); a dense batch keeps the weights in adjacency")

    @property
    def num_graphs(self) -> int:
        return int(self.x.shape[0])

    @property
    def node_mask(self) -> np.ndarray:
        """``(B, N)`` booleans, True on real nodes."""
        return np.arange(self.x.shape[1])[None, :] < self.n_nodes[:, None]

    @property
    def pattern(self) -> np.ndarray:
        """The graph structure as ``Aggregate`` expects it (adjacency or edge list)."""
        return self.adjacency if self.adjacency is not None else self.edges

    @property
    def implementation(self) -> str:
        """``'DENSE'`` or ``'SPARSE'``: the ``Aggregate`` implementation this batch is for."""
        return "DENSE" if self.adjacency is not None else "SPARSE"

    def apply_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``apply_fn(params, batch.x, **batch.apply_kwargs())``."""
        kw: dict[str, Any] = {"pattern": self.pattern, "node_mask": self.node_mask}
        if self.edge_weight is not None:
            kw["edge_weight"] = self.edge_weight
        if self.edge_type is not None:
            kw["edge_type"] = self.edge_type
        return kw

    # ---------------------------------------------------------------- constructors
    def __repr__(self) -> str:
        b, n = self.x.shape[0], self.x.shape[1]
        kind = "sparse edges" if getattr(self, "edges", None) is not None else "dense adjacency"
        types = f", {self.num_edge_types} edge types" if self.num_edge_types else ""
        return f"GraphBatch({b} graphs, padded to {n} nodes, {self.x.shape[-1]} features, {kind}{types})"

    @classmethod
    def from_graphs(
        cls,
        graphs: Sequence[Graph],
        *,
        num_tags: int | None = None,
        sparse: bool = False,
        n_max: int | None = None,
        e_max: int | None = None,
        num_edge_types: int | None = None,
    ) -> "GraphBatch":
        """Pad ``graphs`` to ``n_max`` nodes (default: the largest) in dense or sparse form.

        Node features are the one-hot ``node_labels`` (when ``num_tags`` is given) followed
        by the continuous features ``x``. With ``num_edge_types=T`` every graph's
        ``edge_type`` (types ``0..T-1``) goes into a ``(B, T, N, N)`` adjacency (dense) or a
        ``(B, E)`` ``edge_type`` array (sparse), for ``Aggregate(edge_types=T)``; without it
        edge types are ignored.
        """
        sparse = as_flag(sparse, "sparse")
        if isinstance(graphs, Graph):
            raise TypeError("graphs must be a sequence of graph_ntk.Graph, got a single Graph; wrap it in a list")
        try:
            graphs = list(graphs)
        except TypeError:
            raise TypeError(f"graphs must be a sequence of graph_ntk.Graph, got {type(graphs).__name__}") from None
        if not graphs:
            raise ValueError("graphs is empty: give at least one graph")
        for i, g in enumerate(graphs):
            if not isinstance(g, Graph):
                raise TypeError(f"graphs[{i}] is a {type(g).__name__}, expected graph_ntk.Graph")
        if num_tags is not None:
            num_tags = as_count(num_tags, "num_tags")
        labelled = [g for g in graphs if g.node_labels is not None]
        carried = {id(g.encoding): g.encoding for g in graphs if g.encoding is not None}
        if num_tags is None and labelled and len(carried) == 1:
            # the graphs' own (dataset) encoding: the width never depends on the batch's company
            num_tags = next(iter(carried.values())).num_tags
        if num_tags is None and labelled and all(g.x is None for g in graphs):
            num_tags = 1 + max(int(g.node_labels.max()) for g in labelled)
        sizes = np.array([g.num_nodes for g in graphs])
        n = int(sizes.max()) if n_max is None else as_count(n_max, "n_max")
        if n < sizes.max():
            raise ValueError(f"n_max={n_max} is smaller than the largest graph ({sizes.max()} nodes)")
        feats = []
        for i, g in enumerate(graphs):
            try:
                feats.append(_node_features(g, num_tags))
            except ValueError as err:
                raise ValueError(f"graphs[{i}]: {err}") from None
        f = feats[0].shape[1]
        bad = [i for i, v in enumerate(feats) if v.shape[1] != f]
        if bad:
            raise ValueError(f"graphs[{bad[0]}] has {feats[bad[0]].shape[1]} node features but graphs[0] has {f}: "
                             "give every graph the same kind of node information (labels, x, or both)")
        x = np.zeros((len(graphs), n, f))
        for b, v in enumerate(feats):
            x[b, : len(v)] = v
        weighted = any(g.edge_weight is not None for g in graphs)
        types = None if num_edge_types is None else _edge_types(graphs, num_edge_types)
        if not sparse:
            if types is None:
                adj = np.zeros((len(graphs), n, n))
                for b, g in enumerate(graphs):
                    w = g.edge_weight if g.edge_weight is not None else 1.0
                    np.add.at(adj[b], (g.edge_index[0], g.edge_index[1]), w)
                return cls(x, sizes, adjacency=adj)
            adj = np.zeros((len(graphs), num_edge_types, n, n))
            for b, g in enumerate(graphs):
                w = g.edge_weight if g.edge_weight is not None else 1.0
                np.add.at(adj[b], (types[b], g.edge_index[0], g.edge_index[1]), w)
            return cls(x, sizes, adjacency=adj, num_edge_types=num_edge_types)
        e = max(g.num_edges for g in graphs) if e_max is None else as_count(e_max, "e_max", 0)
        if e < max(g.num_edges for g in graphs):
            raise ValueError(f"e_max={e_max} is smaller than the largest edge count")
        edges = -np.ones((len(graphs), max(e, 1), 2), dtype=np.int32)
        weight = np.zeros((len(graphs), max(e, 1))) if weighted else None
        etype = None if types is None else -np.ones((len(graphs), max(e, 1)), dtype=np.int32)
        for b, g in enumerate(graphs):
            edges[b, : g.num_edges] = g.edge_index.T
            if weighted:
                weight[b, : g.num_edges] = g.edge_weight if g.edge_weight is not None else 1.0
            if types is not None:
                etype[b, : g.num_edges] = types[b]
        return cls(x, sizes, edges=edges, edge_weight=weight, edge_type=etype, num_edge_types=num_edge_types)

    @classmethod
    def from_edge_index(
        cls,
        x: np.ndarray,
        edge_index: np.ndarray,
        batch: np.ndarray,
        *,
        edge_weight: np.ndarray | None = None,
        sparse: bool = False,
    ) -> "GraphBatch":
        """From PyTorch-Geometric-style concatenated graphs.

        ``x`` is ``(total_nodes, F)``, ``edge_index`` ``(2, total_arcs)`` with global node
        ids, ``batch`` ``(total_nodes,)`` the graph of each node (sorted, 0..B-1).
        """
        from graph_ntk.data.adapters import graphs_from_edge_index

        graphs = graphs_from_edge_index(x, edge_index, batch, edge_weight=edge_weight)
        return cls.from_graphs(graphs, sparse=sparse)

    @classmethod
    def from_networkx(cls, graphs: Sequence[Any], *, node_attr: str | None = None, num_tags: int | None = None,
                      weight: str | None = None, sparse: bool = False) -> "GraphBatch":
        """From ``networkx`` graphs; ``node_attr`` names an integer tag attribute (one-hot)
        or a numeric/vector feature; without it every node gets the feature 1."""
        from graph_ntk.data.convert import graph_from_networkx

        return cls.from_graphs([graph_from_networkx(g, node_attr=node_attr, weight=weight) for g in graphs],
                               num_tags=num_tags, sparse=sparse)

    @classmethod
    def from_scipy(cls, adjacencies: Sequence[Any], features: Sequence[np.ndarray], *,
                   sparse: bool = False) -> "GraphBatch":
        """From ``scipy.sparse`` adjacency matrices (entry ``[i, j]`` = weight of arc ``i -> j``)
        and matching ``(n_i, F)`` feature arrays."""
        from graph_ntk.data.convert import graph_from_scipy

        if len(adjacencies) != len(features):
            raise ValueError(f"got {len(adjacencies)} adjacencies but {len(features)} feature arrays")
        return cls.from_graphs([graph_from_scipy(a, f) for a, f in zip(adjacencies, features)], sparse=sparse)

    # ---------------------------------------------------------------- conversions
    def to_graphs(self) -> list[Graph]:
        """Split back into :class:`Graph` objects (features in ``x``)."""
        out = []
        for b in range(self.num_graphs):
            n = int(self.n_nodes[b])
            t = None
            if self.adjacency is not None and self.num_edge_types is not None:
                t, s, r = np.nonzero(self.adjacency[b, :, :n, :n])
                w = self.adjacency[b, t, s, r]
                ei = np.stack([s, r])
            elif self.adjacency is not None:
                s, r = np.nonzero(self.adjacency[b, :n, :n])
                w = self.adjacency[b, s, r]
                ei = np.stack([s, r])
            else:
                e = self.edges[b]
                keep = (e >= 0).all(axis=1)
                ei = e[keep].T.astype(np.int64)
                w = None if self.edge_weight is None else self.edge_weight[b][keep]
                t = None if self.edge_type is None else self.edge_type[b][keep].astype(np.int64)
            out.append(Graph(n, ei, x=self.x[b, :n], edge_weight=w, edge_type=t))
        return out

    def to_sparse(self) -> "GraphBatch":
        """The same graphs as padded edge lists (``Aggregate(implementation='SPARSE')``)."""
        if self.edges is not None:
            return self
        return GraphBatch.from_graphs(self.to_graphs(), sparse=True, n_max=self.x.shape[1],
                                      num_edge_types=self.num_edge_types)

    def to_dense(self) -> "GraphBatch":
        """The same graphs as padded adjacency matrices (``Aggregate(implementation='DENSE')``)."""
        if self.adjacency is not None:
            return self
        return GraphBatch.from_graphs(self.to_graphs(), sparse=False, n_max=self.x.shape[1],
                                      num_edge_types=self.num_edge_types)


def kernel_kwargs(batch1: GraphBatch, batch2: GraphBatch | None = None) -> dict[str, Any]:
    """Keyword arguments for ``kernel_fn(batch1.x, batch2.x, get, **kernel_kwargs(batch1, batch2))``.

    Example:
        >>> kw = kernel_kwargs(b)            # doctest: +SKIP
        >>> kernel_fn(b.x, None, 'ntk', **kw)  # doctest: +SKIP
    """
    for name, b in (("batch1", batch1), ("batch2", batch2)):
        if b is not None and not isinstance(b, GraphBatch) or b is None and name == "batch1":
            raise TypeError(f"{name} must be a graph_ntk.GraphBatch (GraphBatch.from_graphs(graphs)), got "
                            f"{type(b).__name__}")
    batch2 = batch1 if batch2 is None else batch2
    if batch1.implementation != batch2.implementation:
        raise ValueError("batch1 and batch2 must both be dense or both sparse; use .to_dense() / .to_sparse()")
    kw: dict[str, Any] = {"pattern": (batch1.pattern, batch2.pattern),
                          "node_mask": (batch1.node_mask, batch2.node_mask)}
    if batch1.edge_weight is not None or batch2.edge_weight is not None:
        def weights(b):
            return b.edge_weight if b.edge_weight is not None else (b.edges[..., 0] >= 0).astype(float)
        kw["edge_weight"] = (weights(batch1), weights(batch2))
    if batch1.num_edge_types != batch2.num_edge_types:
        raise ValueError(f"batch1 has num_edge_types={batch1.num_edge_types} but batch2 has "
                         f"{batch2.num_edge_types}; build both with the same num_edge_types")
    if batch1.edge_type is not None:
        kw["edge_type"] = (batch1.edge_type, batch2.edge_type)
    return kw
