r"""Gram blocks on a Dask cluster: one task per pair of chunks, handed back through the cache.

:func:`graph_ntk.engine.gram` with ``scheduler=`` (a :class:`distributed.Client` or a
scheduler address such as ``'tcp://10.0.0.1:8786'``) sends the blocks that are not yet in
``cache_dir`` to the cluster as one task each. A worker builds the job's engine once (the
engine factory travels to the cluster once, as its own task), computes its block and
writes it atomically into ``cache_dir`` like a serial run would; the client then reads each
finished block back from there and places it. Hence

* ``cache_dir`` must be a folder that every worker can write and the client can read
  (a shared file system on a real cluster);
* a rerun, or a second client, skips every block already written, so a killed client loses
  at most the blocks that were running;
* a worker that dies mid-task is replaced (by its nanny) and its task rescheduled by Dask;
  a task that raises is retried ``retries`` times before the error reaches the caller.

Only the small task result (whether the block was computed or found) goes through the
scheduler, never the block itself.

Example:
    >>> from distributed import Client, LocalCluster  # doctest: +SKIP
    >>> with LocalCluster(n_workers=2, threads_per_worker=1) as cluster, Client(cluster) as client:  # doctest: +SKIP
    ...     K = gram(GNTK(), graphs, cache_dir="blocks", scheduler=client)
"""

from __future__ import annotations

import threading
import weakref
from pathlib import Path
from typing import Any, Callable

from graph_ntk.engine.buckets import Chunk
from graph_ntk.engine.files import load_block, save_block

__all__ = ["run_tasks"]

# Per worker process: the engine built from each factory, one per worker thread (engines
# keep per-chunk batch caches that are not thread-safe). Weak keys: when the scheduler
# releases a job's factory, its engines go with it.
_ENGINES: "weakref.WeakKeyDictionary[Callable, dict[int, Any]]" = weakref.WeakKeyDictionary()
_ENGINES_LOCK = threading.Lock()


def _engine(factory: Callable[[], Any]) -> Any:
    with _ENGINES_LOCK:
        per_thread = _ENGINES.setdefault(factory, {})
    ident = threading.get_ident()
    if ident not in per_thread:
        per_thread[ident] = factory()
    return per_thread[ident]


def _block_task(factory: Callable[[], Any], ca: Chunk, cb: Chunk, side2: str, folder: str, channels: int,
                dtype: str) -> bool:
    """On a worker: compute block ``ca x cb`` into the cache ``folder`` unless it is there
    already (verified). Returns whether the block was computed (``False``: another run had
    written it)."""
    name = f"{ca.key}_{cb.key}"
    shape = (channels, ca.index.size, cb.index.size)
    if load_block(Path(folder), name, shape, dtype) is not None:
        return False
    engine = _engine(factory)
    block = engine.collect(engine.dispatch(ca, "a", cb, side2, 0))[:, :ca.index.size, :cb.index.size]
    save_block(Path(folder), name, block.astype(dtype))
    return True


def _client(scheduler: Any):
    """``(client, owned)``: the given Client, or a new one connected to an address string."""
    try:
        from distributed import Client
    except ImportError:
        raise ImportError("scheduler= needs Dask's distributed scheduler: pip install 'graph_ntk[dask]' "
                          "(or 'dask[distributed]')") from None
    if isinstance(scheduler, Client):
        return scheduler, False
    if isinstance(scheduler, str):
        return Client(scheduler), True
    raise TypeError(f"scheduler must be a dask.distributed Client or an address like 'tcp://HOST:8786', "
                    f"got {type(scheduler).__name__}")


def _pickled(factory: Callable[[], Any]) -> bytes:
    import cloudpickle

    try:
        return cloudpickle.dumps(factory)
    except Exception as exc:  # cloudpickle raises TypeError, PicklingError, AttributeError, ...
        raise TypeError(f"the model cannot be sent to Dask workers ({type(exc).__name__}: {exc}); "
                        "use a GNTK(...) description or a kernel_fn that cloudpickle can serialise") from None


def run_tasks(job: Any, todo: list[tuple[Chunk, Chunk]], place: Callable[[Chunk, Chunk, Any], None], *,
              cache: Path, side2: str, scheduler: Any, progress: bool, done: int = 0, retries: int = 3) -> int:
    """Compute the ``todo`` blocks of ``job`` on a Dask cluster, then ``place`` each one.

    Args:
        job: the ``_Job`` of :func:`graph_ntk.engine.gram` (its ``make_engine`` is sent once).
        todo: the chunk pairs missing from ``cache``, one task each.
        place: called on the client with every finished block, as it arrives.
        cache: the job's block folder; workers write there, the client reads from there.
        side2: ``'a'`` (symmetric Gram) or ``'b'``: which graph collection the columns are.
        scheduler: a ``distributed.Client`` or a scheduler address.
        progress: a tqdm bar over tasks (``done`` of them already cached).
        retries: how often a task that raised is resubmitted before its error is raised here.

    Returns:
        How many blocks the workers computed (the others had been written meanwhile).
    """
    from distributed import as_completed
    from graph_ntk.log import progress_bar as tqdm

    payload = _pickled(job.make_engine)
    folder = Path(cache).resolve()  # workers need the path itself, not one relative to our cwd
    client, owned = _client(scheduler)
    futures: list = []
    try:
        # The factory (graphs, model, settings) goes to the cluster once, as a task of its own
        # rather than scattered data, so that the scheduler can recompute it on a fresh worker
        # when the workers holding it die.
        factory = client.submit(_unpickle, payload, pure=False, retries=retries)
        futures.append(factory)
        blocks = {}
        for ca, cb in todo:
            fut = client.submit(_block_task, factory, ca, cb, side2, str(folder), job.channels, job.dtype,
                                pure=False, retries=retries)
            futures.append(fut)
            blocks[fut.key] = (ca, cb)
        computed = 0
        with tqdm(total=done + len(todo), initial=done, unit="block", desc="gram (dask)", disable=not progress,
                  smoothing=0.1, dynamic_ncols=True) as bar:
            for fut in as_completed(futures[1:]):
                computed += bool(fut.result())  # re-raises a task's error after its retries
                ca, cb = blocks[fut.key]
                block = load_block(folder, f"{ca.key}_{cb.key}", (job.channels, ca.index.size, cb.index.size),
                                   job.dtype)
                if block is None:
                    raise FileNotFoundError(
                        f"a Dask worker wrote block {ca.key}_{cb.key} but it is not readable in {folder}: cache_dir "
                        "must be one folder shared by the client and every worker (a shared file system)")
                place(ca, cb, block)
                bar.update(1)
        return computed
    finally:
        client.cancel(futures)  # an interrupted client leaves nothing running
        if owned:
            client.close()


def _unpickle(payload: bytes) -> Callable[[], Any]:
    import cloudpickle

    return cloudpickle.loads(payload)
