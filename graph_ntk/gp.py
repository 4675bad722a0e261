r"""GP / kernel-regression posterior (JAX-free): the one implementation shared by graph-level
(:mod:`graph_ntk.evaluation`) and node-level (:mod:`graph_ntk.node_inference`) inference.

With a kernel :math:`K`, training points :math:`t`, targets :math:`Y_t` and a ridge /
noise term :math:`\lambda` relative to the mean training diagonal
:math:`\bar k = \operatorname{tr}(K_{tt}) / |t|`:

.. math::  \mu_* = K_{*t} (K_{tt} + \lambda \bar k I)^{-1} Y_t, \qquad
           \sigma^2_* = K_{**} - K_{*t} (K_{tt} + \lambda \bar k I)^{-1} K_{t*},

the same numbers as ``neural_tangents.predict.gp_inference(diag_reg=λ)`` (whose
``diag_reg_absolute_scale=False`` also scales by the mean diagonal) for ``get='nngp'``,
computed here in float64 with scipy. For an NTK Gram this is the GP with the NTK as prior
covariance, whose mean is the infinite ensemble trained to convergence on a ridge loss.

Example:
    >>> gp_posterior_mean(np.eye(2), np.ones((1, 2)), np.eye(2), 1.0).round(12).tolist()
    [[0.5, 0.5]]
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

__all__ = ["gp_posterior_mean", "gp_posterior_variance"]


def _blocks(k_train_train, k_test_train):
    k_tt = np.asarray(k_train_train, np.float64)
    k_st = np.asarray(k_test_train, np.float64)
    n = k_tt.shape[0] if k_tt.ndim == 2 else -1
    if k_tt.shape != (n, n):
        raise ValueError(f"k_train_train must be square, got shape {k_tt.shape}")
    if k_st.ndim != 2 or k_st.shape[1] != n:
        raise ValueError(f"k_test_train must have shape (n_test, {n}), got {k_st.shape}")
    # NaN in k_test_train would otherwise pass the Cholesky and turn into arbitrary arg-max
    # predictions (class 0); NaN in k_train_train fails inside scipy without naming the input.
    for name, k in (("k_train_train (train x train kernel)", k_tt), ("k_test_train (test x train kernel)", k_st)):
        if not np.isfinite(k).all():
            i, j = np.argwhere(~np.isfinite(k))[0]
            raise ValueError(f"{name} contains NaN or infinite entries (first at [{i}, {j}]); recompute the kernel")
    return k_tt, k_st, n


def _factor(k_tt: np.ndarray, reg: float):
    """Cholesky factor of :math:`K_{tt} + \\lambda \\bar k I` (symmetrised)."""
    if not np.isscalar(reg) or not reg >= 0:
        raise ValueError(f"reg must be a non-negative number, got {reg!r}")
    n = k_tt.shape[0]
    if not np.trace(k_tt) > 0:  # reg scales with the mean diagonal: no reg can help a zero kernel
        raise ValueError("the training kernel has no positive diagonal (all-zero node features, or a kernel that "
                         "underflowed): check the features, or use dtype='float64' / fewer layers")
    a = (k_tt + k_tt.T) / 2 + reg * np.trace(k_tt) / n * np.eye(n)
    try:
        return scipy.linalg.cho_factor(a, lower=True)
    except np.linalg.LinAlgError:
        raise ValueError(f"the training kernel + reg * mean diagonal is not positive definite at reg={reg}; "
                         "use a larger reg") from None


def gp_posterior_mean(k_train_train: np.ndarray, k_test_train: np.ndarray, targets: np.ndarray,
                      reg: float | np.ndarray) -> np.ndarray:
    r"""Posterior mean :math:`K_{*t}(K_{tt} + \lambda \bar k I)^{-1} Y` (float64).

    ``reg`` a number: Cholesky, ``(n_test, classes)``; a non-positive-definite system raises.
    ``reg`` a 1-D grid: every value from one eigendecomposition
    :math:`K_{tt} = U \operatorname{diag}(w) U^\top`, ``(len(reg), n_test, classes)``, with
    NaN rows for values that leave the system singular (for fast model selection).

    Example:
        >>> gp_posterior_mean(np.eye(2), np.ones((1, 2)), np.eye(2), np.array([1.0, 3.0])).round(3).tolist()
        [[[0.5, 0.5]], [[0.25, 0.25]]]
    """
    k_tt, k_st, n = _blocks(k_train_train, k_test_train)
    targets = np.asarray(targets, np.float64)
    if targets.ndim != 2 or targets.shape[0] != n:
        raise ValueError(f"targets must be a 2-D array with {n} rows (one per training point), got {targets.shape}")
    if np.ndim(reg) == 0:
        return k_st @ scipy.linalg.cho_solve(_factor(k_tt, float(reg)), targets)
    regs = np.asarray(reg, np.float64)
    if regs.ndim != 1 or not regs.size or not (regs >= 0).all():
        raise ValueError(f"reg must be a non-negative number or a non-empty 1-D grid of them, got {reg!r}")
    w, U = np.linalg.eigh((k_tt + k_tt.T) / 2)
    proj_y, proj_s = U.T @ targets, k_st @ U
    out = np.empty((regs.size, k_st.shape[0], targets.shape[1]))
    for r, c in enumerate(regs * np.trace(k_tt) / n):
        d = w + c
        # Where a Cholesky factorisation would fail (not positive definite): NaN.
        out[r] = np.nan if d.min() <= 1e-12 * max(d.max(), 1e-300) else proj_s @ (proj_y / d[:, None])
    return out


def gp_posterior_variance(k_train_train: np.ndarray, k_test_train: np.ndarray, k_test_diag: np.ndarray,
                          reg: float) -> np.ndarray:
    r"""Posterior variances :math:`K_{**} - K_{*t}(K_{tt} + \lambda \bar k I)^{-1}K_{t*}` of the test points.

    ``k_test_diag`` are the prior variances :math:`K_{**}` (the test self-kernels). Tiny
    negative values from rounding are clipped to 0.

    Example:
        >>> gp_posterior_variance(np.eye(2), np.ones((1, 2)), np.array([2.0]), 1.0).round(12).tolist()
        [1.0]
    """
    k_tt, k_st, _ = _blocks(k_train_train, k_test_train)
    prior = np.asarray(k_test_diag, np.float64)
    if prior.shape != (k_st.shape[0],):
        raise ValueError(f"k_test_diag must have one entry per test point ({k_st.shape[0]}), got {prior.shape}")
    solved = scipy.linalg.cho_solve(_factor(k_tt, float(reg)), k_st.T)
    return np.maximum(prior - np.einsum("ij,ji->i", k_st, solved), 0.0)
