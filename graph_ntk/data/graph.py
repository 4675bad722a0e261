"""One graph, and a labelled collection of graphs: the unit every loader returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np


@dataclass(frozen=True, eq=False)
class Graph:
    r"""A single graph with ``num_nodes`` nodes and directed arcs ``edge_index``.

    ``edge_index[:, e] = (s, r)`` is an arc from sender ``s`` to receiver ``r``
    (0-based, local to the graph); an undirected edge is stored as both arcs, as in
    PyTorch Geometric. ``edge_type`` optionally gives every arc an integer type (e.g. the
    bond type of a molecule) for relational aggregation. Node information is either discrete ``node_labels`` (integer
    tags, one-hot encoded by the kernels) or continuous features ``x`` (or both).

    Example:
        >>> g = Graph(3, np.array([[0, 1, 1, 2], [1, 0, 2, 1]]), node_labels=np.array([0, 1, 0]))
        >>> g.num_edges
        4
    """

    num_nodes: int
    edge_index: np.ndarray
    node_labels: np.ndarray | None = None
    x: np.ndarray | None = None
    edge_weight: np.ndarray | None = None
    edge_type: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = int(self.num_nodes)
        if n < 1:
            raise ValueError(f"num_nodes must be at least 1, got {self.num_nodes}: empty graphs have no kernel")
        ei = np.asarray(self.edge_index)
        if ei.size == 0:
            ei = np.zeros((2, 0), dtype=np.int64)
        if ei.ndim != 2 or ei.shape[0] != 2:
            raise ValueError(f"edge_index must have shape (2, num_edges), got {ei.shape}")
        if not np.issubdtype(ei.dtype, np.integer):
            raise TypeError(f"edge_index must hold integer node ids, got dtype {ei.dtype}")
        if ei.size and (ei.min() < 0 or ei.max() >= n):
            raise ValueError(
                f"edge_index refers to node {int(ei.max()) if ei.max() >= n else int(ei.min())}, "
                f"but the graph has nodes 0..{n - 1}"
            )
        object.__setattr__(self, "num_nodes", n)
        object.__setattr__(self, "edge_index", ei.astype(np.int64))
        if self.node_labels is not None:
            lab = np.asarray(self.node_labels)
            if lab.shape != (n,) or not np.issubdtype(lab.dtype, np.integer):
                raise ValueError(f"node_labels must be {n} integers, got shape {lab.shape}, dtype {lab.dtype}")
            if lab.size and lab.min() < 0:
                raise ValueError(f"node_labels must be non-negative integer tags, got {int(lab.min())}; "
                                 "renumber them to 0..num_tags-1")
            object.__setattr__(self, "node_labels", lab.astype(np.int64))
        if self.x is not None:
            x = np.asarray(self.x, dtype=np.float64)
            if x.ndim != 2 or x.shape[0] != n:
                raise ValueError(f"x must have shape ({n}, num_features), got {x.shape}")
            if not np.all(np.isfinite(x)):
                raise ValueError("x contains NaN or infinite values; clean or impute the node features first")
            object.__setattr__(self, "x", x)
        if self.edge_weight is not None:
            w = np.asarray(self.edge_weight, dtype=np.float64)
            if w.shape != (ei.shape[1],):
                raise ValueError(f"edge_weight must have one value per arc ({ei.shape[1]}), got shape {w.shape}")
            if not np.all(np.isfinite(w)):
                raise ValueError("edge_weight contains NaN or infinite values")
            object.__setattr__(self, "edge_weight", w)
        if self.edge_type is not None:
            et = np.asarray(self.edge_type)
            if et.shape != (ei.shape[1],) or not np.issubdtype(et.dtype, np.integer):
                raise ValueError(f"edge_type must be one integer per arc ({ei.shape[1]}), got shape {et.shape}, "
                                 f"dtype {et.dtype}")
            if et.size and et.min() < 0:
                raise ValueError(f"edge_type must hold non-negative integer types, got {int(et.min())}")
            object.__setattr__(self, "edge_type", et.astype(np.int64))

    @property
    def num_edges(self) -> int:
        """Number of arcs (an undirected edge counts twice)."""
        return int(self.edge_index.shape[1])


@dataclass(eq=False)
class GraphDataset:
    """Graphs with class labels and, optionally, the benchmark's cross-validation folds.

    ``folds[k] = (train_idx, test_idx)`` as 0-based graph indices. ``num_tags`` is the size
    of the node-label alphabet (for one-hot features), ``None`` for unlabelled graphs.
    """

    name: str
    graphs: list[Graph]
    y: np.ndarray
    folds: list[tuple[np.ndarray, np.ndarray]] | None = None
    num_tags: int | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.graphs) == 0:
            raise ValueError(f"dataset {self.name!r} has no graphs")
        self.y = np.asarray(self.y)
        if self.y.shape != (len(self.graphs),):
            raise ValueError(f"y must have one label per graph ({len(self.graphs)}), got shape {self.y.shape}")

    def __len__(self) -> int:
        return len(self.graphs)

    def __getitem__(self, i: int) -> Graph:
        return self.graphs[i]

    def subset(self, index: Sequence[int]) -> "GraphDataset":
        """The graphs and labels at ``index`` (folds are dropped)."""
        index = np.asarray(index, dtype=np.int64)
        return GraphDataset(self.name, [self.graphs[i] for i in index], self.y[index], None, self.num_tags, dict(self.meta))
