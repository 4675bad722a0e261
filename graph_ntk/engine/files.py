"""Cache keys, verified cache blocks, block locks, atomic files and destination checks of the
Gram engine: nothing it reads back is trusted without a checksum, nothing it writes is ever
visible half-written, and bad destinations fail before any work.

Cache blocks
    ``<cache>/<key>/<row>_<col>.npz`` holds the block and a JSON record of its SHA-256,
    taken over the cache version, the folder key, the block's own name, dtype, shape and
    bytes; so a damaged, truncated, zeroed, renamed (swapped) or re-typed file never
    matches, and is recomputed with a :class:`CorruptBlockWarning` naming it.
Locks
    ``<row>_<col>.lock`` beside each block takes an advisory :func:`fcntl.flock` while a run
    computes that block, so concurrent runs on one cache compute each block once; locks
    vanish with their process, so a killed run never blocks the next one, and a waiter takes
    over the block of a stopped run or after ``LOCK_TIMEOUT`` seconds (see :class:`BlockLock`).
Temporary files
    every file is written as ``.<name>.<random>.tmp`` (locked while written), then renamed;
    unlocked temporaries of the same name are left-overs of killed runs and are removed.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import json
import os
import shutil
import socket
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

try:  # advisory locks (POSIX); without them concurrent runs just may duplicate work
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

import numpy as np

from graph_ntk.data.graph import Graph

# Bump when the meaning of a cached block changes, so old caches are never read.
_CACHE_VERSION = "graph_ntk.engine/3"  # 2: checksummed .npz blocks; 3: edge types and the input encoding keyed


class CorruptBlockWarning(RuntimeWarning):
    """A cached block failed verification (it is recomputed)."""


def _hash_graphs(h: "hashlib._Hash", graphs: Sequence[Graph]) -> None:
    """Feed every graph's content into ``h`` (lengths first, so concatenations can't collide)."""
    h.update(np.int64(len(graphs)).tobytes())
    for g in graphs:
        h.update(np.array([g.num_nodes, g.num_edges], dtype=np.int64).tobytes())
        h.update(np.ascontiguousarray(g.edge_index, dtype=np.int64).tobytes())
        # Everything a kernel can depend on (the codes' meaning, the encoding, is in the settings).
        for arr in (g.node_labels, g.x, g.edge_weight, g.edge_type):
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



def _flock(fd: int, wait: bool) -> bool | None:
    """Take an exclusive advisory lock on ``fd``: True when taken, False when another
    process holds it (only without ``wait``), None where the file system cannot lock."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        return True
    except BlockingIOError:
        return False
    except OSError:  # e.g. ENOLCK on some network file systems
        return None


def _same_file(path: str | Path, fd: int) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _remove_stale_temporaries(folder: Path, pattern: str = ".*.tmp", min_age_s: float = 300.0) -> None:
    """Delete temporary files (matching ``pattern``) left by killed runs: a live writer holds
    a lock on its file, so an unlocked one is an orphan. Where the file system cannot lock,
    only files untouched for ``min_age_s`` go (younger ones may belong to a concurrent run)."""
    now = time.time()
    for p in folder.glob(pattern):
        try:
            fd = os.open(p, os.O_RDONLY)
        except OSError:
            continue
        try:
            state = _flock(fd, wait=False)
            if state is False or (state is None and now - os.fstat(fd).st_mtime <= min_age_s):
                continue
            if _same_file(p, fd):  # not already replaced by a new writer's file of the same name
                p.unlink()
        except OSError:
            pass
        finally:
            os.close(fd)


@contextlib.contextmanager
def staged(path: str | os.PathLike, write: Callable[[Any], None]) -> Iterator[Callable[[], None]]:
    """Write ``path``'s new content in full to a locked temporary file beside it (flushed to
    disk), then yield ``commit``, which renames it over ``path``; a temporary never committed
    is removed. :func:`os.replace` is atomic within a file system, so ``path`` is either
    absent, the old version or complete, whenever the process dies, and a failed write (a
    full disk) leaves the old version in place. Temporaries of ``path`` left by killed runs
    are removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}."
    _remove_stale_temporaries(path.parent, f"{glob.escape(prefix)}*.tmp")
    while True:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=".tmp")
        if _flock(fd, wait=True) is not False and _same_file(tmp, fd):
            break
        os.close(fd)  # a cleaner took it between creation and locking: use another name
    committed = False

    def commit() -> None:
        nonlocal committed
        os.replace(tmp, path)  # still locked: no cleaner can take it before the rename
        committed = True
        _sync_folder(path.parent)

    f = os.fdopen(fd, "wb")  # kept open (locked) until the rename: no cleaner can take it
    try:
        try:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise OSError(errno.ENOSPC, f"writing {str(path)!r} failed: no space left on the disk; the "
                              "previous version (if any) is untouched: free some space and rerun") from None
            raise
        except ValueError as exc:  # numpy reports a short write as "N requested and M written"
            if "requested and" in str(exc):
                raise OSError(errno.ENOSPC, f"writing {str(path)!r} failed: the disk is full ({exc}); the "
                              "previous version (if any) is untouched: free some space and rerun") from None
            raise
        yield commit
    finally:
        f.close()
        # Also on KeyboardInterrupt: leave no temporary file behind when we still can (after
        # SIGKILL, the next write of the same file or cache folder removes it).
        if not committed:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass


def _sync_folder(folder: Path) -> None:
    """Make a rename durable (best effort: not every system can sync a folder)."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def _write_atomic(path: str | os.PathLike, write: Callable[[Any], None]) -> None:
    """:func:`staged` and commit: ``path`` is replaced only by a complete new version."""
    with staged(path, write) as commit:
        commit()


def save_npy_atomic(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` to ``path`` (.npy) so that ``path`` is either absent or complete.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "k.npy"
        >>> save_npy_atomic(p, np.eye(2)); np.load(p).tolist()
        [[1.0, 0.0], [0.0, 1.0]]
    """
    _write_atomic(path, lambda f: np.save(f, array))


# --------------------------------------------------------------------------- cache blocks
def _block_digest(folder: Path, name: str, block: np.ndarray) -> str:
    """SHA-256 of a block's identity (cache version, folder key, file name), dtype, shape and bytes."""
    h = hashlib.sha256(f"{_CACHE_VERSION}|{folder.name}|{name}|{block.dtype.str}|{block.shape}|".encode())
    h.update(np.ascontiguousarray(block).data)
    return h.hexdigest()


def block_path(folder: Path, name: str) -> Path:
    """The file of block ``name`` (e.g. ``'a0_a1'``) in the cache folder ``folder``."""
    return folder / f"{name}.npz"


def save_block(folder: Path, name: str, block: np.ndarray) -> None:
    """Write a block atomically together with its checksum (one ``.npz``)."""
    meta = json.dumps({"version": _CACHE_VERSION, "block": name, "dtype": block.dtype.str,
                       "shape": list(block.shape), "sha256": _block_digest(folder, name, block)})
    _write_atomic(block_path(folder, name), lambda f: np.savez(f, block=block, meta=np.array(meta)))


def load_block(folder: Path, name: str, shape: tuple[int, ...], dtype: str | np.dtype) -> np.ndarray | None:
    """The verified block ``name``, or ``None`` when absent or failing verification (then a
    :class:`CorruptBlockWarning` names the file, and the caller recomputes it).

    Example:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> save_block(folder, "a0_a0", np.ones((1, 2, 2)))
        >>> float(load_block(folder, "a0_a0", (1, 2, 2), "float64").sum())
        4.0
    """
    path = block_path(folder, name)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            block, meta = z["block"], json.loads(str(z["meta"]))
        problem = None
    except Exception as exc:  # any damage: not a zip, bad CRC, missing member, bad JSON...
        problem = f"unreadable: {type(exc).__name__}: {exc}"
    if problem is None:
        if block.dtype != np.dtype(dtype):
            problem = f"dtype {block.dtype}, expected {np.dtype(dtype)}"
        elif block.shape != tuple(shape):
            problem = f"shape {block.shape}, expected {tuple(shape)}"
        elif not isinstance(meta, dict) or meta.get("sha256") != _block_digest(folder, name, block):
            problem = "checksum mismatch (damaged, or another block's file)"
        elif not np.isfinite(block).all():
            problem = "inf/NaN values"
    if problem is None:
        return block
    warnings.warn(f"cached block {path} is bad ({' '.join(problem.split())}); recomputing it",
                  CorruptBlockWarning, stacklevel=2)
    return None


#: Seconds a run waits for a block that another run is computing before computing it itself
#: (``GRAPH_NTK_LOCK_TIMEOUT``; a duplicate computation is harmless, the saves are atomic).
LOCK_TIMEOUT = float(os.environ.get("GRAPH_NTK_LOCK_TIMEOUT", "1800"))


class LockWaitWarning(RuntimeWarning):
    """A run waits for, or takes over, a block another run holds."""


def _process_state(pid: int) -> str | None:
    """The one-letter state of a local process (``'T'``: stopped), or None if unknown/gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0].decode()
    except (OSError, IndexError, UnicodeDecodeError):
        return None


class BlockLock:
    """Advisory lock of one cache block (``<name>.lock`` beside it), held while computing it.

    The holder writes its process id, host and start time into the lock file, so a waiting
    run can say whose lock it waits on. Take-over rule: a waiter computes the block itself
    (unlocked) when the holder is a *stopped* process on this host (``kill -STOP``, a
    suspended shell job), or after :data:`LOCK_TIMEOUT` seconds; a killed holder releases its
    lock at once (the kernel drops it with the process).

    Example:
        >>> import tempfile, pathlib
        >>> lock = BlockLock(pathlib.Path(tempfile.mkdtemp()), "a0_a0")
        >>> lock.acquire(wait=False), BlockLock(lock.path.parent, "a0_a0").acquire(wait=False)
        (True, False)
        >>> lock.release()
    """

    def __init__(self, folder: Path, name: str) -> None:
        self.path = folder / f"{name}.lock"
        self._fd: int | None = None

    def acquire(self, wait: bool, timeout: float | None = None) -> bool:
        """Take the lock; False when another process holds it (without ``wait``). With
        ``wait``, poll until it is free, or until the take-over rule applies: then return
        False (not held: compute the block anyway). Where locking is unsupported it is
        'taken' (runs then may duplicate work)."""
        timeout = LOCK_TIMEOUT if timeout is None else timeout
        start, said, delay = time.monotonic(), False, 0.05
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            got = _flock(fd, wait=False)
            if got is not False:
                self._fd = fd
                self._write_owner(fd)
                return True
            os.close(fd)
            if not wait:
                return False
            owner = self.owner()
            stopped = owner.get("host") == socket.gethostname() and _process_state(int(owner.get("pid", -1))) in ("T", "t")
            waited = time.monotonic() - start
            if stopped or waited >= timeout:
                why = "is stopped" if stopped else f"has held it for over {timeout:g} s (GRAPH_NTK_LOCK_TIMEOUT)"
                warnings.warn(f"computing cache block {self.path.stem} here: the run holding its lock "
                              f"({self._describe(owner)}) {why}", LockWaitWarning, stacklevel=3)
                return False
            if not said and waited > 2.0:
                warnings.warn(f"waiting for cache block {self.path.stem}: another run computes it "
                              f"({self._describe(owner)}); taken over if that run is stopped or after "
                              f"{timeout:g} s", LockWaitWarning, stacklevel=3)
                said = True
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    @staticmethod
    def _write_owner(fd: int) -> None:
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}).encode()
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, record, 0)
        except OSError:  # informational only
            pass

    def owner(self) -> dict[str, Any]:
        """The holder's record (pid, host, since), or ``{}`` if unreadable."""
        try:
            info = json.loads(self.path.read_bytes() or b"{}")
        except (OSError, ValueError):
            return {}
        return info if isinstance(info, dict) else {}

    @staticmethod
    def _describe(owner: dict[str, Any]) -> str:
        if not owner:
            return "owner unknown"
        since = time.strftime("%H:%M:%S", time.localtime(float(owner.get("since", 0))))
        return f"pid {owner.get('pid')} on {owner.get('host')}, since {since}"

    def release(self) -> None:
        # Lock files stay: removing one while another process waits on it would let a
        # third process lock a new file of the same name, and both compute the block.
        if self._fd is not None:
            os.close(self._fd)  # closing releases the flock
            self._fd = None


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


# --------------------------------------------------------------------------- destinations
def _gib(n: float) -> str:
    return f"{n / (1 << 30):.3g} GiB"


def _writable_folder(path: Path, what: str, user_path: Path) -> Path:
    """The nearest existing folder at or above ``path``, checked writable by creating and
    deleting a temporary file (the only test that also holds for root and read-only mounts)."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{what} {str(user_path)!r} cannot be created: {str(existing)!r} is a file, not a folder")
    try:
        # Named like the file's own temporaries, so a kill right here is cleaned up too.
        fd, probe = tempfile.mkstemp(dir=existing, prefix=f".{user_path.name}.", suffix=".tmp")
    except OSError as exc:
        raise ValueError(f"{what} {str(user_path)!r} cannot be written: creating a file in "
                         f"{str(existing)!r} failed ({exc.strerror or type(exc).__name__})") from None
    os.close(fd)
    os.unlink(probe)
    return existing


def check_destinations(output: str | os.PathLike | None, cache_dir: str | os.PathLike | None,
                       nbytes: int) -> None:
    """Refuse, before any work, an ``output`` file or ``cache_dir`` that cannot take a result
    of ``nbytes`` bytes: a folder where a file is wanted (or the reverse), an unwritable
    place, or too little free disk space (output and cache on one disk need both).

    Example:
        >>> check_destinations("/proc/K.npy", None, 8)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: output '/proc/K.npy' cannot be written: creating a file in '/proc' failed (...)
    """
    need: dict[int, list] = {}  # device -> [bytes, folder, [names]]
    for what, given, is_dir in (("output", output, False), ("cache_dir", cache_dir, True)):
        if given is None:
            continue
        p = Path(given)
        if not is_dir and p.is_dir():
            raise ValueError(f"output {str(p)!r} is a folder; give a file name, e.g. {str(p / 'K.npy')!r}")
        if is_dir and p.exists() and not p.is_dir():
            raise ValueError(f"cache_dir {str(p)!r} is a file; give a folder (it is created if missing)")
        folder = _writable_folder(p if is_dir else p.parent, what, p)
        entry = need.setdefault(os.stat(folder).st_dev, [0, folder, []])
        entry[0] += nbytes
        entry[2].append(f"{what} {str(p)!r}")
    for total, folder, names in need.values():
        free = shutil.disk_usage(folder).free
        if total > free:
            raise ValueError(f"{' and '.join(names)} need about {_gib(total)} of disk space, but only "
                             f"{_gib(free)} is free on {str(folder)!r}; free some space or choose another place")


# --------------------------------------------------------------------------- finished Grams
def order_fingerprint(ds) -> str:
    """Hash of the graph order by (nodes, arcs): the same for GIN and TU files that list the
    same graphs in the same order (both loaders drop duplicate arcs), different when a format
    orders them otherwise. ``ds`` is a dataset or a list of graphs."""
    sizes = [(g.num_nodes, g.num_edges) for g in getattr(ds, "graphs", ds)]
    return hashlib.sha256(json.dumps(sizes).encode()).hexdigest()


def sidecar(gram_path: Path) -> Path:
    return gram_path.with_name(gram_path.name + ".json")


def versions() -> dict[str, str | None]:
    """The versions that computed a Gram (read from package metadata: nothing is imported)."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for dist in ("graph_ntk", "neural-tangents", "jax", "numpy"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    return out


def digest(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over the arrays' bytes, in order (what the sidecar records)."""
    h = hashlib.sha256()
    for a in arrays.values():
        h.update(np.ascontiguousarray(a).data)
    return h.hexdigest()


def write_gram(path: Path, K: np.ndarray | dict[str, np.ndarray], info: dict) -> None:
    """Write ``K`` (``.npy``, or a dict of arrays as ``.npz``) to ``path`` with its sidecar
    ``path.json`` (lets `graph-ntk svm` check that its labels are in the Gram's graph order,
    and the matrix by its SHA-256) such that a kill at any moment never leaves ``path``
    without its own sidecar: first the old matrix goes, then the sidecar appears, then the
    matrix (each write atomic)."""
    
    arrays = K if isinstance(K, dict) else {"": K}
    arrays = {key: np.ascontiguousarray(a) for key, a in arrays.items()}
    first = next(iter(arrays.values()))
    info = {**info, "dtype": first.dtype.str, "shape": list(first.shape), "sha256": digest(arrays)}
    if isinstance(K, dict):
        info["keys"] = list(arrays)
    text = json.dumps(info).encode()
    # Both new files are written in full (as temporaries) before either old one is replaced,
    # so a full disk or a kill leaves the previous output and its sidecar untouched. The two
    # renames are not one atomic step: in between, the sidecar's SHA-256 no longer matches
    # the matrix, and `svm` refuses the pair rather than trusting it.
    with staged(sidecar(path), lambda f: f.write(text)) as commit_sidecar, \
            staged(path, (lambda f: np.savez(f, **arrays)) if isinstance(K, dict)  # type: ignore[arg-type]
                   else (lambda f: np.save(f, first, allow_pickle=False))) as commit_matrix:
        commit_matrix()
        commit_sidecar()


def read_sidecar(gram_path: Path) -> dict[str, Any] | None:
    """The sidecar's content, or None when there is none."""
    path = sidecar(gram_path)
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: corrupt sidecar, not JSON ({exc}); delete it or rerun 'graph-ntk gram'") from None
    if not isinstance(info, dict):
        raise ValueError(f"{path}: corrupt sidecar, expected a JSON object, got {type(info).__name__}")
    return info
