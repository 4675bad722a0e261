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

__all__ = ["GNTKGram", "WLColours", "gntk_gram_colour", "wl_colours"]
