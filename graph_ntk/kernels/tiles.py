r"""Tiled storage and threading for the tiled executor (:mod:`graph_ntk.kernels.tiled_exec`).

Symmetric item x item kernels are stored once, as the ``B x B`` tiles of their upper block
triangle, two channels per tile (NNGP and NTK); block columns are processed by a pool of
threads (NumPy and SciPy release the GIL in the heavy loops), each with its own scratch
buffers.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Callable, Iterator

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

__all__ = ["Tiles", "buffer", "current_pool", "parallel_for", "parent_order", "pooled", "reused_memory",
           "spmm_into", "tick", "transpose_into", "variances"]

# Per calling thread: the pool of large work arrays while `reused_memory()` is active there.
_local = threading.local()


@contextlib.contextmanager
def reused_memory() -> Iterator[None]:
    """While active in this thread (it nests), the executors keep their large work arrays
    (stored kernels, their worker threads' scratch) and reuse them in later stages and
    calls; on exit they are freed. Other threads (another job, a Dask worker) have their own.

    Memory the process has freed and allocates again costs a page fault per 4 KiB page on
    first touch, and in a VM (e.g. firecracker, with free-page reporting) each of those is a
    trip to the host: measured here at up to 40 µs, i.e. more than the arithmetic on the
    page. The engine runs every job inside this context.
    """
    outer = getattr(_local, "pool", None)
    if outer is None:
        _local.pool = {}
    try:
        yield
    finally:
        if outer is None:
            _local.pool = None


def current_pool() -> dict | None:
    """This thread's pool (hand it to worker threads through their context), or None."""
    return getattr(_local, "pool", None)


def pooled(key: tuple, shape: tuple[int, ...], dtype, pool: dict | None = None) -> np.ndarray:
    """An uninitialised array of ``shape``: a view of the buffer named ``key`` in ``pool``
    (default: this thread's, inside :func:`reused_memory`), grown when too small; else new.
    A key names one use: two arrays alive at once need two keys."""
    dtype = np.dtype(dtype)
    pool = current_pool() if pool is None else pool
    if pool is None:
        return np.empty(shape, dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    held = pool.get(key)
    if held is None or held.size < nbytes:
        pool.pop(key, None)
        held = pool[key] = np.empty(nbytes, np.uint8)
    return held[:nbytes].view(dtype).reshape(shape)


class Tiles:
    """Two symmetric C x C matrices (Λ, τ) stored once, as the tiles of their upper block triangle.

    ``tiles[q][p - q]`` (for blocks ``q <= p``) has shape ``(width_q, 2, width_p)`` and holds
    ``[Λ, τ][block q, block p]``; diagonal tiles are stored whole.
    """

    def __init__(self, starts: np.ndarray, dtype: np.dtype, backing: np.ndarray | None = None) -> None:
        self.starts = starts
        self.n_blocks = len(starts) - 1
        self.dtype = dtype
        self.tiles: list[list[np.ndarray | None]] = [[None] * (self.n_blocks - q) for q in range(self.n_blocks)]
        # with a flat ``backing`` array (Tiles.size entries), tiles are views into it
        self.backing = backing
        widths = np.diff(starts)
        sizes = [int(widths[q]) * 2 * int(widths[p]) for q in range(self.n_blocks) for p in range(q, self.n_blocks)]
        self._offsets = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])

    @staticmethod
    def size(starts: np.ndarray) -> int:
        """Entries of all tiles of the upper block triangle."""
        widths = np.diff(starts)
        return int(2 * (widths.sum() ** 2 + (widths ** 2).sum()) // 2)

    def new_tile(self, q: int, p: int) -> np.ndarray:
        """An uninitialised ``(width_q, 2, width_p)`` array for tile (q, p), ``q <= p``."""
        shape = (int(self.starts[q + 1] - self.starts[q]), 2, int(self.starts[p + 1] - self.starts[p]))
        if self.backing is None:
            return np.empty(shape, self.dtype)
        index = q * self.n_blocks - q * (q - 1) // 2 + (p - q)
        start = int(self._offsets[index])
        return self.backing[start: start + shape[0] * 2 * shape[2]].reshape(shape)

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
                transpose_into(out[r0:r1], np.take(self.tiles[p][q - p], local, axis=2))
        return out


try:  # SciPy's own kernel behind ``csr @ dense``, which can write into a given array
    from scipy.sparse._sparsetools import csr_matvecs as _csr_matvecs
except ImportError:  # pragma: no cover - a SciPy without it: the allocating product
    _csr_matvecs = None


def spmm_into(a: sp.csr_matrix, x: np.ndarray, out: np.ndarray, accumulate: bool = False) -> None:
    """``out = a @ x`` (``out += a @ x`` with ``accumulate``) for C-contiguous 2-D ``x`` and
    ``out``, without the temporary ``a @ x``: in this VM a fresh array's first-touch page
    faults cost more than the product itself (``benchmarks/RESULTS.md``)."""
    if _csr_matvecs is None or not (x.flags.c_contiguous and out.flags.c_contiguous) or \
            not (a.dtype == x.dtype == out.dtype):
        if accumulate:
            out += a @ x
        else:
            out[...] = a @ x
        return
    if not accumulate:
        out.fill(0)
    _csr_matvecs(a.shape[0], a.shape[1], x.shape[1], a.indptr, a.indices, a.data, x.reshape(-1), out.reshape(-1))


def transpose_into(dst: np.ndarray, src: np.ndarray) -> None:
    """dst[a, q, b] = src[b, q, a]: one 2-D transpose per channel, in slabs of 32 ``b``
    so both sides stay in cache (a third faster than one 3-D transposed copy).

    (Avoid power-of-two row lengths here: their strides alias in the L1 cache and make
    this copy about three times slower, hence the default block of 504 colours.)
    """
    for q in range(src.shape[1]):
        s, d = src[:, q, :], dst[:, q, :]
        for b0 in range(0, s.shape[0], 32):
            d[:, b0 : b0 + 32] = s[b0 : b0 + 32].T


def parent_order(wl_counts: list[sp.csr_matrix], node_colours: list[np.ndarray]) -> list[np.ndarray]:
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


def parallel_for(n_items: int, work: Callable[[int, dict], None], contexts: list[dict], progress: str | None) -> None:
    """Run ``work(i, ctx)`` for i in 0..n_items-1 on ``len(contexts)`` threads, in order of i.

    Items are handed out one at a time, so the large first block columns start first and
    the small last ones fill the gaps. ``progress`` is a tqdm label, or ``None`` for no bar.
    """
    lock = threading.Lock()
    next_item = iter(range(n_items))
    errors: list[BaseException] = []
    bar = None
    job = None
    if progress is not None:
        from graph_ntk.log import current_job, progress_bar

        job = current_job()  # inside a gram() job: advance its one bar, stage as postfix
        if job is None:
            bar = progress_bar(total=n_items, desc=progress, leave=False)
        else:
            job.stage(progress, 0, n_items)
    finished = [0]

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
            if bar is not None or job is not None:
                with lock:
                    finished[0] += 1
                    if bar is not None:
                        bar.update(1)
                    else:
                        job.stage(progress, finished[0], n_items)

    threads = [threading.Thread(target=run, args=(ctx,)) for ctx in contexts]
    # These threads already occupy the cores: BLAS calls inside them run single-threaded
    # (OpenBLAS's own threads on top oversubscribe them; COLLAB GNTK(1, 2): 320 -> 273 s).
    with threadpool_limits(1, user_api="blas") if len(threads) > 1 else contextlib.nullcontext():
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    if bar is not None:
        bar.close()
    if errors:
        raise errors[0]


def variances(u: sp.csr_matrix, prev: Tiles) -> np.ndarray:
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


def buffer(ctx: dict, name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A per-thread scratch array of ``shape``, reusing the previous one when it is large enough.

    Fresh large allocations are mapped from the OS page by page on first touch, which costs
    about as much as the arithmetic on them; reusing one buffer per thread avoids that.
    """
    size = int(np.prod(shape))
    held = ctx.get(name)
    if held is None or held.size < size or held.dtype != dtype:
        pool = ctx.get("pool")  # the calling thread's, with this context's slot in the keys
        held = ctx[name] = np.empty(size, dtype) if pool is None else \
            pooled(("scratch", ctx["slot"], name), (size,), dtype, pool)
    return held[:size].reshape(shape)


def tick(times: dict, key: str, since: float) -> float:
    """Add the thread CPU time since ``since`` to ``times[key]``; return the current time."""
    now = time.thread_time()
    times[key] += now - since
    return now
