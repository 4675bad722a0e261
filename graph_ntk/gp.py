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

As a probabilistic model of targets :math:`y` (:func:`gp_predict`,
:func:`gp_log_marginal_likelihood`), each output column :math:`j` is
:math:`y_j = m_j + f_j + \varepsilon_j` with :math:`f_j \sim \mathcal{GP}(0, s_j^2 K)` and
noise :math:`\varepsilon_j \sim \mathcal N(0, s_j^2 \lambda \bar k I)`: the regulariser is
the noise-to-signal ratio, the constant mean :math:`m_j` is the training mean (or 0), and the
amplitude :math:`s_j^2` takes its exact maximum-likelihood value
:math:`s_j^2 = (y_j - m_j)^\top (K_{tt} + \lambda \bar k I)^{-1} (y_j - m_j) / |t|`
unless given. The posterior mean does not depend on :math:`s_j^2`; the variances scale with it.

Example:
    >>> gp_posterior_mean(np.eye(2), np.ones((1, 2)), np.eye(2), 1.0).round(12).tolist()
    [[0.5, 0.5]]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from graph_ntk.checks import as_real_matrix
import scipy.linalg
import scipy.stats

__all__ = ["GPPrediction", "gp_log_marginal_likelihood", "gp_posterior_mean", "gp_posterior_variance", "gp_predict"]


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


# --------------------------------------------------------------------------- probabilistic model
def _targets(y, n: int, name: str = "y_train") -> tuple[np.ndarray, bool]:
    """``y`` as a float64 ``(n, outputs)`` array (and whether it was 1-D), or a one-line error."""
    arr = as_real_matrix(y, name)
    if arr.ndim not in (1, 2) or arr.shape[0] != n:
        raise ValueError(f"{name} must have {n} rows (one per training graph) and at most 2 dimensions, "
                         f"got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values; drop or impute those graphs first")
    return (arr[:, None], True) if arr.ndim == 1 else (arr, False)


def _offset(targets: np.ndarray, center) -> np.ndarray:
    if not isinstance(center, (bool, np.bool_)):
        raise TypeError(f"center must be True (constant mean = training mean) or False (zero mean), got {center!r}")
    return targets.mean(axis=0) if center else np.zeros(targets.shape[1])


def _amplitude(amplitude, quad: np.ndarray, n: int) -> np.ndarray:
    """Per-output signal variance: the ML value ``quad / n``, or the given positive number(s)."""
    if isinstance(amplitude, str):
        if amplitude != "ml":
            raise ValueError(f"amplitude must be 'ml' (maximum likelihood) or a positive number, got {amplitude!r}")
        # A target that is exactly its mean has no signal; keep its variances finite and tiny.
        return np.maximum(quad / n, np.finfo(np.float64).tiny)
    amp = np.asarray(amplitude, np.float64) * np.ones_like(quad)
    if amp.shape != quad.shape or not (np.isfinite(amp) & (amp > 0)).all():
        raise ValueError(f"amplitude must be 'ml' or a positive number (or one per output), got {amplitude!r}")
    return amp


@dataclass(frozen=True)
class GPPrediction:
    r"""Posterior predictions of a GP for ``n_test`` points and ``outputs`` target columns.

    ``mean`` :math:`\mu_*`; ``latent_var`` the variance of the noise-free function
    :math:`s^2 \sigma^2_*`; ``noise_var`` :math:`s^2 \lambda \bar k` per output; ``var`` the
    predictive variance of a new observation, their sum. 1-D training targets give 1-D arrays.

    Example:
        >>> p = GPPrediction(np.zeros(2), np.ones(2), np.array(1.0))
        >>> p.var.tolist(), p.interval(0.95)[1].round(3).tolist()
        ([2.0, 2.0], [2.772, 2.772])
    """

    mean: np.ndarray
    latent_var: np.ndarray
    noise_var: np.ndarray

    @property
    def var(self) -> np.ndarray:
        """Predictive variance of a new observed target (latent + noise)."""
        return self.latent_var + self.noise_var

    @property
    def std(self) -> np.ndarray:
        r"""Predictive standard deviation, :math:`\sqrt{\mathrm{var}}`."""
        return np.sqrt(self.var)

    def interval(self, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """The central predictive interval holding a new target with probability ``level``."""
        if not isinstance(level, (float, int)) or isinstance(level, bool) or not 0 < level < 1:
            raise ValueError(f"level must be a probability strictly between 0 and 1, got {level!r}")
        half = scipy.stats.norm.ppf(0.5 + level / 2) * self.std
        return self.mean - half, self.mean + half


def gp_predict(k_train_train: np.ndarray, k_test_train: np.ndarray, k_test_diag: np.ndarray,
               y_train: np.ndarray, reg: float, *, center: bool = True,
               amplitude: str | float | np.ndarray = "ml") -> GPPrediction:
    r"""Posterior means and variances of the test points, for every target column at once.

    :math:`\mu_* = m + K_{*t} A^{-1} (y - m)`, latent variance
    :math:`s^2 (K_{**} - K_{*t} A^{-1} K_{t*})` and noise :math:`s^2 \lambda \bar k`, with
    :math:`A = K_{tt} + \lambda \bar k I` (one float64 Cholesky factor shared by all outputs).
    With ``center=False, amplitude=1`` the mean and latent variance are exactly
    ``neural_tangents.predict.gp_inference(K_tt, y, diag_reg=reg)('nngp', K_*t, K_**)``'s mean
    and covariance diagonal.

    Args:
        k_train_train: ``(n, n)`` Gram of the training graphs (e.g. ``gram(model, train)``).
        k_test_train: ``(n_test, n)`` Gram of the test graphs against the training graphs.
        k_test_diag: ``(n_test,)`` self-kernels of the test graphs (``gram_diagonal``).
        y_train: ``(n,)`` or ``(n, outputs)`` real targets.
        reg: :math:`\lambda \ge 0`, the noise variance relative to the mean training diagonal.
        center: constant prior mean = the training mean of each output (``False``: zero).
        amplitude: ``'ml'`` for the maximum-likelihood signal variance :math:`s^2` of each
            output, or fixed value(s).

    Example:
        >>> p = gp_predict(np.eye(2), np.ones((1, 2)), np.array([2.0]), np.array([1.0, 3.0]), 1.0)
        >>> p.mean.tolist(), p.latent_var.round(6).tolist(), p.noise_var.round(6).tolist()
        ([2.0], [0.5], 0.5)
    """
    k_tt, k_st, n = _blocks(k_train_train, k_test_train)
    prior = np.asarray(k_test_diag, np.float64)
    if prior.shape != (k_st.shape[0],):
        raise ValueError(f"k_test_diag must have one entry per test point ({k_st.shape[0]}), got {prior.shape}")
    if not np.isfinite(prior).all():
        raise ValueError("k_test_diag contains NaN or infinite entries; recompute the test self-kernels")
    targets, flat = _targets(y_train, n)
    m = _offset(targets, center)
    factor = _factor(k_tt, reg)
    resid = targets - m
    alpha = scipy.linalg.cho_solve(factor, resid)
    amp = _amplitude(amplitude, np.einsum("ij,ij->j", resid, alpha), n)
    latent = np.maximum(prior - np.einsum("ij,ji->i", k_st, scipy.linalg.cho_solve(factor, k_st.T)), 0.0)
    mean = m + k_st @ alpha
    latent_var = latent[:, None] * amp
    noise = amp * float(reg) * np.trace(k_tt) / n
    if flat:
        return GPPrediction(mean[:, 0], latent_var[:, 0], noise[0])
    return GPPrediction(mean, latent_var, noise)


def gp_log_marginal_likelihood(k_train_train: np.ndarray, y_train: np.ndarray, reg: float | np.ndarray, *,
                               center: bool = True, amplitude: str | float | np.ndarray = "ml") -> np.ndarray:
    r"""Exact log marginal likelihood :math:`\log p(y_j)` of every target column (float64).

    .. math::  \log p(y_j) = -\tfrac12 r_j^\top (s_j^2 A)^{-1} r_j - \tfrac12 \log|s_j^2 A|
               - \tfrac n2 \log 2\pi, \quad r_j = y_j - m_j, \; A = K_{tt} + \lambda \bar k I,

    which at the ML amplitude is :math:`-\tfrac n2 (1 + \log 2\pi s_j^2) - \tfrac12 \log|A|`.
    (With ``center=True`` the mean is the training mean, a plug-in: this is the profile
    likelihood, as in scikit-learn's ``normalize_y``.)

    ``reg`` a number: ``(outputs,)``. ``reg`` a 1-D grid: ``(len(reg), outputs)`` from one
    eigendecomposition, ``-inf`` where :math:`A` is not positive definite. Sum over outputs
    for the likelihood of a multi-output model with a shared kernel.

    Example:
        >>> gp_log_marginal_likelihood(np.eye(2), np.array([1.0, -1.0]), 0.0, center=False, amplitude=1.0).round(4)
        array([-2.8379])
    """
    k_tt = np.asarray(k_train_train, np.float64)
    _blocks(k_tt, np.zeros((0, k_tt.shape[0] if k_tt.ndim == 2 else 0)))
    n = k_tt.shape[0]
    targets, _ = _targets(y_train, n)
    resid = targets - _offset(targets, center)
    scalar = np.ndim(reg) == 0
    regs = np.atleast_1d(np.asarray(reg, np.float64))
    if regs.ndim != 1 or not regs.size or not (np.isfinite(regs) & (regs >= 0)).all():
        raise ValueError(f"reg must be a non-negative number or a non-empty 1-D grid of them, got {reg!r}")
    if scalar:  # Cholesky: raises (naming reg) when not positive definite
        factor = _factor(k_tt, float(regs[0]))
        quads = [np.einsum("ij,ij->j", resid, scipy.linalg.cho_solve(factor, resid))]
        logdets = [2 * np.log(np.diag(factor[0])).sum()]
    else:
        w, U = np.linalg.eigh((k_tt + k_tt.T) / 2)
        proj = (U.T @ resid) ** 2
        quads, logdets = [], []
        for c in regs * np.trace(k_tt) / n:
            d = w + c
            ok = d.min() > 1e-12 * max(d.max(), 1e-300)
            quads.append(proj.T @ (1 / d) if ok else np.full(resid.shape[1], np.nan))
            logdets.append(np.log(d).sum() if ok else np.nan)
    out = []
    for quad, logdet in zip(quads, logdets):
        if np.isnan(logdet):
            out.append(np.full(resid.shape[1], -np.inf))
            continue
        amp = _amplitude(amplitude, quad, n)
        out.append(-0.5 * quad / amp - 0.5 * (logdet + n * np.log(amp)) - 0.5 * n * np.log(2 * np.pi))
    return out[0] if scalar else np.array(out)
