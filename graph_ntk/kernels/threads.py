"""How many worker threads the executors may use: every usable CPU, or fewer under
:func:`limit_threads` (``gram(n_jobs=...)``), so that a grid search running several fits at
once does not oversubscribe the machine.

Example:
    >>> with limit_threads(1):
    ...     usable_threads()
    1
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from typing import Iterator

from threadpoolctl import threadpool_limits

__all__ = ["limit_threads", "resolve_n_jobs", "usable_threads"]

_LIMIT: contextvars.ContextVar[int | None] = contextvars.ContextVar("graph_ntk_threads", default=None)


def cpu_threads() -> int:
    """The CPUs this process may run on (its affinity mask, container limits included)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def usable_threads() -> int:
    """Worker threads for the executors: the CPUs, capped by :func:`limit_threads`."""
    limit = _LIMIT.get()
    return cpu_threads() if limit is None else max(1, min(limit, cpu_threads()))


def resolve_n_jobs(n_jobs: int | None) -> int | None:
    """scikit-learn's meaning: ``None`` or ``-1`` all CPUs, ``k > 0`` at most ``k`` threads,
    ``-k`` all but ``k - 1``.

    Example:
        >>> resolve_n_jobs(None), resolve_n_jobs(2)
        (None, 2)
    """
    from graph_ntk.checks import as_count

    if n_jobs is None:
        return None
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0:
        as_count(n_jobs, "n_jobs (threads; -1 for all CPUs)")  # raises the policy's error
        raise ValueError("n_jobs must not be 0: give a positive number of threads, or -1 for all CPUs")
    return n_jobs if n_jobs > 0 else max(1, cpu_threads() + 1 + n_jobs)


@contextlib.contextmanager
def limit_threads(n_jobs: int | None) -> Iterator[None]:
    """Cap the executors' threads (and BLAS's) at ``n_jobs`` inside the block."""
    limit = resolve_n_jobs(n_jobs)
    if limit is None:
        yield
        return
    token = _LIMIT.set(limit)
    try:
        with threadpool_limits(limit):
            yield
    finally:
        _LIMIT.reset(token)
