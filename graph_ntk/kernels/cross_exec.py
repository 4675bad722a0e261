r"""The tiled executor's rectangular form: the kernel between two chunks of graphs.

When a collection's item kernels do not fit in memory, the engine cuts the graphs into
chunks. For chunks ``A`` and ``B`` only the cross block of every stage is needed: the
children of an item that occurs in ``A`` occur in ``A`` (an item is a WL class: every node
of the class has children of the same classes), so

.. math::
    K_k[I_A, I_B] = \sum_t M_t[I_A]\, K_{k-1}[I_A', I_B']\, M_t[I_B]^\top

never reads an entry within one chunk, and the work is :math:`|I_A| |I_B|` per stage
instead of the :math:`(|I_A| + |I_B|)^2 / 2` of the square executor on ``A ∪ B``. What the
cross block cannot give is the items' own variances :math:`K_k(i, i)`, which the
nonlinearities need; they belong to the node's own graph, so the caller passes them per
node (:func:`graph_ntk.kernels.program_gram.node_variances`: every graph's own small kernel over
its WL items).

Item order at every stage: items only in ``A``, items in both, items only in ``B``. The rows
are the first two groups and the columns the last two, so the pointwise steps
(:mod:`graph_ntk.kernels.tile_ops`) index one per-item scale array with contiguous row and
column ranges, and an item in both chunks keeps its exact unit self-correlation. Stage
``k``'s cross block is built one block column at a time (threads) and stored transposed,
``(columns, 2, rows)``, which is the layout the next stage's first sparse product reads.
"""

from __future__ import annotations

import time
from collections import defaultdict

import numpy as np
import scipy.sparse as sp

from graph_ntk.kernels.threads import usable_threads
from graph_ntk.log import StageLabel
from graph_ntk.kernels.chain import ChainPlan
from graph_ntk.kernels.spaces import NodeSpace
from graph_ntk.kernels.tile_ops import Track
from graph_ntk.kernels.tiled_exec import (DEFAULT_BLOCK, ReadoutMatrices, _run_ops, _split_stages,
                                          aggregate_factors, factor_source, factor_stage, finish, fold_accumulators,
                                          refine_stages, reorder, scaled_maps, stage_is_linear, stage_segments)
from graph_ntk.kernels.tiles import buffer, current_pool, parallel_for, pooled, spmm_into, tick, transpose_into

__all__ = ["cross_memory", "run_cross"]


class _CrossStage:
    """Stage ``k``'s cross block ``X[rows, cols]`` (rows ``0:r_end``, columns ``c0:n`` of the
    stage's item order), from factors or from the previous stage's stored block."""

    def __init__(self, source, r_end: int, c0: int, n: int, block: int, segments: list,
                 store: np.ndarray | None, unit: bool, dtype) -> None:
        self.source, self.r_end, self.c0, self.segments, self.unit, self.dtype = \
            source, r_end, c0, segments, unit, dtype
        self.starts = np.append(np.arange(0, n - c0, block), n - c0)
        self.n_blocks = len(self.starts) - 1
        # (columns, 2, rows): block column p fills rows starts[p]:starts[p + 1]
        self.store = None if store is None else store[: (n - c0) * 2 * r_end].reshape(n - c0, 2, r_end)

    def run_block(self, p: int, ctx: dict) -> None:
        times = ctx["times"]
        s, e = int(self.starts[p]), int(self.starts[p + 1])
        w, rows = e - s, self.r_end
        cols = slice(self.c0 + s, self.c0 + e)  # in the stage's item order
        panel = buffer(ctx, "panel", (rows, 2, w), self.dtype)
        t = time.thread_time()
        if self.source[0] == "factor":
            _, fk, ft = self.source
            np.matmul(fk[:rows], fk[cols].T, out=panel[:, 0, :])  # no temporary (fresh memory is slow)
            if ft is None:
                panel[:, 1, :] = 0.0
            else:
                np.matmul(ft[:rows], ft[cols].T, out=panel[:, 1, :])
        else:
            _, prev, rows_m, cols_m = self.source
            n_prev_rows = prev.shape[2]
            flat_prev = prev.reshape(prev.shape[0], -1)
            panel2 = panel.reshape(rows, 2 * w)
            wt = buffer(ctx, "wt", (n_prev_rows, 2, w), self.dtype)
            prod = buffer(ctx, "prod", (w, 2 * n_prev_rows), self.dtype)
            for t_idx, (rm, cm) in enumerate(zip(rows_m, cols_m)):
                # W = M̃[cols] X_{k-1}ᵀ, (w, 2, rows'), then the row side: M̃[rows] Wᵀ
                spmm_into(cm[s:e], flat_prev, prod)
                transpose_into(wt, prod.reshape(w, 2, n_prev_rows))
                spmm_into(rm, wt.reshape(n_prev_rows, 2 * w), panel2, accumulate=t_idx > 0)
        t = tick(times, "aggregate", t)
        if self.unit:  # items of both chunks: exact unit self-correlation
            both = np.arange(cols.start, min(cols.stop, rows))
            panel[both, 0, both - cols.start] = 1.0
        for ops, tap in self.segments:
            t = time.thread_time()
            _run_ops(panel, ops, 0, cols, self.dtype)
            t = tick(times, "pointwise", t)
            if tap is not None:
                self._readout(tap, panel, s, e, cols, ctx)
                tick(times, "readout", t)
        if self.store is not None:
            t = time.thread_time()
            transpose_into(self.store[s:e], panel)
            tick(times, "store", t)

    def _readout(self, tap, panel: np.ndarray, s: int, e: int, cols: slice, ctx: dict) -> None:
        """acc[graphs of B, graphs of A] += E_B[:, cols] Xᵀ E_Aᵀ for this block column."""
        tap_ops, (e_rows, e_cols), group = tap
        w = e - s
        if tap_ops:
            src = buffer(ctx, "tap", panel.shape, self.dtype)
            np.copyto(src, panel)
            _run_ops(src, tap_ops, 0, cols, self.dtype)
        else:
            src = panel
        xs = (e_rows @ src.reshape(src.shape[0], 2 * w)).reshape(-1, 2, w)  # (graphs of A, 2, w)
        eb = e_cols[:, s:e].tocsr()
        hit = np.flatnonzero(np.diff(eb.indptr))
        eb = eb[hit]
        acc = ctx["acc"][group]
        for ch in range(2):
            acc[ch][hit] += eb @ np.ascontiguousarray(xs[:, ch, :].T)


def cross_memory(rows: int, cols: int, num_graphs: int, num_groups: int, block: int, threads: int,
                 itemsize: int, edge_types: int = 1) -> int:
    """Bytes at the peak of :func:`run_cross` with at most ``rows x cols`` items per stage:
    two consecutive stages' stored blocks, per-thread scratch and readout accumulators."""
    block = min(block, cols)
    stored = 2 * 2 * rows * cols
    scratch = threads * 2 * block * (rows * (2 + edge_types) + rows)
    acc = threads * num_groups * 2 * num_graphs * num_graphs
    return int((stored + scratch) * itemsize + acc * 8)


def run_cross(plan: ChainPlan, space: NodeSpace, items0: np.ndarray, phi: np.ndarray, split: int,
              node_vars: dict[int, np.ndarray], *, dtype=np.float64, block: int | None = None,
              num_threads: int | None = None, progress: bool = False
              ) -> tuple[dict[int, list[np.ndarray]], tuple[int, ...], dict[str, float]]:
    """The trunk of ``plan`` between the first ``split`` graphs of ``space`` (rows) and the
    others (columns). ``node_vars[k]``: each node's variance after stage ``k``'s
    aggregation (:func:`graph_ntk.kernels.program_gram.node_variances`). Returns the
    graph-level accumulators per readout group (``[nngp, ntk]``, rows x columns graphs), the
    item count per stage and timings."""
    dtype = np.dtype(dtype)
    block = block or DEFAULT_BLOCK
    if num_threads is None:
        num_threads = usable_threads()
    timings: dict[str, float] = defaultdict(float)
    t0 = time.perf_counter()
    aggs, stage_ops = _split_stages(plan)
    items, counts, ms = refine_stages(aggs, space, items0, phi.shape[0])
    split_node = int(space.sizes[:split].sum())
    orders, bounds = [], []
    for it, c in zip(items, counts):
        in_a = np.zeros(c, bool)
        in_a[it[:split_node]] = True
        in_b = np.zeros(c, bool)
        in_b[it[split_node:]] = True
        only_a, both, only_b = (np.flatnonzero(m) for m in (in_a & ~in_b, in_a & in_b, ~in_a & in_b))
        orders.append(np.concatenate([only_a, both, only_b]))
        bounds.append((only_a.size + both.size, only_a.size))  # rows end, columns start
    items, ms, phi = reorder(orders, items, ms, phi)
    nonneg = bool((phi >= 0).all())
    readout_matrix = ReadoutMatrices(space, items, counts, dtype)
    n_a, n_b = split, space.num_graphs - split
    full: dict[int, list[np.ndarray]] = defaultdict(lambda: [np.zeros((n_a, n_b)), np.zeros((n_a, n_b))])
    contexts = [{"acc": defaultdict(lambda: [np.zeros((n_b, n_a), dtype), np.zeros((n_b, n_a), dtype)]),
                 "times": defaultdict(float), "pool": current_pool(), "slot": i} for i in range(num_threads)]
    timings["refine"] = time.perf_counter() - t0

    # Two stores, alternating between stages: fresh pages cost as much as filling them
    # (first-touch faults), so each is allocated once, at the largest size it will hold.
    stored = [(counts[k] - c0) * 2 * r_end for k, (r_end, c0) in enumerate(bounds)][:-1]
    stores = [pooled(("store", i), (max(stored[i::2], default=0),), dtype) for i in range(2)]
    rows_max = max(r for r, _ in bounds)
    width = min(block, max(c - c0 for c, (_, c0) in zip(counts, bounds)))
    for ctx in contexts:
        for name in ("panel", "wt", "prod"):
            buffer(ctx, name, (rows_max, 2, width), dtype)
    factor: tuple[np.ndarray, np.ndarray | None] | None = (phi, None)
    prev, d_prev = None, None
    for k, ops in enumerate(stage_ops):
        t_setup = time.perf_counter()
        r_end, c0 = bounds[k]
        if k > 0:
            nonneg = nonneg and all((m.data >= 0).all() for m in ms[k - 1])
        if factor is not None:
            fk, ft = factor if k == 0 else aggregate_factors(*factor, ms[k - 1])
            if stage_is_linear(ops):
                factor = factor_stage(ops, fk, ft, lambda mode: readout_matrix(k, mode, np.ones(counts[k])),
                                      full, split=n_a)
                timings["setup"] += time.perf_counter() - t_setup
                continue
            track, source = factor_source(fk, ft, nonneg, dtype)
            factor = None
        else:
            if k not in node_vars:
                raise ValueError(f"variances: no node variances for stage {k}; pass node_variances() of the same "
                                 "network")
            var = np.empty(counts[k])
            var[items[k]] = node_vars[k]
            track = Track(var, nonneg)
            m_tildes = scaled_maps([(m @ sp.diags(d_prev)).tocsr() for m in ms[k - 1]], track.d, dtype)
            pr_end, pc0 = bounds[k - 1]
            # children of row items are row items of stage k-1, of column items column items
            rows_m = [mt[:r_end, :pr_end].tocsr() for mt in m_tildes]
            cols_m = [mt[c0:, pc0:].tocsr() for mt in m_tildes]
            if any(r.nnz != mt[:r_end].nnz or c.nnz != mt[c0:].nnz for r, c, mt in zip(rows_m, cols_m, m_tildes)):
                raise RuntimeError("cross executor: an item's children lie outside its chunk (a bug: please report)")
            source = ("tiles", prev, rows_m, cols_m)

        def readout(mode: str, d: np.ndarray) -> tuple[sp.csr_matrix, sp.csc_matrix]:
            e = readout_matrix(k, mode, d)
            return e[:n_a, :r_end].tocsr(), e[n_a:, c0:].tocsc()

        unit = track.unit  # of the aggregated kernel (compiling the ops updates the track)
        segments, _ = stage_segments(track, ops, lambda tr, seg: (tr.compile(seg, dtype), None), readout)
        store = stores[k % 2] if k + 1 < len(stage_ops) else None
        stage = _CrossStage(source, r_end, c0, counts[k], block, segments, store, unit, dtype)
        timings["setup"] += time.perf_counter() - t_setup
        label = StageLabel(k, len(stage_ops) - 1, f"{r_end} x {counts[k] - c0} items") if progress else None
        parallel_for(stage.n_blocks, stage.run_block, contexts, label)
        fold_accumulators(contexts, full, lambda acc: acc.T)  # (columns, rows) graphs
        prev, d_prev, nonneg = stage.store, track.d, track.nonneg
        del stage
    return finish(full, plan, counts, contexts, timings, t0)
