r"""Memory and numeric guards of the Gram engine: how much memory there really is, whether a
plan fits it, and whether a result is finite.

Inside a container, ``/proc/meminfo`` describes the host, while the container may be
allowed far less (the cgroup limit); exceeding that gets the process killed without a
message. So the memory *available* here is the minimum of the kernel's ``MemAvailable``
and, for every cgroup (v2 or v1) limiting this process, its limit minus its usage
(reclaimable page cache counted as free):

.. math:: M = \min\bigl(\text{MemAvailable},\ \min_c\,(\text{limit}_c - \text{usage}_c + \text{inactive\_file}_c)\bigr)

Example:
    >>> available_memory() > 0 and default_memory_limit() <= available_memory()
    True
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from graph_ntk.checks import as_count

__all__ = ["available_memory", "check_finite", "check_fits", "check_node_blocks", "default_memory_limit",
           "resolve_memory_limit"]

# Files read (module attributes so that tests can point them at a fake tree).
_MEMINFO = Path("/proc/meminfo")
_SELF_CGROUP = Path("/proc/self/cgroup")
_CGROUP_ROOT = Path("/sys/fs/cgroup")
# A cgroup v1 "no limit" is a huge page-aligned number (9223372036854771712), not a word.
_NO_LIMIT = 1 << 60
# Share of the available memory gram() plans for by default: the rest is for the Python
# process itself, the graphs, the assembled matrix and whatever else runs beside it.
DEFAULT_FRACTION = 0.75


def _gib(n: float) -> str:
    return f"{n / (1 << 30):.3g} GiB"


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except (OSError, ValueError):
        return None
    return int(text) if text.isdigit() else None  # 'max' (v2: no limit) and junk give None


def _stat_field(path: Path, field: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == field and value.strip().isdigit():
                return int(value)
    except OSError:
        pass
    return 0


def _meminfo_available() -> int | None:
    try:
        for line in _MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # the kernel writes kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_dirs() -> list[tuple[Path, str]]:
    """The cgroup folders limiting this process, innermost first, each with its version
    ('2' or '1'): the process's own cgroup and its ancestors, for both hierarchies."""
    own = {"2": "/", "1": "/"}
    try:
        for line in _SELF_CGROUP.read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if controllers == "":
                own["2"] = path
            elif "memory" in controllers.split(","):
                own["1"] = path
    except (OSError, ValueError):
        pass
    dirs = []
    for version, base in (("2", _CGROUP_ROOT), ("1", _CGROUP_ROOT / "memory")):
        here = base / own[version].lstrip("/")
        # Inside a container the own path is often not visible (cgroup namespaces): then
        # the mounted root is the container's cgroup.
        for d in (here, *here.parents):
            dirs.append((d, version))
            if d == base:
                break
    return dirs


def _cgroup_available() -> int | None:
    best = None
    for d, version in _cgroup_dirs():
        if version == "2":
            limit, usage = _read_int(d / "memory.max"), _read_int(d / "memory.current")
            cache = _stat_field(d / "memory.stat", "inactive_file")
        else:
            limit, usage = _read_int(d / "memory.limit_in_bytes"), _read_int(d / "memory.usage_in_bytes")
            cache = _stat_field(d / "memory.stat", "total_inactive_file")
        if limit is None or limit >= _NO_LIMIT:
            continue
        free = max(0, limit - max(0, (usage or 0) - cache))
        best = free if best is None else min(best, free)
    return best


def available_memory() -> int:
    """Bytes this process can still allocate: the minimum of ``MemAvailable`` and what every
    cgroup (container) limit leaves; the physical memory where neither can be read.

    Example:
        >>> available_memory() > 0
        True
    """
    known = [m for m in (_meminfo_available(), _cgroup_available()) if m is not None]
    if known:
        return max(1, min(known))
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 4 << 30  # nothing readable (not Linux): a modest guess


def default_memory_limit(fraction: float = DEFAULT_FRACTION) -> int:
    """``fraction`` (default 0.75) of :func:`available_memory`: the ``memory_limit`` of
    :func:`graph_ntk.engine.gram` when none is given.

    Example:
        >>> default_memory_limit(0.5) <= default_memory_limit()
        True
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    return max(1, int(fraction * available_memory()))


def resolve_memory_limit(memory_limit: int | None) -> int:
    """``memory_limit`` checked against this machine: ``None`` becomes
    :func:`default_memory_limit`; more than :func:`available_memory` is refused.

    Example:
        >>> resolve_memory_limit(1 << 20)
        1048576
    """
    if memory_limit is None:
        return default_memory_limit()
    memory_limit = as_count(memory_limit, "memory_limit (bytes, or None for 75% of the available memory)", maximum=2**62)
    have = available_memory()
    if memory_limit > have:
        raise ValueError(f"memory_limit={int(memory_limit)} bytes ({_gib(memory_limit)}) is more than this machine "
                         f"has available ({have} bytes, {_gib(have)}, container limits included); pass a "
                         f"smaller memory_limit, or None for {DEFAULT_FRACTION:.0%} of it")
    return int(memory_limit)


def check_fits(needed_bytes: int, memory_limit: int, what: str, advice: str, *,
               limit_name: str = "memory_limit") -> None:
    """Raise a one-line :class:`MemoryError` when ``what`` needs more than ``memory_limit``.

    Called while planning, before any work, so a plan that cannot fit fails at once with
    ``advice`` (what would fit) instead of being killed hours later.

    Example:
        >>> check_fits(10, 100, "one block", "use float32")
        >>> check_fits(200, 100, "one block", "use float32")
        Traceback (most recent call last):
        ...
        MemoryError: one block needs about 200 bytes (1.86e-07 GiB), more than memory_limit=100 bytes (9.31e-08 GiB); use float32
    """
    if needed_bytes > memory_limit:
        raise MemoryError(f"{what} needs about {int(needed_bytes)} bytes ({_gib(needed_bytes)}), more than "
                          f"{limit_name}={int(memory_limit)} bytes ({_gib(memory_limit)}); {advice}")


def check_node_blocks(chunks1: Sequence, chunks2: Sequence, dtype: str, memory_limit: int, *,
                      suggest_colour: bool = False) -> None:
    r"""Refuse a node-path plan whose largest block exceeds ``memory_limit``, saying what fits.

    A block of :math:`b_1 \times b_2` graphs padded to :math:`N_1, N_2` nodes needs about
    ``_ARRAYS_PER_BLOCK`` :math:`\cdot\,\text{itemsize}\cdot b_1 b_2 N_1 N_2` bytes. The
    chunk caps keep every block within ``memory_limit`` unless one pair of the largest
    graphs alone does not fit (they never go below one graph); that is refused here, before
    any work, instead of the process being killed mid-run.

    Example:
        >>> from graph_ntk.engine.buckets import Chunk
        >>> big = Chunk("a0.0", np.arange(1), 1, 5000, 1)
        >>> check_node_blocks([big], [big], "float64", 1 << 30)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        MemoryError: one node-path block (1x1 graphs of up to 5000 nodes, float64) needs about ...
    """
    from graph_ntk.engine.buckets import _ARRAYS_PER_BLOCK

    def size(c) -> int:
        return c.padded_len * c.n_max

    if not chunks1 or not any(c.n_max for c in chunks1):
        return  # colour-path chunks: planned elsewhere
    itemsize = np.dtype(dtype).itemsize
    big1, big2 = max(chunks1, key=size), max(chunks2, key=size)
    per_pair = _ARRAYS_PER_BLOCK * itemsize * big1.n_max * big2.n_max
    needed = per_pair * big1.padded_len * big2.padded_len
    if needed <= memory_limit:
        return
    fixes = []
    if per_pair <= memory_limit:
        fixes.append(f"block_size={max(1, math.isqrt(memory_limit // per_pair))}")
    if itemsize == 8 and needed // 2 <= memory_limit:
        fixes.append("dtype='float32'")
    have = available_memory()
    if needed <= have:
        fixes.append(f"memory_limit={needed} (this machine has {have} bytes available)")
    if suggest_colour:
        fixes.append("method='colour' (its memory grows with the WL colours, not the nodes)")
    largest = math.isqrt(memory_limit // (_ARRAYS_PER_BLOCK * itemsize))
    fixes.append(f"leave out graphs with more than about {largest} nodes")
    check_fits(needed, memory_limit, f"one node-path block ({big1.padded_len}x{big2.padded_len} graphs of up "
               f"to {max(big1.n_max, big2.n_max)} nodes, {dtype})", "would fit: " + "; ".join(fixes))


def check_finite(array: np.ndarray, what: str, dtype: str, aggregation: str | None = "sum") -> None:
    """Raise a :class:`ValueError` saying what to change when ``array`` has inf or NaN.

    Sums over neighbours multiply the kernel by up to the squared degree in every
    aggregation, so deep networks with sum aggregation on high-degree graphs overflow,
    float32 (largest value about 3.4e38) long before float64 (1.8e308).

    Example:
        >>> check_finite(np.ones(2), "the Gram matrix", "float64")
        >>> check_finite(np.array([1.0, np.inf]), "the Gram matrix", "float32")
        Traceback (most recent call last):
        ...
        ValueError: the Gram matrix is not finite (1 inf/NaN entries in float32): the kernel overflowed; use dtype='float64', mean aggregation (e.g. GNTK(aggregation='mean')), or fewer blocks/layers
    """
    finite = np.isfinite(array)
    if finite.all():
        return
    bad = int(finite.size - np.count_nonzero(finite))
    fixes = [] if dtype == "float64" else ["dtype='float64'"]
    if aggregation != "mean":  # None: a raw kernel_fn, whose aggregation we cannot see
        fixes.append("mean aggregation (e.g. GNTK(aggregation='mean'))")
    fixes.append("fewer blocks/layers")
    raise ValueError(f"{what} is not finite ({bad} inf/NaN entries in {dtype}): the kernel overflowed; use "
                     f"{', '.join(fixes[:-1])}{', or ' if len(fixes) > 1 else ''}{fixes[-1]}")


def check_not_vanished(K: np.ndarray, what: str, dtype: str, symmetric: bool) -> None:
    """Raise a :class:`ValueError` when a Gram has vanished: a self-kernel :math:`k(G, G) = 0`
    (square Grams) or every entry 0, which an SVM or GP would silently treat as data. It is
    an underflow (tiny weights, deep mean aggregation; float32's smallest normal is 1.2e-38),
    or graphs whose input features are all zero (e.g. only unseen tags).

    Example:
        >>> check_not_vanished(np.eye(2), "the Gram matrix", "float64", True)
        >>> check_not_vanished(np.zeros((2, 2)), "the Gram matrix", "float32", True)
        Traceback (most recent call last):
        ...
        ValueError: the Gram matrix has k(G, G) = 0 for graph 0 (in float32): that graph's input features are all zero (e.g. every tag unseen by the encoding, with handle_unknown='ignore'), or the kernel underflowed; check its node features, or use dtype='float64', larger W_std / b_std, or fewer layers
    """
    if K.size == 0:
        return
    fixes = ([] if dtype == "float64" else ["dtype='float64'"]) + ["larger W_std / b_std", "or fewer layers"]
    if symmetric and K.ndim == 2 and K.shape[0] == K.shape[1]:
        zero = np.flatnonzero(np.diagonal(K) == 0)
        if zero.size:
            raise ValueError(f"{what} has k(G, G) = 0 for graph {int(zero[0])} (in {dtype}): that graph's input "
                             "features are all zero (e.g. every tag unseen by the encoding, with "
                             f"handle_unknown='ignore'), or the kernel underflowed; check its node features, or use "
                             f"{', '.join(fixes)}")
    elif not np.any(K):
        raise ValueError(f"{what} is all zeros (in {dtype}): the graphs' input features are all zero (e.g. every "
                         "tag unseen by the encoding, with handle_unknown='ignore'), or the kernel underflowed; check "
                         f"the node features, or use {', '.join(fixes)}")
