"""graph_ntk.kernels.rules against neural-tangents' own layer kernels (the definition).

Every case feeds the *same* pre-activation arrays to NT's layer (as a Gaussian ``Kernel``)
and to our NumPy rule, so the comparison is free of input-kernel rounding.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from neural_tangents import stax
from scipy import special

from graph_ntk import program as P
from graph_ntk.kernels import rules
from graph_ntk.layers.scale import Scale as ScaleLayer

CASES = [
    ("relu", P.ABRelu(0.0, 1.0), lambda: stax.Relu()),
    ("leaky0.1", P.ABRelu(0.1, 1.0), lambda: stax.LeakyRelu(0.1)),
    ("leaky-0.3", P.ABRelu(-0.3, 1.0), lambda: stax.LeakyRelu(-0.3)),
    ("abrelu", P.ABRelu(-0.5, 2.0), lambda: stax.ABRelu(-0.5, 2.0)),
    ("abs", P.ABRelu(-1.0, 1.0), lambda: stax.Abs()),
    ("identity", P.ABRelu(1.0, 1.0), lambda: stax.ABRelu(1.0, 1.0)),
    ("erf", P.Erf(1.0, 1.0, 0.0), lambda: stax.Erf()),
    ("erf2", P.Erf(2.0, 0.5, 0.3), lambda: stax.Erf(2.0, 0.5, 0.3)),
    ("gelu", P.Gelu(), lambda: stax.Gelu()),
    ("sign", P.Sign(), lambda: stax.Sign()),
]
IDS = [c[0] for c in CASES]


def _families(rng: np.random.Generator, spread: float) -> tuple[np.ndarray, np.ndarray]:
    """Row items x1 (16, d) and column items x2 (30, d), stacking three families (one shape
    for every test keeps JAX's per-shape compilations shared): random; variances over
    ``2 spread + 1`` orders of magnitude; identical, nearly identical, opposite, nearly opposite and zero rows."""
    d = 6
    random = rng.normal(size=(5, d)), rng.normal(size=(7, d))
    scales = (rng.normal(size=(6, d)) * np.logspace(-spread, spread, 6)[:, None],
              rng.normal(size=(5, d)) * np.logspace(spread - 1, 1 - spread, 5)[:, None])
    base = rng.normal(size=(4, d))
    eps = 1e-9 * rng.normal(size=(4, d))
    degenerate = (np.concatenate([base, np.zeros((1, d))]),
                  np.concatenate([base, base + eps, -base, -base + eps, 3.0 * base[:1], np.zeros((1, d))]))
    return tuple(np.concatenate(parts) for parts in zip(random, scales, degenerate))


ROWS0, COLS0 = 11, 12  # where the degenerate family starts


def _kernel_inputs(seed: int = 0, spread: float = 4.0):
    """(cov, var1, var2, ntk) in float64: cov = x1 x2^T / d, variances of each row."""
    rng = np.random.default_rng(seed)
    x1, x2 = _families(rng, spread)
    d = x1.shape[1]
    cov = x1 @ x2.T / d
    var1, var2 = np.einsum("ij,ij->i", x1, x1) / d, np.einsum("ij,ij->i", x2, x2) / d
    # Also exact |k| = sqrt(q1 q2) entries and a rounding-level excess |k| > sqrt(q1 q2).
    for (i, j), factor in (((0, 0), 1.0), ((1, 8), -1.0), ((2, 2), 1 + 4e-16), ((3, 11), -(1 + 4e-16))):
        i, j = ROWS0 + i, COLS0 + j
        cov[i, j] = factor * np.sqrt(var1[i] * var2[j])
    ntk = rng.uniform(0.5, 2.0, size=cov.shape) * np.sqrt(np.outer(var1, var2) + 1.0)
    return cov, var1, var2, ntk


def _nt(layer, cov, var1, var2, ntk):
    """NT's layer kernel on a Gaussian pre-activation Kernel built from exactly these arrays."""
    k = stax.Identity()[2](np.zeros((cov.shape[0], 1), cov.dtype), np.zeros((cov.shape[1], 1), cov.dtype))
    k = k.replace(nngp=jnp.asarray(cov), cov1=jnp.asarray(var1), cov2=jnp.asarray(var2),
                  ntk=ntk if np.ndim(ntk) == 0 else jnp.asarray(ntk), is_gaussian=True)
    out = layer[2](k)
    as_np = lambda a: None if a is None else np.asarray(a)  # noqa: E731
    return as_np(out.nngp), as_np(out.ntk), as_np(out.cov1), as_np(out.cov2)


def _close(ours, ref, rtol):
    """Relative agreement, with an absolute floor of rtol x the largest entry (near-zero outputs)."""
    assert ours.shape == ref.shape and ours.dtype == ref.dtype, (ours.shape, ref.shape, ours.dtype, ref.dtype)
    assert np.isfinite(ref).all()
    np.testing.assert_allclose(ours, ref, rtol=rtol, atol=rtol * max(float(np.max(np.abs(ref))), 1e-30))


@pytest.mark.parametrize("name,op,layer", CASES, ids=IDS)
def test_nonlinearity_equals_neural_tangents_float64(name, op, layer):
    cov, var1, var2, ntk = _kernel_inputs()
    with jax.enable_x64(True):
        nngp_nt, ntk_nt, cov1_nt, cov2_nt = _nt(layer(), cov, var1, var2, ntk)
    nngp, new_ntk = rules.nonlinearity(op, cov, var1[:, None], var2[None, :], ntk)
    assert np.isfinite(nngp).all() and np.isfinite(new_ntk).all()
    _close(nngp, nngp_nt, 1e-10)
    _close(new_ntk, ntk_nt, 1e-10)
    # NT's per-item variances are ours.
    _close(rules.nonlinearity_variance(op, var1), cov1_nt, 1e-10)
    _close(rules.nonlinearity_variance(op, var2), cov2_nt, 1e-10)
    # Without an NTK nothing is computed for it, and the NNGP is unchanged.
    alone, none = rules.nonlinearity(op, cov, var1[:, None], var2[None, :])
    assert none is None
    np.testing.assert_array_equal(alone, nngp)


@pytest.mark.parametrize("name,op,layer", CASES, ids=IDS)
def test_nonlinearity_equals_neural_tangents_float32(name, op, layer):
    # Variances over 5 orders only: at ~1e8, float32 Gelu's delta^2 = (q1+1)(q2+1) - k^2 cancels
    # to 0 in NT as in ours (both give inf), which says nothing about agreement.
    cov, var1, var2, ntk = (a.astype(np.float32) for a in _kernel_inputs(seed=3, spread=2.0))
    with jax.enable_x64(False):
        nngp_nt, ntk_nt, cov1_nt, _ = _nt(layer(), cov, var1, var2, ntk)
    nngp, new_ntk = rules.nonlinearity(op, cov, var1[:, None], var2[None, :], ntk)
    _close(nngp, nngp_nt, 1e-5)
    _close(new_ntk, ntk_nt, 1e-5)
    _close(rules.nonlinearity_variance(op, var1), cov1_nt, 1e-5)


@pytest.mark.parametrize("name,op,layer", CASES, ids=IDS)
def test_nt_scalar_zero_ntk_and_serial_network(name, op, layer):
    """NT's initial scalar-0 NTK, and a whole Dense > nonlinearity network on inputs."""
    rng = np.random.default_rng(5)
    x1, x2 = rng.normal(size=(16, 3)), rng.normal(size=(30, 3))
    dense_op = P.Dense(16, 1.5, 0.2)
    with jax.enable_x64(True):
        pre = stax.Dense(16, 1.5, 0.2)[2](x1, x2, ("nngp", "ntk", "cov1", "cov2"))
        want = stax.serial(stax.Dense(16, 1.5, 0.2), layer())[2](x1, x2, ("nngp", "ntk"))
        cov, var1, var2, _ = _kernel_inputs()
        zero_nt = _nt(layer(), cov, var1, var2, 0.0)[1]
    k0 = x1 @ x2.T / 3
    cov_in, ntk_in = rules.dense(dense_op, k0, 0.0)
    np.testing.assert_allclose(cov_in, pre[0], rtol=1e-13)
    np.testing.assert_allclose(ntk_in, pre[1], rtol=1e-13)
    v1 = rules.dense(dense_op, np.einsum("ij,ij->i", x1, x1) / 3)[0]
    v2 = rules.dense(dense_op, np.einsum("ij,ij->i", x2, x2) / 3)[0]
    np.testing.assert_allclose(v1, pre[2], rtol=1e-13)
    nngp, ntk = rules.nonlinearity(op, cov_in, v1[:, None], v2[None, :], ntk_in)
    _close(nngp, np.asarray(want[0]), 1e-10)
    _close(ntk, np.asarray(want[1]), 1e-10)
    # Elementwise layer on NT's scalar 0 NTK (no parameters before it): a zero NTK block.
    ours = rules.nonlinearity(op, cov, var1[:, None], var2[None, :], 0.0)[1]
    np.testing.assert_array_equal(np.broadcast_to(ours, cov.shape), np.broadcast_to(zero_nt, cov.shape))


@pytest.mark.parametrize("name,op,layer", CASES, ids=IDS)
def test_variance_is_the_diagonal_of_the_full_rule(name, op, layer):
    var = np.concatenate([np.logspace(-6, 4, 40), [0.0]])
    full = rules.nonlinearity(op, var, var, var)[0]
    np.testing.assert_array_equal(rules.nonlinearity_variance(op, var), full)


@pytest.mark.parametrize("name,op,layer", CASES, ids=IDS)
def test_any_shape_broadcasting(name, op, layer):
    cov, var1, var2, ntk = _kernel_inputs(seed=7)
    mat = rules.nonlinearity(op, cov, var1[:, None], var2[None, :], ntk)
    i, j = np.nonzero(np.ones_like(cov, bool))
    flat = rules.nonlinearity(op, cov[i, j], var1[i], var2[j], ntk[i, j])
    stacked = rules.nonlinearity(op, np.stack([cov, cov]), var1[None, :, None], var2[None, None, :], ntk)
    for a, b, c in zip(mat, flat, stacked):
        np.testing.assert_array_equal(a.ravel(), b)
        np.testing.assert_array_equal(c, np.stack([a, a]))


def _phi(op, x):
    if isinstance(op, P.ABRelu):
        return op.a * np.minimum(x, 0) + op.b * np.maximum(x, 0), np.where(x < 0, op.a, op.b)
    if isinstance(op, P.Erf):
        return op.a * special.erf(op.b * x) + op.c, op.a * op.b * 2 / np.sqrt(np.pi) * np.exp(-(op.b * x) ** 2)
    if isinstance(op, P.Gelu):
        return x * special.ndtr(x), special.ndtr(x) + x * np.exp(-x * x / 2) / np.sqrt(2 * np.pi)
    return np.sign(x), np.zeros_like(x)


@pytest.mark.parametrize("name,op,layer", CASES, ids=IDS)
def test_monte_carlo(name, op, layer):
    """The closed forms are the Gaussian expectations they claim (5 standard errors)."""
    rng = np.random.default_rng(11)
    q1, q2, k = 1.3, 0.7, -0.6
    chol = np.linalg.cholesky(np.array([[q1, k], [k, q2]]))
    u, v = chol @ rng.normal(size=(2, 400_000))
    (fu, du), (fv, dv) = _phi(op, u), _phi(op, v)
    nngp, kdot = rules.nonlinearity(op, np.array(k), q1, q2, ntk=1.0)
    for sample, value in ((fu * fv, nngp), (du * dv, kdot)):
        se = sample.std() / np.sqrt(sample.size)
        assert abs(sample.mean() - value) <= 5 * se + 1e-12, (sample.mean(), value, se)


@pytest.mark.parametrize("name,op,layer", CASES, ids=IDS)
def test_homogeneity(name, op, layer):
    cov, var1, var2, ntk = _kernel_inputs(seed=2)
    # Away from |correlation| = 1, where sqrt(q1 q2 - k^2) is only good to sqrt(eps).
    cov, var1, var2, ntk = cov[:ROWS0, :COLS0], var1[:ROWS0], var2[:COLS0], ntk[:ROWS0, :COLS0]
    v1, v2 = var1[:, None], var2[None, :]
    base = rules.nonlinearity(op, cov, v1, v2, ntk)
    c2 = 3.7
    scaled = rules.nonlinearity(op, c2 * cov, c2 * v1, c2 * v2, ntk)
    degree = rules.homogeneous_degree(op)
    if degree is None:  # Erf and Gelu really are not homogeneous
        assert not np.allclose(scaled[0], base[0], rtol=1e-3) and not np.allclose(scaled[0], c2 * base[0], rtol=1e-3)
        return
    np.testing.assert_allclose(scaled[0], c2**degree * base[0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(scaled[1], base[1], rtol=1e-12, atol=1e-14)  # K_dot has degree 0


@pytest.mark.parametrize("a,b", [(0.0, 1.0), (0.1, 1.0), (-0.5, 2.0), (-1.0, 1.0), (1.0, 1.0)])
def test_abrelu_correlation_fast_path(a, b):
    cov, var1, var2, ntk = _kernel_inputs()
    rng = np.random.default_rng(1)
    lam = np.concatenate([rng.uniform(-1, 1, 50), [-1.0, 1.0, 0.0, 1 + 1e-15, -1 - 1e-15]])
    g, kdot = rules.abrelu_correlation(a, b, lam)
    unit = rules.nonlinearity(P.ABRelu(a, b), lam, 1.0, 1.0, ntk=1.0)
    np.testing.assert_array_equal(g, unit[0])
    np.testing.assert_array_equal(kdot, unit[1])
    # Scaled back up it is the full rule (zero-variance pairs passed as lam = 0).
    scale = np.sqrt(np.outer(var1, var2))
    rho = np.divide(cov, scale, out=np.zeros_like(cov), where=scale > 0)
    g, kdot = rules.abrelu_correlation(a, b, rho)
    full = rules.nonlinearity(P.ABRelu(a, b), cov, var1[:, None], var2[None, :], ntk)
    np.testing.assert_allclose(scale * g, full[0], rtol=1e-7, atol=1e-12)  # sqrt(eps) at |rho| ~ 1
    np.testing.assert_allclose(ntk * kdot, full[1], rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("w,b", [(1.0, 0.0), (1.5, 0.2)])
def test_dense_and_scale_equal_neural_tangents(w, b):
    cov, var1, var2, ntk = _kernel_inputs()
    with jax.enable_x64(True):
        for incoming in (ntk, 0.0, None):
            for ours_fn, nt_layer in ((lambda n, t: rules.dense(P.Dense(8, w, b), n, t), stax.Dense(8, w, b)),
                                      (lambda n, t: rules.scale(P.Scale(w + b), n, t), ScaleLayer(w + b))):
                k = stax.Identity()[2](np.zeros((16, 1)), np.zeros((30, 1)))
                k = k.replace(nngp=jnp.asarray(cov), cov1=jnp.asarray(var1), cov2=jnp.asarray(var2),
                              ntk=None if incoming is None else jnp.asarray(incoming))
                out = nt_layer[2](k)
                nngp, new_ntk = ours_fn(cov, incoming)
                np.testing.assert_allclose(nngp, out.nngp, rtol=1e-14)
                np.testing.assert_allclose(ours_fn(var1, None)[0], out.cov1, rtol=1e-14)
                if incoming is None:
                    assert new_ntk is None and out.ntk is None
                else:
                    np.testing.assert_allclose(np.broadcast_to(new_ntk, cov.shape),
                                               np.broadcast_to(out.ntk, cov.shape), rtol=1e-14)


def test_bad_input():
    with pytest.raises(TypeError, match="elementwise"):
        rules.nonlinearity(P.Dense(3), np.eye(2), 1.0, 1.0)
    with pytest.raises(TypeError, match="elementwise"):
        rules.homogeneous_degree(P.Scale(2.0))
    with pytest.raises(ValueError, match="broadcast"):
        rules.nonlinearity(P.ABRelu(0.0, 1.0), np.eye(3), np.ones(2), np.ones(3))
    with pytest.raises(TypeError, match="Dense"):
        rules.dense(P.Scale(1.0), np.eye(2))
