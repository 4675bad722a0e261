"""Loader for the Planetoid citation graphs (Cora, CiteSeer, PubMed) with the GCN public split.

The files ``ind.<name>.{x,y,tx,ty,allx,ally,graph}`` are Python-2 pickles and
``ind.<name>.test.index`` is plain text. Their meaning (Yang et al. 2016, as used by
Kipf & Welling's GCN loader):

- ``allx``/``ally``: features / one-hot labels of every non-test node, nodes ``0..len(allx)-1``;
- ``x``/``y``: the labelled training nodes, which are the first rows of ``allx``;
- ``tx``/``ty``: the test nodes; row ``i`` belongs to node ``test.index[i]``;
- ``graph``: dict from node id to its neighbour ids.
"""

from __future__ import annotations

import os
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from graph_ntk.checks import as_path
from graph_ntk.datasets._errors import DatasetFormatError, dataset_dir, missing_file, read_bytes, tokenize

__all__ = ["PlanetoidData", "load_planetoid"]

_PARTS = {
    "x": "features of the labelled training nodes",
    "y": "one-hot labels of the labelled training nodes",
    "tx": "features of the test nodes",
    "ty": "one-hot labels of the test nodes",
    "allx": "features of all non-test nodes",
    "ally": "one-hot labels of all non-test nodes",
    "graph": "adjacency dict: node id -> neighbour ids",
    "test.index": "node ids of the test rows, one per line",
}
_NUM_VAL = 500  # validation nodes of the GCN public split


@dataclass(eq=False)
class PlanetoidData:
    """A Planetoid citation graph with the GCN public split.

    Attributes:
        x: ``(N, F)`` float32 CSR node features.
        y: ``(N,)`` int64 class labels; ``-1`` for nodes without a label (CiteSeer's
            isolated test-range nodes).
        edge_index: ``(2, E)`` int64 arcs, both directions of every undirected edge, no
            self-loops, no duplicates, sorted.
        train_idx: the ``20 * C`` labelled training nodes.
        val_idx: the next 500 nodes.
        test_idx: the 1000 test nodes, sorted.
        num_classes: ``C``.
        name: dataset name.
    """

    x: sp.csr_matrix
    y: np.ndarray
    edge_index: np.ndarray
    train_idx: np.ndarray
    val_idx: np.ndarray
    test_idx: np.ndarray
    num_classes: int
    name: str = ""

    @property
    def num_nodes(self) -> int:
        return int(self.y.shape[0])

    @property
    def num_features(self) -> int:
        return int(self.x.shape[1])

    @property
    def num_edges(self) -> int:
        """Undirected edges (each stored as two arcs)."""
        return int(self.edge_index.shape[1]) // 2


class _SafeUnpickler(pickle.Unpickler):
    """Unpickles only NumPy arrays, SciPy sparse matrices and builtin containers: a Planetoid
    file from the internet could otherwise name any function and run it while loading."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"): ("numpy.core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"): ("numpy", "ndarray"),
        ("numpy", "dtype"): ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"): ("numpy.core.multiarray", "scalar"),
        ("scipy.sparse.csr", "csr_matrix"): ("scipy.sparse", "csr_matrix"),
        ("scipy.sparse._csr", "csr_matrix"): ("scipy.sparse", "csr_matrix"),
        ("scipy.sparse.csc", "csc_matrix"): ("scipy.sparse", "csc_matrix"),
        ("scipy.sparse.coo", "coo_matrix"): ("scipy.sparse", "coo_matrix"),
        ("scipy.sparse.lil", "lil_matrix"): ("scipy.sparse", "lil_matrix"),
        ("__builtin__", "list"): ("builtins", "list"),
        ("builtins", "list"): ("builtins", "list"),
        ("__builtin__", "set"): ("builtins", "set"),
        ("builtins", "set"): ("builtins", "set"),
        ("collections", "defaultdict"): ("collections", "defaultdict"),
        ("collections", "OrderedDict"): ("collections", "OrderedDict"),
    }

    def find_class(self, module: str, name: str):
        target = self._ALLOWED.get((module, name))
        if target is None:
            raise pickle.UnpicklingError(f"it names {module}.{name}, which a Planetoid file never needs "
                                         "(only NumPy arrays, SciPy sparse matrices and lists/dicts are "
                                         "loaded; nothing in the file is executed)")
        return super().find_class(*target)


def _load_pickle(path: Path):
    try:
        with open(path, "rb") as f, warnings.catch_warnings():
            # Old pickles name numpy.core / scipy.sparse.csr, deprecated module paths.
            warnings.simplefilter("ignore", DeprecationWarning)
            return _SafeUnpickler(f, encoding="latin1").load()
    except Exception as exc:  # any unpickling failure: report it as one line, not pickle's traceback
        raise DatasetFormatError(path, None, f"not a readable Planetoid pickle ({type(exc).__name__}: {exc})") from None


def _matrix(obj, path: Path, *, sparse: bool) -> sp.csr_matrix | np.ndarray:
    if sparse:
        if sp.issparse(obj) or isinstance(obj, np.ndarray):
            m = sp.csr_matrix(obj, dtype=np.float32)
            if m.ndim == 2:
                return m
    elif isinstance(obj, np.ndarray) and obj.ndim == 2 or sp.issparse(obj):
        return np.asarray(obj.todense() if sp.issparse(obj) else obj)
    raise DatasetFormatError(path, None, f"expected a 2-D {'sparse feature' if sparse else 'one-hot label'} matrix, got {type(obj).__name__}")


def _labels(onehot: np.ndarray, path: Path | None = None) -> np.ndarray:
    """Class of each one-hot row; ``-1`` for all-zero rows. A row that is not one-hot (several
    ones, or values other than 0/1) is refused: its class would be a guess."""
    onehot = np.asarray(onehot)
    bad = ~np.isin(onehot, (0, 1)).all(axis=1) | (onehot.sum(axis=1) > 1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DatasetFormatError(path or Path("labels"), None, f"label row {i} is not one-hot "
                                 f"({onehot[i].tolist()[:10]}...): each node needs exactly one class (or none)")
    return np.where(onehot.any(axis=1), onehot.argmax(axis=1), -1).astype(np.int64)


def load_planetoid(root: str | Path, name: str) -> PlanetoidData:
    """Load ``root/name/ind.name.*`` and build the GCN public split.

    Node ``i < len(allx)`` gets row ``i`` of ``allx``/``ally``; test node
    ``test.index[j]`` gets row ``j`` of ``tx``/``ty``. Ids in the test range that are not
    in ``test.index`` (15 isolated CiteSeer nodes) get all-zero features and label ``-1``,
    as in Kipf's loader. Splits: train = ``range(len(y))``, val = the next 500 ids,
    test = sorted ``test.index``; unlabelled nodes are left out of all three.

    Args:
        root: folder with one sub-folder per dataset (e.g. ``shared/datasets/planetoid``).
        name: ``"cora"``, ``"citeseer"`` or ``"pubmed"`` (case-insensitive).

    Raises:
        FileNotFoundError: unknown dataset, or a missing file (PubMed here lacks
            ``ind.pubmed.allx``); the one-line message names the file and what it holds.
        DatasetFormatError: a file that does not hold what it should.

    Example:
        >>> data = load_planetoid("../shared/datasets/planetoid", "cora")  # doctest: +SKIP
        >>> data.num_nodes, data.num_edges, data.num_features, data.num_classes  # doctest: +SKIP
        (2708, 5278, 1433, 7)
    """
    if (isinstance(root, (str, os.PathLike)) and root and isinstance(name, str) and name
            and not (as_path(root, 'root') / name).is_dir() and (as_path(root, 'root') / name.lower()).is_dir()):
        name = name.lower()  # files are named ind.cora.*, but users write "Cora"
    folder = dataset_dir(root, name, kind="Planetoid", is_dataset=lambda p: (p / f"ind.{p.name}.graph").is_file())
    paths = {part: folder / f"ind.{name}.{part}" for part in _PARTS}
    # Check every file before unpickling anything, so a missing one fails fast and clearly.
    for part, path in paths.items():
        if not path.is_file():
            raise missing_file(path, _PARTS[part])

    feats = {p: _matrix(_load_pickle(paths[p]), paths[p], sparse=True) for p in ("x", "tx", "allx")}
    onehot = {p: _matrix(_load_pickle(paths[p]), paths[p], sparse=False) for p in ("y", "ty", "ally")}
    graph = _load_pickle(paths["graph"])
    if not isinstance(graph, dict):
        raise DatasetFormatError(paths["graph"], None, f"expected a dict node -> neighbours, got {type(graph).__name__}")
    for node, nbrs in graph.items():  # node ids are integers; anything else would be mis-mapped or dropped
        if isinstance(node, bool) or not isinstance(node, (int, np.integer)) or not isinstance(nbrs, (list, tuple, set)) \
                or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in nbrs):
            raise DatasetFormatError(paths["graph"], None, f"expected integer node ids with lists of integer "
                                     f"neighbours, got {node!r}: {str(nbrs)[:40]}")
    idx_lines = tokenize(paths["test.index"], read_bytes(paths["test.index"], _PARTS["test.index"]))
    test_index = idx_lines.table(1, "one node id per line")[:, 0]

    num_features = feats["allx"].shape[1]
    num_classes = onehot["ally"].shape[1]
    for a, b in (("x", "y"), ("tx", "ty"), ("allx", "ally")):
        if feats[a].shape[0] != onehot[b].shape[0]:
            raise DatasetFormatError(paths[b], None, f"has {onehot[b].shape[0]} rows but ind.{name}.{a} has {feats[a].shape[0]}")
    for p in ("x", "tx"):
        if feats[p].shape[1] != num_features:
            raise DatasetFormatError(paths[p], None, f"has {feats[p].shape[1]} feature columns, allx has {num_features}")
    for p in ("y", "ty"):
        if onehot[p].shape[1] != num_classes:
            raise DatasetFormatError(paths[p], None, f"has {onehot[p].shape[1]} label columns, ally has {num_classes}")
    if test_index.size != feats["tx"].shape[0]:
        raise DatasetFormatError(paths["test.index"], None, f"lists {test_index.size} ids but ind.{name}.tx has {feats['tx'].shape[0]} rows")

    num_known = feats["allx"].shape[0]
    bad = np.flatnonzero(test_index < num_known)
    if bad.size:
        raise idx_lines.error(int(bad[0]), f"test node id {int(test_index[bad[0]])} is below {num_known}, the number of allx rows")
    if np.unique(test_index).size != test_index.size:
        raise DatasetFormatError(paths["test.index"], None, "lists some node id twice")
    num_nodes = int(max(num_known, test_index.max() + 1))

    # Row source of each node in [allx; tx; one zero row]: nodes in the test range that
    # have no tx row (CiteSeer) point at the zero row.
    source = np.full(num_nodes, num_known + test_index.size, dtype=np.int64)
    source[:num_known] = np.arange(num_known)
    source[test_index] = num_known + np.arange(test_index.size)
    zero_row = sp.csr_matrix((1, num_features), dtype=np.float32)
    x = sp.vstack([feats["allx"], feats["tx"], zero_row], format="csr")[source]
    x.sort_indices()
    y = np.concatenate([_labels(onehot["ally"], paths["ally"]), _labels(onehot["ty"], paths["ty"]), [-1]])[source]

    # Edges: union of both directions, minus self-loops and duplicates (the raw dicts
    # contain a few of each).
    try:
        senders = np.fromiter((int(k) for k, nbrs in graph.items() for _ in nbrs), dtype=np.int64)
        receivers = np.fromiter((int(v) for nbrs in graph.values() for v in nbrs), dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise DatasetFormatError(paths["graph"], None, f"node ids must be integers ({exc})") from None
    for ids in (senders, receivers):
        bad = np.flatnonzero((ids < 0) | (ids >= num_nodes))
        if bad.size:
            raise DatasetFormatError(paths["graph"], None, f"node id {int(ids[bad[0]])} out of range 0..{num_nodes - 1}")
    adj = sp.coo_matrix((np.ones(senders.size), (senders, receivers)), shape=(num_nodes, num_nodes)).tocsr()
    adj = (adj + adj.T).tocoo()
    keep = adj.row != adj.col
    order = np.lexsort((adj.col[keep], adj.row[keep]))
    edge_index = np.stack([adj.row[keep][order], adj.col[keep][order]]).astype(np.int64)

    def labelled(idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64)
        return idx[y[idx] >= 0]

    num_train = onehot["y"].shape[0]
    return PlanetoidData(
        x=x,
        y=y,
        edge_index=edge_index,
        train_idx=labelled(np.arange(num_train)),
        val_idx=labelled(np.arange(num_train, min(num_train + _NUM_VAL, num_nodes))),
        test_idx=labelled(np.sort(test_index)),
        num_classes=int(num_classes),
        name=name,
    )
