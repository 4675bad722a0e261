"""Aggregate and global pools: dense == sparse, == NT, == Monte Carlo / empirical NTK, invariances."""

import functools

import jax
import jax.numpy as jnp
import networkx as nx
import neural_tangents as nt
import numpy as np
import pytest
from neural_tangents import stax

from graph_ntk import (
    Aggregate,
    GlobalMaxPool,
    GlobalMeanPool,
    GlobalMinPool,
    GlobalSumPool,
    Graph,
    GraphBatch,
    kernel_kwargs,
)
from graphs import random_graphs as shared_random_graphs

random_graphs = functools.partial(shared_random_graphs, p=0.35, weighted=True)

NORMS = ["sum", "mean", "gcn"]


def network(norm, implementation, readout=GlobalSumPool):
    return stax.serial(
        stax.Dense(64, W_std=1.5, b_std=0.2), Aggregate(norm, add_self_loops=True, implementation=implementation),
        stax.Relu(), stax.Dense(64), Aggregate(norm, implementation=implementation), stax.Erf(),
        readout(), stax.Dense(1),
    )


@pytest.mark.usefixtures("x64")  # checked to float64 precision
@pytest.mark.parametrize("norm", NORMS)
def test_dense_and_sparse_agree(norm):
    graphs = random_graphs(0, [5, 8, 3, 7])
    dense, sparse = GraphBatch.from_graphs(graphs), GraphBatch.from_graphs(graphs, sparse=True)
    init_fn, apply_d, kernel_d = network(norm, "DENSE")
    _, apply_s, kernel_s = network(norm, "SPARSE")
    _, params = init_fn(jax.random.PRNGKey(0), dense.x.shape)
    np.testing.assert_allclose(apply_d(params, dense.x, **dense.apply_kwargs()),
                               apply_s(params, sparse.x, **sparse.apply_kwargs()), atol=1e-10)
    kd = kernel_d(dense.x, None, ("nngp", "ntk"), **kernel_kwargs(dense))
    ks = kernel_s(sparse.x, None, ("nngp", "ntk"), **kernel_kwargs(sparse))
    np.testing.assert_allclose(kd.nngp, ks.nngp, rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(kd.ntk, ks.ntk, rtol=1e-6, atol=1e-10)
    # node-level kernels too (no pooling): cross kernel between two different batches
    nd = stax.serial(stax.Dense(8), Aggregate(norm, True, "DENSE"), stax.Relu(), Aggregate(norm, False, "DENSE"))
    ns = stax.serial(stax.Dense(8), Aggregate(norm, True, "SPARSE"), stax.Relu(), Aggregate(norm, False, "SPARSE"))
    d2 = GraphBatch.from_graphs(random_graphs(1, [6, 4]), n_max=8)
    kd = nd[2](dense.x, d2.x, "ntk", **kernel_kwargs(dense, d2))
    ks = ns[2](sparse.x, d2.to_sparse().x, "ntk", **kernel_kwargs(sparse, d2.to_sparse()))
    np.testing.assert_allclose(kd, ks, rtol=1e-6, atol=1e-10)


def test_sparse_kernel_memory_is_linear_in_edges():
    # The sparse kernel gathers one side's arcs at a time: its largest intermediate is
    # (B1, B2, E, N), never NT's (E1, E2) product.
    graphs = random_graphs(2, [30, 30], p=0.3, weighted=False)
    b = GraphBatch.from_graphs(graphs, sparse=True)
    _, _, kernel_fn = stax.serial(stax.Dense(4), Aggregate("sum", implementation="SPARSE"))
    n, e = b.x.shape[1], b.edges.shape[1]
    jaxpr = jax.make_jaxpr(lambda x: kernel_fn(x, None, "nngp", **kernel_kwargs(b)))(b.x)
    biggest = max(int(np.prod(v.aval.shape)) for eqn in jaxpr.eqns for v in eqn.outvars)
    assert biggest <= 2 * 2 * e * n
    assert biggest < e * e


def test_equals_neural_tangents_aggregate_dense_sum():
    graphs = random_graphs(3, [6, 6, 6], weighted=True)
    b = GraphBatch.from_graphs(graphs)
    x = np.nan_to_num(b.x)  # same sizes: no padding, so NT's layer sees the same graphs
    ours = stax.serial(stax.Dense(16, b_std=0.1), Aggregate("sum"), stax.Relu(), Aggregate("sum"), stax.Dense(1))
    theirs = stax.serial(stax.Dense(16, b_std=0.1), stax.Aggregate(), stax.Relu(), stax.Aggregate(), stax.Dense(1))
    for get in ("nngp", "ntk"):
        np.testing.assert_allclose(ours[2](x, None, get, pattern=(b.adjacency, b.adjacency)),
                                   theirs[2](x, None, get, pattern=(b.adjacency, b.adjacency)), rtol=1e-6, atol=1e-12)


def test_hand_derived_one_layer_kernel():
    # 3-node path, sum aggregation with self loops, Dense(W_std=1): K = C^T (x x^T / d) C, pooled by sums.
    x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    g = Graph(3, np.array([[0, 1, 1, 2], [1, 0, 2, 1]]), x=x)
    b = GraphBatch.from_graphs([g])
    c = np.array([[1, 1, 0], [1, 1, 1], [0, 1, 1]], float)
    node_k = c.T @ (x @ x.T / 2) @ c
    _, _, kernel_fn = stax.serial(stax.Dense(5), Aggregate("sum", add_self_loops=True))
    np.testing.assert_allclose(kernel_fn(b.x, None, "nngp", **kernel_kwargs(b))[0, 0], node_k, atol=1e-12)
    _, _, pooled = stax.serial(stax.Dense(5), Aggregate("sum", add_self_loops=True), GlobalSumPool())
    np.testing.assert_allclose(pooled(b.x, None, "nngp", **kernel_kwargs(b))[0, 0], node_k.sum(), atol=1e-12)
    _, _, mean = stax.serial(stax.Dense(5), Aggregate("mean", add_self_loops=True), GlobalMeanPool())
    cm = c / c.sum(axis=0, keepdims=True)
    np.testing.assert_allclose(mean(b.x, None, "nngp", **kernel_kwargs(b))[0, 0],
                               (cm.T @ (x @ x.T / 2) @ cm).mean(), atol=1e-12)


@pytest.mark.usefixtures("x64")  # checked to float64 precision
def test_gcn_normalisation_matches_numpy():
    g = random_graphs(4, [6], weighted=False)[0]
    b = GraphBatch.from_graphs([g])
    a = b.adjacency[0] + np.eye(6)
    d = a.sum(0)
    ref = (a / np.sqrt(d)[:, None] / np.sqrt(d)[None, :]).T @ g.x
    _, apply_fn, _ = Aggregate("gcn", add_self_loops=True)
    np.testing.assert_allclose(apply_fn((), b.x, **b.apply_kwargs())[0], ref, atol=1e-12)


# float64, rtol ~ sqrt(eps): the ReLU arc-cosine is ill-conditioned where a node meets itself
# (correlation 1), so a diagonal entry moves by ~sqrt(eps) with the summation order, which the
# CPU decides (in float32 that is 3e-5, seen on an AVX-512 machine).
@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("norm,readout", [("sum", GlobalSumPool), ("mean", GlobalMeanPool), ("gcn", GlobalSumPool)])
def test_invariant_to_relabelling_and_padding(norm, readout):
    graphs = random_graphs(5, [4, 7, 5])
    _, _, kernel_fn = network(norm, "SPARSE", readout)
    ref = kernel_fn(*(2 * [GraphBatch.from_graphs(graphs, sparse=True).x])[:1], None, "ntk",
                    **kernel_kwargs(GraphBatch.from_graphs(graphs, sparse=True)))
    rng = np.random.default_rng(0)
    permuted = []
    for g in graphs:
        p = rng.permutation(g.num_nodes)
        inv = np.argsort(p)
        permuted.append(Graph(g.num_nodes, inv[g.edge_index], x=g.x[p], edge_weight=g.edge_weight))
    padded = GraphBatch.from_graphs(permuted, sparse=True, n_max=12, e_max=60)
    np.testing.assert_allclose(kernel_fn(padded.x, None, "ntk", **kernel_kwargs(padded)), ref, rtol=1e-8)
    dense = GraphBatch.from_graphs(permuted, n_max=11)
    _, _, kernel_dense = network(norm, "DENSE", readout)
    np.testing.assert_allclose(kernel_dense(dense.x, None, "ntk", **kernel_kwargs(dense)), ref, rtol=1e-8)


def test_padded_nodes_never_leak_in_finite_network():
    graphs = random_graphs(6, [4, 6])
    init_fn, apply_fn, _ = network("mean", "DENSE", GlobalMeanPool)
    small, padded = GraphBatch.from_graphs(graphs), GraphBatch.from_graphs(graphs, n_max=10)
    _, params = init_fn(jax.random.PRNGKey(0), padded.x.shape)
    np.testing.assert_allclose(apply_fn(params, small.x, **small.apply_kwargs()),
                               apply_fn(params, padded.x, **padded.apply_kwargs()), atol=1e-10)


@pytest.mark.usefixtures("x64")  # checked to float64 precision
@pytest.mark.parametrize("norm", NORMS)
def test_gram_is_symmetric_psd(norm):
    graphs = random_graphs(7, [3, 5, 8, 6, 4, 7, 5, 9])
    b = GraphBatch.from_graphs(graphs)
    gram = np.asarray(network(norm, "DENSE")[2](b.x, None, "ntk", **kernel_kwargs(b)))
    np.testing.assert_allclose(gram, gram.T, rtol=1e-12)
    eig = np.linalg.eigvalsh(gram)
    assert eig.min() >= -1e-6 * eig.max()


def test_nngp_matches_monte_carlo_and_converges():
    graphs = random_graphs(8, [4, 6, 5], features=4)
    b = GraphBatch.from_graphs(graphs)
    init_fn, apply_fn, kernel_fn = stax.serial(
        stax.Dense(256, b_std=0.1), Aggregate("mean", True), stax.Relu(), stax.Dense(256),
        Aggregate("gcn", True), stax.Relu(), GlobalSumPool(), stax.Dense(512))
    exact = np.asarray(kernel_fn(b.x, None, "nngp", **kernel_kwargs(b)))
    errors = []
    # NT averages over the 512 output channels too, so each draw is many samples.
    for n_samples in (1, 16):
        mc = nt.monte_carlo_kernel_fn(init_fn, apply_fn, jax.random.PRNGKey(1), n_samples, batch_size=3,
                                      implementation=1)
        est = np.asarray(mc(b.x, None, "nngp", **kernel_kwargs(b)))
        errors.append(np.abs(est - exact).max() / np.abs(exact).max())
    assert errors[1] < 0.05, errors
    assert errors[1] < errors[0]
    # A plausible wrong kernel (no self loops in the first aggregation) is far outside that bound.
    wrong = stax.serial(stax.Dense(256, b_std=0.1), Aggregate("mean", False), stax.Relu(), stax.Dense(256),
                        Aggregate("gcn", True), stax.Relu(), GlobalSumPool(), stax.Dense(512))[2]
    wrong_k = np.asarray(wrong(b.x, None, "nngp", **kernel_kwargs(b)))
    assert np.abs(wrong_k - exact).max() / np.abs(exact).max() > 0.1


def test_empirical_ntk_of_wide_network_matches_exact():
    graphs = random_graphs(9, [5, 4, 6], features=3)
    b = GraphBatch.from_graphs(graphs)
    init_fn, apply_fn, kernel_fn = stax.serial(stax.Dense(2048), Aggregate("sum", True), stax.Relu(),
                                               GlobalMeanPool(), stax.Dense(1))
    exact = np.asarray(kernel_fn(b.x, None, "ntk", **kernel_kwargs(b)))
    _, params = init_fn(jax.random.PRNGKey(3), b.x.shape)
    emp = np.asarray(nt.empirical_ntk_fn(apply_fn, trace_axes=(-1,))(b.x, None, params, **b.apply_kwargs()))
    assert np.abs(emp - exact).max() / np.abs(exact).max() < 0.1


def test_max_and_min_pool_finite_and_monte_carlo():
    graphs = random_graphs(10, [3, 5])
    b = GraphBatch.from_graphs(graphs, n_max=6)
    for pool, reduce in ((GlobalMaxPool, np.max), (GlobalMinPool, np.min)):
        _, apply_fn, kernel_fn = pool()
        out = np.asarray(apply_fn((), b.x, **b.apply_kwargs()))
        np.testing.assert_allclose(out, np.stack([reduce(g.x, axis=0) for g in graphs]))
        net = stax.serial(stax.Dense(32), Aggregate("sum", True), stax.Relu(), pool(), stax.Dense(1))
        with pytest.raises(NotImplementedError, match="monte_carlo_kernel_fn"):
            net[2](b.x, None, "nngp", **kernel_kwargs(b))
        mc = nt.monte_carlo_kernel_fn(net[0], net[1], jax.random.PRNGKey(0), 8, implementation=1)
        est = np.asarray(mc(b.x, None, "nngp", **kernel_kwargs(b)))
        assert est.shape == (2, 2) and np.all(np.isfinite(est)) and est[0, 0] > 0


def test_mean_pool_ignores_padding():
    x = np.array([[[1.0], [3.0], [np.nan]]])
    _, apply_fn, _ = GlobalMeanPool()
    assert float(apply_fn((), x, mask_constant=np.nan)[0, 0]) == 2.0


def test_layer_argument_errors():
    with pytest.raises(ValueError, match="normalization"):
        Aggregate("max")
    with pytest.raises(ValueError, match="implementation"):
        Aggregate(implementation="COO")
    _, apply_fn, kernel_fn = Aggregate()
    with pytest.raises(ValueError, match="pattern"):
        apply_fn((), np.ones((1, 3, 2)))
    with pytest.raises(ValueError, match=r"\(batch, 3, 3\)"):
        apply_fn((), np.ones((1, 3, 2)), pattern=np.ones((1, 4, 4)))
    with pytest.raises(ValueError, match="needs the graphs"):
        kernel_fn(np.ones((1, 3, 2)), None, "nngp")
