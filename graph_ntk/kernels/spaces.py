r"""The node sets a program runs on, and the linear maps between them.

A :class:`NodeSpace` holds the nodes of all graphs of a job at once (graph by graph, in
node order) with their arcs, edge weights and edge types. The graph operations of a layer
program are sparse linear maps :math:`h' = \text{map}\,h` out of it:

* ``Aggregate``: ``(n, n)``, :math:`\text{map}[j, i] = c_{ij}` over the arcs ``i -> j``
  (self loops added on request), one map per edge type for relational aggregation,
  each scaled by :math:`1/\sqrt T` so that :math:`\sum_t M_t K M_t^\top` is the mean;
* ``GlobalPool``: ``(graphs, n)``, ones (``'sum'``) or :math:`1/|V_g|` (``'mean'``);
* ``StructurePool``: ``(clusters, n)`` = :math:`S^\top`, and the coarsened graphs with
  :math:`A' = S^\top A S` become a new node space.

Example:
    >>> import numpy as np
    >>> from graph_ntk.data.graph import Graph
    >>> space = NodeSpace.from_graphs([Graph(2, np.array([[0], [1]]))])
    >>> [m.toarray().tolist() for m in space.aggregation_maps("sum", True, None)]
    [[[1.0, 0.0], [1.0, 1.0]]]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import scipy.sparse as sp

from graph_ntk.data.graph import Graph
from graph_ntk.data.normalization import aggregation_coefficients

__all__ = ["NodeSpace"]


def aggregation_matrix(senders: np.ndarray, receivers: np.ndarray, weights: np.ndarray, n: int,
                       normalization: str, add_self_loops: bool) -> sp.csr_matrix:
    r"""The ``(n, n)`` map :math:`h' = C^\top h` of ``Aggregate`` (row ``j``: the arcs into
    ``j``; repeated arcs add up), with the one degree normalisation of
    :func:`graph_ntk.data.normalization.aggregation_coefficients`."""
    if add_self_loops:
        senders, receivers = np.concatenate([senders, np.arange(n)]), np.concatenate([receivers, np.arange(n)])
        weights = np.concatenate([weights, np.ones(n)])
    coef = aggregation_coefficients(senders, receivers, np.asarray(weights, np.float64), n, normalization)
    return sp.coo_matrix((coef, (receivers, senders)), shape=(n, n)).tocsr()


@dataclass(frozen=True, eq=False)
class NodeSpace:
    """Nodes of ``num_graphs`` graphs with arcs ``senders -> receivers`` (global node ids)."""

    graph_of: np.ndarray
    num_graphs: int
    senders: np.ndarray
    receivers: np.ndarray
    weights: np.ndarray | None
    types: np.ndarray | None

    @classmethod
    def from_graphs(cls, graphs: Sequence[Graph]) -> "NodeSpace":
        sizes = np.fromiter((g.num_nodes for g in graphs), dtype=np.int64, count=len(graphs))
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        s = np.concatenate([g.edge_index[0] + o for g, o in zip(graphs, offsets[:-1])])
        r = np.concatenate([g.edge_index[1] + o for g, o in zip(graphs, offsets[:-1])])
        weighted = any(g.edge_weight is not None for g in graphs)
        w = np.concatenate([np.ones(g.num_edges) if g.edge_weight is None else g.edge_weight for g in graphs]) \
            if weighted else None
        typed = any(g.edge_type is not None for g in graphs)
        t = np.concatenate([np.zeros(g.num_edges, np.int64) if g.edge_type is None else g.edge_type
                            for g in graphs]) if typed else None
        return cls(np.repeat(np.arange(len(graphs)), sizes), len(graphs), s, r, w, t)

    @property
    def num_nodes(self) -> int:
        return int(self.graph_of.size)

    @property
    def sizes(self) -> np.ndarray:
        return np.bincount(self.graph_of, minlength=self.num_graphs)

    def aggregation_maps(self, normalization: str, add_self_loops: bool, edge_types: int | None
                         ) -> list[sp.csr_matrix]:
        """One ``(n, n)`` map per edge type (a single one without ``edge_types``)."""
        n = self.num_nodes
        w = np.ones(self.senders.size) if self.weights is None else self.weights
        if edge_types is None:
            return [aggregation_matrix(self.senders, self.receivers, w, n, normalization, add_self_loops)]
        types = np.zeros(self.senders.size, np.int64) if self.types is None else self.types
        if types.size and types.max() >= edge_types:
            raise ValueError(f"a graph has edge type {int(types.max())}, but the network's Aggregate has "
                             f"edge_types={edge_types}; raise edge_types or renumber the edge types")
        scale = 1.0 / math.sqrt(edge_types)
        return [scale * aggregation_matrix(self.senders, self.receivers, np.where(types == t, w, 0.0), n,
                                           normalization, add_self_loops) for t in range(edge_types)]

    def pool_map(self, mode: str) -> sp.csr_matrix:
        """``(graphs, n)``: sum (or mean) over each graph's nodes."""
        n = self.num_nodes
        values = np.ones(n) if mode == "sum" else 1.0 / self.sizes[self.graph_of]
        return sp.csr_matrix((values, (self.graph_of, np.arange(n))), shape=(self.num_graphs, n))

    def coarsen(self, method: str, options: dict) -> tuple[sp.csr_matrix, "NodeSpace"]:
        r"""``(S^T, coarse space)``: each graph coarsened with ``method`` on its dense adjacency."""
        from graph_ntk.data.coarsening import coarsen_graph

        w = np.ones(self.senders.size) if self.weights is None else self.weights
        sizes = self.sizes
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        rows, cols, vals, graph_of, arcs = [], [], [], [], []
        k_off = 0
        for g in range(self.num_graphs):
            o, n = int(offsets[g]), int(sizes[g])
            sel = (self.receivers >= o) & (self.receivers < o + n)
            adjacency = np.zeros((n, n))
            np.add.at(adjacency, (self.senders[sel] - o, self.receivers[sel] - o), w[sel])
            s, a = coarsen_graph(adjacency, method, **options)
            fine, cluster = np.nonzero(s)
            rows.append(cluster + k_off)
            cols.append(fine + o)
            vals.append(s[fine, cluster])
            graph_of.append(np.full(s.shape[1], g))
            i, j = np.nonzero(a)
            arcs.append((i + k_off, j + k_off, a[i, j]))
            k_off += s.shape[1]
        st = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                           shape=(k_off, self.num_nodes))
        coarse = NodeSpace(np.concatenate(graph_of), self.num_graphs, np.concatenate([a[0] for a in arcs]),
                           np.concatenate([a[1] for a in arcs]), np.concatenate([a[2] for a in arcs]), None)
        return st, coarse
