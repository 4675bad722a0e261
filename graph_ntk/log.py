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

import importlib.util
import logging
from typing import Any

__all__ = ["logger", "progress_bar"]

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
