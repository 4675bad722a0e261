"""The node path: jitted blocks of a stax ``kernel_fn`` on padded graph batches (JAX)."""

from __future__ import annotations

import functools
import warnings
from collections import OrderedDict
from typing import Any, Callable, Sequence

import jax
import numpy as np

from graph_ntk.data.batch import GraphBatch, kernel_kwargs
from graph_ntk.data.graph import Graph
from graph_ntk.engine.buckets import Chunk

_FANIN_WARNING = r"`FanIn` layers assume independent inputs"


class _NodeEngine:
    """Evaluates ``kernel_fn`` on padded batches of two chunks, one jit compilation per shape."""

    def __init__(self, kernel_fn: Callable, gets: tuple[str, ...], num_tags: int | None, implementation: str,
                 dtype: str, graphs1: Sequence[Graph], graphs2: Sequence[Graph],
                 num_edge_types: int | None = None) -> None:
        self.kernel_fn, self.gets, self.num_edge_types = kernel_fn, gets, num_edge_types
        self.num_tags, self.sparse, self.dtype = num_tags, implementation == "SPARSE", dtype
        self.graphs = {"a": graphs1, "b": graphs2}
        self.devices = jax.devices()
        # Padded batches of recently used chunks: a row chunk meets every column chunk.
        self._batches: OrderedDict[tuple[str, str], GraphBatch] = OrderedDict()

    def _batch(self, side: str, chunk: Chunk) -> GraphBatch:
        key = (side, chunk.key)
        if key in self._batches:
            self._batches.move_to_end(key)
            return self._batches[key]
        self._batches[key] = self._make_batch(side, chunk)
        if len(self._batches) > 16:
            self._batches.popitem(last=False)
        return self._batches[key]

    def _make_batch(self, side: str, chunk: Chunk) -> GraphBatch:
        graphs = self.graphs[side]
        index = np.concatenate([chunk.index, np.full(chunk.padded_len - chunk.index.size, chunk.index[0])])
        return GraphBatch.from_graphs([graphs[i] for i in index], num_tags=self.num_tags, sparse=self.sparse,
                                      n_max=chunk.n_max, e_max=chunk.e_max, num_edge_types=self.num_edge_types)

    def dispatch(self, ca: Chunk, sa: str, cb: Chunk, sb: str, slot: int):
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
        # 64-bit mode for this call only (jax.enable_x64), never the global setting.
        with jax.enable_x64(self.dtype == "float64"):
            return self._run(fn, b1, b2, arrays, slot)

    def _run(self, fn, b1: GraphBatch, b2: GraphBatch, arrays: dict, slot: int):
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

