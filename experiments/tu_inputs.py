"""The input variants of the TU experiment, each a GIN-format dataset in the GIN graph order
(so every candidate kernel is evaluated on the same folds):

* :func:`reference_self_loops`: the GNTK reference code's self-loop convention (COLLAB);
* :func:`attribute_dataset`: PROTEINS' continuous node attribute beside the tag;
* :func:`edge_label_dataset`: MUTAG's and PTC's bond types, for the relational GNTK.

The last two read the TU files, which list the graphs in another order (MUTAG), or other
graphs (PTC: GIN's file adds explicit hydrogens), and are matched to the GIN graphs
exactly, or refused.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from pathlib import Path

import numpy as np

from graph_ntk.data import GraphDataset, InputEncoding
from graph_ntk.datasets import load_tu

__all__ = ["reference_self_loops", "attribute_dataset", "edge_label_dataset"]


def reference_self_loops(ds):
    """``ds`` with every self-loop arc weighted 2, as the GNTK reference code counts it: its
    adjacency is ``A + A^T + I`` with the loop ``(v, v)`` on A's diagonal, so a looped node
    aggregates itself with weight 3 (``experiments/reference_check.py`` shows the Grams then
    agree to 5e-9 on COLLAB, against 3e-3 with weight 1). Graphs without loops are unchanged
    (of the seven datasets only COLLAB has any: 2,837 loops in 1,902 graphs). Degree tags
    already count a loop twice (networkx's degree, as the reference does).

    >>> from graph_ntk.data import Graph, GraphDataset
    >>> g = Graph(2, np.array([[0, 0, 1], [0, 1, 0]]), node_labels=np.array([0, 0]))
    >>> reference_self_loops(GraphDataset("t", [g], np.array([0]))).graphs[0].edge_weight.tolist()
    [2.0, 1.0, 1.0]
    """
    graphs = []
    for g in ds.graphs:
        loop = g.edge_index[0] == g.edge_index[1]
        if loop.any():
            if g.edge_weight is not None:
                raise ValueError(f"{ds.name}: graphs with edge weights and self-loops: the reference convention is "
                                 "defined for unweighted graphs")
            g = dataclasses.replace(g, edge_weight=np.where(loop, 2.0, 1.0))
        graphs.append(g)
    return dataclasses.replace(ds, graphs=graphs)


def attribute_dataset(ds, tu_root: Path, tu_name: str):
    """``ds`` (GIN format) with each node's continuous TU attribute as a feature beside its tag:
    ``x_u = clip(a_u, p_1, p_99) / rms`` over the dataset's nodes (PROTEINS' attribute has
    outliers at -538 and 798 against a median of 6), so the input kernel
    ``[tag_u = tag_v] + x_u x_v`` weighs tag and attribute alike (``mean x_u^2 = 1``).
    The TU file must hold the same graphs in the same order (checked)."""
    tu = load_tu(tu_root, tu_name)
    same = len(tu) == len(ds) and all(a.num_nodes == b.num_nodes and np.array_equal(a.node_labels, b.node_labels)
                                      for a, b in zip(tu.graphs, ds.graphs))
    if not same:
        raise ValueError(f"TU {tu_name} does not list the GIN file's graphs in the same order: cannot attach its "
                         "node attributes")
    a = np.concatenate([g.x[:, 0] for g in tu.graphs])
    lo, hi = np.percentile(a, [1, 99])
    scale = float(np.sqrt(np.mean(np.clip(a, lo, hi) ** 2)))
    graphs = [dataclasses.replace(g, x=np.clip(t.x, lo, hi) / scale) for g, t in zip(ds.graphs, tu.graphs)]
    return GraphDataset(ds.name, graphs, ds.y, ds.folds, ds.num_tags, dict(ds.meta))


def _bijection(pairs, what: str) -> dict:
    """The map ``a -> b`` of the pairs, checked one-to-one (a ``ValueError`` otherwise)."""
    fwd, back = {}, {}
    for a, b in pairs:
        if fwd.setdefault(a, b) != b or back.setdefault(b, a) != a:
            raise ValueError(f"the GIN and TU files disagree on the {what}: {a!r} maps to both {fwd[a]!r} and "
                             f"{b!r} (or {b!r} comes from two values): not the same dataset")
    return fwd


def edge_label_dataset(ds, tu_root: Path, tu_name: str, drop_tag_value: int | None = None) -> tuple[GraphDataset, int]:
    r"""``ds`` (GIN format) with the TU file's edge labels: graph ``i`` is GIN graph ``i``
    with TU's arcs and their labels (``Graph.edge_type``), ``ds``'s tags, labels and folds.

    GIN graph ``i`` is matched to the TU graph with the same node tags in the same node
    order and the same arcs, after removing GIN's nodes whose tag is ``drop_tag_value`` in
    the GIN file (PTC: GIN adds explicit hydrogens, tag 19, which TU's PTC_MR leaves out). Tags and class labels
    are compared through maps that must be one-to-one over the whole dataset (they are
    numbered differently in the two formats); anything else is a ``ValueError``. GIN graphs
    identical in every field (MUTAG: 6 groups, PTC: 7) take their TU twins in file order;
    returned is also how many graphs of such groups have twins with different edge labels
    (the one choice the files cannot settle).

    Example:
        >>> rel, ambiguous = edge_label_dataset(load_gin(root / "gin", "MUTAG"), root / "tu", "MUTAG")  # doctest: +SKIP
        >>> rel.meta["num_edge_types"], ambiguous  # doctest: +SKIP
        (4, 12)
    """
    tu = load_tu(tu_root, tu_name)
    if len(tu) != len(ds):
        raise ValueError(f"TU {tu_name} has {len(tu)} graphs, the GIN file {len(ds)}: not the same dataset")

    def key(g, keep):
        new = np.cumsum(keep) - 1
        s, r = g.edge_index
        m = keep[s] & keep[r]
        return int(keep.sum()), tuple(sorted(zip(new[s[m]].tolist(), new[r[m]].tolist())))

    drop = None if drop_tag_value is None else int(np.flatnonzero(np.asarray(ds.meta["tag_values"]) == drop_tag_value)[0])
    gin_keep = [np.ones(g.num_nodes, bool) if drop is None else g.node_labels != drop for g in ds.graphs]
    # Tags are numbered by first appearance in each format: compare them by how often they
    # occur (unique counts name a tag; shared counts are pooled), then check the map exactly.
    def namer(graphs, keeps):
        counts = np.bincount(np.concatenate([g.node_labels[k] for g, k in zip(graphs, keeps)]))
        return lambda t: ("count", int(counts[t])) if (counts == counts[t]).sum() == 1 else ("shared", int(counts[t]))

    gname = namer(ds.graphs, gin_keep)
    tname = namer(tu.graphs, [np.ones(g.num_nodes, bool) for g in tu.graphs])
    groups: dict = defaultdict(lambda: ([], []))
    for i, (g, k) in enumerate(zip(ds.graphs, gin_keep)):
        groups[key(g, k), tuple(gname(t) for t in g.node_labels[k])][0].append(i)
    for j, g in enumerate(tu.graphs):
        groups[key(g, np.ones(g.num_nodes, bool)), tuple(tname(t) for t in g.node_labels)][1].append(j)
    if any(len(a) != len(b) for a, b in groups.values()):
        bad = sum(abs(len(a) - len(b)) for a, b in groups.values())
        raise ValueError(f"{bad} graphs of TU {tu_name} and the GIN file have no exact counterpart: not the same "
                         "graphs (check drop_tag_value)")
    # Class labels: the map from the graphs without twins, then twins paired within a class.
    ymap = _bijection([(int(tu.y[b[0]]), int(ds.y[a[0]])) for a, b in groups.values() if len(a) == 1], "class labels")
    match = np.empty(len(ds), np.int64)
    ambiguous = 0
    for a, b in groups.values():
        by_class = defaultdict(lambda: ([], []))
        for i in a:
            by_class[int(ds.y[i])][0].append(i)
        for j in b:
            by_class[ymap.get(int(tu.y[j]), -1)][1].append(j)
        if any(len(p) != len(q) for p, q in by_class.values()):
            raise ValueError(f"identical graphs of TU {tu_name} and the GIN file carry different class labels")
        for p, q in by_class.values():
            match[p] = q
        edge_sets = {tuple(zip(*tu.graphs[j].edge_index.tolist(), tu.graphs[j].edge_type.tolist())) for j in b}
        ambiguous += len(b) if len(edge_sets) > 1 else 0
    _bijection([(int(t), int(g)) for i, j in enumerate(match)
                for t, g in zip(tu.graphs[j].node_labels, ds.graphs[i].node_labels[gin_keep[i]])], "node tags")
    # The GIN file's tags with the TU file's bond types: one encoding naming both.
    encoding = InputEncoding(tags=ds.encoding.tags, edge_labels=tu.encoding.edge_labels)
    graphs = [dataclasses.replace(tu.graphs[j], node_labels=ds.graphs[i].node_labels[gin_keep[i]], x=None,
                                  encoding=encoding) for i, j in enumerate(match)]
    meta = {**ds.meta, "num_edge_types": tu.meta["num_edge_types"], "edge_label_values": tu.meta["edge_label_values"]}
    return GraphDataset(ds.name, graphs, ds.y, ds.folds, None, meta, encoding), ambiguous
