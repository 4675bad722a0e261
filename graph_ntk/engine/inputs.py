"""Validation of gram()'s inputs: graph collections, label alphabets, feature dimensions."""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

from graph_ntk.data.graph import Graph, GraphDataset

_GETS = ("nngp", "ntk")
_DTYPES = ("float32", "float64")

def _as_graph_list(graphs: Any, argname: str) -> tuple[list[Graph], int | None]:
    """The graphs of a GraphDataset / sequence / object array, and the dataset's ``num_tags``."""
    if isinstance(graphs, GraphDataset):
        return list(graphs.graphs), graphs.num_tags
    if isinstance(graphs, Graph):
        raise TypeError(f"{argname} must be a sequence of Graph, got a single Graph; wrap it in a list")
    try:
        out = list(graphs)
    except TypeError:
        raise TypeError(f"{argname} must be a GraphDataset or a sequence of graph_ntk.Graph, "
                        f"got {type(graphs).__name__}") from None
    if not out:
        raise ValueError(f"{argname} is empty: give at least one graph")
    for i, g in enumerate(out):
        if not isinstance(g, Graph):
            raise TypeError(f"{argname}[{i}] is a {type(g).__name__}, expected graph_ntk.Graph")
    return out, None


def _resolve_num_tags(num_tags: int | None, dataset_tags: Iterable[int | None], graphs: Iterable[Graph]) -> int | None:
    """One label alphabet for every graph, so one-hot features agree across blocks."""
    if num_tags is not None:
        if isinstance(num_tags, bool) or not isinstance(num_tags, (int, np.integer)) or num_tags < 1:
            raise ValueError(f"num_tags must be a positive integer, got {num_tags!r}")
        top = max((int(g.node_labels.max()) for g in graphs if g.node_labels is not None), default=-1)
        if top >= num_tags:
            raise ValueError(f"num_tags={num_tags} but a graph has node label {top}; labels must lie in "
                             f"[0, num_tags): raise num_tags or renumber the labels")
        return int(num_tags)
    known = [t for t in dataset_tags if t is not None]
    graphs = list(graphs)
    labelled = [g for g in graphs if g.node_labels is not None]
    if not labelled:
        return None
    needed = 1 + max(int(g.node_labels.max()) for g in labelled)
    # The dataset's alphabet may be larger than the labels that occur (e.g. a subset).
    return max([needed, *known])


def _input_dim(graphs: Sequence[Graph], num_tags: int | None) -> int:
    """The node-feature dimension (one-hot labels, then x), which every graph must share.

    Every graph must carry the same kind of node information: a collection where only some
    graphs have ``node_labels`` (or only some have ``x``) is refused even when the
    dimensions happen to agree, since one-hot tags and continuous features would then be
    compared as if they were the same thing.
    """
    for attr, what in (("node_labels", "discrete node_labels"), ("x", "continuous features x")):
        has = [getattr(g, attr) is not None for g in graphs]
        if any(has) and not all(has):
            i = has.index(not has[0])
            raise ValueError(f"graph {i} (counting graphs, then graphs2) {'has' if has[i] else 'lacks'} {what} but "
                             f"graph 0 {'has' if has[0] else 'lacks'} them: give every graph the same kind of node "
                             "information (labels, features x, or both)")

    def dim(g: Graph) -> int:
        return (num_tags if g.node_labels is not None and num_tags is not None else 0) + (0 if g.x is None else g.x.shape[1])

    dims = [dim(g) for g in graphs]
    if 0 in dims:
        raise ValueError(f"graph {dims.index(0)} carries neither node_labels nor features x; give one of them to "
                         "every graph")
    bad = [i for i, d in enumerate(dims) if d != dims[0]]
    if bad:
        raise ValueError(f"graph {bad[0]} has {dims[bad[0]]} node features but graph 0 has {dims[0]} (counting graphs, "
                         "then graphs2): give every graph features x of the same width")
    return dims[0]


def _normalise_get(get: str | Sequence[str]) -> tuple[tuple[str, ...], bool]:
    """``(gets, single)``: the requested kernels and whether a single one was asked for."""
    if isinstance(get, str):
        gets, single = (get,), True
    elif isinstance(get, (tuple, list)):
        gets, single = tuple(get), False
    else:
        raise ValueError(f"get must be 'nngp', 'ntk' or a tuple of both, got {get!r}")
    if not gets or any(g not in _GETS for g in gets) or len(set(gets)) != len(gets):
        raise ValueError(f"get must be 'nngp', 'ntk' or a tuple of both, got {get!r}")
    return gets, single

