r"""The tiled executor: chain programs (:mod:`graph_ntk.kernels.chain`) on bounded tiles.

Stage ``k`` of a chain is the ``k``-th aggregation followed by pointwise ops and readout
taps. Its item kernels are never held whole: each symmetric ``C_k x C_k`` matrix pair
(NNGP, NTK) is produced one block column at a time from the stored upper-triangle tiles of
stage ``k - 1`` (:class:`~graph_ntk.kernels.tiles.Tiles`), every tile goes through the
stage's pointwise ops while it is in cache, readout taps contract it with the
graphs x items matrices, and it is stored (transposed) only if the next stage needs it.

Representation. A tile holds :math:`X = K / (d_i d_j)` and :math:`\tau = \Theta/(d_i d_j)`
for a per-item scale ``d`` chosen at planning time; after an aggregation ``d = \sqrt{\operatorname{diag} K}``,
so ``X`` is a correlation matrix and the aggregation itself becomes
:math:`X' = \sum_t \tilde M_t X \tilde M_t^\top` with :math:`\tilde M_t = D'^{-1} M_t D`.
The pointwise steps on this representation (the in-place ReLU-family and ``Erf`` forms, NT's
closed form for every other op) are in :mod:`graph_ntk.kernels.tile_ops`.

The first aggregation of :math:`K^{(0)} = \Phi\Phi^\top` (``Φ`` the distinct feature rows)
is low rank: its tiles are ``(M Φ)[rows] (M Φ)[cols]^T`` products, never a sparse
product over a ``C_0 x C_0`` matrix.
"""

from __future__ import annotations

import functools
import time
from collections import defaultdict

import numpy as np
import scipy.sparse as sp

from graph_ntk import program as P
from graph_ntk.kernels.threads import usable_threads
from graph_ntk.log import StageLabel
from graph_ntk.kernels import jax_tiles
from graph_ntk.kernels.chain import ChainPlan, Tap
from graph_ntk.kernels.refine import refine
from graph_ntk.kernels.spaces import NodeSpace
from graph_ntk.kernels.tile_ops import Track
from graph_ntk.kernels.tiles import (Tiles, buffer, current_pool, parallel_for, parent_order, pooled, spmm_into,
                                     tick, transpose_into, variances)

__all__ = ["run_chain", "chain_memory"]

_CHUNK_BYTES = 1 << 18  # 4 arrays of 256 KiB (2**15 float64, 2**16 float32) stay in a 2 MiB L2 cache
DEFAULT_BLOCK = 504  # not a power of two: such row lengths alias in the L1 cache on transposes


def _run_ops(tile: np.ndarray, ops: list, rows0: int, cols: slice, dtype) -> None:
    """Apply tile ops to a ``(rows, 2, w)`` tile whose first row is item ``rows0``, in
    cache-sized row chunks.

    Each chunk's two channels are copied into contiguous buffers first: NumPy's ufuncs on
    the interleaved (row stride ``2w``) views run at half speed, the copies cost a tenth."""
    if not ops:
        return
    n_rows, _, w = tile.shape
    step = max(1, _CHUNK_BYTES // np.dtype(dtype).itemsize // max(w, 1))
    bufs = np.empty((4, step, w), dtype)
    for r0 in range(0, n_rows, step):
        r1 = min(n_rows, r0 + step)
        lam, tau, a, s = bufs[:, : r1 - r0]
        np.copyto(lam, tile[r0:r1, 0, :])
        np.copyto(tau, tile[r0:r1, 1, :])
        rows = slice(rows0 + r0, rows0 + r1)
        for op in ops:
            op(lam, tau, rows, cols, a, s)
        tile[r0:r1, 0, :] = lam
        tile[r0:r1, 1, :] = tau


# ----------------------------------------------------------------------- one stage
class _Stage:
    """Stage ``k``: builds the tiles of its item kernels block column by block column.

    ``source`` is ``("factor", FK, FT)`` (tiles are products of factor rows, prescaled by
    ``1/d``) or ``("tiles", prev, [M̃_t], first_child)`` (sparse products with the stored
    tiles of the previous stage).
    """

    def __init__(self, source, n_items: int, block: int, segments: list, store_key: tuple | None, dtype) -> None:
        self.source, self.segments, self.dtype = source, segments, dtype
        self.starts = np.append(np.arange(0, n_items, block), n_items)
        self.n_blocks = len(self.starts) - 1
        self.store = None if store_key is None else \
            Tiles(self.starts, dtype, pooled(store_key, (Tiles.size(self.starts),), dtype))
        if source[0] == "tiles":
            _, prev, m_tildes, _ = source
            self.block_rows = [[m[a:b] for a, b in zip(self.starts[:-1], self.starts[1:])] for m in m_tildes]

    @property
    def size(self) -> int:
        return int(self.starts[-1])

    def wt(self, p: int, t_idx: int, ctx: dict) -> tuple[np.ndarray, int]:
        """``Wᵀ = [X|τ]_{k-1} M̃_t[I]ᵀ`` for block column ``p`` as a ``(n_prev, 2w)`` view of a
        per-thread buffer, and its first filled row (the rows above it are not read)."""
        times = ctx["times"]
        _, prev, m_tildes, first_child = self.source
        s, e = int(self.starts[p]), int(self.starts[p + 1])
        w = e - s
        n_prev = prev.starts[-1]
        t = time.thread_time()
        mine = m_tildes[t_idx][s:e]
        k = np.unique(mine.indices)
        local = sp.csr_matrix((mine.data, np.searchsorted(k, mine.indices), mine.indptr), shape=(w, k.size))
        row_first = np.searchsorted(prev.block_of(k), np.arange(prev.n_blocks + 1))
        groups = [(q, int(row_first[q]), int(row_first[q + 1])) for q in range(prev.n_blocks)
                  if row_first[q] < row_first[q + 1]]
        # One previous block at a time, from the first child of the rows >= s on (the
        # colour order makes the children of those rows a suffix).
        wt = buffer(ctx, "wt", (n_prev, 2, w), self.dtype)
        first = int(prev.block_of(int(first_child[s])))
        for pp in range(first, prev.n_blocks):
            rows = prev.column_block(k, groups, pp)
            t = tick(times, "gather", t)
            prod = (local @ rows.reshape(k.size, -1)).reshape(w, 2, -1)
            transpose_into(wt[prev.starts[pp]: prev.starts[pp + 1]], prod)
            t = tick(times, "aggregate", t)
        return wt.reshape(n_prev, 2 * w), int(prev.starts[min(first, prev.n_blocks)])

    def _tiles_from_previous(self, p: int, ctx: dict, panel: np.ndarray) -> None:
        s, e = int(self.starts[p]), int(self.starts[p + 1])
        panel2 = panel.reshape(panel.shape[0], 2 * (e - s))
        for t_idx in range(len(self.source[2])):
            wt2, _ = self.wt(p, t_idx, ctx)
            t = time.thread_time()
            for q in range(p, self.n_blocks):
                a, b = int(self.starts[q]), int(self.starts[q + 1])
                spmm_into(self.block_rows[t_idx][q], wt2, panel2[a - s: b - s], accumulate=t_idx > 0)
            tick(ctx["times"], "aggregate", t)

    def _tiles_from_factor(self, p: int, ctx: dict, panel: np.ndarray) -> None:
        t = time.thread_time()
        _, fk, ft = self.source
        s, e = int(self.starts[p]), int(self.starts[p + 1])
        # into the panel: a temporary product would be fresh memory (slow to touch, see tiles.reused_memory)
        np.matmul(fk[s:], fk[s:e].T, out=panel[:, 0, :])
        if ft is None:
            panel[:, 1, :] = 0.0
        else:
            np.matmul(ft[s:], ft[s:e].T, out=panel[:, 1, :])
        tick(ctx["times"], "aggregate", t)

    def run_block(self, p: int, ctx: dict) -> None:
        times = ctx["times"]
        s, e = int(self.starts[p]), int(self.starts[p + 1])
        w = e - s
        cols = slice(s, e)
        panel = buffer(ctx, "panel", (self.size - s, 2, w), self.dtype)
        if self.source[0] == "tiles":
            self._tiles_from_previous(p, ctx, panel)
        else:
            self._tiles_from_factor(p, ctx, panel)
        if self.unit_diagonal:
            r = np.arange(w)
            panel[r, 0, r] = 1.0  # exact unit self-correlation
        for ops, tap in self.segments:
            t = time.thread_time()
            for q in range(p, self.n_blocks):
                a, b = int(self.starts[q]), int(self.starts[q + 1])
                _run_ops(panel[a - s: b - s], ops, a, cols, self.dtype)
            t = tick(times, "pointwise", t)
            if tap is not None:
                self._readout(tap, panel, s, e, ctx)
                tick(times, "readout", t)
        if self.store is not None:
            t = time.thread_time()
            self.store_column(p, panel)
            tick(times, "store", t)

    def store_column(self, p: int, panel: np.ndarray) -> None:
        """Store the lower block column ``panel`` (rows ``s:``) as transposed upper tiles."""
        s = int(self.starts[p])
        for q in range(p, self.n_blocks):
            a, b = int(self.starts[q]), int(self.starts[q + 1])
            upper = self.store.new_tile(p, q)
            transpose_into(upper, panel[a - s: b - s])
            self.store.tiles[p][q - p] = upper

    def _readout(self, tap, panel: np.ndarray, s: int, e: int, ctx: dict) -> None:
        """acc += E[:, I] X[I, s:] E[:, s:]^T for the lower block column (the mirrored upper
        part is the transpose, added at the end; the diagonal tile counts half)."""
        tap_ops, e_mat, group = tap
        w = e - s
        if tap_ops:
            src = buffer(ctx, "tap", panel.shape, self.dtype)
            np.copyto(src, panel)
            for q in range(self.n_blocks):
                a, b = int(self.starts[q]), int(self.starts[q + 1])
                if b > s:
                    _run_ops(src[a - s: b - s], tap_ops, a, slice(s, e), self.dtype)
        else:
            src = panel
        flat = src.reshape(src.shape[0], 2 * w)
        xs = e_mat[:, s:] @ flat
        xs -= 0.5 * (e_mat[:, s:e] @ flat[:w])
        eb_block = e_mat[:, s:e].tocsr()
        hit = np.flatnonzero(np.diff(eb_block.indptr))
        eb_block = eb_block[hit]
        xs = xs.reshape(xs.shape[0], 2, w)
        xq = buffer(ctx, "xq", (w, 1, xs.shape[0]), self.dtype)
        acc = ctx["acc"][group]
        for ch in range(2):
            transpose_into(xq, xs[:, ch: ch + 1, :])
            acc[ch][hit] += eb_block @ xq.reshape(w, -1)


# ----------------------------------------------------------------------- the chain
def _split_stages(plan: ChainPlan) -> tuple[list[P.Aggregate], list[list]]:
    aggs, stages = [], [[]]
    for item in plan.trunk:
        if isinstance(item, tuple) and item[0] == "agg":
            aggs.append(item[1])
            stages.append([])
        else:
            stages[-1].append(item)
    return aggs, stages


def _is_linear(op) -> bool:
    return isinstance(op, (P.Dense, P.Scale))


def _factor_ops(ops: tuple, fk: np.ndarray, ft: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Dense / Scale on factors: K = FK FKᵀ, Θ = FT FTᵀ (``None``: Θ = 0)."""
    for op in ops:
        if isinstance(op, P.Scale):
            fk, ft = fk * abs(op.c), None if ft is None else ft * abs(op.c)
        else:
            fk = np.hstack([op.W_std * fk, np.full((fk.shape[0], 1), op.b_std, fk.dtype)]) if op.b_std else \
                op.W_std * fk
            ft = fk if ft is None else np.hstack([fk, op.W_std * ft])
    return fk, ft


def refine_stages(aggs: list[P.Aggregate], space: NodeSpace, items0: np.ndarray, n0: int
                  ) -> tuple[list[np.ndarray], list[int], list[list[sp.csr_matrix]]]:
    """Node items of every stage (input, then after each aggregation), their counts, and
    per aggregation the item maps ``M_t`` (parents x children, one per edge type)."""
    items, counts, ms = [items0], [n0], []
    for op in aggs:
        maps = space.aggregation_maps(op.normalization, op.add_self_loops, op.edge_types)
        new, m_list = refine(items[-1], counts[-1], maps)
        items.append(new.items)
        counts.append(new.num_items)
        ms.append(m_list)
    return items, counts, ms


def reorder(orders: list[np.ndarray], items: list[np.ndarray], ms: list[list[sp.csr_matrix]], phi: np.ndarray
            ) -> tuple[list[np.ndarray], list[list[sp.csr_matrix]], np.ndarray]:
    """Renumber every stage's items so that item ``orders[k][i]`` becomes item ``i``."""
    ranks = []
    for order in orders:
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        ranks.append(rank)
    items = [rank[it] for rank, it in zip(ranks, items)]
    ms = [[m[orders[k + 1]][:, orders[k]].tocsr() for m in m_list] for k, m_list in enumerate(ms)]
    return items, ms, np.asarray(phi, dtype=np.float64)[orders[0]]


class ReadoutMatrices:
    """``E = P_mode · 1[node -> item] · diag(d)``: graphs x items, pooling the stored values."""

    def __init__(self, space: NodeSpace, items: list[np.ndarray], counts: list[int], dtype) -> None:
        self.pools = {mode: space.pool_map(mode) for mode in ("sum", "mean")}
        self.items, self.counts, self.dtype = items, counts, dtype

    def __call__(self, k: int, mode: str, d: np.ndarray) -> sp.csc_matrix:
        it = self.items[k]
        ind = sp.csr_matrix((np.ones(it.size), (np.arange(it.size), it)), shape=(it.size, self.counts[k]))
        return (self.pools[mode] @ ind @ sp.diags(d)).astype(self.dtype).tocsc()


def factor_stage(ops: list, fk: np.ndarray, ft: np.ndarray | None, readout, full: dict,
                 split: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """A stage of linear ops only, on the factors; its readouts add ``(E F)(E F)ᵀ`` to
    ``full`` (with ``split``: rows are the first ``split`` graphs, columns the others)."""
    for o in ops:
        if not isinstance(o, tuple):
            fk, ft = _factor_ops((o,), fk, ft)
            continue
        tfk, tft = _factor_ops(o[1].ops, fk, ft)
        e = readout(o[1].mode)
        for ch, f in enumerate((tfk, tft)):
            if f is not None:
                g = e @ f
                full[o[1].group][ch] += g @ g.T if split is None else g[:split] @ g[split:].T
    return fk, ft


def stage_is_linear(ops: list) -> bool:
    """Whether a stage (and its readout taps) is Dense / Scale only: it runs on the factors."""
    return all(_is_linear(o) or (isinstance(o, tuple) and all(_is_linear(x) for x in o[1].ops)) for o in ops)


def aggregate_factors(fk: np.ndarray, ft: np.ndarray | None, ms: list[sp.csr_matrix]
                      ) -> tuple[np.ndarray, np.ndarray | None]:
    """The factors after an aggregation with item maps ``ms`` (one per edge type)."""
    return np.hstack([m @ fk for m in ms]), None if ft is None else np.hstack([m @ ft for m in ms])


def factor_source(fk: np.ndarray, ft: np.ndarray | None, nonneg: bool, dtype) -> tuple[Track, tuple]:
    """The first tiled stage's bookkeeping and tile source from factors ``K = FK FKᵀ``,
    ``Θ = FT FTᵀ``: rows prescaled by ``1/d`` so the tiles are correlations."""
    track = Track(np.einsum("ij,ij->i", fk, fk), nonneg)
    inv = 1.0 / track.d
    return track, ("factor", (fk * inv[:, None]).astype(dtype),
                   None if ft is None else (ft * inv[:, None]).astype(dtype))


def scaled_maps(us: list[sp.csr_matrix], d: np.ndarray, dtype) -> list[sp.csr_matrix]:
    """``M̃_t = D'^{-1} U_t`` in the tile dtype, indices sorted."""
    out = []
    for u in us:
        mt = (sp.diags(1.0 / d) @ u).astype(dtype).tocsr()
        mt.sort_indices()
        out.append(mt)
    return out


def stage_segments(track: Track, ops: list, compile_segment, readout) -> tuple[list, list]:
    """A stage's ops cut at its readout taps: ``[(tile ops, tap or None)]`` with each tap as
    ``(its own ops, readout matrix, group)``, and the matching device plans."""
    segments, pending, device_segments = [], [], []
    for o in ops:
        if isinstance(o, tuple):
            compiled, spec = compile_segment(track, tuple(pending))
            tap: Tap = o[1]
            tap_track = track.copy()
            tap_ops, tap_spec = compile_segment(tap_track, tap.ops)
            segments.append((compiled, (tap_ops, readout(tap.mode, tap_track.d), tap.group)))
            device_segments.append((spec, tap_spec))
            pending = []
        else:
            pending.append(o)
    compiled, spec = compile_segment(track, tuple(pending))
    segments.append((compiled, None))
    device_segments.append((spec, None))
    return segments, device_segments


def chain_memory(num_items: tuple[int, ...], num_graphs: int, num_groups: int, block: int, threads: int,
                 itemsize: int, edge_types: int = 1) -> int:
    """Bytes at the peak: stored triangles of two consecutive stages (the last stage is
    never stored), per-thread scratch (``Wᵀ`` per edge type and one block column) and the
    per-thread readout accumulators."""
    block = min(block, max(num_items))
    stored = [2 * c * (c + block) // 2 for c in num_items[:-1]] + [0]
    peak = max([stored[k - 1] + stored[k] for k in range(1, len(stored))] + [stored[0]])
    scratch = threads * 2 * block * (max(num_items) * (1 + edge_types) + max(num_items))
    acc = threads * num_groups * 2 * num_graphs * num_graphs
    return int((peak + scratch) * itemsize + acc * 8)


def run_chain(plan: ChainPlan, space: NodeSpace, items0: np.ndarray, phi: np.ndarray, *, dtype=np.float64,
              block: int | None = None, num_threads: int | None = None, progress: bool = False,
              backend: str = "numpy") -> tuple[dict[int, list[np.ndarray]], tuple[int, ...], dict[str, float]]:
    """Run the trunk of ``plan``; returns the graph-level accumulators per readout group
    (``[nngp, ntk]`` joint graph x graph matrices), the item count per stage and timings.
    ``backend='jax'`` runs the block columns on the local JAX devices
    (:mod:`graph_ntk.kernels.jax_tiles`)."""
    dtype = np.dtype(dtype)
    block = block or DEFAULT_BLOCK
    if num_threads is None:
        num_threads = usable_threads()
    timings: dict[str, float] = defaultdict(float)
    t0 = time.perf_counter()
    aggs, stage_ops = _split_stages(plan)
    items, counts, ms = refine_stages(aggs, space, items0, phi.shape[0])
    if ms:
        patterns = [abs(sum(abs(m) for m in m_list)).tocsr() for m_list in ms]
        orders = parent_order(patterns, items)
    else:
        orders = [np.arange(counts[0])]
    items, ms, phi = reorder(orders, items, ms, phi)
    nonneg = bool((phi >= 0).all())
    readout_matrix = ReadoutMatrices(space, items, counts, dtype)
    n_g = space.num_graphs

    full: dict[int, list[np.ndarray]] = defaultdict(lambda: [np.zeros((n_g, n_g)), np.zeros((n_g, n_g))])
    contexts = [{"acc": defaultdict(lambda: [np.zeros((n_g, n_g), dtype), np.zeros((n_g, n_g), dtype)]),
                 "times": defaultdict(float), "pool": current_pool(), "slot": i} for i in range(num_threads)]
    on_device = backend == "jax"
    if on_device:
        jax_tiles.attach_devices(contexts)

    def compile_segment(track: Track, seg_ops: tuple) -> tuple[list, tuple | None]:
        # the device steps are planned only when they will run
        if on_device:
            return jax_tiles.segment(track, seg_ops, dtype)
        return track.compile(seg_ops, dtype), None
    timings["refine"] = time.perf_counter() - t0

    # Reserve the largest stored triangle of each parity and per-thread panel up front, so
    # that growing stages reuse memory instead of faulting in fresh pages (tiles.reused_memory).
    for parity in range(2):
        sizes = [Tiles.size(np.append(np.arange(0, c, block), c)) for c in counts[parity:-1:2]]
        if sizes:
            pooled(("store", parity), (max(sizes),), dtype)
    for ctx in contexts:
        for name in ("panel", "wt"):
            buffer(ctx, name, (max(counts), 2, min(block, max(counts))), dtype)
    factor: tuple[np.ndarray, np.ndarray | None] | None = (phi, None)
    prev_store: Tiles | None = None
    d_prev = None
    for k, ops in enumerate(stage_ops):
        t_setup = time.perf_counter()
        if k > 0:
            nonneg = nonneg and all((m.data >= 0).all() for m in ms[k - 1])
        if factor is not None:
            fk, ft = factor if k == 0 else aggregate_factors(*factor, ms[k - 1])
            if stage_is_linear(ops):  # the whole stage in factor form
                factor = factor_stage(ops, fk, ft, lambda mode: readout_matrix(k, mode, np.ones(counts[k])), full)
                timings["setup"] += time.perf_counter() - t_setup
                continue
            track, source = factor_source(fk, ft, nonneg, dtype)
            factor = None
        else:
            us = [(m @ sp.diags(d_prev)).tocsr() for m in ms[k - 1]]
            track = Track(sum(variances(u, prev_store) for u in us), nonneg)
            m_tildes = scaled_maps(us, track.d, dtype)
            union = abs(sum(abs(m) for m in m_tildes)).tocsr()
            # An item with no children (a node without in-arcs and no self loop) has an
            # empty row: it bounds nothing (reduceat would read its neighbour's entries).
            row_min = np.full(union.shape[0], union.shape[1], dtype=np.int64)
            has = np.diff(union.indptr) > 0
            if union.nnz:
                row_min[has] = np.minimum.reduceat(union.indices, union.indptr[:-1][has])
            first_child = np.minimum.accumulate(row_min[::-1])[::-1]
            source = ("tiles", prev_store, m_tildes, first_child)
        unit = track.unit
        segments, device_segments = stage_segments(track, ops, compile_segment,
                                                   lambda mode, d: readout_matrix(k, mode, d))
        keep = ("store", k % 2) if k + 1 < len(stage_ops) else None
        stage = _Stage(source, counts[k], block, segments, keep, dtype=dtype)
        stage.unit_diagonal, stage.device_segments = unit, device_segments
        timings["setup"] += time.perf_counter() - t_setup
        label = StageLabel(k, len(stage_ops) - 1, f"{counts[k]} items") if progress else None
        if on_device:
            parallel_for(stage.n_blocks, functools.partial(jax_tiles.run_block, stage), contexts, label)
            jax_tiles.collect(contexts)
        else:
            parallel_for(stage.n_blocks, stage.run_block, contexts, label)
        # the accumulators hold the lower block triangle: add the mirrored part
        fold_accumulators(contexts, full, lambda h: h.astype(np.float64) + h.T)
        prev_store, d_prev, nonneg = stage.store, track.d, track.nonneg
        del stage
    return finish(full, plan, counts, contexts, timings, t0)


def fold_accumulators(contexts: list[dict], full: dict, fold) -> None:
    """Add this stage's per-thread accumulators (through ``fold``) to the totals and free
    them, so that accumulator memory is per stage, not per readout."""
    for ctx in contexts:
        for g, acc in ctx["acc"].items():
            for ch in range(2):
                full[g][ch] += fold(acc[ch])
        ctx["acc"].clear()


def finish(full: dict, plan: ChainPlan, counts: list[int], contexts: list[dict], timings: dict, t0: float
           ) -> tuple[dict[int, list[np.ndarray]], tuple[int, ...], dict[str, float]]:
    """The executors' return value: accumulators per readout group, item counts, timings
    (the threads' CPU seconds per phase added up)."""
    for ctx in contexts:
        for key, value in ctx["times"].items():
            timings[key] += value
    timings["total"] = time.perf_counter() - t0
    return {g: full[g] for g in range(plan.num_groups)}, tuple(counts), dict(timings)
