r"""The Weisfeiler–Lehman subtree kernel (Shervashidze et al., 2011), a classical baseline.

With :math:`c_l(v)` the classical WL subtree colours of :func:`graph_ntk.kernels.wl_colours`
(key: own colour and the multiset of the neighbours' colours, colours shared across all
graphs) and :math:`C_l \in \mathbb{N}^{n \times |\Sigma_l|}` the per-graph colour counts at
depth :math:`l`, the kernel after :math:`h` refinement steps is

.. math::

    K^{(h)}(G, G') = \sum_{l=0}^{h} \langle C_l[G], C_l[G'] \rangle
                   = \sum_{l=0}^{h} \sum_{\sigma \in \Sigma_l} \#_\sigma(G)\, \#_\sigma(G'),

the sum of the vertex-histogram kernels of the original labels and of the ``h`` refined
labellings. This is GraKeL's ``WeisfeilerLehman(n_iter=h, base_graph_kernel=VertexHistogram)``
with ``normalize=False`` (GraKeL's ``n_iter`` also counts refinement steps: ``n_iter=h``
sums ``h + 1`` histogram kernels). Graphs are read as simple and undirected (arcs
symmetrised, repeated arcs and self-loops dropped), like everywhere in the colour engine.

Example:
    >>> import numpy as np
    >>> from graph_ntk.data.graph import Graph
    >>> edge = Graph(2, np.array([[0, 1], [1, 0]]), node_labels=np.array([0, 0]))
    >>> wl_subtree_gram([edge], h=1).tolist()  # depth 0: 2*2, depth 1: 2*2
    [[8.0]]
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from graph_ntk.checks import as_count
from sklearn.base import BaseEstimator, TransformerMixin

from graph_ntk.data.graph import Graph, GraphDataset
from graph_ntk.kernels.wl_colours import wl_colours

__all__ = ["WLSubtreeKernel", "wl_subtree_gram"]


def _check_h(h: Any) -> int:
    # WL colours stop changing after at most (largest graph's node count) steps: a larger h
    # only repeats the last histogram, so bound it well before a run could hang.
    return as_count(h, "h (the number of WL refinement steps)", minimum=0, maximum=10_000)


def _as_list(graphs: Any, name: str) -> list[Graph]:
    # A lone Graph or a number would otherwise fail inside list() with "... is not iterable".
    if isinstance(graphs, Graph):
        raise TypeError(f"{name} must be a sequence of Graph, got a single Graph; wrap it in a list")
    if not isinstance(graphs, GraphDataset) and not hasattr(graphs, "__iter__"):
        raise TypeError(f"{name} must be a GraphDataset or a sequence of graph_ntk.Graph, got {type(graphs).__name__}")
    graphs = list(graphs.graphs if isinstance(graphs, GraphDataset) else graphs)
    if not graphs:
        raise ValueError(f"{name} must contain at least one graph")
    bad = next((i for i, g in enumerate(graphs) if not isinstance(g, Graph)), None)
    if bad is not None:
        raise TypeError(f"{name}[{bad}] is a {type(graphs[bad]).__name__}, not a graph_ntk Graph")
    unlabelled = next((i for i, g in enumerate(graphs) if g.node_labels is None), None)
    if unlabelled is not None:
        raise ValueError(f"{name}[{unlabelled}] has no node_labels: the WL kernel needs discrete node labels "
                         "(for unlabelled graphs load them with degree_as_tag=True)")
    return graphs


def _wl_features(graphs: list[Graph], h: int) -> list:
    """The per-depth graph x colour count matrices :math:`C_0, \\dots, C_h` (CSR)."""
    return wl_colours(graphs, h, distinguish_self=True).graph_counts


def wl_subtree_gram(graphs: GraphDataset | Sequence[Graph], graphs2: GraphDataset | Sequence[Graph] | None = None,
                    h: int = 5) -> np.ndarray:
    r"""The WL subtree Gram :math:`K_{ij} = \sum_{l=0}^{h} \langle C_l[G_i], C_l[G'_j] \rangle`.

    Args:
        graphs: the rows, graphs with discrete ``node_labels``.
        graphs2: the columns; ``None`` for the symmetric Gram of ``graphs``. Both sets are
            coloured together, so a colour means the same subtree on both sides.
        h: refinement steps (GraKeL's ``n_iter``); ``h=0`` is the vertex-label histogram kernel.

    Returns:
        A ``(len(graphs), len(graphs2))`` float64 array of exact integer counts
        (exact as long as they stay below :math:`2^{53}`).

    Example:
        >>> import numpy as np
        >>> from graph_ntk.data.graph import Graph
        >>> g = Graph(3, np.array([[0, 1, 1, 2], [1, 0, 2, 1]]), node_labels=np.array([0, 0, 0]))
        >>> wl_subtree_gram([g], h=1).tolist()  # 3*3 at depth 0; ends {0,[0]}: 2, middle: 1
        [[14.0]]
    """
    h = _check_h(h)
    rows = _as_list(graphs, "graphs")
    cols = None if graphs2 is None else _as_list(graphs2, "graphs2")
    counts = _wl_features(rows if cols is None else rows + cols, h)
    n = len(rows)
    K = np.zeros((n, n if cols is None else len(cols)))
    for c in counts:
        a, b = (c, c) if cols is None else (c[:n], c[n:])
        K += (a @ b.T).toarray()
    return K


class WLSubtreeKernel(TransformerMixin, BaseEstimator):
    """Graphs -> WL subtree kernel rows against the training graphs, for ``SVC(kernel='precomputed')``.

    The scikit-learn counterpart of GraKeL's ``WeisfeilerLehman(n_iter=h)`` with a vertex
    histogram base kernel: ``fit`` stores the training graphs, ``transform`` returns
    :func:`wl_subtree_gram` of the new graphs against them (cosine-normalised
    :math:`K(G,G')/\\sqrt{K(G,G)K(G',G')}` when ``normalize``).

    Example:
        >>> import numpy as np
        >>> from graph_ntk.data.graph import Graph
        >>> g = Graph(2, np.array([[0, 1], [1, 0]]), node_labels=np.array([0, 1]))
        >>> WLSubtreeKernel(h=2, normalize=True).fit_transform([g, g]).tolist()
        [[1.0, 1.0], [1.0, 1.0]]
    """

    def __init__(self, h: int = 5, normalize: bool = False) -> None:
        self.h = h
        self.normalize = normalize

    def fit(self, X: Any, y: Any = None) -> "WLSubtreeKernel":
        """Store the training graphs."""
        _check_h(self.h)
        self.train_graphs_ = _as_list(X, "X")
        self.n_features_in_ = len(self.train_graphs_)
        return self

    def transform(self, X: Any) -> np.ndarray:
        """The ``(len(X), n_train)`` kernel rows of ``X`` against the training graphs."""
        if not hasattr(self, "train_graphs_"):
            raise ValueError("WLSubtreeKernel is not fitted: call fit(train_graphs) before transform")
        graphs, h = _as_list(X, "X"), _check_h(self.h)
        if not self.normalize:
            return wl_subtree_gram(graphs, self.train_graphs_, h)
        # One joint colouring gives the cross rows and both self-kernel diagonals.
        n = len(graphs)
        K = np.zeros((n, len(self.train_graphs_)))
        diag = np.zeros(n + len(self.train_graphs_))
        for c in _wl_features(graphs + self.train_graphs_, h):
            K += (c[:n] @ c[n:].T).toarray()
            diag += np.asarray(c.multiply(c).sum(axis=1)).ravel()
        return K / np.sqrt(np.outer(diag[:n], diag[n:]))
