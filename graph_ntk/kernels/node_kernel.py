r"""Node × node NNGP / NTK of a node-level GNN on one large graph, without JAX.

Evaluates the layer program of a node-level network (:mod:`graph_ntk.models.node`, or any
:mod:`graph_ntk.nn` description without a global pool) in two ways:

* :func:`exact_node_kernel` — exact, on the same general executor as graph kernels
  (:mod:`graph_ntk.kernels.dense_exec`): nodes with identical features and neighbourhoods
  share an item, aggregations are sparse products :math:`K' = M K M^\top` on the items,
  nonlinearities are NT's closed forms. Memory is a few ``C x C`` matrices for ``C``
  items (at most the node count: 20k nodes in float32 is 1.6 GB per matrix).
* :func:`graph_ntk.kernels.lowrank.lowrank_node_kernel` — Nyström through ``m`` landmark
  nodes, memory O(N·m).

Both start from :math:`K^{(0)} = x x^\top / F`, :math:`\Theta^{(0)} = 0`, like NT.

Example:
    >>> from graph_ntk.models.node import gcn
    >>> x = np.eye(4); ei = np.array([[0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2]])
    >>> k = exact_node_kernel(gcn(2), x, ei, 'nngp')
    >>> k.shape
    (4, 4)
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp

from graph_ntk import program as P
from graph_ntk.checks import as_choice, show
from graph_ntk.data.graph import Graph
from graph_ntk.kernels.dense_exec import State, run_dense
from graph_ntk.kernels.refine import feature_partition
from graph_ntk.kernels.spaces import NodeSpace

__all__ = ["check_get", "check_node_finite", "check_node_graph", "exact_node_kernel", "node_program", "node_space"]

_GETS = ("nngp", "ntk")


def check_get(get: str | Sequence[str]) -> tuple[str, ...]:
    """``get`` as a non-empty tuple of kernel names (``'nngp'``, ``'ntk'``).

    Example:
        >>> check_get("ntk"), check_get(["nngp", "ntk"])
        (('ntk',), ('nngp', 'ntk'))
    """
    if isinstance(get, str):
        return (as_choice(get, "get", _GETS),)
    if not isinstance(get, (tuple, list)) or not get:
        raise TypeError(f"get must be 'nngp', 'ntk' or a tuple of them, got {show(get)} ({type(get).__name__})")
    return tuple(as_choice(g, "get", _GETS) for g in get)


def check_node_finite(k: np.ndarray, what: str, dtype: np.dtype) -> None:
    """Refuse a node kernel with inf/NaN entries: it overflowed (large features, sum
    aggregation on high-degree nodes, many layers), and a GP would turn it into noise.

    Example:
        >>> check_node_finite(np.array([1.0, np.inf]), "the node NNGP", np.dtype("float32"))
        Traceback (most recent call last):
        ...
        ValueError: the node NNGP is not finite (1 inf/NaN entries in float32): the kernel overflowed; rescale the node features x, use dtype=np.float64, mean aggregation, or fewer layers
    """
    finite = np.isfinite(k)
    if finite.all():
        return
    fixes = ["rescale the node features x"] + ([] if dtype == np.float64 else ["use dtype=np.float64"])
    fixes += ["mean aggregation", "or fewer layers"]
    raise ValueError(f"{what} is not finite ({finite.size - np.count_nonzero(finite)} inf/NaN entries in {dtype}): "
                     f"the kernel overflowed; {', '.join(fixes)}")


def _relational(program: P.Program) -> int | None:
    """The ``edge_types`` of the first relational ``Aggregate`` in ``program`` (branches included)."""
    for op in program:
        if isinstance(op, P.Aggregate) and op.edge_types:
            return op.edge_types
        if isinstance(op, P.Branch):
            found = next((t for t in map(_relational, op.branches) if t), None)
            if found:
                return found
    return None


def check_dtype(dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    return dtype


def check_cast(x: np.ndarray, dtype: np.dtype) -> None:
    """Refuse features that overflow to inf in ``dtype`` (e.g. 1e300 in float32)."""
    if not np.isfinite(x).all():
        raise ValueError(f"x contains NaN or infinite values once cast to {dtype}: rescale the node features, "
                         "or use dtype=float64")


def node_program(network: Any) -> P.Program:
    """The normalised layer program of a node-level network (or a program tuple)."""
    program = getattr(network, "program", network)
    if not isinstance(program, tuple):
        opaque = getattr(network, "opaque", None)
        why = f" ({opaque} has no layer program)" if opaque else ""
        raise ValueError(f"network must be a graph_ntk.nn description (e.g. graph_ntk.models.node.gcn()) or a "
                         f"layer-program tuple{why}, got {type(network).__name__}")
    program = P.normalize(program)
    if any(isinstance(op, P.GlobalPool) for op in program):
        raise ValueError("a node-level kernel needs a network without a global pool (it would pool the nodes away)")
    types = _relational(program)
    if types:  # the node kernels take no arc types: every arc would count as type 0 of T
        raise ValueError(f"the network aggregates over edge_types={types} but the graph has no edge_type (the node "
                         "kernels take no arc types): drop edge_types from Aggregate")
    return program


def index(idx, n: int, name: str) -> np.ndarray:
    if idx is None:
        return np.arange(n)
    idx = np.asarray(idx)
    if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer) or (idx.size and (idx.min() < -n or idx.max() >= n)):
        raise ValueError(f"{name} must be a 1-D array of node indices in 0..{n - 1}")
    return idx


def check_node_graph(x: np.ndarray, edge_index, edge_weight=None) -> np.ndarray:
    """Validate one graph's ``(N, F)`` features, ``(2, E)`` arcs and optional weights; return the arcs.

    Every problem is one ``ValueError``/``TypeError`` naming the argument: features that are
    not real numbers or not finite, arcs that are ragged, non-integer or out of range,
    weights of the wrong length or not finite.

    Example:
        >>> check_node_graph(np.eye(2), [[0, 1], [1, 0]]).tolist()
        [[0, 1], [1, 0]]
    """
    from graph_ntk.data.graph import as_edge_index, as_float_array, check_finite

    if not hasattr(x, "ndim") or not hasattr(x, "dtype"):
        raise TypeError(f"x must be an (num_nodes, features) array, got {type(x).__name__}")
    if x.ndim != 2:
        raise ValueError(f"x must be (num_nodes, features), got shape {x.shape}")
    if x.shape[1] == 0:  # the input kernel x x^T / F would divide by F = 0
        raise ValueError(f"x has shape {x.shape}, no features per node: give at least one feature column "
                         "(e.g. np.ones((num_nodes, 1)) for a featureless graph)")
    values = x.tocsr().data if sp.issparse(x) else x
    if values.dtype.kind not in "biuf":
        raise TypeError(f"x must hold real-valued node features, got dtype {values.dtype}; convert them to floats")
    bad = ~np.isfinite(values)
    if bad.any():
        first = int(np.flatnonzero(bad.reshape(-1))[0])
        node = int(np.searchsorted(x.tocsr().indptr, first, "right") - 1) if sp.issparse(x) else first // x.shape[1]
        raise ValueError(f"x contains NaN or infinite values (first on node {node}); clean or impute the node "
                         "features first")
    edge_index = as_edge_index(edge_index, x.shape[0])
    if edge_weight is not None:
        w = as_float_array(edge_weight, "edge_weight", "arc weights")
        if w.shape != (edge_index.shape[1],):
            raise ValueError(f"edge_weight must have shape ({edge_index.shape[1]},), got {w.shape}")
        check_finite(w, "edge_weight", "give every arc a finite weight")
    return edge_index


def node_space(x: np.ndarray, edge_index, edge_weight) -> tuple[NodeSpace, np.ndarray]:
    """The one-graph node space (validating the graph) and the dense features."""
    from graph_ntk.data.graph import as_float_array

    if sp.issparse(x):
        check_node_graph(x, edge_index, edge_weight)  # names bad sparse features before densifying
        x = x.toarray()
    elif not (isinstance(x, np.ndarray) and x.dtype.kind in "biuf"):
        x = as_float_array(x, "x", "node features")
    edge_index = check_node_graph(x, edge_index, edge_weight)
    graph = Graph(x.shape[0], np.asarray(edge_index), x=x, edge_weight=edge_weight)
    return NodeSpace.from_graphs([graph]), x


def exact_node_kernel(
    network: Any,
    x: np.ndarray | sp.spmatrix,
    edge_index: np.ndarray,
    get: str | tuple[str, ...] = "nngp",
    *,
    rows: np.ndarray | None = None,
    cols: np.ndarray | None = None,
    edge_weight: np.ndarray | None = None,
    dtype=np.float64,
) -> np.ndarray | tuple[np.ndarray, ...]:
    r"""Exact node × node NNGP and/or NTK of ``network`` on one graph.

    Equals ``node_kernel(network[2], x, edge_index, get)`` (NT's ``kernel_fn``) to
    rounding, at O(C²) memory for ``C <= N`` items.

    Args:
        network: a node-level preset (:mod:`graph_ntk.models.node`), any
            :mod:`graph_ntk.nn` description without a global pool, or its ``.program``.
        x: ``(N, F)`` node features, dense or scipy sparse.
        edge_index: ``(2, E)`` integer arcs ``sender -> receiver``.
        get: ``'nngp'``, ``'ntk'`` or a tuple of them.
        rows, cols: node indices of the returned block ``K[rows][:, cols]`` (``None`` = all).
        edge_weight: optional ``(E,)`` arc weights.
        dtype: ``np.float64`` or ``np.float32`` (halves memory; ~1e-6 relative accuracy).

    Returns:
        An array ``(len(rows), len(cols))`` for a single ``get``, else a tuple in ``get``'s order.

    Example:
        >>> from graph_ntk.models.node import gcn
        >>> x = np.eye(3); ei = np.array([[0, 1, 1, 2], [1, 0, 2, 1]])
        >>> exact_node_kernel(gcn(2), x, ei, ('nngp', 'ntk'), rows=[0], cols=[1, 2])[1].shape
        (1, 2)
    """
    program, gets, dtype = node_program(network), check_get(get), check_dtype(dtype)
    space, x = node_space(x, edge_index, edge_weight)
    n, f = x.shape
    rows, cols = index(rows, n, "rows"), index(cols, n, "cols")
    part = feature_partition(x)
    with np.errstate(over="ignore"):
        phi = (part.representatives / np.sqrt(f)).astype(dtype)
    check_cast(phi, dtype)
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is refused by name in result()
        k0 = phi @ phi.T
    out = run_dense(program, State(space, part.items, k0, None, np.diagonal(k0).copy(), f), want_ntk="ntk" in gets)
    r, c = out.items[rows], out.items[cols]

    def result(name: str) -> np.ndarray:
        k = out.nngp if name == "nngp" else out.ntk
        k = np.zeros((rows.size, cols.size), dtype) if k is None else k[np.ix_(r, c)].astype(dtype)
        check_node_finite(k, f"the node {name.upper()}", dtype)
        return k

    return result(gets[0]) if isinstance(get, str) else tuple(result(name) for name in gets)
