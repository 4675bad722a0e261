r"""Exact equivalence classes ("items") of nodes under the linear maps of a graph network.

The engine never works on nodes directly. It works on *items*: classes of nodes (of all
graphs of a dataset at once) whose kernel rows are provably identical.

* **Start** (:func:`feature_partition`): nodes with identical feature rows share an item
  (discrete tags, one-hot rows and repeated continuous values alike). The input kernel is
  :math:`K^{(0)} = R R^\top / F` for the ``C_0 x F`` matrix ``R`` of distinct rows.
* **Refine** (:func:`refine`): a linear map :math:`h'_v = \sum_u c_{vu} h_u` between node
  sets (an aggregation: the same nodes; a pooling: clusters or graphs) sends node ``v`` to
  the *row* :math:`r_v = \sum_u c_{vu} e_{\mathrm{item}(u)}` over the old items, and
  :math:`K'[v, w] = r_v K r_w^\top` depends on ``v`` only through :math:`r_v`. So new items
  are the distinct rows (for several maps at once, e.g. one per edge type, the distinct
  tuples of rows), and the ``C' x C`` matrix ``M`` of one representative row per new item
  carries the kernels: :math:`K' = M K M^\top`. Rows are compared exactly (their entries'
  bit patterns, ranked by sorting, never hashed), so equal items are exactly equal; two
  nodes whose rows differ only by rounding get two items, which costs compression, never
  exactness. This is Weisfeiler–Lehman refinement with edge weights, edge types,
  self-loops and arc directions built into the rows.

Example:
    >>> import numpy as np, scipy.sparse as sp
    >>> part = feature_partition(np.array([[1.0], [1.0], [2.0]]))
    >>> part.items.tolist(), part.representatives.tolist()
    ([0, 0, 1], [[1.0], [2.0]])
    >>> path = sp.csr_matrix(np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0.]]))  # h'_v = sum of neighbours
    >>> new, (m,) = refine(part.items, part.num_items, [path])
    >>> new.items.tolist(), m.toarray().tolist()
    ([0, 1, 0], [[1.0, 0.0], [1.0, 1.0]])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import scipy.sparse as sp

from graph_ntk.kernels.wl_colours import _by_first_occurrence, _rank_sequences

__all__ = ["FeaturePartition", "Partition", "feature_partition", "refine"]


@dataclass(frozen=True)
class Partition:
    """``items[v]``: the item of element ``v`` (numbered by first occurrence)."""

    items: np.ndarray
    num_items: int


@dataclass(frozen=True)
class FeaturePartition(Partition):
    """The starting partition; ``representatives`` holds one feature row per item."""

    representatives: np.ndarray


def feature_partition(features: np.ndarray) -> FeaturePartition:
    """Group the rows of ``features`` (nodes x F) into items of identical rows."""
    features = np.ascontiguousarray(features)
    if features.ndim != 2:
        raise ValueError(f"features must be a (nodes, F) array, got shape {features.shape}")
    # Compare rows as raw bytes: exact, and one sort for any feature dimension.
    rows = features.view(np.dtype((np.void, features.dtype.itemsize * features.shape[1]))).ravel()
    _, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
    items = _by_first_occurrence(inverse.ravel())
    reps = np.empty((first.size, features.shape[1]), dtype=features.dtype)
    reps[items] = features
    return FeaturePartition(items, int(first.size), reps)


def refine(items: np.ndarray, num_items: int, maps: Sequence[sp.spmatrix], *,
           keep: np.ndarray | None = None) -> tuple[Partition, list[sp.csr_matrix]]:
    r"""New items of the elements of the maps' row space, and the per-map item matrices.

    Args:
        items: item of every element of the maps' column space (old items).
        num_items: number of old items.
        maps: sparse ``(n_new, n_old)`` matrices, :math:`h' = \text{map} \, h`.
        keep: optional extra integer key per new element (e.g. its old item, so that the new
            partition refines the old one).

    Returns:
        ``(partition, [M_t])`` with ``M_t`` of shape ``(C_new, C_old)``:
        :math:`M_t[a] = \sum_u \text{map}_t[v, u]\, e_{\text{items}[u]}` for a representative
        ``v`` of new item ``a``.
    """
    n_new = maps[0].shape[0]
    indicator = sp.csr_matrix((np.ones(items.size), (np.arange(items.size), items)), shape=(items.size, num_items))
    rows = [(m.tocsr() @ indicator).tocsr() for m in maps]
    owners, keys, values = [], [], []
    for t, r in enumerate(rows):
        r.sum_duplicates()
        r.sort_indices()
        owners.append(np.repeat(np.arange(n_new), np.diff(r.indptr)))
        keys.append(r.indices.astype(np.int64) + t * num_items)
        values.append(r.data.astype(np.float64).view(np.int64))
    if keep is not None:
        owners.append(np.arange(n_new))
        keys.append(np.full(n_new, len(rows) * num_items, dtype=np.int64))
        values.append(np.asarray(keep, dtype=np.int64))
    owner, key, value = (np.concatenate(a) for a in (owners, keys, values))
    if owner.size:
        # (key, value bits) pairs -> dense ids, so that the sequence ranking's products stay
        # small: values first (few distinct ones), then one int64 code per pair.
        value_id = np.unique(value, return_inverse=True)[1].ravel()
        code = key * (int(value_id.max()) + 1) + value_id
        pair_id = np.unique(code, return_inverse=True)[1].ravel()
        order = np.lexsort((pair_id, owner))
        ident = _rank_sequences(owner[order], pair_id[order], n_new)
    else:
        ident = np.zeros(n_new, dtype=np.int64)
    new_items = _by_first_occurrence(ident)
    num_new = int(new_items.max()) + 1
    rep = np.empty(num_new, dtype=np.int64)
    rep[new_items[::-1]] = np.arange(n_new)[::-1]  # the first element of each item
    out = []
    for r in rows:
        m = r[rep]
        m.sort_indices()
        out.append(m)
    return Partition(new_items, num_new), out
