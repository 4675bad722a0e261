r"""Graph classification with a precomputed graph kernel: SVM and GP protocols, and a
scikit-learn transformer.

Given a Gram matrix :math:`K` (e.g. from :func:`graph_ntk.engine.gram`), labels ``y`` and
cross-validation ``folds``:

* :func:`svm_paper_protocol` -- the GNTK paper's protocol (Du et al. 2019, ``search.py``):
  an SVM (``SVC(kernel='precomputed')``) for every ``C`` of a grid on every fold; the
  reported number is the best *mean test accuracy* over the grid, with the standard
  deviation over the folds at that ``C``. ``C`` is thus chosen on the test folds, which is
  optimistic; it is what GNTK, GIN and WL numbers in the literature report.
* :func:`svm_nested_cv` -- ``C`` and the normalisation are chosen by an inner
  cross-validation on each training part only; mean +- std of the outer test accuracy.
* :func:`gp_nested_cv` -- kernel regression / GP posterior mean on one-hot targets
  (:func:`graph_ntk.gp.gp_posterior_mean`, the same numbers as
  :func:`neural_tangents.predict.gp_inference`), the regulariser ``diag_reg`` (and the
  normalisation) chosen by inner cross-validation; the class is the arg-max.

Every protocol first checks its input and refuses, in one line naming the problem: a Gram
that is not square, not finite or not symmetric (beyond ``1e-6`` of its largest entry),
fold indices that are not integers, out of range, or shared by a fold's training and test
parts, a training part with a single class, ``inner_splits < 2`` and empty grids.

Two forms of the kernel are tried: ``'raw'``, :math:`K / s` with the scalar
:math:`s = \min_{ij} K_{ij}` as in GNTK's ``search.py`` (the mean diagonal when some entry
is not positive), which only moves the optimal ``C`` into the grid; and ``'cosine'``,
:math:`K_{ij} / \sqrt{K_{ii} K_{jj}}`.

Example:
    >>> from graph_ntk.datasets import make_demo_dataset  # doctest: +SKIP
    >>> from graph_ntk.engine import GNTK, gram  # doctest: +SKIP
    >>> ds = make_demo_dataset(100)  # doctest: +SKIP
    >>> K = gram(GNTK(), ds, progress=False)  # doctest: +SKIP
    >>> print(evaluate(K, ds.y, ds.folds, name="demo").to_markdown())  # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from graph_ntk.checks import as_count, as_grid, as_real_matrix, as_seed, show
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import SVC

from graph_ntk.gp import gp_posterior_mean

__all__ = [
    "GP_DIAG_REG_GRID",
    "NESTED_C_GRID",
    "PAPER_C_GRID",
    "EvaluationResult",
        "ProtocolResult",
    "cosine_normalize",
    "default_folds",
    "check_gram",
    "evaluate",
    "gp_nested_cv",
    "ridge_nested_cv",
    "svm_nested_cv",
    "svm_paper_protocol",
]

#: The ``C`` grid of GNTK's ``search.py``: 120 values, 10^-2 .. 10^4.
PAPER_C_GRID = np.logspace(-2, 4, 120)
#: A coarser grid for inner model selection (4 values per decade): the inner folds are
#: too small to resolve the paper grid's 0.05-decade steps, and it is 5x cheaper.
NESTED_C_GRID = np.logspace(-2, 4, 25)
#: Relative diagonal regularisers for GP / kernel regression (times the mean of diag K).
GP_DIAG_REG_GRID = np.logspace(-6, 0, 7)
NORMALIZATIONS = ("raw", "cosine")
# libsvm iteration cap, so that an extreme C on a badly scaled Gram cannot run for ever;
# reaching it gives libsvm's current solution (and a warning we silence).
_SVC_MAX_ITER = 500_000
# Largest asymmetry |K - K^T| accepted, relative to max |K|: float32 Grams and mirrored
# blocks are symmetric to rounding, a Gram of the wrong file or orientation is not.
SYMMETRY_RTOL = 1e-6


# --------------------------------------------------------------------------- results
@dataclass
class ProtocolResult:
    """Accuracy of one protocol: mean and std over the outer folds.

    Attributes:
        protocol: short name, e.g. ``'paper SVM (cosine)'``.
        mean, std: mean and (population) standard deviation of the fold test accuracies.
        fold_accuracies: test accuracy of every outer fold.
        selected: the chosen hyper-parameters; one dict (paper protocol) or one per fold.
    """

    protocol: str
    mean: float
    std: float
    fold_accuracies: np.ndarray
    selected: list[dict[str, Any]] = field(default_factory=list)
    metric: str = "accuracy"

    def summary(self) -> str:
        """``'mean +- std'``: accuracy in percent (``'90.0 ± 8.5'``), R² as a number."""
        if self.metric != "accuracy":
            return f"{self.metric} {self.mean:.3f} ± {self.std:.3f}"
        return f"{100 * self.mean:.1f} ± {100 * self.std:.1f}"

    @property
    def key(self) -> str:
        """The protocol as a name a user can type: ``'nested SVM'`` -> ``'nested_svm'``,
        ``'paper SVM (cosine)'`` -> ``'paper_svm_cosine'``."""
        return protocol_key(self.protocol)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: plain floats and lists (no arrays)."""
        return {"protocol": self.protocol, "key": self.key, "metric": self.metric, "mean": float(self.mean),
                "std": float(self.std),
                "fold_accuracies": [float(a) for a in np.asarray(self.fold_accuracies).ravel()],
                "selected": [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in d.items()}
                             for d in self.selected]}

    def __repr__(self) -> str:
        unit = " %" if self.metric == "accuracy" else ""
        return f"ProtocolResult({self.protocol!r}, {self.summary()}{unit}, {len(self.fold_accuracies)} folds)"


def protocol_key(protocol: str) -> str:
    """``'paper SVM (cosine)'`` -> ``'paper_svm_cosine'``.

    Example:
        >>> protocol_key("nested SVM")
        'nested_svm'
    """
    return "_".join(protocol.lower().replace("(", " ").replace(")", " ").split())


@dataclass
class EvaluationResult:
    """The results of several protocols on one Gram matrix.

    Example:
        >>> r = ProtocolResult("nested SVM", 0.8, 0.05, np.array([0.75, 0.85]), [{"C": 1.0}, {"C": 10.0}])
        >>> print(EvaluationResult("demo", [r]).to_markdown())
        | dataset | protocol | accuracy (%) | selected |
        |---|---|---|---|
        | demo | nested SVM | 80.0 ± 5.0 | C=1, C=10 |
    """

    name: str
    results: list[ProtocolResult]

    def __getitem__(self, protocol: str) -> ProtocolResult:
        """The result of one protocol, by name (``'nested SVM'``) or key (``'nested_svm'``)."""
        for r in self.results:
            if protocol in (r.protocol, r.key):
                return r
        raise KeyError(f"no protocol {protocol!r}; have {[r.key for r in self.results]}")

    def keys(self) -> list[str]:
        """The protocols' keys, e.g. ``['paper_svm_cosine', 'nested_svm']``."""
        return [r.key for r in self.results]

    def to_markdown(self) -> str:
        """A markdown table: one row per protocol, accuracy in percent as mean ± std."""
        lines = ["| dataset | protocol | accuracy (%) | selected |", "|---|---|---|---|"]
        for r in self.results:
            lines.append(f"| {self.name} | {r.protocol} | {r.summary()} | {_describe(r.selected)} |")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe (``json.dumps`` works): ``{'name', 'results': {key: ProtocolResult.to_dict()}}``."""
        return {"name": self.name, "results": {r.key: r.to_dict() for r in self.results}}

    def to_dataframe(self):
        """One row per protocol (pandas, an optional dependency): accuracy mean/std in percent,
        the chosen hyper-parameters, and the fold accuracies."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("to_dataframe needs pandas: pip install pandas (or use to_dict())") from None
        return pd.DataFrame([{"dataset": self.name, "protocol": r.key, "accuracy": 100 * r.mean, "std": 100 * r.std,
                              "selected": _describe(r.selected), "folds": len(r.fold_accuracies)}
                             for r in self.results]).set_index("protocol")

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def _repr_html_(self) -> str:
        import html

        rows = "".join(f"<tr><td>{html.escape(r.protocol)}</td><td>{r.summary()}</td>"
                       f"<td>{html.escape(_describe(r.selected))}</td></tr>" for r in self.results)
        return (f"<table><caption>{html.escape(self.name)}</caption><tr><th>protocol</th><th>accuracy (%)</th>"
                f"<th>selected</th></tr>{rows}</table>")

    def __repr__(self) -> str:
        inner = "; ".join(f"{r.key} {r.summary()}" for r in self.results)
        return f"EvaluationResult({self.name!r}: {inner})"


def _describe(selected: list[dict[str, Any]]) -> str:
    """Compact text for chosen hyper-parameters (distinct choices, in order)."""
    seen: list[str] = []
    for choice in selected:
        text = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in choice.items())
        if text not in seen:
            seen.append(text)
    if len(seen) > 4:
        return ", ".join(seen[:4]) + f", ... ({len(seen)} distinct)"
    return ", ".join(seen)


# --------------------------------------------------------------------------- helpers
def cosine_normalize(K: np.ndarray, diag1: np.ndarray | None = None, diag2: np.ndarray | None = None) -> np.ndarray:
    r"""Cosine normalisation :math:`K_{ij} / \sqrt{d_i d'_j}`.

    For a square Gram the self-kernels default to its diagonal; for a rectangular one
    (test x train) give ``diag1`` (test self-kernels) and ``diag2`` (train).

    Example:
        >>> cosine_normalize(np.array([[4.0, 2.0], [2.0, 1.0]])).tolist()
        [[1.0, 1.0], [1.0, 1.0]]
    """
    K = as_real_matrix(K, "K")
    if K.ndim != 2:
        raise ValueError(f"K must be a 2-D kernel matrix, got shape {K.shape}")
    if diag1 is None or diag2 is None:
        if K.shape[0] != K.shape[1]:
            raise ValueError(f"a rectangular K of shape {K.shape} needs diag1 and diag2 (the self-kernels)")
        diag1 = diag2 = np.diag(K)
    d1, d2 = as_real_matrix(diag1, "diag1"), as_real_matrix(diag2, "diag2")
    if d1.shape != (K.shape[0],) or d2.shape != (K.shape[1],):
        raise ValueError(f"diag1 and diag2 must hold {K.shape[0]} and {K.shape[1]} self-kernels, got shapes "
                         f"{d1.shape} and {d2.shape}")
    for d, nm in ((d1, "diag1"), (d2, "diag2"), (K, "K")):
        if not np.isfinite(d).all():
            raise ValueError(f"{nm} holds NaN or infinite values; recompute the kernel")
    if (d1 <= 0).any() or (d2 <= 0).any():
        raise ValueError("cosine normalisation needs positive self-kernels k(G, G); a graph has k(G, G) <= 0")
    # Scale rows and columns separately: outer(d1, d2) overflows for entries above ~1e154.
    return K / np.sqrt(d1)[:, None] / np.sqrt(d2)[None, :]


def _raw_scale(K: np.ndarray) -> float:
    """GNTK's ``search.py`` divides the Gram by its smallest entry; use the mean diagonal
    when some entry is not positive (then the minimum is no sensible scale)."""
    low = float(K.min())
    return low if low > 0 else float(np.mean(np.abs(np.diag(K))))


def _forms(K: np.ndarray, normalizations: Sequence[str]) -> dict[str, np.ndarray]:
    if isinstance(normalizations, (str, bytes)) or not hasattr(normalizations, "__iter__"):
        raise TypeError(f"normalizations must be a list drawn from {NORMALIZATIONS}, got {show(normalizations)}")
    for n in normalizations:
        if n not in NORMALIZATIONS:
            raise ValueError(f"normalizations must be drawn from {NORMALIZATIONS}, got {n!r}")
    if not normalizations:
        raise ValueError("normalizations is empty: give 'raw' and/or 'cosine'")
    out = {}
    if "raw" in normalizations:
        out["raw"] = K / _raw_scale(K)
    if "cosine" in normalizations:
        out["cosine"] = cosine_normalize(K)
    return out


def default_folds(y: np.ndarray, n_splits: int = 10, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified ``n_splits``-fold splits (shuffled with ``seed``), for data without folds.

    Example:
        >>> len(default_folds(np.array([0, 1] * 10), n_splits=5))
        5
    """
    y = np.asarray(y)
    n_splits = as_count(n_splits, "n_splits", minimum=2)
    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=as_seed(seed))
    smallest = int(np.unique(y, return_counts=True)[1].min()) if y.size else 0
    if smallest < n_splits:
        raise ValueError(f"a class has only {smallest} graph(s), fewer than the {n_splits} folds: give folds "
                         "explicitly, or fewer splits")
    return [(tr, te) for tr, te in splitter.split(np.zeros(len(y)), y)]


def check_gram(K: Any, name: str = "K") -> np.ndarray:
    r"""``K`` as a float64 array, if it is a square, finite and symmetric Gram matrix.

    Symmetric means :math:`\max|K - K^\top| \le 10^{-6} \max|K|` (``SYMMETRY_RTOL``);
    ``name`` is used in the error message (e.g. the file it came from).

    Example:
        >>> check_gram([[2.0, 1.0], [1.0, 2.0]]).shape
        (2, 2)
    """
    K = as_real_matrix(K, name)
    if K.ndim != 2 or K.shape[0] != K.shape[1]:
        raise ValueError(f"{name} must be a square Gram matrix, got shape {K.shape}")
    if not np.all(np.isfinite(K)):
        bad = np.argwhere(~np.isfinite(K))[0]
        raise ValueError(f"{name} contains NaN or infinite entries (first at [{bad[0]}, {bad[1]}]); "
                         f"recompute the Gram matrix")
    gap = float(np.max(np.abs(K - K.T))) if K.size else 0.0
    scale = float(np.max(np.abs(K))) if K.size else 0.0
    if gap > SYMMETRY_RTOL * scale:
        i, j = np.unravel_index(int(np.argmax(np.abs(K - K.T))), K.shape)
        raise ValueError(f"{name} is not symmetric: |K[{i}, {j}] - K[{j}, {i}]| = {gap:.3g}, more than "
                         f"{SYMMETRY_RTOL:g} x max|K| = {scale:.3g}; give a Gram of a dataset with itself "
                         f"(a test x train kernel cannot be cross-validated)")
    return K


def _grid(values: Any, name: str) -> np.ndarray:
    return as_grid(values, name)


def _map(fn: Any, items: Sequence[Any], n_jobs: int | None) -> list[Any]:
    """``[fn(x) for x in items]`` on ``n_jobs`` threads (libsvm releases the GIL), in order."""
    from graph_ntk.kernels.threads import resolve_n_jobs

    jobs = 1 if n_jobs is None else resolve_n_jobs(n_jobs)
    if jobs == 1 or len(items) < 2:
        return [fn(x) for x in items]
    from concurrent.futures import ThreadPoolExecutor
    from threadpoolctl import threadpool_limits

    # warnings filters are process-wide: set libsvm's iteration-cap filter here, for every thread
    with warnings.catch_warnings(), threadpool_limits(1), ThreadPoolExecutor(min(jobs, len(items))) as pool:
        warnings.filterwarnings("ignore", message="Solver terminated early", category=Warning)
        return list(pool.map(fn, items))


def _check_inner_splits(inner_splits: Any) -> int:
    return as_count(inner_splits, "inner_splits (inner cross-validation folds)", minimum=2)


def _check(K: np.ndarray, y: np.ndarray, folds) -> tuple[np.ndarray, np.ndarray, list]:
    K = check_gram(K)
    if K.shape[0] == 0:
        raise ValueError("K is 0 x 0: give the Gram matrix of a dataset with at least two graphs")
    try:
        y = np.asarray(y)
    except ValueError:
        raise ValueError("y must be one class label per graph, got a ragged list") from None
    if y.shape != (K.shape[0],):
        raise ValueError(f"y must have one label per row of K ({K.shape[0]}), got shape {y.shape}")
    if y.dtype.kind not in "iubfU":
        raise TypeError(f"y must hold class labels (integers or strings), got dtype {y.dtype}")
    if y.dtype.kind == "f" and np.isfinite(y).all() and not np.array_equal(y, np.round(y)):
        raise ValueError("y holds continuous values, but these protocols classify: give class labels, or use "
                         "protocols=('ridge',) for kernel regression (R2, RMSE, MAE)")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise ValueError(f"y contains NaN or infinite labels (first at {int(np.flatnonzero(~np.isfinite(y))[0])}); "
                         "give every graph a class label")
    if folds is None:
        folds = default_folds(y)
    elif isinstance(folds, (str, bytes)) or not hasattr(folds, "__iter__"):
        raise TypeError(f"folds must be a list of (train_idx, test_idx) pairs (or None for 10 stratified folds), "
                        f"got {show(folds)}")
    else:
        pairs = []
        for k, fold in enumerate(folds):
            # A bare index array or a ragged part would fail in tuple unpacking or numpy.
            if not isinstance(fold, (tuple, list)) or len(fold) != 2:
                raise ValueError(f"fold {k} must be a (train_idx, test_idx) pair, got {type(fold).__name__}"
                                 + (f" of length {len(fold)}" if hasattr(fold, "__len__") else ""))
            try:
                pairs.append((np.asarray(fold[0]), np.asarray(fold[1])))
            except ValueError:
                raise ValueError(f"fold {k}: its train or test part is a ragged list; give 1-D integer index "
                                 "arrays") from None
        folds = pairs
    if not folds:
        raise ValueError("folds is empty: give (train_idx, test_idx) pairs, or None for 10 stratified folds")
    for k, (tr, te) in enumerate(folds):
        if tr.size == 0 or te.size == 0:
            raise ValueError(f"fold {k} has an empty train or test part")
        for part, idx in (("train", tr), ("test", te)):
            if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
                raise ValueError(f"fold {k}: the {part} indices must be a 1-D array of integers, got dtype "
                                 f"{idx.dtype} shape {idx.shape}")
        if max(tr.max(), te.max()) >= len(y) or min(tr.min(), te.min()) < 0:
            raise ValueError(f"fold {k} has indices outside 0..{len(y) - 1}")
        shared = np.intersect1d(tr, te)
        if shared.size:
            raise ValueError(f"fold {k}: {shared.size} index(es) are in both its train and test parts "
                             f"(first {int(shared[0])}); the parts must be disjoint")
        classes = np.unique(y[tr])
        if classes.size < 2:
            raise ValueError(f"fold {k}: its training part has only class {classes[0].item()!r}; a classifier needs "
                             f"at least two classes to train on")
    return K, y, folds


def _svm_accuracies(K: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray,
                    c_grid: Sequence[float]) -> np.ndarray:
    """Test accuracy of an SVM trained on ``train`` for every ``C`` (the blocks are sliced once)."""
    k_train, k_test = K[np.ix_(train, train)], K[np.ix_(test, train)]
    out = np.empty(len(c_grid))
    with warnings.catch_warnings():
        # Accept libsvm's solution at the iteration cap (rare, huge C only).
        warnings.filterwarnings("ignore", message="Solver terminated early", category=Warning)
        for i, C in enumerate(c_grid):
            clf = SVC(kernel="precomputed", C=float(C), max_iter=_SVC_MAX_ITER).fit(k_train, y[train])
            out[i] = np.mean(clf.predict(k_test) == y[test])
    return out


def _inner_folds(y: np.ndarray, n_splits: int, seed: int, fold: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified inner splits; fewer when the rarest class is smaller than ``n_splits``."""
    smallest = int(np.min(np.unique(y, return_counts=True)[1]))
    k = min(n_splits, smallest)
    if k < 2:
        raise ValueError(f"fold {fold}: its training part has a class with {smallest} graph(s), too few for "
                         f"inner cross-validation")
    return default_folds(y, k, seed)


# --------------------------------------------------------------------------- protocols
def svm_paper_protocol(
    K: np.ndarray,
    y: np.ndarray,
    folds: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
    *,
    c_grid: Sequence[float] | np.ndarray = PAPER_C_GRID,
    normalizations: Sequence[str] = NORMALIZATIONS,
    n_jobs: int | None = None,
) -> list[ProtocolResult]:
    r"""The GNTK paper's protocol: best mean test accuracy over a ``C`` grid, per normalisation.

    For each normalisation and each ``C``, an SVM is trained on every fold's training part
    and tested on its test part; the ``C`` with the highest mean test accuracy is reported
    (std over folds at that ``C``). One :class:`ProtocolResult` per normalisation.

    Example:
        >>> K = np.eye(20) + 1.0; y = np.arange(20) % 2
        >>> svm_paper_protocol(K, y, default_folds(y, 5), c_grid=[1.0])[0].protocol
        'paper SVM (raw)'
    """
    K, y, folds = _check(K, y, folds)
    c_grid = _grid(c_grid, "c_grid")
    out = []
    for name, Kn in _forms(K, normalizations).items():
        acc = np.stack(_map(lambda f, Kn=Kn: _svm_accuracies(Kn, y, f[0], f[1], c_grid), folds, n_jobs),
                       axis=1)  # (C, fold)
        best = int(np.argmax(acc.mean(axis=1)))  # first maximum: the smallest such C
        out.append(ProtocolResult(f"paper SVM ({name})", float(acc[best].mean()), float(acc[best].std()),
                                  acc[best], [{"C": float(c_grid[best])}]))
    return out


def svm_nested_cv(
    K: np.ndarray | Mapping[str, np.ndarray],
    y: np.ndarray,
    folds: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
    *,
    c_grid: Sequence[float] | np.ndarray = NESTED_C_GRID,
    normalizations: Sequence[str] = NORMALIZATIONS,
    inner_splits: int = 5,
    seed: int = 0,
    n_jobs: int | None = None,
) -> ProtocolResult:
    """Nested cross-validation: ``C`` and the normalisation chosen on inner folds of each
    outer training part; the outer test accuracy is reported (mean ± std over outer folds).

    ``K`` may also be a mapping ``{name: Gram}`` of candidate kernels (e.g. architectures);
    the kernel is then selected on the inner folds too, and recorded as ``'kernel'``.

    Example:
        >>> K = np.eye(40) + 1.0; y = np.arange(40) % 2
        >>> svm_nested_cv(K, y, default_folds(y, 4), c_grid=[0.1, 1.0]).protocol
        'nested SVM'
        >>> svm_nested_cv({"a": K, "b": 2 * K}, y, default_folds(y, 4), c_grid=[1.0]).selected[0]["kernel"]
        'a'
    """
    kernels = dict(K) if isinstance(K, Mapping) else {None: K}
    c_grid = _grid(c_grid, "c_grid")
    inner_splits = _check_inner_splits(inner_splits)
    as_seed(seed)
    if not kernels:
        raise ValueError("K is an empty mapping: give at least one Gram matrix")
    forms: dict[tuple[str | None, str], np.ndarray] = {}
    for kname, Kk in kernels.items():
        Kk, y_checked, folds_checked = _check(Kk, y, folds)
        forms.update({(kname, norm): Kn for norm, Kn in _forms(Kk, normalizations).items()})
    y, folds = y_checked, folds_checked

    def outer(item: tuple[int, tuple[np.ndarray, np.ndarray]]) -> tuple[float, dict[str, Any]]:
        k, (tr, te) = item
        inner = _inner_folds(y[tr], inner_splits, seed, k)
        best_score, best = -1.0, None
        for key, Kn in forms.items():
            scores = np.mean([_svm_accuracies(Kn, y, tr[a], tr[b], c_grid) for a, b in inner], axis=0)
            i = int(np.argmax(scores))  # first maximum: the smallest such C
            if scores[i] > best_score:  # strict: ties keep the earlier candidate (raw before cosine)
                best_score, best = scores[i], (key, float(c_grid[i]))
        (kname, norm), C = best
        acc = float(_svm_accuracies(forms[(kname, norm)], y, tr, te, [C])[0])
        return acc, {"norm": norm, "C": C} if kname is None else {"kernel": kname, "norm": norm, "C": C}

    done = _map(outer, list(enumerate(folds)), n_jobs)
    accs, chosen = np.array([a for a, _ in done]), [c for _, c in done]
    return ProtocolResult("nested SVM", float(accs.mean()), float(accs.std()), accs, chosen)


def gp_nested_cv(
    K: np.ndarray,
    y: np.ndarray,
    folds: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
    *,
    diag_regs: Sequence[float] | np.ndarray = GP_DIAG_REG_GRID,
    normalizations: Sequence[str] = NORMALIZATIONS,
    inner_splits: int = 5,
    seed: int = 0,
) -> ProtocolResult:
    r"""GP / kernel-regression classification with nested selection of the regulariser.

    With one-hot targets :math:`Y`, the posterior mean on test graphs is
    :math:`K_{*X}(K_{XX} + \lambda \bar d I)^{-1} Y` (:math:`\bar d` the mean diagonal of
    :math:`K_{XX}`); the predicted class is its arg-max. :math:`\lambda` (from
    ``diag_regs``) and the normalisation are chosen by inner cross-validation (every
    :math:`\lambda` from one eigendecomposition), the outer prediction by a Cholesky solve;
    both by :func:`graph_ntk.gp.gp_posterior_mean`.

    Example:
        >>> K = np.eye(40) + 1.0; y = np.arange(40) % 2
        >>> gp_nested_cv(K, y, default_folds(y, 4), diag_regs=[1e-3]).protocol
        'nested GP'
    """
    K, y, folds = _check(K, y, folds)
    inner_splits = _check_inner_splits(inner_splits)
    as_seed(seed)
    regs = as_grid(diag_regs, "diag_regs", positive=False)
    if (regs < 0).any():
        raise ValueError(f"diag_regs must be non-negative, got {float(regs.min())}")
    classes, codes = np.unique(y, return_inverse=True)
    targets = np.eye(len(classes))[codes]
    forms = _forms(K, normalizations)
    accs, chosen = [], []
    for k, (tr, te) in enumerate(folds):
        inner = _inner_folds(y[tr], inner_splits, seed, k)
        best_score, best = -np.inf, None
        for name, Kn in forms.items():
            scores = np.zeros(len(regs))
            for a, b in inner:
                pred = gp_posterior_mean(Kn[np.ix_(tr[a], tr[a])], Kn[np.ix_(tr[b], tr[a])], targets[tr[a]], regs)
                # A failed (NaN) regulariser scores -inf and is never chosen.
                ok = np.isfinite(pred).all(axis=(1, 2))
                scores += np.where(ok, (pred.argmax(axis=2) == codes[tr[b]]).mean(axis=1), -np.inf)
            r = int(np.argmax(scores))
            if scores[r] > best_score:
                best_score, best = scores[r], (name, float(regs[r]))
        if best is None or not np.isfinite(best_score):
            raise ValueError("every diag_reg left the Gram matrix singular; use larger diag_regs")
        Kb = forms[best[0]]
        mean = gp_posterior_mean(Kb[np.ix_(tr, tr)], Kb[np.ix_(te, tr)], targets[tr], best[1])
        accs.append(float(np.mean(mean.argmax(axis=1) == codes[te])))
        chosen.append({"norm": best[0], "diag_reg": best[1]})
    accs = np.array(accs)
    return ProtocolResult("nested GP", float(accs.mean()), float(accs.std()), accs, chosen)


def evaluate(
    K: np.ndarray,
    y: np.ndarray,
    folds: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
    *,
    name: str = "",
    protocols: Sequence[str] = ("paper", "nested"),
    c_grid: Sequence[float] | np.ndarray = PAPER_C_GRID,
    nested_c_grid: Sequence[float] | np.ndarray = NESTED_C_GRID,
    diag_regs: Sequence[float] | np.ndarray = GP_DIAG_REG_GRID,
    inner_splits: int = 5,
    seed: int = 0,
    n_jobs: int | None = None,
) -> EvaluationResult:
    r"""Run several protocols on one Gram matrix.

    With :math:`\mathrm{acc}_f(C)` the test accuracy on fold :math:`f` of an SVM with
    penalty :math:`C` on the precomputed kernel, the paper protocol (Du et al., 2019) reports
    :math:`\max_C \frac1F\sum_f \mathrm{acc}_f(C)`, on :math:`K` and on its cosine form
    :math:`K_{ij}/\sqrt{K_{ii}K_{jj}}` (``C`` chosen on the test folds: optimistic). The nested
    protocols choose ``C`` (or the GP's diagonal regulariser) per outer fold by inner
    cross-validation on that fold's training graphs only, and report the mean outer accuracy.

    Args:
        K: the ``(n, n)`` Gram matrix.
        y: ``n`` class labels.
        folds: ``(train_idx, test_idx)`` pairs (e.g. ``GraphDataset.folds``); ``None`` for
            10 stratified folds.
        name: dataset name for the table.
        protocols: any of ``'paper'`` (:func:`svm_paper_protocol`, raw and cosine),
            ``'nested'`` (:func:`svm_nested_cv`), ``'gp'`` (:func:`gp_nested_cv`), or, for real
            targets, ``'ridge'`` (:func:`ridge_nested_cv`: R², RMSE, MAE).
        c_grid, nested_c_grid, diag_regs: the grids of the respective protocols.
        inner_splits, seed: inner cross-validation of the nested protocols.
        n_jobs: threads for the SVM fits, over outer folds (scikit-learn's meaning: ``None``
            one, ``-1`` every CPU); the results do not depend on it.

    Example:
        >>> K = np.eye(40) + 1.0; y = np.arange(40) % 2
        >>> r = evaluate(K, y, default_folds(y, 4), protocols=("nested",), nested_c_grid=[1.0])
        >>> [p.protocol for p in r.results]
        ['nested SVM']
    """
    known = ("paper", "nested", "gp", "ridge")
    if isinstance(protocols, (str, bytes)) or not hasattr(protocols, "__iter__"):
        raise TypeError(f"protocols must be a list drawn from {known}, got {show(protocols)}")
    if not protocols or any(p not in known for p in protocols):
        raise ValueError(f"protocols must be drawn from {known}, got {protocols!r}")
    as_seed(seed)
    # Every input problem is reported before any protocol spends minutes on the others.
    if folds is not None and (isinstance(folds, (str, bytes)) or not hasattr(folds, "__iter__")):
        raise TypeError(f"folds must be a list of (train_idx, test_idx) pairs (or None for 10 stratified folds), "
                        f"got {show(folds)}")
    folds = None if folds is None else list(folds)  # each protocol reads them: a generator only once
    if set(protocols) - {"ridge"}:  # the classification protocols' checks (class labels)
        _check(K, y, folds)
    if "paper" in protocols:
        _grid(c_grid, "c_grid")
    if "nested" in protocols:
        _grid(nested_c_grid, "nested_c_grid")
    if {"nested", "gp"} & set(protocols):
        _check_inner_splits(inner_splits)
    results: list[ProtocolResult] = []
    for p in protocols:
        if p == "paper":
            results += svm_paper_protocol(K, y, folds, c_grid=c_grid, n_jobs=n_jobs)
        elif p == "nested":
            results.append(svm_nested_cv(K, y, folds, c_grid=nested_c_grid, inner_splits=inner_splits, seed=seed,
                                         n_jobs=n_jobs))
        elif p == "ridge":
            results.append(ridge_nested_cv(K, y, folds, inner_splits=inner_splits, seed=seed))
        else:
            results.append(gp_nested_cv(K, y, folds, diag_regs=diag_regs, inner_splits=inner_splits, seed=seed))
    return EvaluationResult(name, results)


#: Ridge (GP noise) values for kernel regression, relative to the mean of diag K.
RIDGE_GRID = np.logspace(-6, 1, 15)


def ridge_nested_cv(K: np.ndarray, y: np.ndarray, folds: Sequence[tuple[np.ndarray, np.ndarray]] | None = None, *,
                    ridges: Sequence[float] = RIDGE_GRID, inner_splits: int = 5, seed: int = 0) -> ProtocolResult:
    r"""Kernel ridge regression (the GP posterior mean) of real targets, nested over the ridge.

    Per outer fold, :math:`\hat y_* = K_{*t}(K_{tt} + \lambda ar k I)^{-1} y_t` with
    :math:`ar k` the mean training self-kernel and :math:`\lambda` chosen from ``ridges`` by
    inner K-fold mean squared error on the fold's training graphs only. Reports the outer
    :math:`R^2` (mean ± std over folds), and per fold the chosen :math:`\lambda`, RMSE and MAE.
    The raw (not cosine) Gram is used: regression targets such as sizes scale with it.

    Example:
        >>> rng = np.random.default_rng(0); X = rng.normal(size=(40, 3)); K = X @ X.T + 1.0
        >>> r = ridge_nested_cv(K, X @ [1.0, 2.0, 0.5], None, inner_splits=3)
        >>> r.metric, r.mean > 0.99
        ('R2', True)
    """
    from sklearn.model_selection import KFold

    K = check_gram(K)
    y = as_real_matrix(y, "y")
    if y.shape != (K.shape[0],):
        raise ValueError(f"y must have one target per row of K ({K.shape[0]}), got shape {y.shape}")
    if not np.isfinite(y).all():
        raise ValueError("y holds NaN or infinite targets; drop or impute them")
    inner_splits = _check_inner_splits(inner_splits)
    seed = as_seed(seed)
    ridges = as_grid(ridges, "ridges")
    if folds is None:
        folds = list(KFold(10 if len(y) >= 20 else 2, shuffle=True, random_state=seed).split(np.zeros(len(y))))
    r2s, chosen = [], []
    for k, (tr, te) in enumerate(folds):
        tr, te = np.asarray(tr), np.asarray(te)

        def predict(train: np.ndarray, test: np.ndarray, lam: float) -> np.ndarray:
            k_tt = K[np.ix_(train, train)]
            scale = lam * max(float(np.mean(np.diag(k_tt))), 1e-300)
            # zero prior mean, as the GP and sklearn's KernelRidge: the kernel's features carry the scale
            coef = np.linalg.solve(k_tt + scale * np.eye(train.size), y[train])
            return K[np.ix_(test, train)] @ coef

        inner = list(KFold(min(inner_splits, tr.size), shuffle=True, random_state=seed + k).split(tr))
        mse = [np.mean([np.mean((predict(tr[a], tr[b], lam) - y[tr[b]]) ** 2) for a, b in inner]) for lam in ridges]
        lam = float(ridges[int(np.argmin(mse))])
        pred = predict(tr, te, lam)
        resid = pred - y[te]
        total = float(np.sum((y[te] - y[te].mean()) ** 2))
        r2s.append(1.0 - float(np.sum(resid ** 2)) / total if total > 0 else float("nan"))
        chosen.append({"ridge": lam, "rmse": float(np.sqrt(np.mean(resid ** 2))), "mae": float(np.mean(np.abs(resid)))})
    r2 = np.array(r2s)
    return ProtocolResult("nested kernel ridge", float(np.nanmean(r2)), float(np.nanstd(r2)), r2, chosen, metric="R2")


# --------------------------------------------------------------------------- sklearn
