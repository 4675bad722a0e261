"""A scikit-learn transformer that turns graphs into rows of a graph-kernel Gram matrix.

``GraphKernelTransformer(model=...).fit(train_graphs).transform(graphs)`` is the
``len(graphs) x len(train_graphs)`` Gram matrix (optionally cosine-normalised), so that
``Pipeline([("k", GraphKernelTransformer(...)), ("svm", SVC(kernel="precomputed"))])`` and
``GridSearchCV`` work on lists of graphs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from graph_ntk.checks import as_flag
from graph_ntk.data.encoding import InputEncoding
from graph_ntk.data.graph import Graph, GraphDataset, fit_encoding
from graph_ntk.evaluation import cosine_normalize

__all__ = ["GraphKernelTransformer"]


def _graphs_of(X: Any, argname: str = "X") -> list[Graph]:
    """Graphs from what scikit-learn hands around: lists (``_safe_indexing`` keeps them
    lists), 1-D or ``(n, 1)`` object arrays, or a :class:`GraphDataset`."""
    if isinstance(X, GraphDataset):
        return list(X.graphs)
    if isinstance(X, np.ndarray):
        if X.ndim == 2 and X.shape[1] == 1:
            X = X[:, 0]
        if X.ndim != 1:
            raise ValueError(f"{argname} must be a 1-D sequence of graphs, got an array of shape {X.shape}")
    # scikit-learn passes X through as given, so a lone Graph or a number reaches us here.
    if isinstance(X, Graph):
        raise TypeError(f"{argname} must be a sequence of Graph, got a single Graph; wrap it in a list")
    if not hasattr(X, "__iter__"):
        raise TypeError(f"{argname} must be a list of graph_ntk.Graph (or a GraphDataset), got {type(X).__name__}")
    graphs = list(X)
    for i, g in enumerate(graphs):
        if not isinstance(g, Graph):
            raise TypeError(f"{argname}[{i}] is a {type(g).__name__}; pass a list of graph_ntk.Graph "
                            f"(or an object array of them)")
    if not graphs:
        raise ValueError(f"{argname} is empty: give at least one graph")
    return graphs


class GraphKernelTransformer(TransformerMixin, BaseEstimator):
    """Graphs -> kernel rows against the training graphs, for ``SVC(kernel='precomputed')``.

    ``fit(graphs)`` stores the training graphs; ``transform(graphs)`` returns the
    ``(len(graphs), n_train)`` kernel :math:`k(G_i, G^{train}_j)` (cosine-normalised when
    ``normalize``), like GraKeL's kernels. Inside a :class:`~sklearn.pipeline.Pipeline`,
    ``fit_transform`` computes the training Gram once.

    Args:
        model: a :class:`graph_ntk.engine.GNTK` or a ``kernel_fn`` (see :func:`graph_ntk.engine.gram`);
            ``None`` means ``GNTK()``.
        get: ``'ntk'`` or ``'nngp'``.
        normalize: cosine normalisation :math:`k(G,G')/\\sqrt{k(G,G)k(G',G')}`.
        encoding: the :class:`~graph_ntk.InputEncoding` of the node tags. Default: the one the
            training graphs carry (their dataset's, fitted on the whole file), else one
            fitted on the training graphs in ``fit``. Frozen from ``fit`` on: ``transform``
            re-codes every graph into it, so a training graph has the same kernel row
            whatever graphs are transformed with it.
        handle_unknown: a node tag the encoding has not seen: ``'ignore'`` (default, as in a
            cross-validation fold whose test graphs hold a rare tag) gives it the zero
            feature row; ``'error'`` refuses the graph.
        num_tags, dtype, method, implementation, block_size, cache_dir, config: passed to
            :func:`graph_ntk.engine.gram`.

    Example:
        >>> from sklearn.pipeline import Pipeline  # doctest: +SKIP
        >>> pipe = Pipeline([("k", GraphKernelTransformer()), ("svm", SVC(kernel="precomputed"))])  # doctest: +SKIP
        >>> pipe.fit(train_graphs, y_train).score(test_graphs, y_test)  # doctest: +SKIP
    """

    def __init__(self, model: Any = None, get: str = "ntk", normalize: bool = True, num_tags: int | None = None,
                 dtype: str = "float64", method: str = "auto", implementation: str = "DENSE",
                 block_size: int = 128, cache_dir: str | None = None, config: Any = None,
                 encoding: InputEncoding | None = None, handle_unknown: str = "ignore") -> None:
        self.model = model
        self.encoding = encoding
        self.handle_unknown = handle_unknown
        self.get = get
        self.normalize = normalize
        self.num_tags = num_tags
        self.dtype = dtype
        self.method = method
        self.implementation = implementation
        self.block_size = block_size
        self.cache_dir = cache_dir
        self.config = config

    def _kwargs(self, diagonal: bool = False) -> dict[str, Any]:
        kw = {"get": self.get, "encoding": self.encoding_, "dtype": self.dtype, "method": self.method,
              "implementation": self.implementation, "config": self.config}
        # gram_diagonal picks its own (small) chunks; only full Grams use block_size.
        return kw if diagonal else {**kw, "block_size": self.block_size}

    def _model(self):
        from graph_ntk.engine import GNTK

        return GNTK() if self.model is None else self.model

    def _fit_encoding(self, X: Any) -> None:
        """Freeze the input encoding and the training graphs coded in it."""
        from graph_ntk.engine.inputs import resolve_encoding

        if not isinstance(self.handle_unknown, str) or self.handle_unknown not in ("error", "ignore"):
            raise ValueError(f"handle_unknown must be 'error' or 'ignore', got {self.handle_unknown!r}")
        as_flag(self.normalize, "normalize")
        graphs = X if isinstance(X, GraphDataset) else _graphs_of(X)
        enc = self.encoding
        if enc is None and self.num_tags is None:
            carried = graphs.encoding if isinstance(graphs, GraphDataset) else None
            enc = carried or fit_encoding(list(graphs))
        enc, coded, _ = resolve_encoding(enc, self.num_tags if enc is None else None, graphs, None)
        self.encoding_ = enc.with_unknown(self.handle_unknown) if enc.tags is not None else enc
        self.train_graphs_ = [g.encoded(self.encoding_) for g in coded]

    def fit(self, X: Any, y: Any = None) -> "GraphKernelTransformer":
        """Freeze the input encoding, store the training graphs (and their self-kernels when
        ``normalize``)."""
        from graph_ntk.engine import gram_diagonal

        self._fit_encoding(X)
        if self.normalize:
            self.train_diag_ = gram_diagonal(self._model(), self.train_graphs_, **self._kwargs(diagonal=True))
        return self

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> np.ndarray:
        """``fit(X).transform(X)``, computing the training Gram only once."""
        from graph_ntk.engine import gram

        self._fit_encoding(X)
        K = np.asarray(gram(self._model(), self.train_graphs_, progress=False, cache_dir=self.cache_dir,
                            **self._kwargs()), dtype=np.float64)
        if not self.normalize:
            return K
        self.train_diag_ = np.diag(K).copy()
        return cosine_normalize(K)

    def transform(self, X: Any) -> np.ndarray:
        """The kernel between ``X`` and the training graphs, ``(len(X), n_train)``."""
        from graph_ntk.engine import gram, gram_diagonal

        check_is_fitted(self, "train_graphs_")
        graphs = list(X.graphs) if isinstance(X, GraphDataset) else _graphs_of(X)
        K = np.asarray(gram(self._model(), graphs, self.train_graphs_, progress=False, cache_dir=self.cache_dir,
                            **self._kwargs()), dtype=np.float64)
        if not self.normalize:
            return K
        test_diag = gram_diagonal(self._model(), graphs, **self._kwargs(diagonal=True))
        return cosine_normalize(K, test_diag, self.train_diag_)

