r"""The tiled executor's in-place pointwise steps, and the planning that picks them.

A tile holds :math:`X = K / (d_i d_j)` and :math:`\tau = \Theta / (d_i d_j)` for per-item
scales ``d`` (:class:`Track` keeps ``d``, the variances and whether ``X`` is a correlation
matrix). Each step maps ``(X, τ)`` in place, on a cache-sized row chunk, and equals NT's
closed form (:func:`graph_ntk.kernels.rules.nonlinearity`) on :math:`K = X d_i d_j`
(tests in ``tests/test_item_engine.py``):

- :class:`_FastABRelu`, the ReLU family on correlations: with :math:`\alpha = (a-b)^2 / (2\pi s)`,
  :math:`s = (a^2+b^2)/2`, :math:`t = \arccos\lambda`:
  :math:`\lambda' = \alpha\sqrt{1-\lambda^2} + \lambda(1-\alpha t)`, :math:`\tau' = \tau(1-\alpha t)`.
- :class:`_FastErf`, ``Erf`` on correlations with the per-item factors pulled out.
- :class:`_AddNngp`, a following ``Dense(W, b=0)``: :math:`\tau \mathrel{+}= X`.
- :class:`_Generic`, every other op: NT's closed form on :math:`K` and back.

In float32 the arccos of the ReLU step is a polynomial (:func:`_one_minus_alpha_arccos_f32`):
NumPy's float32 ``arccos`` is not vectorised on CPUs without AVX-512 (about 10 ns per entry,
two thirds of the whole step, ``benchmarks/RESULTS.md``) while the polynomial is a dozen
vectorised passes; float64 keeps ``np.arccos`` (the polynomial's 2e-8 is float32-grade only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from graph_ntk import program as P
from graph_ntk.kernels.dense_exec import pointwise, pointwise_variance

__all__ = ["Track"]

# Abramowitz & Stegun 4.4.46: arccos(x) = sqrt(1 - x) (c0 + c1 x + ... + c7 x^7) + e(x),
# |e| <= 2e-8 on [0, 1]; evaluated in float32 the total error is a few float32 ulps of pi/2.
_ACOS_COEFFS = tuple(np.float32(c) for c in (
    1.5707963050, -0.2145988016, 0.0889789874, -0.0501743046,
    0.0308918810, -0.0170881256, 0.0066700901, -0.0012624911))
_HALF_PI = np.float32(math.pi / 2)


def _one_minus_alpha_arccos_f32(lam: np.ndarray, alpha: float, nonneg: bool, *, out: np.ndarray,
                                tmp: np.ndarray) -> None:
    r""":math:`1 - \alpha \arccos\lambda` into ``out`` for float32 ``lam`` in [-1, 1], without
    ``np.arccos``: :math:`r(x) = \sqrt{1-x}\,P(x)` on :math:`x = |\lambda|`, and
    :math:`\arccos\lambda = \pi/2 - \operatorname{sign}(\lambda)(\pi/2 - r(|\lambda|))`
    (branch-free; masked ufuncs are as slow as the arccos they replace)."""
    x = lam if nonneg else np.abs(lam, out=tmp)
    c = _ACOS_COEFFS
    np.multiply(x, c[7], out=out)
    for coeff in c[6:0:-1]:
        out += coeff
        out *= x
    out += c[0]
    if nonneg:
        np.subtract(np.float32(1.0), x, out=tmp)
        np.sqrt(tmp, out=tmp)
        out *= tmp  # arccos(lam)
        out *= np.float32(-alpha)
        out += np.float32(1.0)
        return
    np.subtract(np.float32(1.0), x, out=x)  # x is tmp here
    np.sqrt(x, out=x)
    out *= x  # r(|lam|)
    np.subtract(_HALF_PI, out, out=out)  # pi/2 - r, >= 0
    np.copysign(out, lam, out=out)
    # 1 - alpha (pi/2 - sign (pi/2 - r)) = (1 - alpha pi/2) + alpha sign (pi/2 - r)
    out *= np.float32(alpha)
    out += np.float32(1.0 - alpha * math.pi / 2)


@dataclass
class _FastABRelu:
    alpha: float
    dense: bool  # a Dense(W, b=0) follows: tau += lambda
    nonneg: bool  # correlations known to be >= 0 (skip the lower clip)

    def __call__(self, lam, tau, rows, cols, a, s) -> None:
        if self.nonneg:
            np.minimum(lam, 1.0, out=lam)
        else:
            np.clip(lam, -1.0, 1.0, out=lam)
        if lam.dtype == np.float32:
            _one_minus_alpha_arccos_f32(lam, self.alpha, self.nonneg, out=a, tmp=s)
        else:
            np.arccos(lam, out=a)
            np.multiply(a, -self.alpha, out=a)
            a += 1.0  # 1 - alpha t
        np.multiply(lam, lam, out=s)
        np.subtract(1.0, s, out=s)
        np.sqrt(s, out=s)
        s *= self.alpha
        tau *= a
        lam *= a
        lam += s
        if self.dense:
            tau += lam


@dataclass
class _AddNngp:  # Dense(W, b=0) on correlations: Θ' = W²(K + Θ), stored relative to W d
    def __call__(self, lam, tau, rows, cols, a, s) -> None:
        tau += lam


@dataclass
class _Generic:
    op: P.Op
    var_in: np.ndarray
    d_in: np.ndarray
    d_out: np.ndarray

    unit_out: bool = False  # the output is stored as correlations: its diagonal is exactly 1

    def __call__(self, lam, tau, rows, cols, a, s) -> None:
        scale_in = self.d_in[rows][:, None] * self.d_in[cols][None, :]
        k, t = pointwise(self.op, lam * scale_in, tau * scale_in, self.var_in[rows], self.var_in[cols])
        scale_out = self.d_out[rows][:, None] * self.d_out[cols][None, :]
        np.divide(k, scale_out, out=lam)
        np.divide(t, scale_out, out=tau)
        if self.unit_out:
            _unit_diagonal(lam, rows, cols)


def _unit_diagonal(lam: np.ndarray, rows: slice, cols: slice) -> None:
    """An item with itself has correlation exactly 1 (rounding would leave 1 - 1e-16, which a
    later Sign or ReLU turns into sqrt(1e-16) through arccos / sqrt(p - k^2) near 1)."""
    first, last = max(rows.start, cols.start), min(rows.stop, cols.stop)
    if first < last:
        idx = np.arange(first, last)
        lam[idx - rows.start, idx - cols.start] = 1.0


@dataclass
class _FastErf:
    r"""``Erf(a, b, c)`` on correlations: NT's closed form with the per-item factors pulled
    out of the entry-wise work. With :math:`w = 1 + 2b^2 v`, :math:`r = \sqrt2 |b| d / \sqrt w`,
    :math:`\rho = \lambda r_i r_j`: :math:`K' = \tfrac{2a^2}{\pi}\arcsin\rho + c^2`,
    :math:`\Theta' = \Theta\,\tfrac{4a^2b^2}{\pi} / (\sqrt{w_i w_j}\sqrt{1-\rho^2})`, stored
    relative to :math:`d' = \sqrt{v'}` (tested against :func:`graph_ntk.kernels.rules.nonlinearity`)."""

    r: np.ndarray  # sqrt(2)|b| d / sqrt(w)
    g: np.ndarray  # sqrt(4 a^2 b^2 / pi) d / (sqrt(w) d')
    h: np.ndarray  # |a| sqrt(2 / pi) / d'
    e: np.ndarray | None  # |c| / d', or None when c = 0

    def __call__(self, lam, tau, rows, cols, a, s) -> None:
        lam *= self.r[rows][:, None]
        lam *= self.r[cols][None, :]  # rho
        np.multiply(lam, lam, out=s)
        np.subtract(1.0, s, out=s)
        np.sqrt(s, out=s)
        tau *= self.g[rows][:, None]
        tau *= self.g[cols][None, :]
        tau /= s
        np.arcsin(lam, out=lam)
        lam *= self.h[rows][:, None]
        lam *= self.h[cols][None, :]
        if self.e is not None:
            lam += np.multiply.outer(self.e[rows], self.e[cols])
        _unit_diagonal(lam, rows, cols)


class Track:
    """Planning-time bookkeeping of one activation: item variances, scales and whether
    the stored values are correlations (unit diagonal)."""

    def __init__(self, var: np.ndarray, nonneg: bool) -> None:
        self.var = var
        self.unit = bool(np.all(var > 0))
        self.d = np.sqrt(var) if self.unit else np.ones_like(var)
        self.nonneg = nonneg

    def compile(self, ops: tuple, dtype) -> list:
        """Tile ops for ``ops`` (pointwise), updating the bookkeeping."""
        out: list = []
        i = 0
        while i < len(ops):
            op = ops[i]
            fused = i + 1 < len(ops) and isinstance(ops[i + 1], P.Dense) and ops[i + 1].b_std == 0.0
            s = (op.a ** 2 + op.b ** 2) / 2 if isinstance(op, P.ABRelu) else 0.0
            if isinstance(op, P.ABRelu) and self.unit and s > 0:
                out.append(_FastABRelu((op.a - op.b) ** 2 / (2 * math.pi * s), fused, self.nonneg))
                self.var = self.var * s
                self.d = self.d * math.sqrt(s)
                # phi of one sign (e.g. Relu, Abs): every output correlation is >= 0
                self.nonneg = op.a <= 0 <= op.b or op.b <= 0 <= op.a
                if fused:
                    w = ops[i + 1].W_std
                    self.var, self.d = self.var * w * w, self.d * abs(w)
                    i += 1
            elif isinstance(op, P.Dense) and op.b_std == 0.0:
                out.append(_AddNngp())
                self.var, self.d = self.var * op.W_std ** 2, self.d * abs(op.W_std)
            elif isinstance(op, P.Scale):
                self.var, self.d = self.var * op.c ** 2, self.d * abs(op.c)
            elif isinstance(op, P.Erf) and self.unit and op.a != 0 and op.b != 0:
                d = self.d.astype(np.float64)
                v = d * d  # the variances of the stored correlations, bit for bit
                w = 1.0 + 2.0 * op.b ** 2 * v
                var_out = pointwise_variance(op, v)
                d_out = np.sqrt(var_out)
                r = math.sqrt(2.0) * abs(op.b) * d / np.sqrt(w)
                g = math.sqrt(4.0 * op.a ** 2 * op.b ** 2 / math.pi) * d / (np.sqrt(w) * d_out)
                h = abs(op.a) * math.sqrt(2.0 / math.pi) / d_out
                e = None if op.c == 0 else abs(op.c) / d_out
                out.append(_FastErf(*(None if x is None else x.astype(dtype) for x in (r, g, h, e))))
                self.var, self.d, self.nonneg = var_out, d_out, False
            else:
                var_out = pointwise_variance(op, self.var)
                d_in = self.d.astype(dtype)
                # On correlations, the variances the rule sees are d^2 exactly as the tile's
                # K = lam d_i d_j is formed, so that an item with itself has k^2 == q1 q2
                # bit for bit (NT's sqrt(max(q1 q2 - k^2, 0)) is exactly 0 there).
                var_in = d_in * d_in if self.unit else self.var
                unit = bool(np.all(var_out > 0))
                d_out = np.sqrt(var_out) if unit else np.ones_like(var_out)
                out.append(_Generic(op, var_in, d_in, d_out.astype(dtype), unit))
                self.var, self.d, self.unit = var_out, d_out, unit
                self.nonneg = self.nonneg and isinstance(op, P.Dense)
            i += 1
        return out

    def copy(self) -> "Track":
        t = Track.__new__(Track)
        t.var, t.unit, t.d, t.nonneg = self.var, self.unit, self.d, self.nonneg
        return t


