"""One graph, and a labelled collection of graphs: the unit every loader returns."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from graph_ntk.checks import as_count
from graph_ntk.data.encoding import InputEncoding


# --------------------------------------------------------------------------- input checks
# Shared by Graph, GraphBatch, the converters and the node-level kernels, so that every bad
# input gets the same one-line message naming the argument (counts: graph_ntk.checks).
def _as_array(value: Any, name: str, what: str) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError):
        # numpy refuses lists of unequal lengths ("inhomogeneous shape").
        raise ValueError(f"{name} must be a rectangular array of {what}, got rows of unequal lengths "
                         f"(a ragged list)") from None
    if arr.dtype == object:
        raise TypeError(f"{name} must be an array of {what}, got Python objects (a ragged list or mixed types)")
    return arr


def as_float_array(value: Any, name: str, what: str) -> np.ndarray:
    """``value`` as a float64 array; strings, booleans, complex numbers and ragged lists are refused.

    Example:
        >>> as_float_array([[1, 2]], "x", "node features").dtype
        dtype('float64')
    """
    if hasattr(value, "toarray") and hasattr(value, "nnz"):
        raise TypeError(f"{name} must be a dense array of {what}, got a scipy sparse matrix; use .toarray()")
    arr = _as_array(value, name, what)
    if arr.dtype.kind not in "biuf":
        kind = {"U": "strings", "S": "bytes", "c": "complex numbers"}.get(arr.dtype.kind, str(arr.dtype))
        raise TypeError(f"{name} must hold real numbers ({what}), got {kind} (dtype {arr.dtype}); "
                        "convert them to floats first")
    return arr.astype(np.float64)


def as_integers(value: Any, name: str, what: str) -> np.ndarray:
    arr = _as_array(value, name, what)
    if arr.size == 0:
        return arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        hint = "; cast with .astype(int) if they are whole numbers" if arr.dtype.kind == "f" else ""
        raise TypeError(f"{name} must hold {what}, got dtype {arr.dtype}{hint}")
    return arr.astype(np.int64)


def check_finite(arr: np.ndarray, name: str, fix: str) -> None:
    """Refuse NaN / infinite entries, naming the first one."""
    bad = ~np.isfinite(arr)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name} contains NaN or infinite values (first at index {where}); {fix}")


def as_edge_index(edge_index: Any, num_nodes: int, name: str = "edge_index") -> np.ndarray:
    """A ``(2, E)`` int64 array of arcs between nodes ``0..num_nodes-1``, or a one-line error.

    Example:
        >>> as_edge_index([[0, 1], [1, 0]], 2).dtype
        dtype('int64')
    """
    ei = as_integers(edge_index, name, "integer node ids")
    if ei.size == 0:
        return np.zeros((2, 0), dtype=np.int64)
    if ei.ndim != 2 or ei.shape[0] != 2:
        hint = "; transpose it (edge_index.T)" if ei.ndim == 2 and ei.shape[1] == 2 else ""
        raise ValueError(f"{name} must have shape (2, num_edges) (senders, receivers), got {ei.shape}{hint}")
    lo, hi = int(ei.min()), int(ei.max())
    if lo < 0 or hi >= num_nodes:
        v = hi if hi >= num_nodes else lo
        raise ValueError(f"{name} refers to node {v}, but the graph has nodes 0..{num_nodes - 1}: node id {v} is "
                         "out of range (ids are 0-based and below num_nodes)")
    return ei


@dataclass(frozen=True, eq=False)
class Graph:
    r"""A single graph with ``num_nodes`` nodes and directed arcs ``edge_index``.

    ``edge_index[:, e] = (s, r)`` is an arc from sender ``s`` to receiver ``r``
    (0-based, local to the graph); an undirected edge is stored as both arcs, as in
    PyTorch Geometric. ``edge_type`` optionally gives every arc an integer type (e.g. the
    bond type of a molecule) for relational aggregation. Node information is either discrete ``node_labels`` (integer
    tags, one-hot encoded by the kernels) or continuous features ``x`` (or both).

    ``encoding`` is the :class:`InputEncoding` the codes in ``node_labels`` and ``edge_type``
    refer to (set by the loaders and by :class:`GraphDataset` on every graph of a file, so a
    graph keeps its kernel in any company). Without one, integer labels and types are their
    own raw values.

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
    encoding: InputEncoding | None = None

    def __post_init__(self) -> None:
        n = as_count(self.num_nodes, "num_nodes")
        ei = as_edge_index(self.edge_index, n)
        object.__setattr__(self, "num_nodes", n)
        object.__setattr__(self, "edge_index", ei)
        if self.node_labels is not None:
            lab = as_integers(self.node_labels, "node_labels", "integer tags 0..num_tags-1")
            if lab.shape != (n,):
                raise ValueError(f"node_labels must be {n} integers (one per node), got shape {lab.shape}")
            if lab.size and lab.min() < 0:
                raise ValueError(f"node_labels must be non-negative integer tags, got {int(lab.min())}; "
                                 "renumber them to 0..num_tags-1")
            object.__setattr__(self, "node_labels", lab)
        if self.x is not None:
            x = as_float_array(self.x, "x", "node features")
            if x.ndim != 2 or x.shape[0] != n:
                raise ValueError(f"x must have shape ({n}, num_features), got {x.shape}")
            if x.shape[1] == 0:  # every kernel of such a graph would be 0 / 0
                raise ValueError(f"x has shape {x.shape}: no feature columns; give at least one, or leave x=None "
                                 "and describe the nodes by node_labels")
            check_finite(x, "x", "clean or impute the node features first")
            object.__setattr__(self, "x", x)
        if self.edge_weight is not None:
            w = as_float_array(self.edge_weight, "edge_weight", "arc weights")
            if w.shape != (ei.shape[1],):
                raise ValueError(f"edge_weight must have one value per arc ({ei.shape[1]}), got shape {w.shape}")
            check_finite(w, "edge_weight", "give every arc a finite weight")
            object.__setattr__(self, "edge_weight", w)
        if self.edge_type is not None:
            et = as_integers(self.edge_type, "edge_type", "integer arc types")
            if et.shape != (ei.shape[1],):
                raise ValueError(f"edge_type must be one integer per arc ({ei.shape[1]}), got shape {et.shape}")
            if et.size and et.min() < 0:
                raise ValueError(f"edge_type must hold non-negative integer types, got {int(et.min())}")
            object.__setattr__(self, "edge_type", et)
        if self.encoding is not None:
            self._check_codes(self.encoding)

    def _check_codes(self, enc: Any) -> None:
        """Refuse codes that ``enc`` cannot decode."""
        if not isinstance(enc, InputEncoding):
            raise TypeError(f"encoding must be a graph_ntk.InputEncoding, got {type(enc).__name__}")
        if self.node_labels is not None:
            if enc.tags is None:
                raise ValueError("the graph has node_labels but its encoding has no tag vocabulary; "
                                 "fit the encoding on the tags (InputEncoding.fit)")
            top = enc.num_tags + (enc.handle_unknown == "ignore")
            if self.node_labels.size and self.node_labels.max() >= top:
                raise ValueError(f"node_labels holds code {int(self.node_labels.max())}, but the encoding has "
                                 f"{enc.num_tags} tags; encode raw tags with encoding.encode_tags(...)")
        if self.edge_type is not None and enc.edge_labels is not None and self.edge_type.size \
                and self.edge_type.max() >= len(enc.edge_labels):
            raise ValueError(f"edge_type holds type {int(self.edge_type.max())}, but the encoding has "
                             f"{len(enc.edge_labels)} edge labels; encode raw labels with encoding.encode_edges(...)")
        if self.x is not None and enc.num_features is not None and self.x.shape[1] != enc.num_features:
            raise ValueError(f"x has {self.x.shape[1]} columns but the encoding expects {enc.num_features}")

    @property
    def num_edges(self) -> int:
        """Number of arcs (an undirected edge counts twice)."""
        return int(self.edge_index.shape[1])

    def __repr__(self) -> str:
        parts = [f"{self.num_nodes} nodes", f"{self.num_edges} arcs"]
        if self.node_labels is not None:
            parts.append(f"tags {_preview(self.node_labels.tolist())}")
        if self.x is not None:
            parts.append(f"x {self.x.shape[1]} features")
        if self.edge_weight is not None:
            parts.append("weighted")
        if self.edge_type is not None:
            parts.append(f"{len(np.unique(self.edge_type))} edge types")
        return f"Graph({', '.join(parts)})"

    def encoded(self, enc: InputEncoding) -> "Graph":
        """This graph with its tags and edge types re-coded into ``enc`` (itself when its codes
        already mean the same; a graph without an encoding has integer raw values).

        Example:
            >>> g = Graph(2, np.array([[0, 1], [1, 0]]), node_labels=np.array([3, 5]))
            >>> g.encoded(InputEncoding(tags=(5, 3))).node_labels.tolist()
            [1, 0]
        """
        own = self.encoding
        if own is enc:
            return self
        labels, types = self.node_labels, self.edge_type
        if own is not None and labels is not None and own.tag_source != enc.tag_source:
            raise ValueError(f"a graph's tags are node {own.tag_source} but the input encoding's are node "
                             f"{enc.tag_source}: load every file the same way (e.g. degree_as_tag on both)")
        if labels is not None:
            if enc.tags is None:
                raise ValueError("the graphs carry node_labels but the input encoding has no tag vocabulary; "
                                 "fit the encoding on graphs with tags")
            if own is None or own.tags is None:
                labels = enc.encode_tags(labels)
            elif own.tags != enc.tags or own.handle_unknown != enc.handle_unknown:
                labels = enc.recode_table(own, "tags")[labels]
        if types is not None and enc.edge_labels is not None:
            if own is None or own.edge_labels is None:
                types = enc.encode_edges(types)
            elif own.edge_labels != enc.edge_labels:
                types = enc.recode_table(own, "edges")[types]
        if self.x is not None and enc.num_features is not None and self.x.shape[1] != enc.num_features:
            raise ValueError(f"a graph has {self.x.shape[1]} feature columns but the input encoding expects "
                             f"{enc.num_features}")
        out = copy.copy(self)  # the arrays were validated already: no second pass over them
        object.__setattr__(out, "node_labels", labels)
        object.__setattr__(out, "edge_type", types)
        object.__setattr__(out, "encoding", enc)
        return out


def _preview(values: list, limit: int = 6) -> str:
    """``[a, b, c, ...]`` with at most ``limit`` items (short reprs for notebooks)."""
    head = ", ".join(repr(v) for v in values[:limit])
    return f"[{head}{', ...' if len(values) > limit else ''}]"


def raw_vocabulary(graphs: Sequence[Graph], attr: str) -> tuple | None:
    """The raw values of ``attr`` (``'node_labels'`` or ``'edge_type'``) over ``graphs``, sorted.

    A graph with an encoding contributes its encoding's whole vocabulary (so a subset of a
    file keeps the file's alphabet); one without contributes ``range(max + 1)`` (its integer
    codes are column numbers), so the result never depends on which graphs were picked.
    """

    seen: set = set()
    found = False
    for g in graphs:
        if getattr(g, attr) is None:
            continue
        found = True
        vocab = None if g.encoding is None else (g.encoding.tags if attr == "node_labels" else g.encoding.edge_labels)
        if vocab is not None:
            seen.update(vocab)
        elif getattr(g, attr).size:
            seen.update(range(int(getattr(g, attr).max()) + 1))
    if not found:
        return None
    return InputEncoding.fit([sorted(seen, key=str)] if seen else [[0]]).tags


def check_labels_below(graphs: Sequence[Graph], num_tags: int) -> None:
    """Refuse integer labels outside ``0..num_tags-1`` (``num_tags`` = the tags as column numbers)."""
    top = max((int(g.node_labels.max()) for g in graphs if g.node_labels is not None and g.node_labels.size
               and g.encoding is None), default=-1)
    if top >= num_tags:
        raise ValueError(f"num_tags={num_tags} but a graph has node label {top}; node labels must lie in "
                         "0..num_tags-1: raise num_tags or renumber the labels")


def fit_encoding(graphs: Sequence[Graph], num_tags: int | None = None) -> InputEncoding:
    """The encoding of a file: every tag and edge label its graphs can carry, their feature width.

    Graphs that already share one encoding keep it. ``num_tags`` fixes the tag alphabet to
    ``0..num_tags-1`` (integer labels as column numbers).

    Example:
        >>> g = Graph(2, np.array([[0, 1], [1, 0]]), node_labels=np.array([0, 2]))
        >>> fit_encoding([g]).tags
        (0, 1, 2)
    """
    if isinstance(graphs, (str, bytes, Graph)) or not isinstance(graphs, Sequence) or not graphs:
        raise TypeError(f"graphs must be a non-empty list of graph_ntk.Graph, got {type(graphs).__name__}")
    bad = next((i for i, g in enumerate(graphs) if not isinstance(g, Graph)), None)
    if bad is not None:
        raise TypeError(f"graphs[{bad}] is a {type(graphs[bad]).__name__}, expected graph_ntk.Graph")
    encodings = {id(g.encoding): g.encoding for g in graphs if g.encoding is not None}
    if len(encodings) == 1 and all(g.encoding is not None for g in graphs):
        (enc,) = encodings.values()
        if num_tags is None or enc.num_tags == num_tags:
            return enc
    widths = {g.x.shape[1] for g in graphs if g.x is not None}
    if len(widths) > 1:
        raise ValueError(f"the graphs have node features x of different widths {sorted(widths)}; give every "
                         "graph the same number of feature columns")
    if num_tags is not None:
        num_tags = as_count(num_tags, "num_tags")
        check_labels_below(graphs, num_tags)
        tags: tuple | None = tuple(range(num_tags))
    else:
        tags = raw_vocabulary(graphs, "node_labels")
    sources = {enc.tag_source for enc in encodings.values()}
    unknown = {enc.handle_unknown for enc in encodings.values()}
    return InputEncoding(tags=tags, edge_labels=raw_vocabulary(graphs, "edge_type"),
                         num_features=widths.pop() if widths else None,
                         tag_source=sources.pop() if len(sources) == 1 else "labels",
                         handle_unknown=unknown.pop() if len(unknown) == 1 else "error")


@dataclass(eq=False)
class GraphDataset:
    """Graphs with class labels and, optionally, the benchmark's cross-validation folds.

    ``folds[k] = (train_idx, test_idx)`` as 0-based graph indices. ``encoding`` is the
    dataset's :class:`InputEncoding` (fitted on the whole file by the loaders; fitted here
    from the graphs when not given, ``num_tags`` fixing the tag alphabet to
    ``0..num_tags-1``); every graph is stamped with it, so any subset of the graphs keeps
    the dataset's kernel. ``num_tags`` is the size of the tag alphabet (for one-hot
    features), ``None`` for unlabelled graphs.
    """

    name: str
    graphs: list[Graph]
    y: np.ndarray
    folds: list[tuple[np.ndarray, np.ndarray]] | None = None
    num_tags: int | None = None
    meta: dict = field(default_factory=dict)
    encoding: InputEncoding | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a string, got {type(self.name).__name__}")
        if isinstance(self.graphs, Graph) or not isinstance(self.graphs, Sequence):
            raise TypeError(f"graphs must be a list of graph_ntk.Graph, got {type(self.graphs).__name__}")
        self.graphs = list(self.graphs)
        if len(self.graphs) == 0:
            raise ValueError(f"dataset {self.name!r} has no graphs: give at least one Graph")
        for i, g in enumerate(self.graphs):
            if not isinstance(g, Graph):
                raise TypeError(f"graphs[{i}] is a {type(g).__name__}, expected graph_ntk.Graph; "
                                "convert it first (e.g. graph_from_networkx)")
        try:
            self.y = np.asarray(self.y)
        except ValueError:
            raise ValueError("y must be one class label per graph, got a ragged list") from None
        if self.y.shape != (len(self.graphs),):
            raise ValueError(f"y must have one label per graph ({len(self.graphs)}), got shape {self.y.shape}")
        if self.y.dtype.kind not in "iubfU":
            raise TypeError(f"y must hold numbers or strings of one kind, got dtype {self.y.dtype}")
        if self.y.dtype.kind == "f" and not np.isfinite(self.y).all():
            raise ValueError(f"y holds NaN or infinite values (graph {int(np.flatnonzero(~np.isfinite(self.y))[0])}); "
                             "drop those graphs or impute their labels")
        if self.encoding is None:
            self.encoding = fit_encoding(self.graphs, self.num_tags)
        elif not isinstance(self.encoding, InputEncoding):
            raise TypeError(f"encoding must be a graph_ntk.InputEncoding, got {type(self.encoding).__name__}")
        elif self.num_tags is not None and as_count(self.num_tags, "num_tags") != self.encoding.num_tags:
            raise ValueError(f"num_tags={self.num_tags} but the encoding has {self.encoding.num_tags} tags; "
                             "give one of them")
        self.num_tags = self.encoding.num_tags
        self.graphs = [g.encoded(self.encoding) for g in self.graphs]
        if self.folds is not None:
            if isinstance(self.folds, (str, bytes)) or not isinstance(self.folds, Sequence):
                raise TypeError(f"folds must be a list of (train_idx, test_idx) pairs, got {type(self.folds).__name__}")
            folds = []
            for k, fold in enumerate(self.folds):
                if not isinstance(fold, (tuple, list)) or len(fold) != 2:
                    raise TypeError(f"folds[{k}] must be a (train_idx, test_idx) pair")
                # (an empty part is legitimate in a file: fewer graphs than folds; evaluate refuses it)
                train, test = (self._indices(part, f"folds[{k}][{j}]") for j, part in enumerate(fold))
                shared = np.intersect1d(train, test)
                if shared.size:  # a graph both trained on and scored would inflate the accuracy
                    raise ValueError(f"folds[{k}]: graph {int(shared[0])} is in both train and test parts")
                folds.append((train, test))
            self.folds = folds

    def __len__(self) -> int:
        return len(self.graphs)

    def __repr__(self) -> str:
        parts = [f"{len(self.graphs)} graphs"]
        if self.y.dtype.kind in "iub" or self.y.dtype.kind == "U":
            parts.append(f"{len(np.unique(self.y))} classes")
        if self.num_tags is not None:
            parts.append(f"{self.num_tags} tags")
        if self.encoding is not None and self.encoding.num_features:
            parts.append(f"{self.encoding.num_features} features")
        if self.encoding is not None and self.encoding.num_edge_types:
            parts.append(f"{self.encoding.num_edge_types} edge types")
        if self.folds is not None:
            parts.append(f"{len(self.folds)} folds")
        return f"GraphDataset({self.name!r}, {', '.join(parts)})"

    def __getitem__(self, i: int) -> Graph:
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"index a GraphDataset by an integer (or use .subset(indices)), got {type(i).__name__}")
        if not -len(self.graphs) <= i < len(self.graphs):
            raise IndexError(f"graph {i} is outside 0..{len(self.graphs) - 1} ({self.name} has {len(self.graphs)} graphs)")
        return self.graphs[i]

    def _indices(self, index: Any, name: str) -> np.ndarray:
        """0-based graph indices (or a boolean mask over the graphs) as int64, range-checked."""
        idx = _as_array(index, name, "graph indices")
        n = len(self.graphs)
        if idx.dtype == bool:
            if idx.shape != (n,):
                raise ValueError(f"{name} is a boolean mask of shape {idx.shape}, expected ({n},)")
            return np.flatnonzero(idx)
        idx = as_integers(idx, name, "integer graph indices")
        if idx.ndim != 1:
            raise ValueError(f"{name} must be a 1-D sequence of graph indices, got shape {idx.shape}")
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            bad = int(idx.min()) if idx.min() < 0 else int(idx.max())
            raise ValueError(f"{name} holds graph index {bad}, outside 0..{n - 1} (the dataset has {n} graphs)")
        return idx

    def subset(self, index: Sequence[int]) -> "GraphDataset":
        """The graphs and labels at ``index`` (0-based indices or a boolean mask; folds are dropped).

        Example:
            >>> g = Graph(1, np.zeros((2, 0), int), x=np.ones((1, 1)))
            >>> len(GraphDataset("d", [g, g, g], np.array([0, 1, 0])).subset([0, 2]))
            2
        """
        index = self._indices(index, "index")
        if index.size == 0:
            raise ValueError("index is empty: a subset needs at least one graph")
        return GraphDataset(self.name, [self.graphs[i] for i in index], self.y[index], None, None, dict(self.meta),
                            self.encoding)
