"""The ``graph_ntk`` logger and the progress bars, one place for what the library tells a user
while it works.

Messages go to ``logging.getLogger("graph_ntk")`` (levels, handlers and silencing as for any
library: ``logging.getLogger("graph_ntk").setLevel(logging.WARNING)``); warnings that ask for a
change in the user's code stay :mod:`warnings`. Progress bars are tqdm's: the notebook widget
when ipywidgets is installed, else the plain text bar (never tqdm's "IProgress not found"
warning).

Example:
    >>> logger.name
    'graph_ntk'
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib.util
import logging
from typing import Any, Iterator

__all__ = ["JobProgress", "StageLabel", "current_job", "job_progress", "logger", "progress_bar"]

logger = logging.getLogger("graph_ntk")
logger.addHandler(logging.NullHandler())  # a library: the application decides where messages go


def progress_bar(**kwargs: Any):
    """A tqdm bar: the notebook widget only where it can render (ipywidgets installed).

    Example:
        >>> with progress_bar(total=2, disable=True) as bar:
        ...     bar.update(2)
    """
    if importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.auto import tqdm
    else:
        from tqdm.std import tqdm
    return tqdm(**kwargs)


class StageLabel(str):
    """A stage's progress label that also knows which stage it is (``k`` of ``0..last``)."""

    k: int
    last: int

    def __new__(cls, k: int, last: int, text: str) -> "StageLabel":
        label = super().__new__(cls, f"stage {k}/{last} ({text})")
        label.k, label.last = k, last
        return label


class JobProgress:
    """The one bar of a ``gram()`` job (graph pairs, with ETA): a block's stages advance it in
    proportion and show as its postfix, instead of bars of their own."""

    def __init__(self, bar: Any) -> None:
        self.bar, self._base, self._pairs = bar, 0.0, 0.0

    def start_block(self, pairs: int) -> None:
        self._base, self._pairs = float(self.bar.n), float(pairs)

    def stage(self, label: str, done: int, total: int) -> None:
        """Stage ``label`` has finished ``done`` of its ``total`` work items."""
        k, last = getattr(label, "k", 0), getattr(label, "last", 0)
        target = self._base + self._pairs * (k + done / max(total, 1)) / (last + 1)
        if done == 0:
            self.bar.set_postfix_str(str(label), refresh=False)
        step = int(target) - int(self.bar.n)
        if step > 0:
            self.bar.update(step)

    def end_block(self) -> None:
        self.bar.update(int(self._base + self._pairs) - int(self.bar.n))


_JOB: "contextvars.ContextVar[JobProgress | None]" = contextvars.ContextVar("graph_ntk_job_progress", default=None)


def current_job() -> "JobProgress | None":
    """The running job's bar, if a ``gram()`` job shows one."""
    return _JOB.get()


@contextlib.contextmanager
def job_progress(bar: Any) -> Iterator[JobProgress]:
    """Make ``bar`` the job's one bar inside the block."""
    job = JobProgress(bar)
    token = _JOB.set(job)
    try:
        yield job
    finally:
        _JOB.reset(token)
