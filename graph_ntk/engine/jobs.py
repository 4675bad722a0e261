"""gram() and gram_diagonal(): plan the blocks, run them (cached, resumable), assemble the matrix."""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Sequence, overload

import numpy as np

from graph_ntk.checks import as_count, as_flag, as_path

from graph_ntk.data.encoding import InputEncoding
from graph_ntk.data.graph import Graph, GraphDataset
from graph_ntk.engine.buckets import _NODE_BLOCK_SIZE, Chunk, _chunk_caps, _chunks, plan_buckets
from graph_ntk.engine.files import _open_cache
from graph_ntk.engine.inputs import _GETS, _input_dim, _normalise_get, dtype_name, resolve_encoding
from graph_ntk.engine.item_path import ItemEngine, plan_item_chunks
from graph_ntk.engine.memory import check_fits
from graph_ntk.engine.models import GNTK, _resolve_model, _say_once, check_model
from graph_ntk.kernels.jax_tiles import BACKENDS
from graph_ntk.kernels.threads import limit_threads
from graph_ntk.log import job_progress, logger
from graph_ntk.kernels.tiles import reused_memory

if TYPE_CHECKING:
    from graph_ntk.nn import Network

_METHODS = ("auto", "colour", "nodes")
_IMPLEMENTATIONS = ("DENSE", "SPARSE")

@dataclass
class _Job:
    """Everything needed to evaluate blocks: validated inputs, engine and chunks."""

    gets: tuple[str, ...]
    single: bool
    dtype: str
    graphs1: list[Graph]
    graphs2: list[Graph] | None
    chunks1: list[Chunk]
    chunks2: list[Chunk]
    settings: dict[str, Any]
    make_engine: Callable[[], Any]
    readouts: int = 1  # per kernel: 1, or L + 1 per-depth readouts with all_depths

    @property
    def channels(self) -> int:
        """Matrices per block: one per kernel in ``gets`` (times the readouts)."""
        return len(self.gets) * self.readouts


def _prepare(model, graphs, graphs2, *, get, num_tags, encoding=None, dtype, block_size, method, implementation, config,
             max_buckets, memory_limit, cache_dir, progress, all_depths=False, backend="auto") -> _Job:
    """Validate the arguments of :func:`gram`, choose the engine and cut the graphs into chunks."""
    gets, single = _normalise_get(get)
    dtype = dtype_name(dtype)
    all_depths, progress = as_flag(all_depths, "all_depths"), as_flag(progress, "progress")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be 'auto', 'numpy' or 'jax', got {backend!r}")
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    implementation = str(implementation).upper()
    if implementation not in _IMPLEMENTATIONS:
        raise ValueError(f"implementation must be 'DENSE' or 'SPARSE', got {implementation!r}")
    if block_size is not None:
        block_size = as_count(block_size, "block_size")
    as_count(memory_limit, "memory_limit (bytes)", maximum=2**62)

    check_model(model)
    # The GNTK preset's first Dense has W_std = sqrt(input_dim): its kernel ignores the width.
    encoding, list1, list2 = resolve_encoding(encoding, num_tags, graphs, graphs2, width_free=isinstance(model, GNTK))
    all_graphs = list1 if list2 is None else list1 + list2
    tags = encoding.num_tags
    input_dim = _input_dim(all_graphs, tags)

    readouts = 1
    if all_depths:
        if not isinstance(model, GNTK) or method == "nodes":
            raise ValueError("all_depths=True needs model=GNTK(...) on the item engine: the Grams of every depth "
                             "1..num_blocks, with and without jumping knowledge, come from its per-depth readouts")
        model = replace(model, jumping_knowledge=True)
        readouts = model.num_blocks + 1
    program, kernel_fn, settings = _resolve_model(model, input_dim, implementation, config)
    settings["all_depths"] = bool(all_depths)
    edge_types = settings.pop("edge_types", None)
    if edge_types:
        lacking = next((i for i, g in enumerate(all_graphs) if g.edge_type is None), None)
        if lacking is not None:
            raise ValueError(f"the network aggregates over edge_types={edge_types} but graph {lacking} (counting "
                             "graphs, then graphs2) has no edge_type: give every graph its arc types (e.g. "
                             "load_tu reads DS_edge_labels.txt), or drop edge_types from Aggregate")
    if program is None:
        if method == "colour":
            raise ValueError(f"method='colour' needs a description with a layer program (graph_ntk.nn, "
                             f"graph_ntk.gntk, GNTK); {settings['opaque'] or 'a raw kernel_fn'} has none: "
                             "use method='nodes'")
        if cache_dir is not None and config is None:
            raise ValueError("with cache_dir and a raw kernel_fn, pass config= (a dict or string describing the "
                             "network) so that a changed network never reuses cached blocks")
        if settings.get("opaque") and method == "auto":
            _say_once(f"graph_ntk.gram: {settings['opaque']} has no layer program, so this network runs on the "
                      "(slower) node path; build it from graph_ntk.nn layers to use the exact compressed engine")
    use_items = program is not None and method != "nodes"

    itemsize = 8 if dtype == "float64" else 4
    if use_items:
        # The result (with all_depths: every readout, then their per-depth sums) lives beside
        # the engine's work arrays, within the same memory_limit.
        held = len(gets) * readouts * len(list1) * len(list2 or list1) * itemsize * (2 if all_depths else 1)
        check_fits(held, memory_limit, f"the Gram matrices ({len(list1)}x{len(list2 or list1)}, "
                   f"{len(gets) * readouts * (2 if all_depths else 1)} of them)",
                   "use dtype='float32', fewer get= kernels, or compute the Gram in parts (graphs2)")
        chunks1, chunks2 = plan_item_chunks(program, list1, list2, tags, block_size, memory_limit - held,
                                            itemsize, backend)
        plan = None
    else:
        plan = plan_buckets([g.num_nodes for g in all_graphs], max_buckets)
        caps = _chunk_caps(plan, _NODE_BLOCK_SIZE if block_size is None else block_size, memory_limit, itemsize)
        chunks1 = _chunks(list1, plan, caps, "a")
        chunks2 = chunks1 if list2 is None else _chunks(list2, plan, caps, "b")
    settings.pop("opaque", None)
    settings.update({
        "method": "colour" if use_items else "nodes",
        "get": list(gets),
        "dtype": dtype,
        "num_tags": tags,
        # What the codes in the hashed graphs mean (the cache key and the sidecar hold it).
        "encoding": encoding.to_dict(),
        "implementation": None if use_items else implementation,
        "plan": None if plan is None else list(plan.bounds),
        # Which graphs each chunk holds (block files are named by chunk).
        "chunks": [[c.key, c.padded_len, hashlib.sha256(c.index.tobytes()).hexdigest()[:16]]
                   for c in (*chunks1, *(chunks2 if list2 else ()))],
    })
    columns = list1 if list2 is None else list2

    def make_engine():
        if use_items:
            single_call = len(chunks1) == 1 and len(chunks2) == 1
            return ItemEngine(program, gets, dtype, tags, list1, columns, progress and single_call,
                              each_readout=all_depths, backend=backend)
        from graph_ntk.engine.node_path import _NodeEngine

        return _NodeEngine(kernel_fn(), gets, tags, implementation, dtype, list1, columns, edge_types)

    return _Job(gets, single, dtype, list1, list2, chunks1, chunks2, settings, make_engine, readouts)


# The return type follows `get` and `all_depths` (type checkers see which).
@overload
def gram(
    model: GNTK | Network | Callable | tuple,
    graphs: GraphDataset | Sequence[Graph],
    graphs2: GraphDataset | Sequence[Graph] | None = ...,
    *,
    get: str = ...,
    num_tags: int | None = ...,
    encoding: InputEncoding | None = ...,
    dtype: Literal["float32", "float64"] = ...,
    block_size: int | None = ...,
    output: str | os.PathLike | None = ...,
    cache_dir: str | os.PathLike | None = ...,
    progress: bool = ...,
    method: Literal["auto", "colour", "nodes"] = ...,
    implementation: Literal["DENSE", "SPARSE"] = ...,
    config: dict | str | None = ...,
    max_buckets: int = ...,
    memory_limit: int | None = ...,
    scheduler: Any = ...,
    all_depths: Literal[False] = ...,
    backend: Literal["auto", "numpy", "jax"] = ...,
    n_jobs: int | None = ...,
) -> np.ndarray: ...


@overload
def gram(
    model: GNTK | Network | Callable | tuple,
    graphs: GraphDataset | Sequence[Graph],
    graphs2: GraphDataset | Sequence[Graph] | None = ...,
    *,
    get: tuple[str, ...] | list[str],
    num_tags: int | None = ...,
    encoding: InputEncoding | None = ...,
    dtype: Literal["float32", "float64"] = ...,
    block_size: int | None = ...,
    output: str | os.PathLike | None = ...,
    cache_dir: str | os.PathLike | None = ...,
    progress: bool = ...,
    method: Literal["auto", "colour", "nodes"] = ...,
    implementation: Literal["DENSE", "SPARSE"] = ...,
    config: dict | str | None = ...,
    max_buckets: int = ...,
    memory_limit: int | None = ...,
    scheduler: Any = ...,
    all_depths: Literal[False] = ...,
    backend: Literal["auto", "numpy", "jax"] = ...,
    n_jobs: int | None = ...,
) -> tuple[np.ndarray, ...]: ...


@overload
def gram(
    model: GNTK | Network | Callable | tuple,
    graphs: GraphDataset | Sequence[Graph],
    graphs2: GraphDataset | Sequence[Graph] | None = ...,
    *,
    get: str | Sequence[str] = ...,
    num_tags: int | None = ...,
    encoding: InputEncoding | None = ...,
    dtype: Literal["float32", "float64"] = ...,
    block_size: int | None = ...,
    output: str | os.PathLike | None = ...,
    cache_dir: str | os.PathLike | None = ...,
    progress: bool = ...,
    method: Literal["auto", "colour", "nodes"] = ...,
    implementation: Literal["DENSE", "SPARSE"] = ...,
    config: dict | str | None = ...,
    max_buckets: int = ...,
    memory_limit: int | None = ...,
    scheduler: Any = ...,
    all_depths: Literal[True],
    backend: Literal["auto", "numpy", "jax"] = ...,
    n_jobs: int | None = ...,
) -> dict[tuple[int, bool], Any]: ...


def gram(
    model: GNTK | Network | Callable | tuple,
    graphs: GraphDataset | Sequence[Graph],
    graphs2: GraphDataset | Sequence[Graph] | None = None,
    *,
    get: str | Sequence[str] = "ntk",
    num_tags: int | None = None,
    encoding: InputEncoding | None = None,
    dtype: Literal["float32", "float64"] = "float64",
    block_size: int | None = None,
    output: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    method: Literal["auto", "colour", "nodes"] = "auto",
    implementation: Literal["DENSE", "SPARSE"] = "DENSE",
    config: dict | str | None = None,
    max_buckets: int = 8,
    memory_limit: int | None = None,
    scheduler: Any = None,
    all_depths: bool = False,
    backend: Literal["auto", "numpy", "jax"] = "auto",
    n_jobs: int | None = None,
) -> np.ndarray | tuple[np.ndarray, ...] | dict[tuple[int, bool], Any]:
    r"""The Gram matrix :math:`K_{ij} = k(G_i, G'_j)` of a graph kernel over whole datasets.

    Args:
        model: a network description: built with :mod:`graph_ntk.nn` (or a preset such as
            :func:`graph_ntk.gntk`), a :class:`GNTK`, or the ``kernel_fn`` (or whole
            ``stax`` triple) of any network of NT layers and graph_ntk's graph layers.
        graphs: the rows: a :class:`GraphDataset` or a sequence of :class:`Graph`.
        graphs2: the columns; ``None`` for the symmetric Gram of ``graphs`` with itself.
        get: ``'ntk'``, ``'nngp'``, or a tuple of both (then a tuple of matrices is returned
            in that order).
        num_tags: shorthand for ``encoding=InputEncoding(tags=range(num_tags))``: integer
            node labels as one-hot columns ``0..num_tags-1``.
        encoding: the :class:`~graph_ntk.InputEncoding` of the node tags and edge labels.
            Default: the one the columns (``graphs2``, the training side) carry, else the
            rows' (every graph of a loaded dataset carries its file's encoding, so a subset
            of it, or a test file loaded separately and re-coded by raw tag, gets the same
            kernel as inside the whole file). Graphs with integer ``node_labels`` that
            carry no encoding need ``encoding=`` or ``num_tags=``.
        dtype: ``'float64'`` (default; 64-bit mode is enabled for this call only) or
            ``'float32'``.
        block_size: at most this many graphs per side of one block. Default: 128 on the
            node path (fewer for large graphs, see ``memory_limit``); on the item engine as
            many as ``memory_limit`` allows (one block when everything fits, which
            compresses best). Smaller blocks make the cache finer-grained.
        output: write the finished matrix here (``.npy``; ``.npz`` with one array per name
            when ``get`` is a tuple), atomically; checked (a writable file name, enough free
            disk) before any work.
        cache_dir: keep finished blocks here and reuse them on the next call with the same
            graphs and settings (resume after a crash or kill). Every block is verified by
            checksum when read (a bad one is recomputed, with a warning), and concurrent runs
            on one cache compute each block once.
        progress: show a tqdm progress bar (graph pairs, with ETA) on stderr.
        method: ``'colour'`` for the exact engine over Weisfeiler–Lehman items of the node
            features (:mod:`graph_ntk.kernels`; any description with a layer program, any
            node labels / features, edge weights and types, self-loops and directed arcs),
            ``'nodes'`` for the bucketed node path (NT's ``kernel_fn`` on padded batches),
            or ``'auto'`` (default): the item engine whenever the description has a layer
            program, else the node path (saying once which layer made it opaque). Both
            give the same matrix.
        implementation: ``'DENSE'`` or ``'SPARSE'`` graph batches for the node path; must
            match the ``Aggregate`` layers of a raw ``kernel_fn``.
        config: a description of a raw ``kernel_fn`` for the cache key (required with
            ``cache_dir``, since a function's behaviour cannot be hashed).
        max_buckets: most node-count buckets of the node path (see :func:`plan_buckets`).
        memory_limit: approximate bytes one block may use (node path: padded kernel
            arrays; item engine: the item kernels, see
            :func:`graph_ntk.engine.item_path.plan_item_chunks`).
            Default ``None``: 75% of the memory available now, container limits included
            (:func:`graph_ntk.engine.memory.default_memory_limit`); more than is available
            is refused, and so is a plan whose blocks cannot fit.
        scheduler: a ``dask.distributed.Client`` or a scheduler address: one Dask task per
            block, the workers writing finished blocks into ``cache_dir`` (required).
        all_depths: for ``model=GNTK(L, ...)``: the Grams of every depth ``1..L`` with and
            without jumping knowledge from one run (the depth-``l`` terms are shared),
            returned as a dict keyed by ``(depth, jumping_knowledge)``; ``output`` is then an
            ``.npz`` with keys ``L{depth}_jk`` / ``L{depth}_nojk`` (prefixed ``ntk_`` /
            ``nngp_`` when ``get`` is a tuple).
        n_jobs: worker threads (scikit-learn's meaning: ``None`` or ``-1`` every usable
            CPU, ``k`` at most ``k``), for the executors and BLAS; use 1 inside a parallel
            grid search.
        backend: where the item engine's tiled executor runs: ``'numpy'`` (CPU threads),
            ``'jax'`` (jitted tiles on every local JAX device in parallel, the same result)
            or ``'auto'`` (default: ``'jax'`` only when a GPU/TPU is present; on a CPU-only
            machine JAX is not even imported).

    Raises:
        ValueError: bad arguments or destinations, or a result with inf/NaN (overflow).
        MemoryError: a plan that cannot fit ``memory_limit``, raised before any work.

    Returns:
        ``(len(graphs), len(graphs2))`` array(s) of ``dtype`` (a dict of them with
        ``all_depths``).

    Example:
        >>> g = Graph(3, np.array([[0, 1, 1, 2], [1, 0, 2, 1]]), node_labels=np.array([0, 1, 0]))
        >>> K = gram(GNTK(num_blocks=1, num_mlp_layers=1), [g, g], progress=False)
        >>> K.shape, bool(np.isclose(K[0, 0], K[0, 1]))
        ((2, 2), True)
    """
    started = time.perf_counter()
    with limit_threads(n_jobs):  # threads of the executors and of BLAS
        output = None if output is None else as_path(output, "output")
        cache_dir = None if cache_dir is None else as_path(cache_dir, "cache_dir")
        if scheduler is not None and cache_dir is None:
            raise ValueError("scheduler= needs cache_dir=: Dask workers hand finished blocks back through the cache, "
                             "so pass a folder that the client and every worker can reach (a shared file system)")
        from graph_ntk.engine import files, memory

        memory_limit = memory.resolve_memory_limit(memory_limit)
        job = _prepare(model, graphs, graphs2, get=get, num_tags=num_tags, encoding=encoding, dtype=dtype, block_size=block_size,
                       method=method, implementation=implementation, config=config, max_buckets=max_buckets,
                       memory_limit=memory_limit, cache_dir=cache_dir, progress=progress, all_depths=all_depths,
                       backend=backend)
        if output is not None:  # checked before hours of work, not after
            wanted = ".npy" if job.single and not all_depths else ".npz"
            if Path(output).suffix != wanted:
                raise ValueError(f"output must end in {wanted} for get={get!r}, got {str(output)!r}")
        symmetric = job.graphs2 is None
        n2 = len(job.graphs1 if symmetric else job.graphs2)
        itemsize = np.dtype(job.dtype).itemsize
        result_bytes = job.channels * len(job.graphs1) * n2 * itemsize
        files.check_destinations(output, cache_dir, result_bytes)
        memory.check_fits(result_bytes, memory.available_memory(),
                          f"the {len(job.graphs1)}x{n2} Gram matrix ({len(job.gets)} x {job.dtype})",
                          "use dtype='float32', or compute it in parts (rows with graphs, columns with graphs2)",
                          limit_name="the available memory")
        memory.check_node_blocks(job.chunks1, job.chunks2, job.dtype, memory_limit,
                                 suggest_colour=isinstance(model, GNTK) and job.settings.get("method") == "nodes")
        if symmetric:
            c = job.chunks1
            tasks = [(c[p], c[q]) for p in range(len(c)) for q in range(p, len(c))]
        else:
            tasks = [(ca, cb) for ca in job.chunks1 for cb in job.chunks2]
        cache = _open_cache(cache_dir, job.settings, job.graphs1, job.graphs2)
        out = np.zeros((job.channels, len(job.graphs1), n2), dtype=job.dtype)

        def place(ca: Chunk, cb: Chunk, block: np.ndarray) -> None:
            ia, ib = ca.index, cb.index
            if symmetric and ca is cb:  # a chunk with itself: make it exactly symmetric
                block = (block + np.swapaxes(block, 1, 2)) / 2
            out[:, ia[:, None], ib[None, :]] = block
            if symmetric:
                out[:, ib[:, None], ia[None, :]] = np.swapaxes(block, 1, 2)

        _run_blocks(job, tasks, place, cache=cache, progress=progress, side2="a" if symmetric else "b",
                    scheduler=scheduler)
        memory.check_finite(out, f"the {'/'.join(job.gets)} Gram matrix", job.dtype,
                            job.settings.get("aggregation"))
        for channel in out:
            memory.check_not_vanished(channel, f"the {'/'.join(job.gets)} Gram matrix", job.dtype, symmetric)
        logger.info("gram: %dx%d %s (%s) on the %s path in %.2f s", len(job.graphs1), n2, "/".join(job.gets),
                    job.dtype, "item" if job.settings.get("method") == "colour" else "node",
                    time.perf_counter() - started)

        if all_depths:
            grams = _depth_grams(job, out)
            if output is not None:
                named = {(f"{g}_" if not job.single else "") + f"L{depth}_{'jk' if jk else 'nojk'}": k
                         for (depth, jk), ks in grams.items() for g, k in zip(job.gets, ks)}
                files.write_gram(Path(output), named, _sidecar(job, model))
            return {key: ks[0] if job.single else ks for key, ks in grams.items()}
        if output is not None:  # with the same sidecar as `graph-ntk gram` (load_gram verifies it)
            files.write_gram(Path(output), out[0] if job.single else dict(zip(job.gets, out)), _sidecar(job, model))
        return out[0] if job.single else tuple(out)


def _sidecar(job: _Job, model: Any) -> dict[str, Any]:
    """What ``gram(output=...)`` records beside the matrix (as the CLI does)."""
    from graph_ntk.engine import files

    settings = {k: v for k, v in job.settings.items() if k not in ("chunks", "encoding")}
    encoding = job.settings["encoding"]
    info: dict[str, Any] = {
        "kind": "gram" if job.graphs2 is None else "test x train",
        "graphs": len(job.graphs1 if job.graphs2 is None else job.graphs2),
        "order_fingerprint": files.order_fingerprint(job.graphs1 if job.graphs2 is None else job.graphs2),
        "architecture": repr(model), "settings": settings, "encoding": encoding,
        "encoding_fingerprint": InputEncoding.from_dict(encoding).fingerprint, "versions": files.versions(),
    }
    if job.graphs2 is not None:
        info.update({"test_graphs": len(job.graphs1), "testorder_fingerprint": files.order_fingerprint(job.graphs1)})
    return info


def _depth_grams(job: _Job, out: np.ndarray) -> dict[tuple[int, bool], tuple[np.ndarray, ...]]:
    r"""The GNTK of every depth from its per-depth readouts :math:`r_0..r_L` (one run at
    depth ``L`` with jumping knowledge): :math:`K_{l,\mathrm{JK}} = 2\sum_{k \le l} r_k`,
    :math:`K_{l} = 2 r_l` (the readout's factor :math:`\sqrt 2` squared)."""
    taps = job.readouts
    per_get = out.reshape(len(job.gets), taps, *out.shape[1:])
    per_get *= 2.0  # in place: ``out`` is not needed after this, and it can be gigabytes
    cumulative = np.cumsum(per_get, axis=1)
    grams = {}
    for depth in range(1, taps):
        grams[(depth, True)] = tuple(cumulative[:, depth])
        grams[(depth, False)] = tuple(per_get[:, depth])
    return grams


def gram_diagonal(
    model: GNTK | Callable | tuple,
    graphs: GraphDataset | Sequence[Graph],
    *,
    get: str = "ntk",
    block_size: int = 32,
    progress: bool = False,
    cache_dir: str | os.PathLike | None = None,
    **kwargs: Any,
) -> np.ndarray:
    """The self-kernels :math:`k(G_i, G_i)` of every graph, e.g. for cosine normalisation.

    Uses the same buckets as :func:`gram`; each chunk of at most ``block_size`` graphs is
    evaluated against itself and its diagonal kept, so the cost is linear in the number of
    graphs. Other keyword arguments (``num_tags``, ``dtype``, ``method``, ...) are as for
    :func:`gram`. With ``cache_dir``, the diagonal blocks are cached (and verified, resumed,
    shared between runs) as :func:`gram`'s blocks are.

    Example:
        >>> g = Graph(2, np.array([[0, 1], [1, 0]]), node_labels=np.array([0, 0]))
        >>> gram_diagonal(GNTK(1, 1), [g, g]).shape
        (2,)
    """
    from graph_ntk.engine.memory import check_finite, check_not_vanished, resolve_memory_limit as _resolve_limit

    if get not in _GETS:
        raise ValueError(f"get must be 'nngp' or 'ntk' for gram_diagonal, got {get!r}")
    cache_dir = None if cache_dir is None else as_path(cache_dir, "cache_dir")
    job = _prepare(model, graphs, None, get=get, block_size=block_size, cache_dir=cache_dir, progress=progress,
                   num_tags=kwargs.pop("num_tags", None), encoding=kwargs.pop("encoding", None), dtype=kwargs.pop("dtype", "float64"),
                   method=kwargs.pop("method", "auto"), implementation=kwargs.pop("implementation", "DENSE"),
                   config=kwargs.pop("config", None), max_buckets=kwargs.pop("max_buckets", 8),
                   memory_limit=_resolve_limit(kwargs.pop("memory_limit", None)))
    n_jobs = kwargs.pop("n_jobs", None)
    if kwargs:
        raise TypeError(f"gram_diagonal got unexpected keyword argument(s) {sorted(kwargs)}")
    diag = np.zeros(len(job.graphs1), dtype=job.dtype)

    def place(ca: Chunk, cb: Chunk, block: np.ndarray) -> None:
        diag[ca.index] = np.diagonal(block[0])

    cache = None if cache_dir is None else _open_cache(cache_dir, {**job.settings, "diagonal": True}, job.graphs1, None)
    with limit_threads(n_jobs):
        _run_blocks(job, [(c, c) for c in job.chunks1], place, cache=cache, progress=progress, side2="a")
    check_finite(diag, f"the {get} self-kernels", job.dtype, job.settings.get("aggregation"))
    check_not_vanished(np.diag(diag), f"the {get} self-kernels", job.dtype, True)
    return diag



def _run_blocks(job: _Job, tasks: list[tuple[Chunk, Chunk]], place: Callable, *, cache: Path | None,
                progress: bool, side2: str, scheduler: Any = None) -> None:
    """Load cached blocks (verified), compute the others (saving each as soon as it is done),
    and hand every block to ``place``; the progress bar counts graph pairs.

    With a cache, a block is computed only under its lock (:class:`files.BlockLock`): blocks
    another run is computing are skipped, then waited for and read once it has saved them,
    so concurrent runs on one cache compute every block once. With a Dask ``scheduler``,
    one task per missing block (see :mod:`graph_ntk.engine.distributed`).
    """
    from graph_ntk.log import progress_bar as tqdm

    from graph_ntk.engine import files
    from graph_ntk.engine.memory import check_finite

    def pairs(ca: Chunk, cb: Chunk) -> int:
        return int(ca.index.size) * int(cb.index.size)

    def name(ca: Chunk, cb: Chunk) -> str:
        return f"{ca.key}_{cb.key}"

    def stamp(ca: Chunk, cb: Chunk):
        try:
            st = files.block_path(cache, name(ca, cb)).stat()
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def load(ca: Chunk, cb: Chunk) -> np.ndarray | None:
        seen[name(ca, cb)] = stamp(ca, cb)
        return files.load_block(cache, name(ca, cb), (job.channels, ca.index.size, cb.index.size), job.dtype)

    def reload(ca: Chunk, cb: Chunk) -> np.ndarray | None:
        # Under the lock: read the block only if another run has written it since we looked
        # (so a bad file is reported once, not twice).
        return load(ca, cb) if stamp(ca, cb) not in (None, seen.get(name(ca, cb))) else None

    todo, done_pairs, seen = [], 0, {}
    for ca, cb in tasks:
        block = None if cache is None else load(ca, cb)
        if block is None:
            todo.append((ca, cb))
        else:
            place(ca, cb, block)
            done_pairs += pairs(ca, cb)
    if not todo:
        return
    if scheduler is not None:  # one Dask task per block; the workers write into the cache
        from graph_ntk.engine.distributed import run_tasks

        run_tasks(job, todo, place, cache=cache, side2=side2, scheduler=scheduler, progress=progress,
                  done=len(tasks) - len(todo))
        return
    engine = job.make_engine()
    slots = len(getattr(engine, "devices", ())) or 1
    total = sum(pairs(ca, cb) for ca, cb in tasks)
    # One pool of work arrays for all blocks: fresh memory is slow to touch (tiles.reused_memory).
    # One bar for the job (graph pairs, ETA); a block's stages advance it and show as its postfix.
    with reused_memory(), tqdm(total=total, initial=done_pairs, unit="pair", unit_scale=True, desc="gram",
                               disable=not progress, smoothing=0.1, dynamic_ncols=True) as bar, \
            job_progress(bar) as job_bar:
        pending = todo
        while pending:
            # Claim up to one block per device; skip the ones other runs hold for now.
            wave, later = [], []
            for ca, cb in pending:
                lock = None if cache is None or len(wave) == slots else files.BlockLock(cache, name(ca, cb))
                if len(wave) == slots or (lock is not None and not lock.acquire(wait=False)):
                    later.append((ca, cb))
                    continue
                block = None if lock is None else reload(ca, cb)
                if block is not None:  # finished by another run meanwhile
                    lock.release()
                    place(ca, cb, block)
                    bar.update(pairs(ca, cb))
                    continue
                wave.append((ca, cb, lock))
            if not wave and later:
                # Every remaining block is being computed by other runs: wait for one.
                ca, cb = later.pop(0)
                lock = files.BlockLock(cache, name(ca, cb))
                lock.acquire(wait=True)  # False: taken over (its holder is stopped or too slow)
                block = reload(ca, cb)
                if block is not None:
                    lock.release()
                    place(ca, cb, block)
                    bar.update(pairs(ca, cb))
                    pending = later
                    continue
                wave = [(ca, cb, lock)]  # that run died before saving it: compute it here
            try:
                # Dispatch the whole wave before collecting, so that all devices work at once.
                job_bar.start_block(sum(pairs(ca, cb) for ca, cb, _ in wave))
                results = [engine.dispatch(ca, "a", cb, side2, slot) for slot, (ca, cb, _) in enumerate(wave)]
                for (ca, cb, lock), result in zip(wave, results):
                    block = engine.collect(result)[:, :ca.index.size, :cb.index.size].astype(job.dtype)
                    # Fail at the first overflowing block, not after all of them.
                    check_finite(block, f"the {'/'.join(job.gets)} Gram matrix", job.dtype,
                                 job.settings.get("aggregation"))
                    if cache is not None:
                        files.save_block(cache, name(ca, cb), block)
                        lock.release()
                    place(ca, cb, block)
                job_bar.end_block()
            finally:
                for _, _, lock in wave:
                    if lock is not None:
                        lock.release()
            pending = later
