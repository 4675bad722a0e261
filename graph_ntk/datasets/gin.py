"""Loader for the GIN / GNTK / DGCNN text format (``NAME/NAME.txt`` plus ``10fold_idx``).

Format of ``NAME.txt``::

    N                      number of graphs, then N blocks:
    n l                    block header: number of nodes, graph label
    t m j1 ... jm          n node lines: tag, neighbour count, 0-based local neighbours

``10fold_idx/{train,test}_idx-K.txt`` (K = 1..10) list 0-based graph indices, one per
line: the splits the GNTK reference code (``search.py``) evaluates on.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from graph_ntk.checks import as_flag
from graph_ntk.data.graph import GraphDataset
from graph_ntk.datasets._errors import DatasetWarning, Lines, dataset_dir, missing_file, read_bytes, tokenize
from graph_ntk.datasets.tu import assemble

__all__ = ["load_gin", "read_gin_folds"]

_NUM_FOLDS = 10
_NODE_LINE = "'tag num_neighbours nbr...'"


def _is_gin_folder(p: Path) -> bool:
    return (p / f"{p.name}.txt").is_file()


def _first_appearance(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes ``0..K-1`` numbering the distinct values in order of first appearance.

    This is the numbering of the GIN/GNTK readers, whose dicts give each new tag or
    label the next free id as they meet it. Returns ``(distinct values, codes)``.

    Example:
        >>> _first_appearance(np.array([2, 0, 2, 5]))
        (array([2, 0, 5]), array([0, 1, 0, 2]))
    """
    uniq, first, inverse = np.unique(values, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return uniq[order], rank[inverse.reshape(-1)]


def _read_index_file(path: Path, num_graphs: int) -> np.ndarray:
    """0-based graph indices, one per line, all in ``0..num_graphs-1``."""
    if not path.is_file():
        raise missing_file(path, "0-based graph indices of one cross-validation split, one per line")
    if path.stat().st_size == 0:
        return np.zeros(0, dtype=np.int64)  # legitimate when there are fewer than 10 graphs
    lines = tokenize(path, read_bytes(path, "0-based graph indices, one per line"))
    idx = lines.table(1, "one 0-based graph index per line")[:, 0]
    bad = np.flatnonzero((idx < 0) | (idx >= num_graphs))
    if bad.size:
        i = int(bad[0])
        raise lines.error(i, f"graph index {int(idx[i])} out of range 0..{num_graphs - 1}")
    return idx.astype(np.int64)


def read_gin_folds(folder: str | Path, num_graphs: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Read ``folder/10fold_idx/{train,test}_idx-K.txt`` for K = 1..10.

    Args:
        folder: the dataset folder (holding ``10fold_idx``).
        num_graphs: number of graphs, to range-check the indices.

    Returns:
        ``[(train_idx, test_idx), ...]``, ten pairs of 0-based int64 arrays.

    Example:
        >>> folds = read_gin_folds("../shared/datasets/gin/MUTAG", 188)  # doctest: +SKIP
        >>> [len(te) for _, te in folds][:3]  # doctest: +SKIP
        [18, 18, 18]
    """
    fold_dir = Path(folder) / "10fold_idx"
    return [
        (
            _read_index_file(fold_dir / f"train_idx-{k}.txt", num_graphs),
            _read_index_file(fold_dir / f"test_idx-{k}.txt", num_graphs),
        )
        for k in range(1, _NUM_FOLDS + 1)
    ]


def _walk_blocks(lines: Lines) -> tuple[np.ndarray, np.ndarray]:
    """Find the header line of every graph block; return ``(header_lines, node_counts)``.

    Only the headers are visited in Python (one step per graph); node lines are checked
    in bulk afterwards.
    """
    values, first, count = lines.values, lines.first, lines.count
    if count[0] != 1:
        raise lines.error(0, f"expected the number of graphs, got {lines.text(0)}")
    num_graphs = int(values[0])
    if num_graphs < 1:
        raise lines.error(0, f"the number of graphs must be positive, got {num_graphs}")
    headers = np.empty(num_graphs, dtype=np.int64)
    sizes = np.empty(num_graphs, dtype=np.int64)
    total_lines = lines.num_lines
    li = 1
    for g in range(num_graphs):
        if li >= total_lines:
            raise lines.error(total_lines, f"file ends after {g} graphs, but line 1 declares {num_graphs}")
        if count[li] != 2:
            raise lines.error(li, f"expected block header 'num_nodes label' of graph {g}, got {lines.text(li)}")
        n = int(values[first[li]])
        if n < 1:
            raise lines.error(li, f"graph {g} declares {n} nodes; a graph needs at least one")
        if li + n >= total_lines:
            raise lines.error(
                li, f"graph {g} declares {n} nodes but the file ends after {total_lines - 1 - li} node lines"
            )
        headers[g] = li
        sizes[g] = n
        li += n + 1
    if li < total_lines:
        raise lines.error(li, f"extra line after the {num_graphs} graphs declared in line 1: {lines.text(li)}")
    return headers, sizes


def load_gin(root: str | Path, name: str, *, degree_as_tag: bool = False) -> GraphDataset:
    """Load ``root/name/name.txt`` in GIN/GNTK format, with its 10 folds if present.

    Args:
        root: folder with one sub-folder per dataset (e.g. ``shared/datasets/gin``).
        name: dataset name as spelled by GIN, e.g. ``"MUTAG"``, ``"IMDBBINARY"``.
        degree_as_tag: replace node tags by node degrees (``networkx`` degree of the
            undirected graph: a self-loop counts twice), remapped to ``0..T-1`` in
            increasing degree. GIN/GNTK do this for the social datasets. (Their code
            reads the degrees from ``dict(nx_graph.degree)``, i.e. in networkx's node
            insertion order, which can differ from node order; here every node gets
            its own degree.)

    Returns:
        A :class:`GraphDataset`. Node tags and graph labels are renumbered ``0..K-1`` in
        order of first appearance in the file, as the GNTK reference reader does
        (``meta["tag_values"]`` and ``meta["classes"]`` hold the raw values; MUTAG's raw
        labels are 0/2). Neighbour lists become arcs as listed (both directions are in the
        file); exact duplicate arcs are dropped. ``folds`` holds the ten
        ``(train_idx, test_idx)`` pairs from ``10fold_idx``, or ``None`` if that folder
        is absent.

    Raises:
        FileNotFoundError: unknown dataset (the message lists those in ``root``), or a
            missing fold file.
        DatasetFormatError: a malformed file; the one-line message names file and line.

    Example:
        >>> ds = load_gin("../shared/datasets/gin", "MUTAG")  # doctest: +SKIP
        >>> len(ds), ds.num_tags, len(ds.folds)  # doctest: +SKIP
        (188, 7, 10)
    """
    degree_as_tag = as_flag(degree_as_tag, "degree_as_tag")
    folder = dataset_dir(root, name, kind="GIN", is_dataset=_is_gin_folder)
    path = folder / f"{name}.txt"
    if not path.is_file():
        raise missing_file(path, "graphs in GIN text format")
    lines = tokenize(path, read_bytes(path, "graphs in GIN text format"))
    values, first, count = lines.values, lines.first, lines.count
    headers, sizes = _walk_blocks(lines)
    num_graphs = int(headers.size)
    raw_y = values[first[headers] + 1]
    offsets = np.concatenate(([0], np.cumsum(sizes)))
    total = int(offsets[-1])

    # Line number of every node line, in file order = global node order.
    node_graph = np.repeat(np.arange(num_graphs), sizes)
    local = np.arange(total) - offsets[node_graph]
    rows = headers[node_graph] + 1 + local
    nf, nc = first[rows], count[rows]
    raw_tags = values[nf]
    # Reading the neighbour count of a one-token line would run into the next line.
    num_nbrs = np.where(nc >= 2, values[np.minimum(nf + 1, values.size - 1)], -1)
    bad = np.flatnonzero((nc < 2) | (num_nbrs < 0) | (nc != num_nbrs + 2))
    if bad.size:
        i = int(bad[0])
        got = lines.text(int(rows[i]))
        if nc[i] >= 2 and num_nbrs[i] >= 0:
            msg = f"expected {_NODE_LINE} with {int(num_nbrs[i])} neighbours ({int(num_nbrs[i]) + 2} numbers), got {got}"
        else:
            msg = f"expected {_NODE_LINE}, got {got}"
        raise lines.error(int(rows[i]), f"{msg} (node {int(local[i])} of graph {int(node_graph[i])})")

    # Gather all neighbour entries at once: node k's run starts at token nf[k] + 2.
    arc_node = np.repeat(np.arange(total), num_nbrs)
    run_start = np.cumsum(num_nbrs) - num_nbrs
    pos = np.arange(arc_node.size) - run_start[arc_node] + nf[arc_node] + 2
    nbr = values[pos]
    arc_graph = node_graph[arc_node]
    bad = np.flatnonzero((nbr < 0) | (nbr >= sizes[arc_graph]))
    if bad.size:
        k = int(arc_node[bad[0]])
        n = int(sizes[node_graph[k]])
        raise lines.error(
            int(rows[k]),
            f"neighbour index {int(nbr[bad[0]])} out of range 0..{n - 1} (graph {int(node_graph[k])} has {n} nodes)",
        )
    senders = arc_node
    receivers = nbr + offsets[arc_graph]
    del pos, nbr, arc_graph, run_start, lines

    # Drop exact duplicate arcs, keeping file order (senders are sorted already).
    key = senders * np.int64(total) + receivers
    num_arcs = int(key.size)
    if key.size > 1 and not (np.diff(key) > 0).all():
        # First occurrence of each key: stable sort, keep where the key changes.
        order = np.argsort(key, kind="stable")
        sk = key[order]
        keep = np.sort(order[np.concatenate(([True], sk[1:] != sk[:-1]))])
        senders, receivers = senders[keep], receivers[keep]
    del key

    # The GIN/GNTK readers build undirected networkx graphs, so a neighbour listed on one side
    # only is an undirected edge there: add the missing reverse arcs, and say so.
    key = senders * np.int64(total) + receivers
    missing = ~np.isin(receivers * np.int64(total) + senders, key)
    one_sided = int(missing.sum())
    if one_sided:
        warnings.warn(f"{path}: {one_sided} neighbour entries are listed on one side only; added the reverse arcs "
                      "(as the GIN/GNTK readers, which build undirected graphs)", DatasetWarning, stacklevel=2)
        add_s, add_r = receivers[missing], senders[missing]
        senders, receivers = np.concatenate([senders, add_s]), np.concatenate([receivers, add_r])
        order = np.argsort(senders * np.int64(total) + receivers, kind="stable")
        senders, receivers = senders[order], receivers[order]
    del key, missing

    classes, y = _first_appearance(raw_y)
    tag_values, tags = _first_appearance(raw_tags)
    folds = read_gin_folds(folder, num_graphs) if (folder / "10fold_idx").is_dir() else None
    meta = {
        "format": "gin",
        "path": str(folder),
        "classes": classes,
        "tag_values": tag_values,
        "duplicate_arcs_removed": num_arcs + one_sided - int(senders.size),
        "one_sided_arcs_completed": one_sided,
    }
    return assemble(
        name,
        sizes,
        senders,
        receivers,
        y,
        tags=tags,
        x=None,
        degree_as_tag=degree_as_tag,
        folds=folds,
        meta=meta,
    )
