r"""NumPy closed forms of the layer-program kernel rules (no JAX).

One definition of every per-entry rule the exact engine applies; each equals what the
corresponding neural-tangents 0.6.5 ``stax`` layer computes (NT's closed forms are the
definition; ``tests/test_rules.py`` checks them against NT to 1e-10 in float64).

Notation: for one pair of items, :math:`k` is the pre-activation covariance, :math:`q_1`,
:math:`q_2` the two variances, :math:`p = q_1 q_2`, :math:`\Theta` the incoming NTK. An
elementwise layer :math:`\phi` maps

.. math::  K' = \mathbb E[\phi(u)\phi(v)], \qquad \Theta' = \Theta\, \dot K, \quad
           \dot K = \mathbb E[\phi'(u)\phi'(v)], \qquad
           (u, v) \sim \mathcal N\Big(0, \begin{pmatrix} q_1 & k \\ k & q_2\end{pmatrix}\Big).

Near-degenerate pairs are treated as NT treats them: NT does not clip :math:`k`; it clamps
the square roots, :math:`\sqrt{\max(p - k^2, 0)}`, so a rounding-level excess
:math:`|k| > \sqrt p` behaves as correlation :math:`\pm 1` in the angle (θ = 0 or π) while
:math:`k` itself enters unclipped. The angle :math:`\theta = \operatorname{atan2}(\sqrt{\max(p
- k^2, 0)}, k)` is :math:`\pi/2` where both arguments are 0 (a zero-variance item), as in NT.

Rules (see each function for the details):

- ``ABRelu(a, b)``, :math:`\phi(x) = a\min(x,0) + b\max(x,0)`, with :math:`f = (a-b)^2/2\pi`:
  :math:`\dot K = (a^2+b^2)/2 - f\theta`, :math:`K' = f\sqrt{\max(p-k^2,0)} + \dot K k`.
- ``Erf(a, b, c)``, :math:`\phi(x) = a\operatorname{erf}(bx) + c`, with :math:`\tilde k = b^2 k`,
  :math:`\tilde p = (1 + 2b^2 q_1)(1 + 2b^2 q_2)`, :math:`r = \sqrt{\max(\tilde p - 4\tilde k^2, 0)}`:
  :math:`K' = a^2 \tfrac 2\pi \operatorname{atan2}(2\tilde k, r) + c^2`,
  :math:`\dot K = a^2 b^2 \tfrac 4\pi / r`.
- ``Gelu``, :math:`\phi(x) = x\Phi(x)`, with :math:`P = (q_1+1)(q_2+1)`, :math:`\delta^2 = P - k^2`,
  :math:`\alpha = \operatorname{atan2}(k, \delta)`:
  :math:`K' = \frac{1}{2\pi}\big(\frac{k^2 + p\,\delta^2}{P\delta} + k\alpha\big) + \frac k4`,
  :math:`\dot K = \frac{k}{2\pi\delta}\big(\frac1{\delta^2} + \frac{1-p}{P} + 1\big)
  + \frac14 + \frac{\alpha}{2\pi}`.
- ``Sign``: :math:`K' = 1 - 2\theta/\pi`, :math:`\Theta' = 0` (NT's choice: the derivative is
  0 almost everywhere).

Example:
    >>> from graph_ntk.program import ABRelu
    >>> k, theta = nonlinearity(ABRelu(0.0, 1.0), np.array([0.0, 1.0]), 1.0, 1.0, ntk=np.ones(2))
    >>> k.round(6).tolist(), theta.tolist()
    ([0.159155, 0.5], [0.25, 0.5])
"""

from __future__ import annotations

import math

import numpy as np

from graph_ntk.program import ELEMENTWISE, ABRelu, Dense, Erf, Gelu, Scale, Sign

__all__ = [
    "abrelu_correlation",
    "dense",
    "homogeneous_degree",
    "nonlinearity",
    "nonlinearity_variance",
    "scale",
]

_PI = math.pi


def _check_elementwise(op) -> None:
    if not isinstance(op, ELEMENTWISE):
        raise TypeError(f"op must be an elementwise program op (ABRelu, Erf, Gelu or Sign), got {op!r}")


def _angle(root: np.ndarray, cov: np.ndarray) -> np.ndarray:
    r""":math:`\operatorname{atan2}(\mathrm{root}, \mathrm{cov})`, :math:`\pi/2` where both are 0 (NT's fill)."""
    theta = np.arctan2(root, cov)
    both_zero = (root == 0) & (cov == 0)
    if both_zero.any():
        theta[both_zero] = _PI / 2
    return theta


def _clamped_root(x: np.ndarray) -> np.ndarray:
    """``sqrt(max(x, 0))`` in place on the temporary ``x``."""
    np.maximum(x, 0, out=x)
    return np.sqrt(x, out=x)


def _abrelu(a: float, b: float, cov: np.ndarray, prod, want_kdot: bool):
    r"""``(K', K_dot)`` of ``ABRelu(a, b)``: :math:`\dot K = \frac{a^2+b^2}2 - f\theta`,
    :math:`K' = f\sqrt{\max(p - k^2, 0)} + \dot K k`, :math:`f = \frac{(a-b)^2}{2\pi}`."""
    mean_sq = (a**2 + b**2) / 2
    if a == b:  # linear: f = 0, the angle drops out (NT gives the same values)
        nngp = mean_sq * cov
        return nngp, (np.full_like(nngp, mean_sq) if want_kdot else None)
    f = (a - b) ** 2 / (2 * _PI)
    root = _clamped_root(prod - cov * cov)
    kdot = _angle(root, cov)
    kdot *= -f
    kdot += mean_sq
    root *= f
    nngp = kdot * cov
    nngp += root
    return nngp, (kdot if want_kdot else None)


def _erf(op: Erf, cov, var1, var2, want_kdot: bool):
    """``(K', K_dot)`` of ``Erf(a, b, c)`` (module docstring)."""
    b2 = op.b**2
    k = b2 * cov
    prod = (1 + 2 * (b2 * var1)) * (1 + 2 * (b2 * var2))
    root = _clamped_root(prod - 4 * (k * k))
    nngp = np.arctan2(2 * k, root)
    nngp *= op.a**2 * (2 / _PI)
    nngp += op.c**2
    kdot = None
    if want_kdot:
        kdot = np.divide(op.a**2 * b2 * (4 / _PI), root)
    return nngp, kdot


def _gelu(cov, var1, var2, want_kdot: bool):
    """``(K', K_dot)`` of ``Gelu`` (module docstring); NT's closed form, the same for both ``approximate``."""
    prod = var1 * var2
    prod_plus_1 = (var1 + 1) * (var2 + 1)
    cov_sq = cov * cov
    delta_sq = prod_plus_1 - cov_sq
    delta = np.sqrt(np.maximum(delta_sq, 0))
    alpha = np.arctan2(cov, delta)
    nngp = (cov_sq + prod * delta_sq) / (prod_plus_1 * delta)
    nngp += cov * alpha
    nngp /= 2 * _PI
    nngp += 0.25 * cov
    kdot = None
    if want_kdot:
        kdot = 1 / delta_sq + (1 - prod) / prod_plus_1 + 1
        kdot *= cov / delta / (2 * _PI)
        kdot += 0.25 + alpha / (2 * _PI)
    return nngp, kdot


def _sign(cov, prod):
    r""":math:`K' = 1 - 2\theta/\pi` of ``Sign``."""
    theta = _angle(_clamped_root(prod - cov * cov), cov)
    theta *= -2 / _PI
    theta += 1
    return theta


def nonlinearity(op, cov, var1, var2, ntk=None) -> tuple[np.ndarray, np.ndarray | None]:
    r"""Post-activation NNGP and NTK of an elementwise op (NT's closed forms, module docstring).

    Args:
        op: :class:`~graph_ntk.program.ABRelu`, :class:`~graph_ntk.program.Erf`,
            :class:`~graph_ntk.program.Gelu` or :class:`~graph_ntk.program.Sign`.
        cov: pre-activation covariances :math:`k`, any shape.
        var1, var2: the variances of the row / column items, broadcastable against ``cov``
            (e.g. ``q[:, None]`` and ``q[None, :]`` for a matrix block).
        ntk: the incoming NTK (array broadcastable to ``cov``, NT's scalar 0, or None).

    Returns:
        ``(K', Θ')`` with :math:`K' = \mathbb E[\phi(u)\phi(v)]` and :math:`\Theta' = \Theta\,
        \mathbb E[\phi'(u)\phi'(v)]` (zeros for ``Sign``; None when ``ntk`` is None), new arrays
        in the inputs' floating dtype.

    Example:
        >>> from graph_ntk.program import Erf
        >>> k, _ = nonlinearity(Erf(), np.array([[0.5]]), 1.0, 1.0)
        >>> round(float(k[0, 0]), 6)  # (2/pi) arcsin(2 * 0.5 / 3)
        0.216347
    """
    _check_elementwise(op)
    cov = np.asarray(cov)
    if not np.issubdtype(cov.dtype, np.floating):
        cov = cov.astype(np.float64)
    var1, var2 = np.asarray(var1, cov.dtype), np.asarray(var2, cov.dtype)
    try:
        shape = np.broadcast_shapes(cov.shape, var1.shape, var2.shape)
    except ValueError:
        shape = None
    if shape != cov.shape:
        raise ValueError(f"var1 {var1.shape} and var2 {var2.shape} must broadcast against cov {cov.shape}, "
                         f"e.g. var[:, None] and var[None, :] for a matrix of covariances")
    if cov.ndim == 0:  # the in-place steps below need arrays, not NumPy scalars
        nngp, new_ntk = nonlinearity(op, cov.reshape(1), var1.reshape(1), var2.reshape(1),
                                     None if ntk is None else np.reshape(ntk, 1))
        return nngp.reshape(()), None if new_ntk is None else new_ntk.reshape(())
    want = ntk is not None
    if isinstance(op, ABRelu):
        nngp, kdot = _abrelu(op.a, op.b, cov, None if op.a == op.b else var1 * var2, want)
    elif isinstance(op, Erf):
        nngp, kdot = _erf(op, cov, var1, var2, want)
    elif isinstance(op, Gelu):
        nngp, kdot = _gelu(cov, var1, var2, want)
    else:
        nngp = _sign(cov, var1 * var2)
        if not want:
            return nngp, None
        return nngp, np.zeros(np.broadcast_shapes(cov.shape, np.shape(ntk)), nngp.dtype)
    return nngp, (None if not want else np.asarray(ntk, nngp.dtype) * kdot)


def nonlinearity_variance(op, var) -> np.ndarray:
    r"""Post-activation variances :math:`\mathbb E[\phi(u)^2]`, :math:`u \sim \mathcal N(0, q)`.

    Equal (bitwise) to the diagonal of :func:`nonlinearity`, ``nonlinearity(op, q, q, q)[0]``,
    which is what NT computes for graph networks: their nodes are a spatial axis whose
    covariance NT keeps in full, so it applies the full rule on the diagonal too (its
    cheaper diagonal forms, e.g. ``Erf``'s :math:`\operatorname{atan2}(\tilde q, \sqrt{\tilde
    q + 1/4})`, serve only spatially diagonal kernels, and differ by rounding: in float32 by
    up to 1e-4 at large :math:`b^2 q`). Closed forms: ``ABRelu`` :math:`\frac{a^2+b^2}2 q`,
    ``Sign`` 1 (0 where :math:`q = 0`); ``Erf`` and ``Gelu`` run the full rule on the vector.

    Example:
        >>> from graph_ntk.program import ABRelu
        >>> nonlinearity_variance(ABRelu(0.0, 1.0), np.array([2.0, 0.0])).tolist()
        [1.0, 0.0]
    """
    _check_elementwise(op)
    var = np.asarray(var)
    if not np.issubdtype(var.dtype, np.floating):
        var = var.astype(np.float64)
    if isinstance(op, ABRelu):  # the full rule at k = q1 = q2: root = 0, theta = 0 (pi/2 at q = 0, times k = 0)
        return (op.a**2 + op.b**2) / 2 * var
    if isinstance(op, Sign):
        return np.where(var == 0, 0, 1).astype(var.dtype)
    return nonlinearity(op, var, var, var)[0]


def homogeneous_degree(op) -> int | None:
    r"""Degree :math:`m` with :math:`\phi(cx) = c^m\phi(x)` for all :math:`c > 0`, or None.

    ``ABRelu`` is 1 (so :math:`K' = \sqrt{q_1 q_2}\,g(\rho)` and :math:`\dot K` depend on the
    correlation :math:`\rho = k/\sqrt{q_1 q_2}` only: see :func:`abrelu_correlation`);
    ``Sign`` is 0 (:math:`K' = 1 - 2\theta/\pi` depends on :math:`\rho` only); ``Erf`` and
    ``Gelu`` are None. A None never claims a fast path that would be wrong.

    Example:
        >>> from graph_ntk.program import ABRelu, Gelu, Sign
        >>> homogeneous_degree(ABRelu(0.0, 1.0)), homogeneous_degree(Sign()), homogeneous_degree(Gelu())
        (1, 0, None)
    """
    _check_elementwise(op)
    if isinstance(op, ABRelu):
        return 1
    if isinstance(op, Sign):
        return 0
    return None


def abrelu_correlation(a: float, b: float, lam) -> tuple[np.ndarray, np.ndarray]:
    r"""The ``ABRelu(a, b)`` rule at unit variances: ``(g(λ), K_dot(λ))`` for correlations λ.

    :math:`\theta = \operatorname{atan2}(\sqrt{\max(1-\lambda^2, 0)}, \lambda)`,
    :math:`\dot K = \frac{a^2+b^2}2 - \frac{(a-b)^2}{2\pi}\theta`,
    :math:`g = \frac{(a-b)^2}{2\pi}\sqrt{\max(1-\lambda^2,0)} + \dot K\lambda`. By homogeneity
    the rule at variances :math:`q_1, q_2` is :math:`K' = \sqrt{q_1 q_2}\, g(k/\sqrt{q_1q_2})`,
    :math:`\dot K(k/\sqrt{q_1q_2})`; the new correlation is :math:`g / \frac{a^2+b^2}2`.
    Pass λ = 0 for a pair with a zero variance: :math:`\dot K(0)` is then exactly NT's value
    there (its θ = π/2 fill) and :math:`K' = 0`. Bitwise equal to
    ``nonlinearity(ABRelu(a, b), lam, 1.0, 1.0, ntk=1.0)``.

    Example:
        >>> g, kdot = abrelu_correlation(0.0, 1.0, np.array([1.0, 0.0, -1.0]))
        >>> g.round(6).tolist(), kdot.round(6).tolist()
        ([0.5, 0.159155, 0.0], [0.5, 0.25, 0.0])
    """
    lam = np.asarray(lam)
    if not np.issubdtype(lam.dtype, np.floating):
        lam = lam.astype(np.float64)
    if lam.ndim == 0:
        g, kdot = abrelu_correlation(a, b, lam.reshape(1))
        return g.reshape(()), kdot.reshape(())
    return _abrelu(float(a), float(b), lam, np.ones((), lam.dtype), True)


def dense(op: Dense, nngp, ntk=None):
    r"""NT's ``Dense`` (NTK parameterisation): :math:`K' = W^2 K + b^2`, :math:`\Theta' = K' + W^2\Theta`.

    ``ntk`` None stays None (NT tracks no NTK); NT's scalar 0 (no parameters so far) gives
    :math:`\Theta' = K'`. Apply to variances as ``dense(op, var)[0]``.

    Example:
        >>> from graph_ntk.program import Dense
        >>> k, t = dense(Dense(8, 2.0, 1.0), np.array([1.0]), 0.0)
        >>> k.tolist(), t.tolist()
        ([5.0], [5.0])
    """
    if not isinstance(op, Dense):
        raise TypeError(f"op must be a program Dense, got {op!r}")
    nngp = np.asarray(nngp)
    new = op.W_std**2 * nngp + op.b_std**2
    return new, (None if ntk is None else new + op.W_std**2 * np.asarray(ntk, new.dtype))


def scale(op: Scale, nngp, ntk=None):
    r"""``Scale(c)``: :math:`K' = c^2 K`, :math:`\Theta' = c^2\Theta` (None stays None).

    Example:
        >>> from graph_ntk.program import Scale
        >>> scale(Scale(2.0), np.array([1.0]), None)[0].tolist()
        [4.0]
    """
    if not isinstance(op, Scale):
        raise TypeError(f"op must be a program Scale, got {op!r}")
    c2 = op.c**2
    return c2 * np.asarray(nngp), (None if ntk is None else c2 * np.asarray(ntk))
