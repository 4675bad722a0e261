r"""Scores of probabilistic regression: accuracy of the mean and honesty of the variances.

For targets :math:`y_i` and Gaussian predictions :math:`\mathcal N(\mu_i, \sigma_i^2)`
(e.g. :class:`graph_ntk.gp.GPPrediction`'s ``mean`` and ``var``):

* RMSE :math:`\sqrt{\overline{(y-\mu)^2}}`, MAE :math:`\overline{|y-\mu|}`,
  :math:`R^2 = 1 - \sum (y-\mu)^2 / \sum (y-\bar y)^2` (scikit-learn's, per output, averaged);
* NLPD, the mean negative log predictive density
  :math:`\overline{\tfrac12 \log 2\pi\sigma^2 + (y-\mu)^2 / 2\sigma^2}` (lower is better; it
  punishes both over- and under-confidence);
* coverage: the fraction of targets inside the central :math:`p` predictive interval
  :math:`\mu \pm z_{(1+p)/2}\,\sigma` (0.95 for calibrated 95 % intervals);
* the calibration curve: coverage against nominal level :math:`p` over a grid (the diagonal
  for a calibrated model).

Example:
    >>> y = np.array([0.0, 1.0, 2.0]); mu = np.array([0.0, 1.0, 1.0]); var = np.ones(3)
    >>> {k: round(v, 4) for k, v in regression_metrics(y, mu, var).items()}
    {'rmse': 0.5774, 'mae': 0.3333, 'r2': 0.5, 'nlpd': 1.0856, 'coverage95': 1.0}
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from graph_ntk.checks import as_real_matrix
import scipy.stats
from sklearn.metrics import r2_score

__all__ = ["calibration_curve", "interval_coverage", "nlpd", "regression_metrics"]


def _check(y_true, mean, var=None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    out: list[np.ndarray | None] = []
    for name, v in (("y_true", y_true), ("mean", mean), ("var", var)):
        if v is None:
            out.append(None)
            continue
        a = as_real_matrix(v, name)
        if not np.isfinite(a).all():
            raise ValueError(f"{name} contains NaN or infinite values")
        out.append(a)
    y, mu, var = out
    assert y is not None and mu is not None  # never None: only var may be
    if y.ndim not in (1, 2) or y.shape != mu.shape:
        raise ValueError(f"y_true and mean must have the same shape (n,) or (n, outputs), got {y.shape} and {mu.shape}")
    if y.shape[0] < 1:
        raise ValueError("y_true is empty: give at least one target")
    if var is not None:
        try:
            var = np.broadcast_to(var, y.shape)
        except ValueError:
            raise ValueError(f"var must have the shape of mean {mu.shape} (or broadcast to it), got {var.shape}") from None
        if (var <= 0).any():
            raise ValueError("var must be positive: a Gaussian prediction with zero variance has no density")
    return y, mu, var


def _check_levels(levels) -> np.ndarray:
    lv = np.atleast_1d(np.asarray(levels, dtype=np.float64))
    if lv.ndim != 1 or not lv.size or not ((lv > 0) & (lv < 1)).all():
        raise ValueError(f"levels must be probabilities strictly between 0 and 1, got {levels!r}")
    return lv


def nlpd(y_true: np.ndarray, mean: np.ndarray, var: np.ndarray) -> float:
    r"""Mean negative log density :math:`-\overline{\log \mathcal N(y \mid \mu, \sigma^2)}` of the targets.

    Example:
        >>> round(nlpd([0.0], [0.0], [1.0]), 6)  # log(2 pi) / 2
        0.918939
    """
    y, mu, v = _check(y_true, mean, var)
    assert v is not None  # given: _check only passes None through
    return float(np.mean(0.5 * np.log(2 * np.pi * v) + (y - mu) ** 2 / (2 * v)))


def interval_coverage(y_true: np.ndarray, mean: np.ndarray, var: np.ndarray,
                      levels: float | Sequence[float] = 0.95) -> float | np.ndarray:
    r"""Fraction of targets inside the central predictive interval :math:`\mu \pm z_{(1+p)/2}\sigma`.

    ``levels`` a number: a float; a sequence: one fraction per level.

    Example:
        >>> interval_coverage([0.0, 3.0], [0.0, 0.0], [1.0, 1.0], [0.5, 0.95]).tolist()
        [0.5, 0.5]
    """
    y, mu, v = _check(y_true, mean, var)
    assert v is not None  # given: _check only passes None through
    lv = _check_levels(levels)
    z = np.abs(y - mu) / np.sqrt(v)
    # |y - mu| / sigma <= z_p  <=>  2 Phi(|z|) - 1 <= p: the level at which each target is just covered.
    needed = 2 * scipy.stats.norm.cdf(z) - 1
    cov = (needed.reshape(-1)[None, :] <= lv[:, None]).mean(axis=1)
    return float(cov[0]) if np.ndim(levels) == 0 else cov


def calibration_curve(y_true: np.ndarray, mean: np.ndarray, var: np.ndarray,
                      levels: Sequence[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(levels, observed coverage)`` for central intervals; default levels 0.05, 0.10, ..., 0.95.

    A calibrated model lies on the diagonal; below it, the intervals are too narrow
    (over-confident), above it too wide.

    Example:
        >>> lv, cov = calibration_curve([0.0, 3.0], [0.0, 0.0], [1.0, 1.0], [0.5])
        >>> cov.tolist()
        [0.5]
    """
    lv = _check_levels(np.linspace(0.05, 0.95, 19) if levels is None else levels)
    return lv, np.atleast_1d(interval_coverage(y_true, mean, var, list(lv)))


def regression_metrics(y_true: np.ndarray, mean: np.ndarray, var: np.ndarray | None = None) -> dict[str, float]:
    """RMSE, MAE and R² of the mean and, given variances, NLPD and 95 % coverage, as one dict.

    Example:
        >>> sorted(regression_metrics([1.0, 2.0], [1.0, 2.5]))
        ['mae', 'r2', 'rmse']
    """
    y, mu, v = _check(y_true, mean, var)
    out = {"rmse": float(np.sqrt(np.mean((y - mu) ** 2))), "mae": float(np.mean(np.abs(y - mu))),
           "r2": float(r2_score(y, mu)) if y.shape[0] > 1 else float("nan")}
    if v is not None:
        out["nlpd"] = nlpd(y, mu, v)
        out["coverage95"] = float(interval_coverage(y, mu, v, 0.95))
    return out
