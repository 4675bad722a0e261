"""Graph kernels computed directly with NumPy/SciPy (no JAX), for datasets where that is faster.

Example:
    >>> import numpy as np
    >>> from graph_ntk.data.graph import Graph
    >>> g = Graph(2, np.array([[0, 1], [1, 0]]), node_labels=np.array([0, 0]))
    >>> wl_colours([g], depth=1).num_colours
    (1, 1)
"""

from graph_ntk.kernels.gntk_colour import GNTKGram, gntk_gram_colour
from graph_ntk.kernels.wl_colours import WLColours, wl_colours

__all__ = ["GNTKGram", "WLColours", "WLSubtreeKernel", "gntk_gram_colour", "wl_colours", "wl_subtree_gram"]


def __getattr__(name: str):
    # The WL kernel's scikit-learn transformer loads sklearn (seconds); the colour engine,
    # which imports this package, should not pay for it.
    if name in ("WLSubtreeKernel", "wl_subtree_gram"):
        from graph_ntk.kernels import wl_kernel

        return getattr(wl_kernel, name)
    raise AttributeError(f"module 'graph_ntk.kernels' has no attribute {name!r}")
