"""Small plots of kernels and evaluation results (matplotlib, an optional dependency).

Each function draws on ``ax`` (a new figure's axes when ``None``) and returns the axes, so
the plots compose in notebooks and scripts.

Example:
    >>> import numpy as np
    >>> ax = kernel_heatmap(np.eye(3), y=np.array([0, 1, 0]))  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from graph_ntk.checks import as_flag, as_real_matrix
from graph_ntk.evaluation import EvaluationResult, cosine_normalize

__all__ = ["accuracy_plot", "calibration_plot", "gram_time_plot", "kernel_heatmap"]


def _axes(ax: Any):
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("graph_ntk.plot needs matplotlib: pip install matplotlib") from None
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4))
    return ax


def kernel_heatmap(K: Any, y: Any = None, *, normalize: bool = True, ax: Any = None):
    r"""A Gram matrix as an image, rows and columns sorted by class when ``y`` is given, the
    cosine form :math:`K_{ij}/\sqrt{K_{ii}K_{jj}}` by default.

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> kernel_heatmap(np.array([[2.0, 1.0], [1.0, 2.0]]), y=[1, 0]).get_title()
        'cosine kernel (2 graphs, sorted by class)'
    """
    K = as_real_matrix(K, "K")
    if K.ndim != 2 or K.shape[0] != K.shape[1]:
        raise ValueError(f"K must be a square Gram matrix, got shape {K.shape}")
    shown = cosine_normalize(K) if as_flag(normalize, "normalize") else K
    order = np.arange(K.shape[0])
    if y is not None:
        y = np.asarray(y)
        if y.shape != (K.shape[0],):
            raise ValueError(f"y must have one label per row of K ({K.shape[0]}), got shape {y.shape}")
        order = np.argsort(y, kind="stable")
    ax = _axes(ax)
    image = ax.imshow(shown[np.ix_(order, order)], cmap="viridis", interpolation="nearest")
    ax.figure.colorbar(image, ax=ax, fraction=0.046)
    ax.set_title(f"{'cosine' if normalize else 'raw'} kernel ({K.shape[0]} graphs"
                 f"{', sorted by class' if y is not None else ''})")
    ax.set_xlabel("graph")
    ax.set_ylabel("graph")
    return ax


def accuracy_plot(results: Mapping[Any, EvaluationResult], *, protocols: Sequence[str] | None = None,
                  xlabel: str = "", ax: Any = None, styles: Mapping[str, str] | None = None):
    """Accuracy (mean ± std over folds) of evaluation results against a setting, one line per
    protocol: ``results`` maps the setting (depth, ``C``, ...) to :func:`graph_ntk.evaluate`'s
    result; a protocol absent at some settings is drawn where present. ``styles`` maps a
    protocol key to a matplotlib format string (e.g. ``'o--'``).

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> from graph_ntk.evaluation import ProtocolResult
        >>> r = {d: EvaluationResult("demo", [ProtocolResult("nested SVM", 0.7 + d / 100, 0.02, np.ones(3))])
        ...      for d in (1, 2, 3)}
        >>> accuracy_plot(r, xlabel="depth").get_ylabel()
        'accuracy (%)'
    """
    if not isinstance(results, Mapping) or not results:
        raise TypeError("results must be a non-empty dict {setting: EvaluationResult}")
    for key, res in results.items():
        if not isinstance(res, EvaluationResult):
            raise TypeError(f"results[{key!r}] is a {type(res).__name__}, expected an EvaluationResult")
    settings = list(results)
    keys = list(protocols) if protocols is not None else list(dict.fromkeys(
        k for s in settings for k in results[s].keys()))
    ax = _axes(ax)
    numeric = all(isinstance(s, (int, float, np.number)) for s in settings)
    xs_all = np.asarray(settings, float) if numeric else np.arange(len(settings))
    for key in keys:
        present = [(x, results[s][key]) for x, s in zip(xs_all, settings) if key in results[s].keys()]
        if not present:
            continue
        scale = 100.0 if present[0][1].metric == "accuracy" else 1.0
        xs = np.array([x for x, _ in present])
        mean = np.array([r.mean for _, r in present]) * scale
        std = np.array([r.std for _, r in present]) * scale
        fmt = (styles or {}).get(key, "o-")
        ax.errorbar(xs, mean, yerr=std if std.any() else None, fmt=fmt, capsize=3, label=key)
    if not numeric:
        ax.set_xticks(xs_all, [str(s) for s in settings])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy (%)")
    ax.legend()
    return ax


def gram_time_plot(seconds: Mapping[str, tuple[Sequence[float], Sequence[float]]], *,
                   labels: Mapping[str, Sequence[str]] | None = None, ax: Any = None):
    """Gram time against the number of graphs, one line per method (``{method: (sizes,
    seconds)}``), on log-log axes; ``labels`` names the points (e.g. datasets).

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> gram_time_plot({"item engine": ([100, 200], [0.1, 0.3])}).get_xscale()
        'log'
    """
    if not isinstance(seconds, Mapping) or not seconds:
        raise TypeError("seconds must be a non-empty dict {method: (sizes, seconds)}")
    ax = _axes(ax)
    for (name, pair), marker in zip(seconds.items(), "o^sDv<>"):
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise TypeError(f"seconds[{name!r}] must be a (sizes, seconds) pair")
        xs, ts = as_real_matrix(pair[0], f"seconds[{name!r}][0]"), as_real_matrix(pair[1], f"seconds[{name!r}][1]")
        if ts.shape != xs.shape:
            raise ValueError(f"seconds[{name!r}] has {ts.size} times for {xs.size} sizes")
        order = np.argsort(xs)
        ax.plot(xs[order], ts[order], marker=marker, label=name)
        for x, t, text in zip(xs, ts, (labels or {}).get(name, ())):
            ax.annotate(text, (x, t), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("graphs")
    ax.set_ylabel("seconds")
    ax.legend()
    return ax


def calibration_plot(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], *, ax: Any = None):
    """Observed coverage of central predictive intervals against their nominal level, one line
    per method (``{method: (levels, coverage)}`` as from :func:`graph_ntk.calibration_curve`),
    with the diagonal of perfect calibration.

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> calibration_plot({"GP": ([0.5, 0.9], [0.45, 0.92])}).get_xlabel()
        'nominal central-interval level'
    """
    if not isinstance(curves, Mapping) or not curves:
        raise TypeError("curves must be a non-empty dict {method: (levels, coverage)}")
    ax = _axes(ax)
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="calibrated")
    for name, pair in curves.items():
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise TypeError(f"curves[{name!r}] must be a (levels, coverage) pair")
        levels, coverage = as_real_matrix(pair[0], "levels"), as_real_matrix(pair[1], "coverage")
        ax.plot(levels, coverage, marker="o", ms=3, label=name)
    ax.set(xlabel="nominal central-interval level", ylabel="observed coverage", xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=7)
    return ax
