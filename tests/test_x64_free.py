"""Regressions for bugs that a globally enabled float64 used to hide.

These tests run with JAX's default 32-bit mode (tests/conftest.py no longer enables
float64 globally) and check that the library itself gets precision and dtypes right.
"""

import jax
import numpy as np
import pytest
from neural_tangents import stax

import graph_ntk
from graph_ntk import GraphBatch, gram, hierarchical_gntk, kernel_kwargs
from graphs import random_graphs


def test_suite_does_not_enable_float64_globally():
    assert not jax.config.jax_enable_x64, "some test module turned on jax_enable_x64 globally; use the x64 fixture"


@pytest.mark.parametrize("pool", [graph_ntk.GlobalMeanPool, graph_ntk.GlobalSumPool])
def test_global_pool_mask_constant_with_x2_none(pool):
    """kernel_fn(x, None, mask_constant=nan): the second copy of x is padded like the first,
    so its mean must divide by its real node count, not the padded size (was 0.120 vs 0.361)."""
    rng = np.random.default_rng(1)
    sizes = (2, 5, 3)
    graphs = [rng.normal(size=(n, 3)) for n in sizes]
    padded = np.full((len(sizes), max(sizes), 3), np.nan)
    for b, x in enumerate(graphs):
        padded[b, : len(x)] = x
    _, _, kernel_fn = stax.serial(stax.Dense(8, W_std=1.5, b_std=0.5), stax.Relu(), stax.Dense(8), pool())
    got = np.asarray(kernel_fn(padded, None, "nngp", mask_constant=np.nan))
    assert got.dtype == np.float32
    want = np.array([[float(kernel_fn(a[None], b[None], "nngp")[0, 0]) for b in graphs] for a in graphs])
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # x2 given explicitly was always right; x2=None must now agree with it.
    np.testing.assert_allclose(got, kernel_fn(padded, padded, "nngp", mask_constant=np.nan), rtol=1e-5)


@pytest.mark.parametrize("method", ["graclus", "kmis"])
def test_hierarchical_gram_float64_without_global_x64(method):
    """gram(..., dtype='float64') enables 64-bit mode for the call only; the coarsening's host
    callback used to return float32 there (CpuCallback: Expected float64, Actual float32)."""
    graphs = random_graphs(3, [4, 6, 5], p=0.5, weighted=False)
    net = hierarchical_gntk(method, 2, 1, input_dim=3, width=8)
    k64 = gram(net, graphs, dtype="float64", progress=False)
    assert k64.dtype == np.float64
    # Reference: the same kernel on one concrete padded batch (no callback), in float64.
    with jax.enable_x64(True):
        b = GraphBatch.from_graphs(graphs)
        ref = np.asarray(net[2](b.x, None, "ntk", **kernel_kwargs(b)))
    assert ref.dtype == np.float64
    # (diagonal entries go through arccos near 1, which amplifies rounding to ~1e-9)
    np.testing.assert_allclose(k64, ref, rtol=1e-7)
    k32 = gram(net, graphs, dtype="float32", progress=False)
    assert k32.dtype == np.float32
    np.testing.assert_allclose(k32, k64, rtol=1e-3)  # float32 arccos near 1 on the diagonal: ~1e-4
