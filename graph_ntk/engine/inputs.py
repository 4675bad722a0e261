"""Validation of gram()'s inputs: graph collections, label alphabets, feature dimensions."""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

from graph_ntk.data.adapters import foreign_hint, graphs_from_batch, graphs_from_edge_index
from graph_ntk.data.batch import GraphBatch
from graph_ntk.data.encoding import InputEncoding
from graph_ntk.checks import as_count
from graph_ntk.data.graph import Graph, GraphDataset, check_labels_below, fit_encoding

_GETS = ("nngp", "ntk")
_DTYPES = ("float32", "float64")

def _as_graph_list(graphs: Any, argname: str) -> tuple[list[Graph], InputEncoding | None]:
    """The graphs of a GraphDataset / sequence / object array, and the dataset's encoding."""
    if isinstance(graphs, GraphDataset):
        return list(graphs.graphs), graphs.encoding
    if isinstance(graphs, GraphBatch):  # padded graphs: their node features become x
        return graphs_from_batch(graphs), None
    if isinstance(graphs, tuple) and len(graphs) == 3 and not any(isinstance(v, Graph) for v in graphs):
        return graphs_from_edge_index(*graphs), None  # PyG's flat (x, edge_index, batch)
    if isinstance(graphs, Graph):
        raise TypeError(f"{argname} must be a sequence of Graph, got a single Graph; wrap it in a list")
    if isinstance(graphs, (str, bytes, dict)) or not hasattr(graphs, "__iter__") or foreign_hint(graphs):
        raise TypeError(f"{argname} must be a GraphDataset or a sequence of graph_ntk.Graph, "
                        f"got {type(graphs).__name__}{foreign_hint(graphs)}")
    out = list(graphs)
    if not out:
        raise ValueError(f"{argname} is empty: give at least one graph")
    for i, g in enumerate(out):
        if not isinstance(g, Graph):
            raise TypeError(f"{argname}[{i}] is a {type(g).__name__} ({type(g).__module__}), expected "
                            f"graph_ntk.Graph{foreign_hint(g)}")
    return out, None


_MIXED = InputEncoding()  # sentinel: graphs from several encodings (files)


def _carried(graphs: list[Graph], dataset: InputEncoding | None) -> InputEncoding | None:
    """The one encoding a side's graphs carry (their dataset's), None when they carry none,
    ``_MIXED`` when they carry several."""
    if dataset is not None:
        return dataset
    found = {id(g.encoding): g.encoding for g in graphs if g.encoding is not None}
    if not found:
        return None
    first = next(iter(found.values()))
    if all(first.same_codes(e) and e.handle_unknown == first.handle_unknown for e in found.values()) \
            and all(g.encoding is not None for g in graphs):
        return first
    return _MIXED


def resolve_encoding(encoding: InputEncoding | None, num_tags: int | None, graphs: Any, graphs2: Any,
                     width_free: bool = False) -> tuple[InputEncoding, list[Graph], list[Graph] | None]:
    """One input encoding for a kernel call, and both sides' graphs re-coded into it.

    The encoding is, in order: ``encoding``; ``num_tags`` (integer labels as column numbers
    ``0..num_tags-1``); the encoding the columns (``graphs2``, the training side) carry;
    the one the rows carry. Graphs that carry another encoding (another file) are re-coded
    by raw value. Graphs that carry none, with discrete tags, and no encoding given, are
    refused: their one-hot width would depend on which graphs share the call; unless the
    model's kernel does not depend on that width (``width_free``: the GNTK preset, whose
    first layer scales by it), when one is fitted on the call's graphs.
    """
    list1, ds1 = _as_graph_list(graphs, "graphs")
    list2, ds2 = (None, None) if graphs2 is None else _as_graph_list(graphs2, "graphs2")
    everything = list1 if list2 is None else list1 + list2
    if encoding is not None and num_tags is not None:
        raise ValueError("give encoding= or num_tags=, not both (num_tags=K means tags 0..K-1)")
    if encoding is not None and not isinstance(encoding, InputEncoding):
        raise TypeError(f"encoding must be a graph_ntk.InputEncoding (e.g. dataset.encoding), "
                        f"got {type(encoding).__name__}")
    if encoding is None and num_tags is not None:
        num_tags = as_count(num_tags, "num_tags")
        carried = [_carried(list1, ds1)] + ([] if list2 is None else [_carried(list2, ds2)])
        if carried[0] is not None and carried[0] is not _MIXED and carried[0].num_tags == num_tags \
                and all(c is None or carried[0].same_codes(c) for c in carried):
            encoding = carried[0]  # num_tags only confirms the graphs' own encoding
        else:
            encoding = InputEncoding(tags=tuple(range(num_tags)))
            check_labels_below(everything, num_tags)
    if encoding is None:
        carried2 = None if list2 is None else _carried(list2, ds2)
        carried1 = _carried(list1, ds1)
        for carried, side in ((carried2, "graphs2"), (carried1, "graphs")):
            if carried is _MIXED and width_free:  # no kernel depends on the vocabulary: take the union
                return _coded(fit_encoding(everything), list1, list2)
            if carried is _MIXED:
                raise ValueError(f"{side} mixes graphs of several input encodings (graphs loaded from different "
                                 "files, or a file's graphs beside hand-made ones): pass encoding= (e.g. the "
                                 "training dataset's .encoding) so that every graph is encoded the same way")
        encoding = carried2 or carried1
    if encoding is None:
        if any(g.node_labels is not None for g in everything) and not width_free:
            raise ValueError("the graphs carry integer node_labels but no input encoding, so the one-hot width "
                             "would depend on which graphs share this call: put them in a GraphDataset (which "
                             "fits one encoding for all of them), or pass encoding=graph_ntk.fit_encoding(all_graphs) "
                             "or num_tags=K")
        encoding = fit_encoding(everything)  # no kernel depends on what this fit sees (see above)
    return _coded(encoding, list1, list2)


def _coded(encoding: InputEncoding, list1: list[Graph], list2: list[Graph] | None
           ) -> tuple[InputEncoding, list[Graph], list[Graph] | None]:
    return encoding, [g.encoded(encoding) for g in list1], None if list2 is None else [g.encoded(encoding)
                                                                                          for g in list2]


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


def dtype_name(dtype: Any) -> str:
    """``'float32'`` or ``'float64'`` from a name, ``np.float32`` or ``np.dtype('float64')``.

    Example:
        >>> dtype_name(np.float32)
        'float32'
    """
    if dtype is None:
        raise TypeError("dtype must be 'float32' or 'float64' (or the numpy type), got None")
    if not isinstance(dtype, str):
        try:
            dtype = np.dtype(dtype).name
        except TypeError:
            raise TypeError(f"dtype must be 'float32' or 'float64' (or the numpy type), got {dtype!r}") from None
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return dtype
