"""The exact item engine and graph kernels computed with NumPy/SciPy (no JAX).

:func:`~graph_ntk.kernels.program_gram.program_gram` runs any layer program over exact
Weisfeiler–Lehman classes ("items") of the node features; node-level kernels on one graph
(:mod:`graph_ntk.kernels.node_kernel`, :mod:`graph_ntk.kernels.lowrank`) use the same
executor and rules.

Example:
    >>> import numpy as np
    >>> from graph_ntk.data.graph import Graph
    >>> g = Graph(2, np.array([[0, 1], [1, 0]]), node_labels=np.array([0, 0]))
    >>> wl_colours([g], depth=1).num_colours
    (1, 1)
"""

from graph_ntk.kernels.program_gram import ProgramGram, program_gram
from graph_ntk.kernels.wl_colours import WLColours, wl_colours

__all__ = ["ProgramGram", "WLColours", "WLSubtreeKernel", "program_gram", "wl_colours", "wl_subtree_gram"]


def __getattr__(name: str):
    # The WL kernel's scikit-learn transformer loads sklearn (seconds); the item engine,
    # which imports this package, should not pay for it.
    if name in ("WLSubtreeKernel", "wl_subtree_gram"):
        from graph_ntk.kernels import wl_kernel

        return getattr(wl_kernel, name)
    raise AttributeError(f"module 'graph_ntk.kernels' has no attribute {name!r}")
