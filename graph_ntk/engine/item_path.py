"""The engine's default path: blocks of the exact item engine (:mod:`graph_ntk.kernels`).

A description with a layer program (``graph_ntk.nn``, the GNTK preset, :class:`GNTK`) is
evaluated by :func:`graph_ntk.kernels.program_gram.program_gram` over the items of the
graphs of a block. Its memory grows with the square of the item count, so when the whole
collection does not fit ``memory_limit`` the graphs are cut into chunks of bounded item
count. A chunk with itself runs the square executor; two different chunks run only their
cross kernels (:mod:`graph_ntk.kernels.cross_exec`, with every node's variances from one
cheap pass, :func:`~graph_ntk.kernels.program_gram.node_variances`), so the work stays that
of the whole collection's kernel (less the compression of items shared across chunks).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from graph_ntk import program as P
from graph_ntk.data.graph import Graph
from graph_ntk.engine.buckets import Chunk
from graph_ntk.engine.memory import check_fits
from graph_ntk.kernels.threads import usable_threads
from graph_ntk.kernels.chain import NotAChain, chain_plan
from graph_ntk.kernels.cross_exec import cross_memory
from graph_ntk.kernels.jax_tiles import resolve_backend
from graph_ntk.kernels.program_gram import cross_supported, node_features, node_variances, program_gram
from graph_ntk.kernels.refine import feature_partition, refine
from graph_ntk.kernels.spaces import NodeSpace
from graph_ntk.kernels.tiled_exec import DEFAULT_BLOCK, chain_memory

__all__ = ["ItemEngine", "plan_item_chunks"]

# Dense executor: about this many C x C arrays alive at once (K, Θ, products, branches).
_DENSE_ARRAYS = 6


class ItemEngine:
    """Blocks of :func:`program_gram`: one call per pair of chunks."""

    def __init__(self, program: P.Program, gets: tuple[str, ...], dtype: str, num_tags: int | None,
                 graphs1: Sequence[Graph], graphs2: Sequence[Graph], progress: bool, each_readout: bool = False,
                 backend: str = "auto") -> None:
        self.program, self.gets, self.dtype, self.num_tags = program, gets, np.dtype(dtype), num_tags
        self.each_readout, self.backend = each_readout, backend
        self.graphs = {"a": graphs1, "b": graphs2}
        # The engine's own per-stage bars only help when one call is the whole job; the
        # outer pair bar would jump from 0 to 100% underneath them.
        self.shows_progress = progress
        self.cross = uses_cross(program, backend)
        self._variances: dict[str, tuple[dict[int, np.ndarray], np.ndarray]] = {}

    def _chunk_variances(self, side: str, chunk: Chunk) -> dict[int, np.ndarray]:
        """Every node's variances (per stage) for the graphs of ``chunk``, from one pass over
        the side's graphs, made on first use."""
        if side not in self._variances:
            graphs = self.graphs[side]
            found = node_variances(self.program, graphs, num_tags=self.num_tags)
            self._variances[side] = (found, np.concatenate([[0], np.cumsum([g.num_nodes for g in graphs])]))
        found, starts = self._variances[side]
        nodes = np.concatenate([np.arange(starts[i], starts[i + 1]) for i in chunk.index])
        return {k: v[nodes] for k, v in found.items()}

    def dispatch(self, ca: Chunk, sa: str, cb: Chunk, sb: str, slot: int):
        g1 = [self.graphs[sa][i] for i in ca.index]
        g2 = None if (sa, ca.key) == (sb, cb.key) else [self.graphs[sb][i] for i in cb.index]
        variances = None
        if g2 is not None and self.cross:
            variances = (self._chunk_variances(sa, ca), self._chunk_variances(sb, cb))
        out = program_gram(self.program, g1, g2, num_tags=self.num_tags, get=self.gets, dtype=self.dtype,
                           progress=self.shows_progress, each_readout=self.each_readout, backend=self.backend,
                           variances=variances)
        if self.each_readout:  # per kernel, every readout in depth order
            return tuple(r[0 if g == "nngp" else 1] for g in self.gets for r in out.readouts)
        return tuple(getattr(out, g) for g in self.gets)

    @staticmethod
    def collect(pending) -> np.ndarray:
        return np.stack(pending)


def uses_cross(program: P.Program, backend: str) -> bool:
    """Whether pairs of different chunks run only their cross kernels."""
    return resolve_backend(backend) == "numpy" and cross_supported(program)


def _graph_maps(program: P.Program) -> list[P.Aggregate | P.StructurePool]:
    """The Aggregate and StructurePool ops of the main path (the longest branch), in order,
    up to the global pool."""
    out: list[P.Aggregate | P.StructurePool] = []
    for op in program:
        if isinstance(op, (P.Aggregate, P.StructurePool)):
            out.append(op)
        elif isinstance(op, P.Branch):
            out.extend(max((_graph_maps(b) for b in op.branches), key=len))
        elif isinstance(op, P.GlobalPool):
            break
    return out


def _aggregations(program: P.Program) -> list[P.Aggregate]:
    """The Aggregate ops of the main path, in order."""
    return [op for op in _graph_maps(program) if isinstance(op, P.Aggregate)]


def item_counts(program: P.Program, graphs: Sequence[Graph], num_tags: int | None
                ) -> tuple[list[np.ndarray], list[int]]:
    """Node items after the input and after each aggregation of the main path on the graphs
    themselves (what chunks are cut by), and the item count of every stage, those on the
    coarsened graphs of a StructurePool included (what memory is sized by: a coarse node
    sums several items, so the coarse graphs can hold more items than the graphs did)."""
    keys, _ = node_features(graphs, num_tags)
    part = feature_partition(keys)
    space = NodeSpace.from_graphs(graphs)
    items, n = part.items, part.num_items
    fine, counts, coarsened = [items], [n], False
    for op in _graph_maps(program):
        if isinstance(op, P.StructurePool):
            s_t, space = space.coarsen(op.method, dict(op.options))
            maps, coarsened = [s_t], True
        else:
            maps = space.aggregation_maps(op.normalization, op.add_self_loops, op.edge_types)
        new, _ = refine(items, n, maps)
        items, n = new.items, new.num_items
        counts.append(n)
        if not coarsened:
            fine.append(items)
    return fine, counts


def needed_bytes(program: P.Program, counts: Sequence[int], num_graphs: int, itemsize: int) -> int:
    """Peak memory of one engine call on a block with these item counts."""
    try:
        plan = chain_plan(program)
    except NotAChain:
        return _DENSE_ARRAYS * max(counts) ** 2 * 8 + 4 * num_graphs ** 2 * 8
    types = max([op.edge_types or 1 for op in _aggregations(program)] or [1])
    return chain_memory(tuple(counts), num_graphs, max(plan.num_groups, 1), DEFAULT_BLOCK, _threads(), itemsize,
                        types)


def _cross_need(program: P.Program, items: int, num_graphs: int, itemsize: int) -> int:
    types = max([op.edge_types or 1 for op in _aggregations(program)] or [1])
    return cross_memory(items, items, num_graphs, max(chain_plan(program).num_groups, 1), DEFAULT_BLOCK,
                        _threads(), itemsize, types)


def _threads() -> int:
    """Worker threads of the executors (all usable CPUs, or ``gram(n_jobs=...)``)."""
    return usable_threads()


def plan_item_chunks(program: P.Program, list1: list[Graph], list2: list[Graph] | None, num_tags: int | None,
                     block_size: int | None, memory_limit: int, itemsize: int, backend: str = "auto"
                     ) -> tuple[list[Chunk], list[Chunk]]:
    """Chunks of graphs such that every pair of chunks fits ``memory_limit``.

    One call on everything compresses best, so that is used when it fits (and
    ``block_size`` allows); otherwise graphs are taken in order of size into chunks of
    bounded item count, so that any pair of chunks fits: a chunk's square kernel and two
    chunks' cross kernel (:func:`uses_cross`), else the square kernel of two chunks together.
    """
    everything = list1 if list2 is None else list1 + list2
    items, counts = item_counts(program, everything, num_tags)
    need = needed_bytes(program, counts, len(everything), itemsize)
    # Chunks are cut by the items on the graphs themselves; their share of the items is
    # taken as the share of every stage's (the coarsened graphs' too).
    fine = [int(it.max()) + 1 for it in items]
    fits = need <= memory_limit and (block_size is None or len(everything) <= block_size)
    if fits:
        whole1 = [Chunk("a0", np.arange(len(list1)), len(list1), 0, 0)]
        return whole1, (whole1 if list2 is None else [Chunk("b0", np.arange(len(list2)), len(list2), 0, 0)])
    cross = uses_cross(program, backend)
    if need <= memory_limit:  # only block_size cuts
        limit = max(fine)
    elif cross:  # a chunk's square kernel and any two chunks' cross kernel must fit
        limit = max(1, int(max(fine) * math.sqrt(memory_limit / need)))
        # a pair of chunks holds about this share of the graphs (their readout accumulators)
        while limit > 1 and _cross_need(program, limit, math.ceil(2 * len(everything) * limit / max(fine)),
                                        itemsize) > memory_limit:
            limit = int(limit * 0.9)
    else:  # memory grows like items^2: half the affordable items per chunk, so any pair fits
        limit = max(1, int(max(fine) * math.sqrt(memory_limit / need) / 2))
    deepest = items[int(np.argmax(fine))]
    n1_nodes = sum(g.num_nodes for g in list1)
    chunks1 = _item_chunks(list1, limit, block_size, "a", deepest, 0)
    chunks2 = chunks1 if list2 is None else _item_chunks(list2, limit, block_size, "b", deepest, n1_nodes)
    # A chunk can exceed its item budget only by holding one graph that alone has more items:
    # then no cut helps, and a plan that cannot fit is refused before any work.
    largest = max(_chunk_items(c, lst, deepest, off) for lst, chunks, off in
                  ((list1, chunks1, 0), (list2 or [], chunks2 if list2 else [], n1_nodes)) for c in chunks)
    if largest > limit:
        scale = min(1.0, (1 if cross else 2) * largest / max(fine))
        most = 2 * max(c.index.size for c in (*chunks1, *chunks2))
        pair_need = needed_bytes(program, [max(1, int(c * scale)) for c in counts], most, itemsize)
        if cross:
            pair_need = max(pair_need, _cross_need(program, largest, most, itemsize))
        check_fits(pair_need, memory_limit, f"one block of the item engine ({(1 if cross else 2) * largest} items)",
                   "use dtype='float32', or a larger memory_limit: a single graph this large cannot be split")
    return chunks1, chunks2


def _chunk_items(chunk: Chunk, graphs: Sequence[Graph], items: np.ndarray, offset: int) -> int:
    sizes = np.array([g.num_nodes for g in graphs])
    starts = offset + np.concatenate(([0], np.cumsum(sizes)))
    return int(np.unique(np.concatenate([items[starts[i]:starts[i + 1]] for i in chunk.index])).size)


def _item_chunks(graphs: Sequence[Graph], max_items: int, block_size: int | None, prefix: str,
                 items: np.ndarray, offset: int) -> list[Chunk]:
    """Cut ``graphs`` (in order of size) into chunks of at most ``max_items`` distinct items
    and ``block_size`` graphs; ``items`` are the joint node items, this collection's nodes
    starting at ``offset``."""
    sizes = np.array([g.num_nodes for g in graphs])
    starts = offset + np.concatenate(([0], np.cumsum(sizes)))
    seen = np.zeros(int(items.max()) + 1, dtype=bool)
    chunks, current, count = [], [], 0
    for i in np.argsort(sizes, kind="stable"):
        mine = np.unique(items[starts[i]:starts[i + 1]])
        new = int((~seen[mine]).sum())
        if current and (count + new > max_items or (block_size is not None and len(current) >= block_size)):
            chunks.append(np.array(current))
            seen[:] = False
            current, count, new = [], 0, mine.size
        seen[mine] = True
        current.append(int(i))
        count += new
    chunks.append(np.array(current))
    return [Chunk(f"{prefix}{k}", np.sort(c), len(c), 0, 0) for k, c in enumerate(chunks)]
