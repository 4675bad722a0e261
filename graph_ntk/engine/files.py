"""Cache keys, cached blocks and atomic files of the Gram engine."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from graph_ntk.data.graph import Graph

# Bump when the meaning of a cached block changes, so old caches are never read.
_CACHE_VERSION = "graph_ntk.engine/1"

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

