r"""Gram matrices of graph kernels at dataset scale: bucketed, blocked, cached and resumable.

:func:`gram` computes :math:`K_{ij} = k(G_i, G'_j)` for every pair of graphs of one or two
collections, where :math:`k` is the NNGP (``get='nngp'``) or NTK (``get='ntk'``) of a graph
network, given either

* as a :class:`GNTK` description (the GNTK of Du et al. 2019, see
  :func:`graph_ntk.models.gntk`), which can use the fast colour-compressed engine
  (:mod:`graph_ntk.kernels.gntk_colour`) when the node features are discrete labels, or
* as any ``kernel_fn`` of a ``stax`` triple built from :class:`graph_ntk.Aggregate` and the
  graph pools, evaluated on padded node-feature batches (the *node path*).

The node path
-------------
Padding every graph to the largest one wastes work quadratically (PROTEINS: a median of 26
nodes but a maximum of 620), so graphs are grouped by node count into a few *buckets*,
padded only to their bucket's largest graph, and the kernel is evaluated block by block:
``bucket_i x bucket_j``, each side cut into chunks of at most ``block_size`` graphs (fewer
for big graphs, so that one block stays within ``memory_limit``). Every block shape is
compiled once by :func:`jax.jit`; in the symmetric case (``graphs2=None``) each unordered
pair of chunks is computed once and mirrored. Blocks are spread round-robin over all
local JAX devices.

The bucket boundaries minimise an estimate of the run time: for ``k`` buckets a dynamic
programme picks the boundaries minimising the padded work :math:`\sum_b n_b N_b^2`
(:math:`n_b` graphs padded to :math:`N_b` nodes; a dense ``Aggregate`` costs
:math:`O(N N'(N + N'))` per graph pair), and ``k`` trades that work against one
compilation per pair of buckets.

The colour path
---------------
For a :class:`GNTK` on graphs with discrete node labels, the colour engine
(:func:`graph_ntk.kernels.gntk_colour.gntk_gram_colour`) computes the same matrix exactly
over distinct Weisfeiler-Lehman colours, usually far faster. Its memory grows with the
square of the number of colours, so when the whole collection does not fit
``memory_limit`` the graphs are cut into chunks of bounded colour count and the engine is
run per pair of chunks (see :func:`_plan_colour_chunks`).

Caching and resuming
--------------------
With ``cache_dir``, every finished block is written atomically (temporary file in the same
folder, then :func:`os.replace`) to ``cache_dir/<key>/``. The key hashes the graphs' content
(node counts, arcs, labels, features, edge weights of both collections), the kernel
configuration, ``get``, ``dtype`` and the block plan, so a changed setting never reuses a
stale block, and a run killed at any moment (even by SIGKILL) restarts without redoing the
finished blocks. ``output`` is likewise written atomically once the matrix is complete.

Precision: ``dtype='float64'`` turns on JAX's 64-bit mode *for the duration of the call*
(``jax.enable_x64``), without changing the global setting.

Example:
    >>> from graph_ntk.datasets import make_demo_dataset
    >>> ds = make_demo_dataset(60)
    >>> K = gram(GNTK(num_blocks=2), ds, get="ntk", progress=False)  # colour engine
    >>> K.shape
    (60, 60)
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import tempfile
import time
import warnings
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Sequence

import jax
import numpy as np

from graph_ntk.data.batch import GraphBatch, kernel_kwargs
from graph_ntk.data.graph import Graph, GraphDataset
from graph_ntk.models.gntk import gntk

__all__ = [
    "GNTK",
    "BucketPlan",
    "cache_key",
    "gram",
    "gram_diagonal",
    "plan_buckets",
    "save_npy_atomic",
]

_GETS = ("nngp", "ntk")
_DTYPES = ("float32", "float64")
_METHODS = ("auto", "colour", "nodes")
_IMPLEMENTATIONS = ("DENSE", "SPARSE")
# Bump when the meaning of a cached block changes, so old caches are never read.
_CACHE_VERSION = "graph_ntk.engine/1"
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
_FANIN_WARNING = r"`FanIn` layers assume independent inputs"


# --------------------------------------------------------------------------- model
@dataclass(frozen=True)
class GNTK:
    r"""The GNTK / GNNGP architecture of Du et al. (2019), as a hashable description.

    :meth:`stax` builds the ``stax`` triple (:func:`graph_ntk.models.gntk`); :func:`gram`
    additionally knows that this kernel has the exact colour-compressed engine.

    Args:
        num_blocks: L, aggregate + MLP blocks.
        num_mlp_layers: R, ReLU layers per block.
        aggregation: ``'sum'`` (:math:`c_u = 1`) or ``'mean'`` (:math:`c_u = 1/(|N(u)|+1)`).
        jumping_knowledge: read out every level, or only the last.
        readout: ``'sum'`` or ``'mean'`` over each graph's nodes.

    Example:
        >>> GNTK(num_blocks=2, aggregation="mean").config()["aggregation"]
        'mean'
    """

    num_blocks: int = 4
    num_mlp_layers: int = 2
    aggregation: Literal["sum", "mean"] = "sum"
    jumping_knowledge: bool = True
    readout: Literal["sum", "mean"] = "sum"

    def __post_init__(self) -> None:
        for name in ("num_blocks", "num_mlp_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"GNTK {name} must be an integer >= 1, got {value!r}")
            object.__setattr__(self, name, int(value))
        if self.aggregation not in ("sum", "mean"):
            raise ValueError(f"GNTK aggregation must be 'sum' or 'mean', got {self.aggregation!r}")
        if self.readout not in ("sum", "mean"):
            raise ValueError(f"GNTK readout must be 'sum' or 'mean', got {self.readout!r}")
        object.__setattr__(self, "jumping_knowledge", bool(self.jumping_knowledge))

    def stax(self, input_dim: int, implementation: Literal["DENSE", "SPARSE"] = "DENSE"):
        """The ``(init_fn, apply_fn, kernel_fn)`` triple for ``input_dim`` node features."""
        return gntk(self.num_blocks, self.num_mlp_layers, self.aggregation, self.jumping_knowledge,
                    self.readout, input_dim=input_dim, implementation=implementation)

    def config(self) -> dict[str, Any]:
        """A JSON-able description (part of the cache key)."""
        return {"model": "GNTK", **asdict(self)}


@functools.lru_cache(maxsize=64)
def _gntk_kernel_fn(model: GNTK, input_dim: int, implementation: str) -> Callable:
    # Cached so that repeated gram() calls share one kernel_fn and hence jit's compile cache.
    return model.stax(input_dim, implementation)[2]


# --------------------------------------------------------------------------- inputs
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
    """The node-feature dimension (one-hot labels, then x), which every graph must share."""
    def dim(g: Graph) -> int:
        return (num_tags if g.node_labels is not None and num_tags is not None else 0) + (0 if g.x is None else g.x.shape[1])

    dims = {dim(g) for g in graphs}
    if 0 in dims:
        raise ValueError("some graphs carry neither node_labels nor features x; give one of them to every graph")
    if len(dims) > 1:
        raise ValueError(f"graphs (and graphs2) have different node-feature dimensions {sorted(dims)}: give every "
                         "graph the same kind of node information (labels, features x, or both)")
    return dims.pop()


def _normalise_get(get: str | Sequence[str]) -> tuple[tuple[str, ...], bool]:
    """``(gets, single)``: the requested kernels and whether a single one was asked for."""
    if isinstance(get, str):
        gets, single = (get,), True
    else:
        gets, single = tuple(get), False
    if not gets or any(g not in _GETS for g in gets) or len(set(gets)) != len(gets):
        raise ValueError(f"get must be 'nngp', 'ntk' or a tuple of both, got {get!r}")
    return gets, single


# --------------------------------------------------------------------------- buckets
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
    if isinstance(max_buckets, bool) or not isinstance(max_buckets, (int, np.integer)) or max_buckets < 1:
        raise ValueError(f"max_buckets must be an integer >= 1, got {max_buckets!r}")
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
class _Chunk:
    """A run of graphs (indices into one collection) evaluated together as one padded batch."""

    key: str
    index: np.ndarray  # real graphs, indices into the collection
    padded_len: int  # batch length (padding repeats the first graph)
    n_max: int
    e_max: int


def _chunks(graphs: Sequence[Graph], plan: BucketPlan, caps: dict[int, int], prefix: str) -> list[_Chunk]:
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
            out.append(_Chunk(f"{prefix}{b}.{p}", members[p * length:(p + 1) * length], length, int(n_max), e_max))
    return out


def _chunk_caps(plan: BucketPlan, block_size: int, memory_limit: int, itemsize: int) -> dict[int, int]:
    """Largest chunk per bucket: ``block_size``, and small enough that a square block of the
    bucket with itself needs at most ``memory_limit`` bytes (so any pair fits too)."""
    caps = {}
    for b, n in enumerate(plan.bounds):
        fit = math.isqrt(max(1, int(memory_limit // (_ARRAYS_PER_BLOCK * itemsize * n * n))))
        caps[b] = max(1, min(block_size, fit))
    return caps


class _NodeEngine:
    """Evaluates ``kernel_fn`` on padded batches of two chunks, one jit compilation per shape."""

    def __init__(self, kernel_fn: Callable, gets: tuple[str, ...], num_tags: int | None, implementation: str,
                 dtype: str, graphs1: Sequence[Graph], graphs2: Sequence[Graph]) -> None:
        self.kernel_fn, self.gets = kernel_fn, gets
        self.num_tags, self.sparse, self.dtype = num_tags, implementation == "SPARSE", dtype
        self.graphs = {"a": graphs1, "b": graphs2}
        self.devices = jax.devices()
        # Padded batches of recently used chunks: a row chunk meets every column chunk.
        self._batches: OrderedDict[tuple[str, str], GraphBatch] = OrderedDict()

    def _batch(self, side: str, chunk: _Chunk) -> GraphBatch:
        key = (side, chunk.key)
        if key in self._batches:
            self._batches.move_to_end(key)
            return self._batches[key]
        self._batches[key] = self._make_batch(side, chunk)
        if len(self._batches) > 16:
            self._batches.popitem(last=False)
        return self._batches[key]

    def _make_batch(self, side: str, chunk: _Chunk) -> GraphBatch:
        graphs = self.graphs[side]
        index = np.concatenate([chunk.index, np.full(chunk.padded_len - chunk.index.size, chunk.index[0])])
        return GraphBatch.from_graphs([graphs[i] for i in index], num_tags=self.num_tags, sparse=self.sparse,
                                      n_max=chunk.n_max, e_max=chunk.e_max)

    def dispatch(self, ca: _Chunk, sa: str, cb: _Chunk, sb: str, slot: int):
        """Start the block asynchronously on device ``slot`` (round-robin over devices)."""
        b1, b2 = self._batch(sa, ca), self._batch(sb, cb)
        # kernel_kwargs is the one place that knows how the layers want the graphs (pattern,
        # node mask, edge weights): array-valued entries become jit arguments, anything else
        # is baked into the compiled function.
        arrays, static = {}, []
        for name, value in sorted(kernel_kwargs(b1, b2).items()):
            if isinstance(value, tuple) and all(isinstance(v, np.ndarray) for v in value):
                arrays[name] = tuple(self._cast(v) for v in value)
            else:
                static.append((name, value))
        fn = _jitted_block(self.kernel_fn, self.gets, tuple(static))
        args = (self._cast(b1.x), self._cast(b2.x), arrays)
        if len(self.devices) > 1:
            args = jax.device_put(args, self.devices[slot % len(self.devices)])
        with warnings.catch_warnings():
            # The GNTK's jumping-knowledge branches are independent by construction (see
            # graph_ntk.models.gntk); NT warns about FanInSum regardless at trace time.
            warnings.filterwarnings("ignore", message=_FANIN_WARNING, category=UserWarning)
            return fn(*args)

    def _cast(self, a: np.ndarray) -> np.ndarray:
        return a.astype(self.dtype) if np.issubdtype(a.dtype, np.floating) else a

    @staticmethod
    def collect(pending) -> np.ndarray:
        return np.stack([np.asarray(k) for k in pending])


@functools.lru_cache(maxsize=64)
def _jitted_block(kernel_fn: Callable, gets: tuple[str, ...], static: tuple[tuple[str, Any], ...]) -> Callable:
    """``jit`` of one block evaluation; cached per kernel so compilations are reused."""

    def block(x1, x2, arrays):
        return tuple(kernel_fn(x1, x2, gets, **arrays, **dict(static)))

    return jax.jit(block)


class _ColourEngine:
    """Blocks of the colour-compressed GNTK engine (:mod:`graph_ntk.kernels.gntk_colour`)."""

    def __init__(self, model: GNTK, gets: tuple[str, ...], dtype: str, graphs1: Sequence[Graph],
                 graphs2: Sequence[Graph], progress: bool) -> None:
        from graph_ntk.kernels.gntk_colour import gntk_gram_colour

        self.fn = functools.partial(
            gntk_gram_colour, num_blocks=model.num_blocks, num_mlp_layers=model.num_mlp_layers,
            aggregation=model.aggregation, jumping_knowledge=model.jumping_knowledge, readout=model.readout,
            dtype=np.dtype(dtype), progress=progress)
        # When the engine draws its own per-depth bars, the outer pair bar would only
        # jump from 0 to 100% underneath them.
        self.shows_progress = progress
        self.gets = gets
        self.graphs = {"a": graphs1, "b": graphs2}

    def dispatch(self, ca: _Chunk, sa: str, cb: _Chunk, sb: str, slot: int):
        g1 = [self.graphs[sa][i] for i in ca.index]
        g2 = None if (sa, ca.key) == (sb, cb.key) else [self.graphs[sb][i] for i in cb.index]
        out = self.fn(g1, g2)
        return tuple(np.asarray(getattr(out, g)) for g in self.gets)

    @staticmethod
    def collect(pending) -> np.ndarray:
        return np.stack(pending)


def _is_simple_undirected(g: Graph) -> bool:
    """True when the arcs are symmetric, without repeats or self-loops: the graphs on which
    the colour engine (which symmetrises and drops those) and ``Aggregate`` agree."""
    s, r = g.edge_index
    if (s == r).any():
        return False
    fwd = np.unique(s * g.num_nodes + r)
    return fwd.size == s.size and np.array_equal(fwd, np.unique(r * g.num_nodes + s))


def _colour_chunks(graphs: Sequence[Graph], max_colours: int, block_size: int | None, prefix: str,
                   wl_colours: np.ndarray, offset: int) -> list[_Chunk]:
    """Cut ``graphs`` (taken in order of size) into chunks with at most ``max_colours``
    distinct WL colours and at most ``block_size`` graphs.

    ``wl_colours`` are the node colours of the joint colouring of all graphs, this
    collection's nodes starting at ``offset``.
    """
    sizes = np.array([g.num_nodes for g in graphs])
    starts = offset + np.concatenate(([0], np.cumsum(sizes)))
    seen = np.zeros(int(wl_colours.max()) + 1, dtype=bool)
    chunks, current, count = [], [], 0
    for i in np.argsort(sizes, kind="stable"):
        colours = np.unique(wl_colours[starts[i]:starts[i + 1]])
        new = int((~seen[colours]).sum())
        if current and (count + new > max_colours or (block_size is not None and len(current) >= block_size)):
            chunks.append(np.array(current))
            seen[:] = False
            current, count, new = [], 0, colours.size
        seen[colours] = True
        current.append(int(i))
        count += new
    chunks.append(np.array(current))
    return [_Chunk(f"{prefix}{k}", np.sort(c), len(c), 0, 0) for k, c in enumerate(chunks)]


# --------------------------------------------------------------------------- cache
def _hash_graphs(h: "hashlib._Hash", graphs: Sequence[Graph]) -> None:
    """Feed every graph's content into ``h`` (lengths first, so concatenations can't collide)."""
    h.update(np.int64(len(graphs)).tobytes())
    for g in graphs:
        h.update(np.array([g.num_nodes, g.num_edges], dtype=np.int64).tobytes())
        h.update(np.ascontiguousarray(g.edge_index, dtype=np.int64).tobytes())
        for arr in (g.node_labels, g.x, g.edge_weight):
            if arr is None:
                h.update(b"-")
            else:
                a = np.ascontiguousarray(arr)
                h.update(f"{a.dtype.str}{a.shape}".encode())
                h.update(a.tobytes())


def cache_key(settings: dict[str, Any], graphs: Sequence[Graph], graphs2: Sequence[Graph] | None) -> str:
    """SHA-256 (hex) of the cache version, ``settings`` (JSON) and the graphs' content.

    Example:
        >>> g = Graph(2, np.array([[0, 1], [1, 0]]), node_labels=np.array([0, 1]))
        >>> cache_key({"get": "ntk"}, [g], None) != cache_key({"get": "nngp"}, [g], None)
        True
    """
    h = hashlib.sha256()
    h.update(_CACHE_VERSION.encode())
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    _hash_graphs(h, graphs)
    if graphs2 is None:
        h.update(b"symmetric")
    else:
        _hash_graphs(h, graphs2)
    return h.hexdigest()


def _write_atomic(path: str | os.PathLike, write: Callable[[Any], None]) -> None:
    """Call ``write(file)`` on a temporary file next to ``path``, flush it to disk, then
    rename it over ``path``: :func:`os.replace` is atomic within a file system, so ``path``
    is either absent, the old version or complete, whenever the process dies."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        # Also on KeyboardInterrupt: leave no temporary file behind when we still can (after
        # SIGKILL, _remove_stale_temporaries cleans up on the next run).
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def save_npy_atomic(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` to ``path`` (.npy) so that ``path`` is either absent or complete.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "k.npy"
        >>> save_npy_atomic(p, np.eye(2)); np.load(p).tolist()
        [[1.0, 0.0], [0.0, 1.0]]
    """
    _write_atomic(path, lambda f: np.save(f, array))


def _remove_stale_temporaries(folder: Path, min_age_s: float = 300.0) -> None:
    """Delete temporary files left by killed runs. Young ones may belong to a concurrent
    run writing into the same cache, so only files untouched for ``min_age_s`` go."""
    now = time.time()
    for p in folder.glob(".*.tmp"):
        try:
            if now - p.stat().st_mtime > min_age_s:
                p.unlink()
        except FileNotFoundError:
            pass


def _load_block(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """A cached block, or ``None`` when absent or unusable (then it is recomputed)."""
    if not path.is_file():
        return None
    try:
        block = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    return block if block.shape == shape else None


# --------------------------------------------------------------------------- gram
def _plan_colour_chunks(model: GNTK, list1: list[Graph], list2: list[Graph] | None, block_size: int | None,
                        memory_limit: int, itemsize: int) -> tuple[list[_Chunk], list[_Chunk]]:
    r"""Chunks for the colour engine, whose memory grows with the square of the number of colours.

    The engine keeps two depths of :math:`C \times C` colour kernels (half-stored, NNGP and
    NTK): about :math:`2 \cdot\text{itemsize}\cdot C_{L-1}^2` bytes, the last depth is never
    stored. One call on everything compresses best, so that is used when it fits
    ``memory_limit`` (and ``block_size`` allows); otherwise each chunk gets at most half the
    affordable colours, so that any pair of chunks fits.
    """
    from graph_ntk.kernels.wl_colours import wl_colours

    everything = list1 if list2 is None else list1 + list2
    level = max(model.num_blocks - 1, 0)
    colours = wl_colours(everything, level).node_colours[level]
    affordable = max(1, math.isqrt(int(memory_limit // (2 * itemsize))))
    fits = int(colours.max()) + 1 <= affordable and (block_size is None or len(everything) <= block_size)
    limit = affordable if fits else max(1, affordable // 2)
    n1_nodes = sum(g.num_nodes for g in list1)
    chunks1 = _colour_chunks(list1, limit, block_size, "a", colours, 0)
    chunks2 = chunks1 if list2 is None else _colour_chunks(list2, limit, block_size, "b", colours, n1_nodes)
    return chunks1, chunks2


@dataclass
class _Job:
    """Everything needed to evaluate blocks: validated inputs, engine and chunks."""

    gets: tuple[str, ...]
    single: bool
    dtype: str
    graphs1: list[Graph]
    graphs2: list[Graph] | None
    chunks1: list[_Chunk]
    chunks2: list[_Chunk]
    settings: dict[str, Any]
    make_engine: Callable[[], Any]


def _prepare(model, graphs, graphs2, *, get, num_tags, dtype, block_size, method, implementation, config,
             max_buckets, memory_limit, cache_dir, progress) -> _Job:
    """Validate the arguments of :func:`gram`, choose the engine and cut the graphs into chunks."""
    gets, single = _normalise_get(get)
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    implementation = str(implementation).upper()
    if implementation not in _IMPLEMENTATIONS:
        raise ValueError(f"implementation must be 'DENSE' or 'SPARSE', got {implementation!r}")
    if block_size is not None:
        if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
            raise ValueError(f"block_size must be a positive integer or None, got {block_size!r}")
        block_size = int(block_size)
    if isinstance(memory_limit, bool) or not isinstance(memory_limit, (int, np.integer)) or memory_limit < 1:
        raise ValueError(f"memory_limit must be a positive number of bytes, got {memory_limit!r}")

    list1, tags1 = _as_graph_list(graphs, "graphs")
    list2, tags2 = (None, None) if graphs2 is None else _as_graph_list(graphs2, "graphs2")
    all_graphs = list1 if list2 is None else list1 + list2
    tags = _resolve_num_tags(num_tags, (tags1, tags2), all_graphs)
    input_dim = _input_dim(all_graphs, tags)

    architecture = getattr(model, "architecture", None)
    if isinstance(model, tuple) and isinstance(architecture, dict) and architecture.get("input_dim") == input_dim:
        # A graph_ntk.gntk(...) triple built for these one-hot features: the same kernel as
        # the GNTK description, so it can use the colour engine too.
        model = GNTK(**{k: v for k, v in architecture.items() if k != "input_dim"})
    if isinstance(model, GNTK):
        kernel_fn = None
        settings: dict[str, Any] = model.config()
    else:
        if isinstance(model, tuple) and len(model) == 3 and callable(model[2]):
            model = model[2]  # a whole stax triple
        if not callable(model):
            raise TypeError(f"model must be a GNTK description or a kernel_fn, got {type(model).__name__}")
        if method == "colour":
            raise ValueError("method='colour' needs model=GNTK(...): a raw kernel_fn can only use method='nodes'")
        if cache_dir is not None and config is None:
            raise ValueError("with cache_dir and a raw kernel_fn, pass config= (a dict or string describing the "
                             "network) so that a changed network never reuses cached blocks")
        kernel_fn = model
        settings = {"model": "kernel_fn", "config": config}

    colour_ok = kernel_fn is None and all(
        g.node_labels is not None and g.x is None and g.edge_weight is None for g in all_graphs)
    if method == "colour" and not colour_ok:
        raise ValueError("method='colour' needs model=GNTK(...) and discrete node_labels without features x or "
                         "edge weights on every graph; use method='nodes' for other inputs")
    # 'auto' only picks the colour engine where it computes exactly what the node path does.
    use_colour = method == "colour" or (method == "auto" and colour_ok
                                        and all(_is_simple_undirected(g) for g in all_graphs))

    itemsize = 8 if dtype == "float64" else 4
    if use_colour:
        chunks1, chunks2 = _plan_colour_chunks(model, list1, list2, block_size, memory_limit, itemsize)
        plan = None
    else:
        plan = plan_buckets([g.num_nodes for g in all_graphs], max_buckets)
        caps = _chunk_caps(plan, _NODE_BLOCK_SIZE if block_size is None else block_size, memory_limit, itemsize)
        chunks1 = _chunks(list1, plan, caps, "a")
        chunks2 = chunks1 if list2 is None else _chunks(list2, plan, caps, "b")
    settings.update({
        "method": "colour" if use_colour else "nodes",
        "get": list(gets),
        "dtype": dtype,
        "num_tags": tags,
        "implementation": None if use_colour else implementation,
        "plan": None if plan is None else list(plan.bounds),
        # Which graphs each chunk holds (block files are named by chunk).
        "chunks": [[c.key, c.padded_len, hashlib.sha256(c.index.tobytes()).hexdigest()[:16]]
                   for c in (*chunks1, *(chunks2 if list2 else ()))],
    })
    columns = list1 if list2 is None else list2

    def make_engine():
        if use_colour:
            # The engine's own per-depth bars only help when one call is the whole job.
            single_call = len(chunks1) == 1 and len(chunks2) == 1
            return _ColourEngine(model, gets, dtype, list1, columns, progress and single_call)
        fn = kernel_fn if kernel_fn is not None else _gntk_kernel_fn(model, input_dim, implementation)
        return _NodeEngine(fn, gets, tags, implementation, dtype, list1, columns)

    return _Job(gets, single, dtype, list1, list2, chunks1, chunks2, settings, make_engine)


def gram(
    model: GNTK | Callable | tuple,
    graphs: GraphDataset | Sequence[Graph],
    graphs2: GraphDataset | Sequence[Graph] | None = None,
    *,
    get: str | Sequence[str] = "ntk",
    num_tags: int | None = None,
    dtype: Literal["float32", "float64"] = "float64",
    block_size: int | None = None,
    output: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    method: Literal["auto", "colour", "nodes"] = "auto",
    implementation: Literal["DENSE", "SPARSE"] = "DENSE",
    config: dict | str | None = None,
    max_buckets: int = 8,
    memory_limit: int = 4 << 30,
) -> np.ndarray | tuple[np.ndarray, ...]:
    r"""The Gram matrix :math:`K_{ij} = k(G_i, G'_j)` of a graph kernel over whole datasets.

    Args:
        model: a :class:`GNTK` description, or the ``kernel_fn`` (or whole ``stax`` triple)
            of any graph network built from :class:`graph_ntk.Aggregate` and graph pools.
        graphs: the rows: a :class:`GraphDataset` or a sequence of :class:`Graph`.
        graphs2: the columns; ``None`` for the symmetric Gram of ``graphs`` with itself.
        get: ``'ntk'``, ``'nngp'``, or a tuple of both (then a tuple of matrices is returned
            in that order).
        num_tags: size of the node-label alphabet for the one-hot features; default the
            dataset's ``num_tags``, else one more than the largest label.
        dtype: ``'float64'`` (default; 64-bit mode is enabled for this call only) or
            ``'float32'``.
        block_size: at most this many graphs per side of one block. Default: 128 on the
            node path (fewer for large graphs, see ``memory_limit``); on the colour path as
            many as ``memory_limit`` allows (one block when everything fits, which
            compresses best). Smaller blocks make the cache finer-grained.
        output: write the finished matrix here (``.npy``; ``.npz`` with one array per name
            when ``get`` is a tuple), atomically.
        cache_dir: keep finished blocks here and reuse them on the next call with the same
            graphs and settings (resume after a crash or kill).
        progress: show a tqdm progress bar (graph pairs, with ETA) on stderr.
        method: ``'colour'`` for the colour-compressed GNTK engine (a :class:`GNTK` model and
            discrete ``node_labels`` only; it treats every graph as simple and undirected:
            arcs symmetrised, repeats and self-loops dropped), ``'nodes'`` for the bucketed
            node path, or ``'auto'``: colour whenever it applies and the graphs already are
            simple and undirected (so both paths give the same matrix).
        implementation: ``'DENSE'`` or ``'SPARSE'`` graph batches for the node path; must
            match the ``Aggregate`` layers of a raw ``kernel_fn``.
        config: a description of a raw ``kernel_fn`` for the cache key (required with
            ``cache_dir``, since a function's behaviour cannot be hashed).
        max_buckets: most node-count buckets of the node path (see :func:`plan_buckets`).
        memory_limit: approximate bytes one block may use (node path: padded kernel
            arrays; colour path: the colour kernels, see :func:`_plan_colour_chunks`).

    Returns:
        ``(len(graphs), len(graphs2))`` array(s) of ``dtype``.

    Example:
        >>> g = Graph(3, np.array([[0, 1, 1, 2], [1, 0, 2, 1]]), node_labels=np.array([0, 1, 0]))
        >>> K = gram(GNTK(num_blocks=1, num_mlp_layers=1), [g, g], progress=False)
        >>> K.shape, bool(np.isclose(K[0, 0], K[0, 1]))
        ((2, 2), True)
    """
    job = _prepare(model, graphs, graphs2, get=get, num_tags=num_tags, dtype=dtype, block_size=block_size,
                   method=method, implementation=implementation, config=config, max_buckets=max_buckets,
                   memory_limit=memory_limit, cache_dir=cache_dir, progress=progress)
    if output is not None:  # checked before hours of work, not after
        wanted = ".npy" if job.single else ".npz"
        if Path(output).suffix != wanted:
            raise ValueError(f"output must end in {wanted} for get={get!r}, got {str(output)!r}")
    symmetric = job.graphs2 is None
    if symmetric:
        c = job.chunks1
        tasks = [(c[p], c[q]) for p in range(len(c)) for q in range(p, len(c))]
    else:
        tasks = [(ca, cb) for ca in job.chunks1 for cb in job.chunks2]
    cache = _open_cache(cache_dir, job.settings, job.graphs1, job.graphs2)
    n2 = len(job.graphs1 if symmetric else job.graphs2)
    out = np.zeros((len(job.gets), len(job.graphs1), n2), dtype=job.dtype)

    def place(ca: _Chunk, cb: _Chunk, block: np.ndarray) -> None:
        ia, ib = ca.index, cb.index
        if symmetric and ca is cb:  # a chunk with itself: make it exactly symmetric
            block = (block + np.swapaxes(block, 1, 2)) / 2
        out[:, ia[:, None], ib[None, :]] = block
        if symmetric:
            out[:, ib[:, None], ia[None, :]] = np.swapaxes(block, 1, 2)

    with jax.enable_x64(job.dtype == "float64"):
        _run_blocks(job, tasks, place, cache=cache, progress=progress, side2="a" if symmetric else "b")

    if output is not None:
        if job.single:
            save_npy_atomic(output, out[0])
        else:
            _write_atomic(output, lambda f: np.savez(f, **dict(zip(job.gets, out))))
    return out[0] if job.single else tuple(out)


def gram_diagonal(
    model: GNTK | Callable | tuple,
    graphs: GraphDataset | Sequence[Graph],
    *,
    get: str = "ntk",
    block_size: int = 32,
    progress: bool = False,
    **kwargs: Any,
) -> np.ndarray:
    """The self-kernels :math:`k(G_i, G_i)` of every graph, e.g. for cosine normalisation.

    Uses the same buckets as :func:`gram`; each chunk of at most ``block_size`` graphs is
    evaluated against itself and its diagonal kept, so the cost is linear in the number of
    graphs. Other keyword arguments (``num_tags``, ``dtype``, ``method``, ...) are as for
    :func:`gram`; there is no cache or output file.

    Example:
        >>> g = Graph(2, np.array([[0, 1], [1, 0]]), node_labels=np.array([0, 0]))
        >>> gram_diagonal(GNTK(1, 1), [g, g]).shape
        (2,)
    """
    if get not in _GETS:
        raise ValueError(f"get must be 'nngp' or 'ntk' for gram_diagonal, got {get!r}")
    job = _prepare(model, graphs, None, get=get, block_size=block_size, cache_dir=None, progress=progress,
                   num_tags=kwargs.pop("num_tags", None), dtype=kwargs.pop("dtype", "float64"),
                   method=kwargs.pop("method", "auto"), implementation=kwargs.pop("implementation", "DENSE"),
                   config=kwargs.pop("config", None), max_buckets=kwargs.pop("max_buckets", 8),
                   memory_limit=kwargs.pop("memory_limit", 4 << 30))
    if kwargs:
        raise TypeError(f"gram_diagonal got unexpected keyword argument(s) {sorted(kwargs)}")
    diag = np.zeros(len(job.graphs1), dtype=job.dtype)

    def place(ca: _Chunk, cb: _Chunk, block: np.ndarray) -> None:
        diag[ca.index] = np.diagonal(block[0])

    with jax.enable_x64(job.dtype == "float64"):
        _run_blocks(job, [(c, c) for c in job.chunks1], place, cache=None, progress=progress, side2="a")
    return diag


def _open_cache(cache_dir: str | os.PathLike | None, settings: dict, list1: list[Graph],
                list2: list[Graph] | None) -> Path | None:
    """The block folder ``cache_dir/<key>`` for these graphs and settings (created)."""
    if cache_dir is None:
        return None
    folder = Path(cache_dir) / cache_key(settings, list1, list2)[:32]
    folder.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(folder)
    meta = folder / "settings.json"
    if not meta.exists():  # for people browsing the cache; never read back
        text = json.dumps({k: v for k, v in settings.items() if k != "chunks"}, indent=1, sort_keys=True)
        _write_atomic(meta, lambda f: f.write(text.encode()))
    return folder


def _run_blocks(job: _Job, tasks: list[tuple[_Chunk, _Chunk]], place: Callable, *, cache: Path | None,
                progress: bool, side2: str) -> None:
    """Load cached blocks, compute the others (saving each as soon as it is done), and hand
    every block to ``place``; the progress bar counts graph pairs."""
    from tqdm.auto import tqdm

    def pairs(ca: _Chunk, cb: _Chunk) -> int:
        return int(ca.index.size) * int(cb.index.size)

    todo, done_pairs = [], 0
    for ca, cb in tasks:
        shape = (len(job.gets), ca.index.size, cb.index.size)
        block = None if cache is None else _load_block(cache / f"{ca.key}_{cb.key}.npy", shape)
        if block is None:
            todo.append((ca, cb))
        else:
            place(ca, cb, block)
            done_pairs += pairs(ca, cb)
    if not todo:
        return
    engine = job.make_engine()
    slots = len(getattr(engine, "devices", ())) or 1
    total = sum(pairs(ca, cb) for ca, cb in tasks)
    own_bars = getattr(engine, "shows_progress", False)
    with tqdm(total=total, initial=done_pairs, unit="pair", unit_scale=True, desc="gram",
              disable=not progress or own_bars,
              smoothing=0.1, dynamic_ncols=True) as bar:
        for start in range(0, len(todo), slots):
            wave = todo[start:start + slots]
            # Dispatch the whole wave before collecting, so that all devices work at once.
            pending = [engine.dispatch(ca, "a", cb, side2, slot) for slot, (ca, cb) in enumerate(wave)]
            for (ca, cb), result in zip(wave, pending):
                block = engine.collect(result)[:, :ca.index.size, :cb.index.size].astype(job.dtype)
                if cache is not None:
                    save_npy_atomic(cache / f"{ca.key}_{cb.key}.npy", block)
                place(ca, cb, block)
                bar.update(pairs(ca, cb))
