"""A scikit-learn transformer that turns graphs into rows of a graph-kernel Gram matrix.

``GraphKernelTransformer(model=...).fit(train_graphs).transform(graphs)`` is the
``len(graphs) x len(train_graphs)`` Gram matrix (optionally cosine-normalised), so that
``Pipeline([("k", GraphKernelTransformer(...)), ("svm", SVC(kernel="precomputed"))])`` and
``GridSearchCV`` work on lists of graphs.
"""

from __future__ import annotations

import dataclasses
import json
from collections import OrderedDict
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from graph_ntk.checks import as_choice, as_count, as_flag, as_path
from graph_ntk.data.encoding import InputEncoding
from graph_ntk.data.graph import Graph, GraphDataset, fit_encoding
from graph_ntk.evaluation import cosine_normalize

__all__ = ["GraphKernelTransformer"]

# Kernels computed in this process, by content (model, settings, encoding, graphs): a grid
# search refits the transformer once per C on the same fold. Least recently used first out.
_MEMO: "OrderedDict[str, np.ndarray]" = OrderedDict()
_MEMO_BYTES = 1 << 30


def _memo_key(model: Any, kwargs: dict[str, Any], graphs: list, graphs2: list | None, diagonal: bool) -> str | None:
    """A content key for a kernel, or None for a model whose behaviour cannot be described
    (a raw kernel_fn without ``config``)."""
    from graph_ntk.engine import GNTK
    from graph_ntk.engine.files import cache_key
    from graph_ntk.nn import Network

    if isinstance(model, GNTK):
        described: Any = model.config()
    elif isinstance(model, Network) and model.program is not None:
        described = repr(model.program)
    elif kwargs.get("config") is not None:
        described = kwargs["config"]
    else:
        return None
    settings = {k: (v.to_dict() if hasattr(v, "to_dict") else v) for k, v in kwargs.items()}
    settings.update(model=described, diagonal=diagonal)
    return cache_key(json.loads(json.dumps(settings, default=str)), graphs, graphs2)


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
        num_tags, dtype, method, implementation, block_size, cache_dir, config, n_jobs: passed
            to :func:`graph_ntk.engine.gram` (``n_jobs=1`` inside ``GridSearchCV(n_jobs=-1)``).

    Choosing ``C``: cosine-normalised GNTK entries lie in about [0.7, 1], so scikit-learn's
    ``SVC()`` default ``C=1`` underfits (MUTAG: 72.8 % at ``C=1``, 79.3 % at ``C=100``);
    search ``C`` over ``np.logspace(-2, 4, 25)`` (the library's ``NESTED_C_GRID``). For
    regression on properties that grow with graph size (node counts, energies), use
    ``normalize=False``: the cosine form divides size out.

    Example:
        >>> from sklearn.pipeline import Pipeline  # doctest: +SKIP
        >>> pipe = Pipeline([("k", GraphKernelTransformer()), ("svm", SVC(kernel="precomputed"))])  # doctest: +SKIP
        >>> pipe.fit(train_graphs, y_train).score(test_graphs, y_test)  # doctest: +SKIP
    """

    def __init__(self, model: Any = None, get: str = "ntk", normalize: bool = True, num_tags: int | None = None,
                 dtype: str = "float64", method: str = "auto", implementation: str = "DENSE",
                 block_size: int = 128, cache_dir: str | None = None, config: Any = None,
                 encoding: InputEncoding | None = None, handle_unknown: str = "ignore",
                 n_jobs: int | None = None) -> None:
        self.model = model
        self.n_jobs = n_jobs
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
              "implementation": self.implementation, "config": self.config, "n_jobs": self.n_jobs}
        # gram_diagonal picks its own (small) chunks; only full Grams use block_size.
        return kw if diagonal else {**kw, "block_size": self.block_size}

    def _model(self):
        from graph_ntk.engine import GNTK

        return GNTK() if self.model is None else self.model

    # ---------------------------------------------------------------- scikit-learn params
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's parameters; with ``deep``, also ``model__<field>`` for a
        :class:`~graph_ntk.GNTK` model, so that grids can search its fields
        (``{"k__model__num_blocks": [1, 2, 3]}``)."""
        params = super().get_params(deep=False)
        if deep and dataclasses.is_dataclass(self.model) and not isinstance(self.model, type):
            params.update({f"model__{f.name}": getattr(self.model, f.name) for f in dataclasses.fields(self.model)})
        return params

    def set_params(self, **params: Any) -> "GraphKernelTransformer":
        """Set parameters; ``model__<field>`` replaces the (frozen) GNTK model by a copy with
        that field changed."""
        fields = {k[len("model__"):]: params.pop(k) for k in list(params) if k.startswith("model__")}
        if "model" in params:
            self.model = params.pop("model")
        if fields:
            from graph_ntk.engine import GNTK

            base = GNTK() if self.model is None else self.model
            if not dataclasses.is_dataclass(base):
                raise ValueError(f"model__{next(iter(fields))}: the model ({type(base).__name__}) has no fields to "
                                 "set; give a GNTK, or set model= to another description")
            self.model = dataclasses.replace(base, **fields)
        super().set_params(**params)
        return self

    # ---------------------------------------------------------------- kernels, memoised
    def _kernel(self, graphs: list, graphs2: list | None, diagonal: bool = False) -> np.ndarray:
        """``gram`` (or ``gram_diagonal``) of the frozen encoding, remembered per process: a
        grid search refits this transformer for every SVM ``C`` on the same fold, and each
        distinct kernel is then computed once."""
        from graph_ntk.engine import gram, gram_diagonal

        graphs = [g.encoded(self.encoding_) for g in graphs]  # the key sees codes in one encoding
        model = self.model_
        key = _memo_key(model, self._kwargs(diagonal), graphs, graphs2, diagonal)
        if key is not None and key in _MEMO:
            _MEMO.move_to_end(key)
            return _MEMO[key]
        if diagonal:
            out = gram_diagonal(model, graphs, cache_dir=self.cache_dir, **self._kwargs(diagonal=True))
        else:
            out = gram(model, graphs, graphs2, progress=False, cache_dir=self.cache_dir, **self._kwargs())
        out = np.asarray(out, dtype=np.float64)
        out.setflags(write=False)  # shared between callers
        if key is not None:
            _MEMO[key] = out
            while len(_MEMO) > 1 and sum(a.nbytes for a in _MEMO.values()) > _MEMO_BYTES:
                _MEMO.popitem(last=False)
        return out

    def _fit_encoding(self, X: Any) -> None:
        """Freeze the input encoding and the training graphs coded in it."""
        from graph_ntk.engine.inputs import resolve_encoding

        as_choice(self.handle_unknown, "handle_unknown", ("error", "ignore"))
        as_flag(self.normalize, "normalize")
        as_choice(self.get, "get (one kernel per transformer)", ("ntk", "nngp"))
        if self.encoding is not None and self.num_tags is not None:
            raise ValueError("give encoding= or num_tags=, not both (num_tags=K means tags 0..K-1)")
        # every setting checked here, not only when a kernel is computed (the memo may hold it)
        from graph_ntk.engine.inputs import dtype_name
        from graph_ntk.kernels.threads import resolve_n_jobs

        as_count(self.block_size, "block_size")
        dtype_name(self.dtype)
        resolve_n_jobs(self.n_jobs)
        if self.cache_dir is not None:
            as_path(self.cache_dir, "cache_dir")
        # transform uses what fit used, even if set_params changes the model afterwards
        self.model_ = self._model()
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
        self._fit_encoding(X)
        if self.normalize:
            self.train_diag_ = self._kernel(self.train_graphs_, None, diagonal=True)
        return self

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> np.ndarray:
        """``fit(X).transform(X)``, computing the training Gram only once."""
        self._fit_encoding(X)
        K = self._kernel(self.train_graphs_, None)
        if not self.normalize:
            return K.copy()
        self.train_diag_ = np.diag(K).copy()
        return cosine_normalize(K)

    def transform(self, X: Any) -> np.ndarray:
        """The kernel between ``X`` and the training graphs, ``(len(X), n_train)``."""
        check_is_fitted(self, "train_graphs_")
        graphs = list(X.graphs) if isinstance(X, GraphDataset) else _graphs_of(X)
        K = self._kernel(graphs, self.train_graphs_)
        if not self.normalize:
            return K.copy()
        test_diag = self._kernel(graphs, None, diagonal=True)
        return cosine_normalize(K, test_diag, self.train_diag_)

