"""Node-count buckets and chunks of graphs for the node path (pure NumPy)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from graph_ntk.checks import as_count

from graph_ntk.data.graph import Graph

# Rough costs on a 2-core CPU for GNTK(4, 2) (float64): seconds per unit of padded work
# N1*N2*(N1+N2) for one graph pair, and seconds to compile one block shape. They only steer
# the choice of bucket boundaries, never the result.
_SECONDS_PER_UNIT = 4e-9
_SECONDS_PER_COMPILE = 2.0
# Peak memory of one block is about this many (b1, b2, N1, N2) arrays (NNGP, NTK and the
# temporaries of the dual activations); sets the chunk size of big graphs.
_ARRAYS_PER_BLOCK = 16
# Graphs per side of a node-path block when block_size is not given.
_NODE_BLOCK_SIZE = 128

@dataclass(frozen=True)
class BucketPlan:
    """Node-count buckets: bucket ``b`` holds graphs with ``bounds[b-1] < n <= bounds[b]``.

    Every graph of bucket ``b`` is padded to ``bounds[b]`` nodes (the largest graph in it).

    Example:
        >>> BucketPlan((10, 25)).assign(np.array([3, 10, 11, 25])).tolist()
        [0, 0, 1, 1]
    """

    bounds: tuple[int, ...]

    def assign(self, sizes: np.ndarray) -> np.ndarray:
        """The bucket of every node count in ``sizes``."""
        sizes = np.asarray(sizes)
        if sizes.size and sizes.max() > self.bounds[-1]:
            raise ValueError(f"a graph has {sizes.max()} nodes, more than the plan's largest bucket "
                             f"({self.bounds[-1]})")
        return np.searchsorted(np.asarray(self.bounds), sizes, side="left")


def _estimated_seconds(counts: np.ndarray, padded: np.ndarray) -> float:
    # Symmetric Gram: half of sum_{b,c} n_b n_c N_b N_c (N_b + N_c) = (sum n N^2)(sum n N).
    work = float(np.sum(counts * padded**2.0)) * float(np.sum(counts * padded))
    k = len(counts)
    return work * _SECONDS_PER_UNIT + k * (k + 1) / 2 * _SECONDS_PER_COMPILE


def plan_buckets(sizes: Sequence[int] | np.ndarray, max_buckets: int = 8) -> BucketPlan:
    r"""Choose at most ``max_buckets`` node-count buckets for graphs with ``sizes`` nodes.

    For each ``k <= max_buckets`` a dynamic programme over the distinct sizes finds the
    contiguous partition minimising the padded work :math:`\sum_b n_b N_b^2`; among those,
    the ``k`` with the smallest estimated time (work plus :math:`k(k+1)/2` compilations)
    wins. Small datasets therefore get few buckets (compilation dominates) and skewed
    large ones more.

    Example:
        >>> plan_buckets([5] * 100 + [200], max_buckets=4).bounds
        (5, 200)
    """
    as_count(max_buckets, "max_buckets")
    values, counts = np.unique(np.asarray(sizes, dtype=np.int64), return_counts=True)
    if values.size == 0:
        raise ValueError("sizes is empty: no graphs to plan buckets for")
    d = values.size
    cum = np.concatenate(([0], np.cumsum(counts))).astype(np.float64)
    square = values.astype(np.float64) ** 2
    # best[k][j]: min work covering the first j distinct sizes with k buckets; the last
    # bucket (i, j] costs (cum[j] - cum[i]) * values[j-1]^2.
    best = np.full((max_buckets + 1, d + 1), np.inf)
    best[0, 0] = 0.0
    split = np.zeros((max_buckets + 1, d + 1), dtype=np.int64)
    for k in range(1, max_buckets + 1):
        for j in range(k, d + 1):
            cand = best[k - 1, :j] + (cum[j] - cum[:j]) * square[j - 1]
            i = int(np.argmin(cand))
            best[k, j], split[k, j] = cand[i], i
    plans = []
    for k in range(1, min(max_buckets, d) + 1):
        ends, j = [], d
        for kk in range(k, 0, -1):
            ends.append(j)
            j = split[kk, j]
        ends = ends[::-1]
        bounds = values[np.array(ends) - 1]
        n_per = np.diff(np.concatenate(([0], cum[ends])))
        plans.append((_estimated_seconds(n_per, bounds.astype(np.float64)), tuple(int(b) for b in bounds)))
    return BucketPlan(min(plans)[1])


# --------------------------------------------------------------------------- blocks
@dataclass(frozen=True, eq=False)
class Chunk:
    """A run of graphs (indices into one collection) evaluated together as one padded batch."""

    key: str
    index: np.ndarray  # real graphs, indices into the collection
    padded_len: int  # batch length (padding repeats the first graph)
    n_max: int
    e_max: int


def _chunks(graphs: Sequence[Graph], plan: BucketPlan, caps: dict[int, int], prefix: str) -> list[Chunk]:
    """Cut every bucket into equally long chunks of at most ``caps[bucket]`` graphs."""
    sizes = np.array([g.num_nodes for g in graphs])
    edges = np.array([g.num_edges for g in graphs])
    bucket = plan.assign(sizes)
    out = []
    for b, n_max in enumerate(plan.bounds):
        members = np.flatnonzero(bucket == b)
        if members.size == 0:
            continue
        pieces = math.ceil(members.size / caps[b])
        length = math.ceil(members.size / pieces)  # equal lengths: one compiled shape per bucket
        e_max = max(1, int(edges[members].max()))
        for p in range(pieces):
            out.append(Chunk(f"{prefix}{b}.{p}", members[p * length:(p + 1) * length], length, int(n_max), e_max))
    return out


def _chunk_caps(plan: BucketPlan, block_size: int, memory_limit: int, itemsize: int) -> dict[int, int]:
    """Largest chunk per bucket: ``block_size``, and small enough that a square block of the
    bucket with itself needs at most ``memory_limit`` bytes (so any pair fits too)."""
    caps = {}
    for b, n in enumerate(plan.bounds):
        fit = math.isqrt(max(1, int(memory_limit // (_ARRAYS_PER_BLOCK * itemsize * n * n))))
        caps[b] = max(1, min(block_size, fit))
    return caps

