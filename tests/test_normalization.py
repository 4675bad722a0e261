"""graph_ntk.data.normalization: one degree normalisation for NumPy and JAX, dense and sparse."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from graph_ntk.data.normalization import aggregation_coefficients, in_degrees, node_scales
from graph_ntk.kernels.spaces import aggregation_matrix
from graph_ntk.layers.aggregate import _dense_operator, _sparse_operator

# Arcs i -> j of a 5-node graph: a repeated arc (0 -> 1 twice), a weighted one, node 4 isolated.
SENDERS = np.array([0, 0, 1, 2, 3, 2])
RECEIVERS = np.array([1, 1, 0, 1, 2, 3])
WEIGHTS = np.array([1.0, 1.0, 2.0, 0.5, 1.0, 3.0])


def _by_hand(normalization: str) -> np.ndarray:
    """c_e from the definition, one arc at a time."""
    degree = np.zeros(5)
    for r, w in zip(RECEIVERS, WEIGHTS):
        degree[r] += w
    out = []
    for s, r, w in zip(SENDERS, RECEIVERS, WEIGHTS):
        if normalization == "sum":
            out.append(w)
        elif normalization == "mean":
            out.append(w / degree[r])
        else:
            out.append(w / np.sqrt(degree[s] * degree[r]) if degree[s] > 0 else 0.0)
    return np.array(out)


@pytest.mark.parametrize("normalization", ["sum", "mean", "gcn"])
def test_coefficients_numpy_and_jax(normalization):
    want = _by_hand(normalization)
    got = aggregation_coefficients(SENDERS, RECEIVERS, WEIGHTS, 5, normalization)
    np.testing.assert_allclose(got, want, rtol=1e-15)
    # Inside jit + vmap with jax.numpy (as Aggregate uses it), default and custom segment sums.
    fn = jax.jit(jax.vmap(lambda s, r, w: aggregation_coefficients(s, r, w, 5, normalization, xp=jnp)))
    stacked = [jnp.asarray(np.stack([a, a])) for a in (SENDERS, RECEIVERS, WEIGHTS.astype(np.float32))]
    np.testing.assert_allclose(np.asarray(fn(*stacked))[1], want, rtol=1e-6)
    seg = lambda v, i, n: jax.ops.segment_sum(v, i, num_segments=n)  # noqa: E731
    got = aggregation_coefficients(*map(jnp.asarray, (SENDERS, RECEIVERS, WEIGHTS.astype(np.float32))), 5,
                                   normalization, xp=jnp, segment_sum=seg)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6)


def test_degrees_and_scales():
    degree = in_degrees(RECEIVERS, WEIGHTS, 5)
    assert degree.tolist() == [2.0, 2.5, 1.0, 3.0, 0.0]
    s, r = node_scales(degree, "mean")
    assert s.tolist() == [1.0] * 5 and r.tolist() == [0.5, 0.4, 1.0, 1 / 3, 0.0]
    s, r = node_scales(np.array([[4.0, 0.0, -1.0]]), "gcn")  # batch axes pass through; d <= 0 gives 0
    assert s.tolist() == r.tolist() == [[0.5, 0.0, 0.0]]
    with pytest.raises(ValueError, match="normalization must be 'sum', 'mean' or 'gcn'"):
        node_scales(degree, "max")


@pytest.mark.parametrize("normalization", ["sum", "mean", "gcn"])
@pytest.mark.parametrize("self_loops", [False, True])
def test_every_operator_is_the_same_matrix(normalization, self_loops):
    """Aggregate's dense and sparse operators and the scipy operator are one matrix C."""
    n = 5
    adjacency = np.zeros((n, n))
    np.add.at(adjacency, (SENDERS, RECEIVERS), WEIGHTS)
    ones = jnp.ones((1, n))
    with jax.enable_x64(True):
        dense = np.asarray(_dense_operator(jnp.asarray(adjacency[None]), ones, normalization, self_loops,
                                           jnp.float64))[0]
        pattern = jnp.asarray(np.stack([SENDERS, RECEIVERS], axis=1)[None])
        s, r, c = _sparse_operator(pattern, jnp.asarray(WEIGHTS[None]), ones, normalization, self_loops, jnp.float64)
    sparse = np.zeros((n, n))
    np.add.at(sparse, (np.asarray(s)[0], np.asarray(r)[0]), np.asarray(c)[0])
    scipy_ct = aggregation_matrix(SENDERS, RECEIVERS, WEIGHTS, n, normalization, self_loops).toarray()
    np.testing.assert_allclose(dense, sparse, rtol=1e-14)
    np.testing.assert_allclose(scipy_ct.T, sparse, rtol=1e-14)
    if not self_loops:
        want = np.zeros((n, n))
        np.add.at(want, (SENDERS, RECEIVERS), _by_hand(normalization))
        np.testing.assert_allclose(sparse, want, rtol=1e-14)
