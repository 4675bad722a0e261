"""Loader for the TU Dortmund graph-kernel benchmark format (``DS_A.txt`` and friends).

Format (see https://chrsmrrdr.github.io/graphkerneldatasets/ and the dataset README):
every file holds one record per line and node/graph ids are global and 1-based.

- ``DS_A.txt``: one arc ``row, col`` per line (each undirected edge in both directions);
- ``DS_graph_indicator.txt``: line i gives the graph id of node i (non-decreasing);
- ``DS_graph_labels.txt``: line g gives the class label of graph g;
- ``DS_node_labels.txt`` (optional): line i gives the discrete label of node i;
- ``DS_node_attributes.txt`` (optional): line i gives the real attribute vector of node i;
- ``DS_edge_labels.txt`` (optional): line i gives the discrete label of arc i of ``DS_A.txt``
  (read into ``Graph.edge_type``, e.g. the bond type of MUTAG and PTC_MR).

Edge attributes are ignored. Any file may also be stored as ``*.txt.xz``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from graph_ntk.checks import as_flag
from graph_ntk.data.encoding import InputEncoding
from graph_ntk.data.graph import Graph, GraphDataset
from graph_ntk.datasets._errors import Lines, dataset_dir, missing_file, read_bytes, tokenize

__all__ = ["load_tu"]

_WHAT = {
    "A": "adjacency list: one arc 'row, col' per line",
    "graph_indicator": "graph id of each node, one per line",
    "graph_labels": "class label of each graph, one per line",
    "node_labels": "discrete label of each node, one per line",
    "node_attributes": "attribute vector of each node, one per line",
    "edge_labels": "discrete label of each arc of DS_A.txt, one per line",
}


def _find(folder: Path, name: str, part: str) -> Path | None:
    """``folder/name_part.txt``, or its ``.xz`` version, or ``None``."""
    plain = folder / f"{name}_{part}.txt"
    for path in (plain, plain.with_name(plain.name + ".xz")):
        if path.is_file():
            return path
    return None


def _read(folder: Path, name: str, part: str, *, required: bool, dtype: type = np.int64) -> Lines | None:
    path = _find(folder, name, part)
    if path is None:
        if required:
            raise missing_file(folder / f"{name}_{part}.txt", _WHAT[part])
        return None
    return tokenize(path, read_bytes(path, _WHAT[part]), dtype=dtype, commas=True)


def _edge_labels(folder: Path, name: str, num_arcs: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(edge_type, label_values)`` from ``DS_edge_labels.txt`` (one line per line of
    ``DS_A.txt``), types ``0..T-1`` in sorted label order; ``(None, None)`` without the file."""
    lines = _read(folder, name, "edge_labels", required=False)
    if lines is None:
        return None, None
    if lines.num_lines == num_arcs == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if lines.num_lines != num_arcs:
        at = min(lines.num_lines, num_arcs)
        raise lines.error(at, f"has {lines.num_lines} lines but {name}_A.txt lists {num_arcs} arcs (one line each)")
    table = lines.table(None, f"integer edge label(s) with the same number of columns as line 1 ({int(lines.count[0])})")
    if table.shape[1] == 1:
        values, types = np.unique(table[:, 0], return_inverse=True)
    else:
        values, types = np.unique(table, axis=0, return_inverse=True)
    return types.reshape(-1).astype(np.int64), values


def _is_tu_folder(p: Path) -> bool:
    return _find(p, p.name, "graph_indicator") is not None


def _per_node(lines: Lines, num_nodes: int, what: str) -> np.ndarray:
    """The ``(num_nodes, k)`` table of a per-node file, which must have one line per node."""
    if lines.num_lines > num_nodes:
        raise lines.error(num_nodes, f"extra line: graph_indicator lists only {num_nodes} nodes")
    if lines.num_lines < num_nodes:
        raise lines.error(
            lines.num_lines, f"file ends after {lines.num_lines} lines, but graph_indicator lists {num_nodes} nodes (one line each)"
        )
    return lines.table(None, f"{what} with the same number of columns as line 1 ({int(lines.count[0])})")


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values of a 1-D array.

    Same result as ``np.unique(values)``, which in numpy 2.x takes a hash-table path
    that is ~20x slower than sorting for tens of millions of distinct int64 keys
    (35 s vs 1.7 s on COLLAB's arcs).

    Example:
        >>> sorted_unique(np.array([3, 1, 3, 2])).tolist()
        [1, 2, 3]
    """
    values = np.sort(values)
    if values.size > 1:
        values = values[np.concatenate(([True], values[1:] != values[:-1]))]
    return values


def nx_degrees(senders: np.ndarray, receivers: np.ndarray, num_nodes: int) -> np.ndarray:
    """Degree of every node in the undirected simple graph spanned by the arcs.

    This is ``networkx.Graph.degree`` (what GIN/GNTK use for ``degree_as_tag``): each
    distinct neighbour counts once whichever direction(s) it is listed in, and a
    self-loop counts twice.
    """
    lo = np.minimum(senders, receivers)
    hi = np.maximum(senders, receivers)
    pairs = sorted_unique(lo * np.int64(num_nodes) + hi)
    lo, hi = np.divmod(pairs, np.int64(num_nodes))
    return np.bincount(lo, minlength=num_nodes) + np.bincount(hi, minlength=num_nodes)


def assemble(
    name: str,
    node_counts: np.ndarray,
    senders: np.ndarray,
    receivers: np.ndarray,
    y: np.ndarray,
    *,
    tags: np.ndarray | None,
    x: np.ndarray | None,
    degree_as_tag: bool,
    folds: list[tuple[np.ndarray, np.ndarray]] | None,
    meta: dict,
    edge_type: np.ndarray | None = None,
) -> GraphDataset:
    """Cut dataset-wide arrays into per-graph :class:`Graph` objects.

    Nodes are numbered consecutively over the dataset (graph g owns
    ``offsets[g]:offsets[g+1]``) and ``senders`` must be sorted, so each graph's arcs are
    one contiguous slice; ``edge_type`` (optional) is aligned with them. Shared by the TU
    and GIN loaders.
    """
    offsets = np.concatenate(([0], np.cumsum(node_counts)))
    total = int(offsets[-1])
    if degree_as_tag:
        degree = nx_degrees(senders, receivers, total)
        tag_values, tags = np.unique(degree, return_inverse=True)
        meta = {**meta, "tag_values": tag_values, "degree_as_tag": True}
    # The file's input encoding, fitted on all of it: every graph carries it, so a graph's
    # kernel is the same alone, in a subset, or against another file (re-coded by raw value).
    encoding = InputEncoding(tags=None if tags is None else meta["tag_values"],
                             edge_labels=meta.get("edge_label_values") if edge_type is not None else None,
                             num_features=None if x is None else x.shape[1],
                             tag_source="degree" if degree_as_tag else "labels")
    bounds = np.searchsorted(senders, offsets)
    graphs = []
    for g in range(len(node_counts)):
        lo, hi = int(offsets[g]), int(offsets[g + 1])
        a, b = bounds[g], bounds[g + 1]
        edge_index = np.stack([senders[a:b] - lo, receivers[a:b] - lo])
        graphs.append(
            Graph(
                hi - lo,
                edge_index,
                node_labels=None if tags is None else tags[lo:hi],
                x=None if x is None else x[lo:hi],
                edge_type=None if edge_type is None else edge_type[a:b],
                encoding=encoding,
            )
        )
    return GraphDataset(name, graphs, y, folds=folds, meta=meta, encoding=encoding)


def load_tu(root: str | Path, name: str, *, degree_as_tag: bool = False) -> GraphDataset:
    """Load the TU Dortmund dataset ``root/name`` (files ``name_A.txt``, ``name_graph_indicator.txt``, ...).

    Args:
        root: folder holding one sub-folder per dataset (e.g. ``shared/datasets/tu``).
        name: dataset name as spelled by TU, e.g. ``"MUTAG"``, ``"IMDB-BINARY"``.
        degree_as_tag: replace the node labels by node degrees (as GIN/GNTK do for the
            unlabelled social graphs), remapped to ``0..T-1`` in increasing degree.

    Returns:
        A :class:`GraphDataset` with one :class:`Graph` per graph id. Graph labels are
        remapped to ``0..C-1`` in sorted order of the raw values (``meta["classes"]``
        holds the raw value of each class). Node labels (if present) are remapped to
        ``0..T-1`` in sorted order (``meta["tag_values"]``); rows with several label
        columns count as one label per distinct row. Node attributes become ``Graph.x``.
        Edge labels (if present) become ``Graph.edge_type``, remapped to ``0..T-1`` in
        sorted order (``meta["edge_label_values"]``, ``meta["num_edge_types"] = T``; for
        ``Aggregate(edge_types=T)`` via ``GraphBatch.from_graphs(..., num_edge_types=T)``).
        Arcs are deduplicated (the IMDB files list each one twice; with edge labels, arcs
        of different types between the same nodes are kept apart) and sorted; self-loops
        are kept. ``folds`` is ``None``: TU defines no splits.

    Raises:
        FileNotFoundError: unknown dataset (the message lists those in ``root``) or a
            missing required file.
        DatasetFormatError: a malformed file; the one-line message names file and line.

    Example:
        >>> ds = load_tu("../shared/datasets/tu", "MUTAG")  # doctest: +SKIP
        >>> len(ds), ds.num_tags, ds.meta["classes"].tolist()  # doctest: +SKIP
        (188, 7, [-1, 1])
    """
    degree_as_tag = as_flag(degree_as_tag, "degree_as_tag")
    folder = dataset_dir(root, name, kind="TU", is_dataset=_is_tu_folder)

    # Graph membership first: every other file is checked against it.
    ind_lines = _read(folder, name, "graph_indicator", required=True)
    indicator = ind_lines.table(1, "one graph id per line")[:, 0]
    if indicator[0] != 1:
        raise ind_lines.error(0, f"graph ids must start at 1, got {int(indicator[0])}")
    step = np.diff(indicator)
    bad = np.flatnonzero((step < 0) | (step > 1))
    if bad.size:
        i = int(bad[0]) + 1
        prev, cur = int(indicator[i - 1]), int(indicator[i])
        if cur < prev:
            raise ind_lines.error(i, f"graph id decreases from {prev} to {cur}: each graph's nodes must be consecutive lines")
        raise ind_lines.error(i, f"graph id jumps from {prev} to {cur}, so graph {prev + 1} has no nodes")
    num_nodes = int(indicator.size)
    num_graphs = int(indicator[-1])
    node_graph = indicator - 1
    node_counts = np.bincount(node_graph, minlength=num_graphs)

    lab_lines = _read(folder, name, "graph_labels", required=True)
    raw_y = lab_lines.table(1, "one integer class label per line")[:, 0]
    if raw_y.size > num_graphs:
        raise lab_lines.error(num_graphs, f"extra line: graph_indicator defines only {num_graphs} graphs")
    if raw_y.size < num_graphs:
        raise lab_lines.error(
            raw_y.size, f"file ends after {raw_y.size} labels, but graph_indicator defines {num_graphs} graphs"
        )
    classes, y = np.unique(raw_y, return_inverse=True)

    tags, tag_values, num_tags = None, None, None
    nl_lines = _read(folder, name, "node_labels", required=False)
    if nl_lines is not None:
        table = _per_node(nl_lines, num_nodes, "integer node label(s)")
        if table.shape[1] == 1:
            tag_values, tags = np.unique(table[:, 0], return_inverse=True)
        else:
            tag_values, tags = np.unique(table, axis=0, return_inverse=True)
        tags = tags.reshape(-1)
        num_tags = int(len(tag_values))

    x = None
    attr_lines = _read(folder, name, "node_attributes", required=False, dtype=np.float64)
    if attr_lines is not None:
        x = _per_node(attr_lines, num_nodes, "comma-separated node attributes")
        bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
        if bad.size:
            raise attr_lines.error(int(bad[0]), f"non-finite attribute in {attr_lines.text(int(bad[0]))}")

    a_lines = _read(folder, name, "A", required=True)
    arcs = a_lines.table(2, "two node ids 'row, col'")
    bad = np.flatnonzero(((arcs < 1) | (arcs > num_nodes)).any(axis=1))
    if bad.size:
        i = int(bad[0])
        raise a_lines.error(i, f"node id out of range 1..{num_nodes} (graph_indicator lists {num_nodes} nodes): {a_lines.text(i)}")
    senders, receivers = arcs[:, 0] - 1, arcs[:, 1] - 1
    edge_type, edge_label_values = _edge_labels(folder, name, senders.size)
    bad = np.flatnonzero(node_graph[senders] != node_graph[receivers])
    if bad.size:
        i = int(bad[0])
        gs, gr = int(indicator[senders[i]]), int(indicator[receivers[i]])
        raise a_lines.error(i, f"arc {a_lines.text(i)} joins graph {gs} to graph {gr}; arcs must stay within a graph")
    del arcs, a_lines

    # One int64 key per arc: sorting by it groups arcs by graph (nodes of a graph are
    # consecutive) and makes duplicates adjacent. Files already sorted and duplicate-free
    # (NCI1, the reconstructed COLLAB) skip the sort.
    key = senders * np.int64(num_nodes) + receivers
    num_arcs = int(key.size)
    if edge_type is not None:
        # Types ride along: sort by (arc, type) and drop only exact repeats.
        order = np.lexsort((edge_type, key))
        key, edge_type = key[order], edge_type[order]
        keep = np.concatenate(([True], (key[1:] != key[:-1]) | (edge_type[1:] != edge_type[:-1])))
        key, edge_type = key[keep], edge_type[keep]
    elif key.size > 1 and not (np.diff(key) > 0).all():
        key = sorted_unique(key)
    senders, receivers = np.divmod(key, np.int64(num_nodes))
    del key

    meta = {
        "format": "tu",
        "path": str(folder),
        "classes": classes,
        "tag_values": tag_values,
        "duplicate_arcs_removed": num_arcs - int(senders.size),
    }
    if edge_type is not None:
        meta["edge_label_values"] = edge_label_values
        meta["num_edge_types"] = int(len(edge_label_values))
    return assemble(
        name,
        node_counts,
        senders,
        receivers,
        y,
        tags=tags,
        x=x,
        degree_as_tag=degree_as_tag,
        folds=None,
        meta=meta,
        edge_type=edge_type,
    )
