r"""Exact GNTK / GNNGP Gram matrices of Du et al. (2019) by Weisfeiler–Lehman colour compression.

The kernel
----------
For graphs :math:`G, G'` with one-hot node tags, :math:`\Sigma^{(0)}[u, v] = 1` if ``u`` and
``v`` carry the same tag, else 0, and :math:`\tilde A = A + I` (``A`` the symmetric 0/1
adjacency of the simple graph). With :math:`P = \tilde A` (``aggregation='sum'``) or
:math:`P = D^{-1}\tilde A`, :math:`D = \operatorname{diag}(\tilde A\mathbf 1)`
(``'mean'``), each of the ``L`` blocks first aggregates

.. math::

    K \leftarrow P K P'^{\top}, \qquad T \leftarrow P T P'^{\top}
    \qquad (\text{block 1 starts from } K = T = \Sigma^{(0)}),

then applies ``R`` ReLU layers (:math:`c_\sigma = 2`, no bias): with variances
:math:`k_u = K_{GG}[u,u]`, :math:`\lambda = K[u,v]/\sqrt{k_u k'_v}` and
:math:`t = \arccos\lambda`,

.. math::

    K \leftarrow \sqrt{k_u k'_v}\,\frac{\sin t + (\pi - t)\cos t}{\pi}, \qquad
    \dot K = \frac{\pi - t}{\pi}, \qquad T \leftarrow T \odot \dot K + K .

Writing :math:`K_l, T_l` for the values after block ``l`` (and :math:`K_0 = T_0 =
\Sigma^{(0)}`), the graph kernels are, with jumping knowledge,
:math:`\Theta(G, G') = 2\sum_{l=0}^{L}\sum_{u,v} T_l[u,v]` (NTK) and
:math:`\mathcal K(G, G') = 2\sum_{l=0}^{L}\sum_{u,v} K_l[u,v]` (NNGP); without it only the
term :math:`l = L`. ``readout='mean'`` divides by :math:`|V|\,|V'|`.

Colour compression
------------------
By induction over ``l``, :math:`K_l[u, v]` and :math:`T_l[u, v]` depend on the nodes only
through their depth-``l`` Weisfeiler–Lehman colours over the closed neighbourhood
(:func:`~graph_ntk.kernels.wl_colours.wl_colours`): aggregation sums the depth-``l-1``
values over the children multisets, which the colour identifies, and 'mean' divides by the
multiset size. So every block is computed once per pair of *distinct colours* of the whole
dataset: with :math:`M_l` the :math:`C_l \times C_{l-1}` child-count matrix (rows divided
by the degree for 'mean'),

.. math::

    K_l^{\mathrm{pre}} = M_l K_{l-1} M_l^{\top}, \qquad
    T_l^{\mathrm{pre}} = M_l T_{l-1} M_l^{\top},

followed by the elementwise ReLU steps on the :math:`C_l \times C_l` matrices, and the
Gram matrix is :math:`\sum_l C_l T_l C_l'^{\top}` with :math:`C_l` the (graphs x colours)
count matrix. The ReLU step with :math:`c_\sigma = 2` keeps the diagonal, so
:math:`d_l = \sqrt{\operatorname{diag} K_l^{\mathrm{pre}}}` holds through the block, and the
code works with the correlations :math:`\Lambda_l = D_l^{-1} K_l D_l^{-1}` and
:math:`\tau_l = D_l^{-1} T_l D_l^{-1}`: aggregation becomes
:math:`\Lambda^{\mathrm{pre}}_l = \tilde M_l \Lambda_{l-1}\tilde M_l^{\top}` with
:math:`\tilde M_l = D_l^{-1} M_l D_{l-1}`, each ReLU step is
:math:`\Lambda \leftarrow \sin t/\pi + \lambda\dot K`, :math:`\tau \leftarrow \tau\dot K + \Lambda`
(one arccos and one square root per entry and step), and :math:`D_l` is folded into the
readout matrices.

Memory and blocking
-------------------
The largest colour kernels do not fit as dense :math:`C \times C` matrices (PROTEINS:
34,877 colours at depth 3; Λ and τ in float64 would take 18 GiB). Both symmetric matrices
are stored once, as the ``B x B`` tiles (``B = block_size``) of their upper block triangle,
and each depth is produced one block column at a time: for the block ``I`` of depth-``l``
colours starting at ``s``,

1. ``Wᵀ = [Λ|τ]_{l-1} M̃[I]ᵀ``, one previous block at a time from the rows of the children
   of ``I`` (row ``k`` of a tile, or by symmetry its column ``k`` of a tile below the
   diagonal);
2. the lower block column ``[Λ|τ]^pre[s:, I] = M̃[s:] Wᵀ``, tile by tile, each tile through
   the ReLU steps while it is in cache, then transposed into the store if the next depth
   needs it;
3. the block column is contracted with the readout matrices (the mirrored upper part is
   the transpose, added at the end).

Colours are numbered so that the children of the colours ``s..C`` form a suffix of the
previous depth (see ``_parent_order``): ``Wᵀ`` is only needed from there on, about
``C_{l-1}(1 - s/C_l)`` rows, and the children of a block sit in a few nearby blocks. Peak
memory is the stored triangles of two consecutive depths, plus ``Wᵀ`` and one block column
per thread (PROTEINS float64: about 13 GiB; float32 halves it); the call raises
``MemoryError`` up front when that exceeds the machine's memory (COLLAB: ~360 GiB, because
151,384 colours already appear at depth 2). Block columns are processed by a pool of
threads; NumPy and SciPy release the GIL in the heavy loops.

Example:
    >>> import numpy as np
    >>> from graph_ntk.data.graph import Graph
    >>> tri = Graph(3, np.array([[0, 1, 1, 2, 2, 0], [1, 0, 2, 1, 0, 2]]), node_labels=np.array([0, 0, 1]))
    >>> path = Graph(3, np.array([[0, 1, 1, 2], [1, 0, 2, 1]]), node_labels=np.array([0, 1, 0]))
    >>> res = gntk_gram_colour([tri, path], num_blocks=2, num_mlp_layers=1)
    >>> res.ntk.shape, bool(np.allclose(res.ntk, res.ntk.T))
    ((2, 2), True)
"""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Literal, Sequence

import numpy as np
import scipy.sparse as sp

from graph_ntk.data.graph import Graph
from graph_ntk.kernels.wl_colours import wl_colours

__all__ = ["GNTKGram", "gntk_gram_colour"]

# Elements per ReLU pass: 4 arrays of 2**15 float64 are 1 MiB, which stays in a 2 MiB L2
# cache across the dozen NumPy passes of a step.
_CHUNK_ELEMENTS = 1 << 15


@dataclass(frozen=True)
class GNTKGram:
    """Gram matrices returned by :func:`gntk_gram_colour`.

    Attributes:
        ntk: the GNTK Gram matrix :math:`\\Theta`, shape ``(len(graphs), len(graphs2))``.
        nngp: the NNGP (GNNGP) Gram matrix of the same network, same shape.
        num_colours: distinct WL colours per depth ``0..L`` over all graphs.
        timings: CPU seconds per phase — ``'wl'`` (colouring and ordering) and ``'setup'``
            (variances, per-depth matrices) in the calling thread; ``'gather'`` (reading
            stored tiles), ``'aggregate'`` (sparse products and transposes), ``'relu'``,
            ``'store'`` and ``'readout'`` summed over the worker threads — and ``'total'``,
            the wall time of the call.
    """

    ntk: np.ndarray
    nngp: np.ndarray
    num_colours: tuple[int, ...]
    timings: dict[str, float] = field(default_factory=dict)


class _Tiles:
    """Two symmetric C x C matrices (Λ, τ) stored once, as the tiles of their upper block triangle.

    ``tiles[q][p - q]`` (for blocks ``q <= p``) has shape ``(width_q, 2, width_p)`` and holds
    ``[Λ, τ][block q, block p]``; diagonal tiles are stored whole.
    """

    def __init__(self, starts: np.ndarray, dtype: np.dtype) -> None:
        self.starts = starts
        self.n_blocks = len(starts) - 1
        self.dtype = dtype
        self.tiles: list[list[np.ndarray | None]] = [[None] * (self.n_blocks - q) for q in range(self.n_blocks)]

    @classmethod
    def identity(cls, n: int, dtype: np.dtype) -> "_Tiles":
        """Λ = τ = I: the input covariance of distinct one-hot tags."""
        store = cls(np.array([0, n]), dtype)
        tile = np.zeros((n, 2, n), dtype=dtype)
        tile[np.arange(n), :, np.arange(n)] = 1.0
        store.tiles[0][0] = tile
        return store

    def block_of(self, index: np.ndarray | int) -> np.ndarray:
        return np.searchsorted(self.starts, index, side="right") - 1

    def lam_entries(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Λ[i, j] for index arrays ``i``, ``j`` (as float64)."""
        lo, hi = np.minimum(i, j), np.maximum(i, j)
        pair = self.block_of(lo) * self.n_blocks + self.block_of(hi)
        out = np.empty(i.shape, dtype=np.float64)
        for key in np.unique(pair):
            q, p = divmod(int(key), self.n_blocks)
            sel = pair == key
            out[sel] = self.tiles[q][p - q][lo[sel] - self.starts[q], 0, hi[sel] - self.starts[p]]
        return out

    def column_block(self, k: np.ndarray, groups: list[tuple[int, int, int]], p: int) -> np.ndarray:
        """``[Λ, τ][k, block p]``, shape ``(len(k), 2, width_p)``, for sorted ``k``.

        ``groups`` lists ``(q, r0, r1)``: ``k[r0:r1]`` are the rows in block ``q``. Rows of
        blocks ``q <= p`` are rows of tile (q, p); the others, by symmetry, columns of tile
        (p, q).
        """
        out = np.empty((k.size, 2, self.starts[p + 1] - self.starts[p]), dtype=self.dtype)
        for q, r0, r1 in groups:
            local = k[r0:r1] - self.starts[q]
            if q <= p:
                out[r0:r1] = self.tiles[q][p - q][local]
            else:
                _transpose_into(out[r0:r1], np.take(self.tiles[p][q - p], local, axis=2))
        return out


def _transpose_into(dst: np.ndarray, src: np.ndarray) -> None:
    """dst[a, q, b] = src[b, q, a], in slabs of 64 ``a`` so both sides stay in cache.

    (Avoid power-of-two row lengths here: their strides alias in the L1 cache and make
    this copy about three times slower, hence the default block of 504 colours.)
    """
    for a0 in range(0, dst.shape[0], 64):
        dst[a0 : a0 + 64] = src[:, :, a0 : a0 + 64].transpose(2, 1, 0)


def _parent_order(wl_counts: list[sp.csr_matrix], node_colours: list[np.ndarray]) -> list[np.ndarray]:
    """A colour order per depth that makes the blocked aggregation read contiguous ranges.

    The last depth is ordered by last occurrence in the node list. Every shallower depth is
    ordered by the position of its last parent (the largest depth-(l+1) colour having it as
    a child), ties by last occurrence. Then the children of all colours from position s on
    are exactly a suffix of the previous depth, and rare colours sit next to their parents.
    Returns ``order[l]``: old colour id at each new position.
    """
    depth = len(wl_counts)
    n = node_colours[0].size

    def last_occurrence(colours: np.ndarray) -> np.ndarray:
        last = np.full(int(colours.max()) + 1, -1)
        np.maximum.at(last, colours, np.arange(n))
        return last

    orders: list[np.ndarray] = [np.argsort(last_occurrence(node_colours[depth]), kind="stable")]
    for level in range(depth - 1, -1, -1):
        child = wl_counts[level].tocoo()  # M_{level+1}: rows at depth level+1
        position = np.empty(child.shape[0], dtype=np.int64)
        position[orders[0]] = np.arange(child.shape[0])
        last_parent = np.full(child.shape[1], -1)
        np.maximum.at(last_parent, child.col, position[child.row])
        orders.insert(0, np.lexsort((last_occurrence(node_colours[level]), last_parent)))
    return orders


def _relu_steps(panel: np.ndarray, num_steps: int) -> None:
    """Apply ``num_steps`` normalised ReLU-kernel steps to a ``(rows, 2, w)`` [Λ | τ] panel, in place.

    Per entry: λ ← min(λ, 1) (rounding can push correlations just above 1; they are never
    negative because all inputs are non-negative), t = arccos λ, k̇ = 1 - t/π,
    Λ ← sqrt(1 - λ²)/π + λ k̇, τ ← τ k̇ + Λ. Rows are processed in chunks that stay in cache.
    """
    rows, _, w = panel.shape
    step = max(1, _CHUNK_ELEMENTS // w)
    a_buf, s_buf = np.empty((step, w), panel.dtype), np.empty((step, w), panel.dtype)
    for r0 in range(0, rows, step):
        r1 = min(rows, r0 + step)
        lam, tau = panel[r0:r1, 0, :], panel[r0:r1, 1, :]
        a, s = a_buf[: r1 - r0], s_buf[: r1 - r0]
        for _ in range(num_steps):
            np.minimum(lam, 1.0, out=lam)
            np.arccos(lam, out=a)
            np.multiply(a, -1.0 / np.pi, out=a)
            a += 1.0  # k̇
            np.multiply(lam, lam, out=s)
            np.subtract(1.0, s, out=s)
            np.sqrt(s, out=s)
            s *= 1.0 / np.pi
            tau *= a
            lam *= a
            lam += s
            tau += lam


def _parallel_for(n_items: int, work: Callable[[int, dict], None], contexts: list[dict], progress: str | None) -> None:
    """Run ``work(i, ctx)`` for i in 0..n_items-1 on ``len(contexts)`` threads, in order of i.

    Items are handed out one at a time, so the large first block columns start first and
    the small last ones fill the gaps. ``progress`` is a tqdm label, or ``None`` for no bar.
    """
    lock = threading.Lock()
    next_item = iter(range(n_items))
    errors: list[BaseException] = []
    bar = None
    if progress is not None:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_items, desc=progress, leave=False)

    def run(ctx: dict) -> None:
        while True:
            with lock:
                if errors:
                    return
                i = next(next_item, None)
            if i is None:
                return
            try:
                work(i, ctx)
            except BaseException as exc:  # re-raised in the calling thread below
                with lock:
                    errors.append(exc)
                return
            if bar is not None:
                with lock:
                    bar.update(1)

    threads = [threading.Thread(target=run, args=(ctx,)) for ctx in contexts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if bar is not None:
        bar.close()
    if errors:
        raise errors[0]


def _variances(u: sp.csr_matrix, prev: _Tiles) -> np.ndarray:
    r"""diag(U Λ Uᵀ) for the scaled child matrix U, summing over all child pairs per row."""
    u = u.tocoo()
    order = np.argsort(u.row, kind="stable")
    row, col, val = u.row[order], u.col[order], u.data[order]
    n_rows = u.shape[0]
    counts = np.bincount(row, minlength=n_rows)
    start = np.concatenate([[0], np.cumsum(counts)])
    out = np.zeros(n_rows)
    # Chunks of rows keep the pair arrays (sum of squared child counts) bounded.
    limit = 1 << 22
    r0 = 0
    while r0 < n_rows:
        r1 = r0 + 1
        total = counts[r0] ** 2
        while r1 < n_rows and total + counts[r1] ** 2 <= limit:
            total += counts[r1] ** 2
            r1 += 1
        e0, e1 = start[r0], start[r1]
        n_in = counts[r0:r1]
        first = np.repeat(np.arange(e0, e1), np.repeat(n_in, n_in))
        offset = np.arange(first.size) - np.repeat(np.cumsum(n_in * n_in) - n_in * n_in, n_in * n_in)
        second = start[row[first]] + offset % np.repeat(n_in, n_in * n_in)
        lam = prev.lam_entries(col[first], col[second])
        out += np.bincount(row[first], weights=val[first] * val[second] * lam, minlength=n_rows)
        r0 = r1
    return out


class _Level:
    """One depth ``l``: builds the tiles of [Λ_l | τ_l] from those of depth ``l - 1``.

    ``run_block(p)`` computes the lower block column ``p`` (rows ``starts[p]:``, columns of
    block ``p``): aggregation, the ReLU steps, the readout contraction and, if the next depth
    needs it, the transposed copy of its tiles into the upper-triangle store.
    """

    def __init__(
        self,
        m_tilde: sp.csr_matrix,
        prev: _Tiles,
        block: int,
        num_steps: int,
        sides: list[tuple[sp.csc_matrix, sp.csc_matrix]] | None,
        keep: bool,
    ) -> None:
        self.m_tilde = m_tilde
        self.prev = prev
        self.num_steps = num_steps
        self.sides = sides
        self.dtype = m_tilde.dtype
        n_col, self.n_prev = m_tilde.shape
        self.starts = np.append(np.arange(0, n_col, block), n_col)
        self.n_blocks = len(self.starts) - 1
        self.store = _Tiles(self.starts, self.dtype) if keep else None
        # first_child[s]: the smallest previous colour that is a child of any row >= s. The
        # colour order makes the children of the rows >= s exactly the suffix from there.
        row_min = np.minimum.reduceat(m_tilde.indices, m_tilde.indptr[:-1])
        self.first_child = np.minimum.accumulate(row_min[::-1])[::-1]
        self.block_rows = [m_tilde[a:b] for a, b in zip(self.starts[:-1], self.starts[1:])]

    def run_block(self, p: int, ctx: dict) -> None:
        times = ctx["times"]
        s, e = int(self.starts[p]), int(self.starts[p + 1])
        w = e - s
        t = time.thread_time()
        mine = self.m_tilde[s:e]
        k = np.unique(mine.indices)
        local = sp.csr_matrix((mine.data, np.searchsorted(k, mine.indices), mine.indptr), shape=(w, k.size))
        row_first = np.searchsorted(self.prev.block_of(k), np.arange(self.prev.n_blocks + 1))
        groups = [
            (q, int(row_first[q]), int(row_first[q + 1]))
            for q in range(self.prev.n_blocks)
            if row_first[q] < row_first[q + 1]
        ]
        # Wᵀ = [Λ|τ]_{l-1} M̃[I]ᵀ, one previous block at a time, for the previous colours from
        # first_child[s] on (the only ones rows >= s use); earlier rows are never read.
        wt = _buffer(ctx, "wt", (self.n_prev, 2, w), self.dtype)
        prev_starts = self.prev.starts
        for pp in range(int(self.prev.block_of(int(self.first_child[s]))), self.prev.n_blocks):
            rows = self.prev.column_block(k, groups, pp)
            t = _tick(times, "gather", t)
            prod = (local @ rows.reshape(k.size, -1)).reshape(w, 2, -1)
            _transpose_into(wt[prev_starts[pp] : prev_starts[pp + 1]], prod)
            t = _tick(times, "aggregate", t)
        wt2 = wt.reshape(self.n_prev, 2 * w)
        # The lower block column [Λ|τ][s:, block p], one tile (row block q) at a time so that
        # the ReLU steps and the transposed copy for the store find the tile in cache.
        panel = _buffer(ctx, "panel", (self.size - s, 2, w), self.dtype)
        for q in range(p, self.n_blocks):
            a, b = int(self.starts[q]), int(self.starts[q + 1])
            tile = panel[a - s : b - s]
            np.copyto(tile.reshape(b - a, 2 * w), self.block_rows[q] @ wt2)
            if q == p:
                r = np.arange(w)
                tile[r, 0, r] = 1.0  # exact unit self-correlation
            t = _tick(times, "aggregate", t)
            _relu_steps(tile, self.num_steps)
            t = _tick(times, "relu", t)
            if self.store is not None:
                upper = np.empty((w, 2, b - a), dtype=self.dtype)
                _transpose_into(upper, tile)
                self.store.tiles[p][q - p] = upper
                t = _tick(times, "store", t)
        if self.sides is not None:
            flat = panel.reshape(self.size - s, 2 * w)
            # The diagonal tile is added again by the final transpose: weight 1/2 (an exact
            # scaling; the panel is not used afterwards).
            flat[:w] *= 0.5
            for i, (ea, eb) in enumerate(self.sides):
                xs = ea[:, s:] @ flat
                # acc += xs E_b[:, I]ᵀ, stored transposed: only the graphs that contain a
                # colour of block I (``hit``) change.
                eb_block = eb[:, s:e].tocsr()
                hit = np.flatnonzero(np.diff(eb_block.indptr))
                eb_block = eb_block[hit]
                xs = xs.reshape(xs.shape[0], 2, w)
                xq = _buffer(ctx, "xq", (w, 1, xs.shape[0]), self.dtype)
                for q in range(2):
                    _transpose_into(xq, xs[:, q : q + 1, :])
                    ctx["acc"][2 * i + q][hit] += eb_block @ xq.reshape(w, -1)
            _tick(times, "readout", t)

    @property
    def size(self) -> int:
        return int(self.starts[-1])


def _buffer(ctx: dict, name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A per-thread scratch array of ``shape``, reusing the previous one when it is large enough.

    Fresh large allocations are mapped from the OS page by page on first touch, which costs
    about as much as the arithmetic on them; reusing one buffer per thread avoids that.
    """
    size = int(np.prod(shape))
    held = ctx.get(name)
    if held is None or held.size < size or held.dtype != dtype:
        held = ctx[name] = np.empty(size, dtype=dtype)
    return held[:size].reshape(shape)


def _memory_estimate(colours: Sequence[int], block: int, threads: int, itemsize: int) -> int:
    """Bytes at the peak: the stored upper triangles of two consecutive depths, plus scratch.

    Depth ``l`` keeps [Λ_l | τ_l] (about C_l (C_l + block) numbers) while depth ``l + 1`` is
    built from it; each thread holds Wᵀ and one block column (2 (C_{l-1} + C_l) block).
    """
    stored = [c * (c + block) for c in colours[:-1]] + [0]
    peak = max(stored[l - 1] + stored[l] for l in range(1, len(colours)))
    scratch = threads * 2 * block * 2 * max(colours)
    return (peak + scratch) * itemsize


def _tick(times: dict, key: str, since: float) -> float:
    """Add the thread CPU time since ``since`` to ``times[key]``; return the current time."""
    now = time.thread_time()
    times[key] += now - since
    return now


def _check_graphs(graphs: Sequence[Graph], name: str) -> list[Graph]:
    graphs = list(graphs)
    if not graphs:
        raise ValueError(f"{name} must contain at least one graph")
    for i, g in enumerate(graphs):
        if not isinstance(g, Graph):
            raise ValueError(f"{name}[{i}] is a {type(g).__name__}, expected graph_ntk Graph")
        if g.node_labels is None:
            raise ValueError(f"{name}[{i}] has no node_labels: the GNTK input is the one-hot node tag")
    return graphs


def gntk_gram_colour(
    graphs: Sequence[Graph],
    graphs2: Sequence[Graph] | None = None,
    *,
    num_blocks: int = 4,
    num_mlp_layers: int = 2,
    aggregation: Literal["sum", "mean"] = "sum",
    jumping_knowledge: bool = True,
    readout: Literal["sum", "mean"] = "sum",
    dtype: np.dtype | type = np.float64,
    block_size: int | None = None,
    num_threads: int | None = None,
    progress: bool = False,
) -> GNTKGram:
    r"""GNTK and GNNGP Gram matrices of Du et al. (2019), exactly, over distinct WL colours.

    See the module docstring for the maths. Values match the authors' reference code
    (``num_layers = num_blocks + 1``; ``scale='uniform'`` is ``'sum'``, ``'degree'`` is
    ``'mean'``) to rounding.

    Args:
        graphs: graphs with ``node_labels`` (one-hot tags over the union of both sets).
        graphs2: optional second set; the result is then ``len(graphs) x len(graphs2)``.
            Both sets are coloured jointly. ``None`` gives the symmetric Gram of ``graphs``.
        num_blocks: ``L``, the number of aggregation blocks.
        num_mlp_layers: ``R``, the ReLU layers per block.
        aggregation: neighbour scaling, ``'sum'`` (Ã) or ``'mean'`` (D⁻¹Ã).
        jumping_knowledge: read out every depth ``0..L`` (``True``) or only the last.
        readout: sum or mean over the node pairs of the two graphs.
        dtype: ``np.float64`` (exact to ~1e-12) or ``np.float32`` (about half the time and
            memory; entries within ~1e-5 relative).
        block_size: colours per panel (default 512); smaller saves memory, larger saves
            per-call overhead.
        num_threads: worker threads (default: the CPUs this process may use).
        progress: show a tqdm bar per depth.

    Returns:
        A :class:`GNTKGram` with ``ntk`` and ``nngp`` (float64 arrays).

    Raises:
        ValueError: for an empty ``graphs``/``graphs2``, graphs without ``node_labels``,
            or invalid options.

    Example:
        >>> import numpy as np
        >>> from graph_ntk.data.graph import Graph
        >>> g = Graph(2, np.array([[0, 1], [1, 0]]), node_labels=np.array([0, 1]))
        >>> # S0 = I sums to 2; after mean aggregation every pair has K = 1/2 (sum 2, correlation 1,
        >>> # which the ReLU kernel keeps); jumping knowledge: 2 * (2 + 2).
        >>> float(gntk_gram_colour([g], num_blocks=1, num_mlp_layers=1, aggregation="mean").nngp[0, 0])
        8.0
    """
    t_start = time.perf_counter()
    graphs = _check_graphs(graphs, "graphs")
    symmetric = graphs2 is None
    graphs2 = graphs if symmetric else _check_graphs(graphs2, "graphs2")
    if num_blocks < 1:
        raise ValueError(f"num_blocks must be at least 1, got {num_blocks}")
    if num_mlp_layers < 1:
        raise ValueError(f"num_mlp_layers must be at least 1, got {num_mlp_layers}")
    if aggregation not in ("sum", "mean"):
        raise ValueError(f"aggregation must be 'sum' or 'mean', got {aggregation!r}")
    if readout not in ("sum", "mean"):
        raise ValueError(f"readout must be 'sum' or 'mean', got {readout!r}")
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    if block_size is not None and block_size < 1:
        raise ValueError(f"block_size must be positive, got {block_size}")
    if num_threads is not None and num_threads < 1:
        raise ValueError(f"num_threads must be positive, got {num_threads}")
    if num_threads is None:
        num_threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    block = block_size or 504

    timings: dict[str, float] = defaultdict(float)
    t0 = time.thread_time()
    wl = wl_colours(graphs if symmetric else graphs + graphs2, num_blocks)
    orders = _parent_order(wl.child_counts, wl.node_colours)
    # M_l and C_l in the new colour order (row/column permutations of the WL matrices).
    child = [wl.child_counts[l - 1][orders[l]][:, orders[l - 1]].tocsr() for l in range(1, num_blocks + 1)]
    counts = [c[:, order].tocsr() for c, order in zip(wl.graph_counts, orders)]
    timings["wl"] = time.thread_time() - t0
    n1, n2 = len(graphs), len(graphs2)
    need = _memory_estimate(wl.num_colours, block, num_threads, dtype.itemsize)
    try:
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows): skip the check
        have = need
    if need > have:
        raise MemoryError(
            f"the colour kernels need about {need / 2**30:.0f} GiB (distinct WL colours per depth: "
            f"{wl.num_colours}), more than this machine's {have / 2**30:.0f} GiB"
        )

    def readout_sides(level: int, scale: np.ndarray) -> list[tuple[sp.csc_matrix, sp.csc_matrix]]:
        """Pairs (E_a, E_b) of C_l D_l matrices (rows / |V| for the mean readout), as CSC."""
        c = counts[level]
        if readout == "mean":
            c = sp.diags(1.0 / np.asarray(c.sum(axis=1)).ravel()) @ c
        c = (c @ sp.diags(scale)).astype(dtype)
        e1 = c[:n1].tocsc()
        if symmetric:
            return [(e1, e1)]
        e2 = c[n1:].tocsc()
        return [(e1, e2), (e2, e1)]

    def accumulate(level: int) -> bool:
        return jumping_knowledge or level == num_blocks

    ntk = np.zeros((n1, n2))
    nngp = np.zeros_like(ntk)
    if accumulate(0):
        e1, e2 = readout_sides(0, np.ones(wl.num_colours[0]))[0]
        base = (e1 @ e2.T).toarray()
        ntk += base
        nngp += base

    prev = _Tiles.identity(wl.num_colours[0], dtype)
    d_prev = np.ones(wl.num_colours[0])
    # Per-thread accumulators of transposed partial Grams (no locking on the hot path):
    # slots 0/1 (Λ/τ) hold sum E_2[:, I] X_Iᵀ; slots 2/3 the mirrored part of a rectangular Gram.
    shapes = [(n2, n1)] * 2 + ([] if symmetric else [(n1, n2)] * 2)
    contexts = [{"acc": [np.zeros(shape) for shape in shapes], "times": defaultdict(float)} for _ in range(num_threads)]
    for level in range(1, num_blocks + 1):
        t0 = time.thread_time()
        m = child[level - 1]
        if aggregation == "mean":
            m = sp.diags(1.0 / np.asarray(m.sum(axis=1)).ravel()) @ m
        u = (m @ sp.diags(d_prev)).tocsr()
        d = np.sqrt(_variances(u, prev))
        m_tilde = (sp.diags(1.0 / d) @ u).astype(dtype).tocsr()
        m_tilde.sort_indices()
        sides = readout_sides(level, d) if accumulate(level) else None
        current = _Level(m_tilde, prev, block, num_mlp_layers, sides, keep=level < num_blocks)
        timings["setup"] += time.thread_time() - t0
        label = f"GNTK depth {level}/{num_blocks}" if progress else None
        _parallel_for(len(current.starts) - 1, current.run_block, contexts, label)
        prev, d_prev = current.store, d
        del current

    for ctx in contexts:
        acc = ctx["acc"]
        if symmetric:
            ntk += acc[1] + acc[1].T
            nngp += acc[0] + acc[0].T
        else:
            ntk += acc[1].T + acc[3]
            nngp += acc[0].T + acc[2]
        for key, value in ctx["times"].items():
            timings[key] += value
    ntk *= 2.0
    nngp *= 2.0
    timings["total"] = time.perf_counter() - t_start
    return GNTKGram(ntk, nngp, wl.num_colours, dict(timings))
