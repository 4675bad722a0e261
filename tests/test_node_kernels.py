"""Node-level kernels on one graph: presets vs Monte Carlo, hand-computed cases, GCN
normalisation, scipy recursion == stax, low-rank (Nyström) error, GP on Planetoid."""

import math
from pathlib import Path

import jax
import neural_tangents as nt
import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp

import graph_ntk.nn as gnn
from graph_ntk.kernels.lowrank import lowrank_node_kernel, select_landmarks
from graph_ntk.kernels.node_kernel import exact_node_kernel
from graph_ntk.kernels.spaces import NodeSpace
from graph_ntk.models.node import gcn, gcnii, gin, node_kernel, sage
from graph_ntk.program import ABRelu, Aggregate, Dense

AggregateOp, DenseOp = Aggregate, Dense


def ReluOp():
    return ABRelu(0.0, 1.0)


def aggregation_operator(ei, n, normalization, self_loops, w=None):
    """The (n, n) map h' = C^T h of the engine's node space (rows: receivers)."""
    from graph_ntk.data.graph import Graph

    space = NodeSpace.from_graphs([Graph(n, ei, edge_weight=w)])
    return space.aggregation_maps(normalization, self_loops, None)[0]
from graph_ntk.node_inference import gp_posterior_mean, node_gp, node_gp_classify, node_gp_select

# NT warns on every FanIn that it cannot verify branch independence; the presets ensure it
# (and the Monte-Carlo tests check it).
pytestmark = pytest.mark.filterwarnings("ignore:`FanIn` layers assume independent inputs")

PLANETOID = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "planetoid"


@pytest.fixture(autouse=True, scope="module")
def single_threaded_blas():
    """The matrices here are tiny, so OpenBLAS's thread hand-offs cost more than they save; on a
    loaded 2-core machine they made a 120 x 120 ``eigh`` ~200x slower (0.44 s instead of 2 ms)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        yield


PRESETS = {
    "gcn": lambda **kw: gcn(3, b_std=0.2, **kw),
    "gin": lambda **kw: gin(2, 2, b_std=0.1, **kw),
    "sage-sum": lambda **kw: sage(2, "sum", b_std=0.1, **kw),
    "sage-concat": lambda **kw: sage(2, "concat", b_std=0.1, **kw),
    "gcnii": lambda **kw: gcnii(3, alpha=0.2, b_std=0.1, **kw),
}


def undirected(graph: nx.Graph) -> np.ndarray:
    e = np.array(graph.edges(), dtype=np.int64).T
    return np.hstack([e, e[::-1]])


@pytest.fixture(scope="module")
def small():
    """A 15-node connected small-world graph with Gaussian features."""
    ei = undirected(nx.connected_watts_strogatz_graph(15, 4, 0.3, seed=0))
    return np.random.default_rng(0).normal(size=(15, 6)), ei


@pytest.fixture(scope="module")
def medium():
    """A 120-node, 3-block SBM with class-dependent sparse binary features."""
    g = nx.stochastic_block_model([40, 40, 40], [[0.15, 0.01, 0.01], [0.01, 0.15, 0.01], [0.01, 0.01, 0.15]], seed=3)
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(3), 40)
    probs = 0.05 + 0.25 * (np.arange(30)[None, :] // 10 == labels[:, None])
    return sp.csr_matrix((rng.random((120, 30)) < probs).astype(np.float64)), undirected(g), labels


def rel_max(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


# ----------------------------------------------------------------- (a) Monte Carlo
def test_gcn_nngp_matches_monte_carlo_and_error_shrinks(small):
    x, ei = small
    net = gcn(2, width=512, out_dim=512, b_std=0.1)
    exact = exact_node_kernel(net, x, ei)
    pattern = ei.T[None].astype(np.int32)
    mc_fn = nt.monte_carlo_kernel_fn(net[0], net[1], jax.random.PRNGKey(1), n_samples=[25, 200])
    estimates = [np.asarray(k)[0, 0] for k in mc_fn(x[None], None, "nngp", pattern=(pattern, pattern))]
    errors = [rel_max(k, exact) for k in estimates]
    assert errors[1] < 0.02, errors
    assert errors[1] < errors[0], errors
    # A wrong kernel is far outside the tolerance: other normalisations, no self loops, no ReLU.
    for wrong in [
        (DenseOp(5, math.sqrt(2), 0.1), AggregateOp("mean", True), ReluOp(), DenseOp(5, math.sqrt(2), 0.1),
         AggregateOp("mean", True)),
        (DenseOp(5, math.sqrt(2), 0.1), AggregateOp("gcn", False), ReluOp(), DenseOp(5, math.sqrt(2), 0.1),
         AggregateOp("gcn", False)),
        (DenseOp(5, math.sqrt(2), 0.1), AggregateOp("gcn", True), DenseOp(5, math.sqrt(2), 0.1),
         AggregateOp("gcn", True)),
    ]:
        assert rel_max(exact_node_kernel(wrong, x, ei), estimates[1]) > 10 * 0.02


def test_gcn_ntk_matches_monte_carlo(small):
    x, ei = small
    net = gcn(2, width=1024, out_dim=1, b_std=0.1)
    exact, nngp = exact_node_kernel(net, x, ei, ("ntk", "nngp"))
    pattern = ei.T[None].astype(np.int32)
    mc_fn = nt.monte_carlo_kernel_fn(net[0], net[1], jax.random.PRNGKey(2), n_samples=[5, 40])
    errors = [rel_max(np.asarray(k)[0, 0], exact) for k in mc_fn(x[None], None, "ntk", pattern=(pattern, pattern))]
    assert errors[1] < 0.02, errors
    assert errors[1] < errors[0], errors
    assert rel_max(nngp, exact) > 10 * 0.02  # the NNGP is no substitute


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gin", "sage-sum", "sage-concat", "gcnii"])
def test_other_presets_nngp_match_monte_carlo(small, name):
    """In particular GCNII-style and SAGE's FanInSum rely on independent branches."""
    x, ei = small
    net = PRESETS[name](width=256, out_dim=256)
    exact = exact_node_kernel(net, x, ei)
    pattern = ei.T[None].astype(np.int32)
    mc_fn = nt.monte_carlo_kernel_fn(net[0], net[1], jax.random.PRNGKey(3), n_samples=[25, 400])
    errors = [rel_max(np.asarray(k)[0, 0], exact) for k in mc_fn(x[None], None, "nngp", pattern=(pattern, pattern))]
    assert errors[1] < 0.03, errors


# ----------------------------------------------------------------- (b) hand-computed cases
@pytest.mark.usefixtures("x64")  # checked to float64 precision
def test_one_layer_gcn_on_a_path_by_hand():
    x = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 1.0], [3.0, 1.0, 0.0]])
    ei = np.array([[0, 1, 1, 2], [1, 0, 2, 1]])
    r6 = 1 / math.sqrt(6)
    a_hat = np.array([[1 / 2, r6, 0], [r6, 1 / 3, r6], [0, r6, 1 / 2]])  # degrees 2, 3, 2 with self loops
    expected = a_hat.T @ (x @ x.T / 3) @ a_hat
    net = gcn(1, W_std=1.0, b_std=0.0)
    np.testing.assert_allclose(node_kernel(net[2], x, ei), expected, rtol=1e-12)
    np.testing.assert_allclose(exact_node_kernel(net, x, ei), expected, rtol=1e-12)
    # The NTK of one linear layer equals its NNGP.
    np.testing.assert_allclose(exact_node_kernel(net, x, ei, "ntk"), expected, rtol=1e-12)


def test_relu_layer_by_hand():
    """Two nodes at 45 degrees: the arc-cosine kernel and the NTK of Dense-ReLU-Dense."""
    x = np.array([[1.0, 0.0], [1.0, 1.0]])
    ei = np.zeros((2, 0), dtype=np.int64)
    k0 = x @ x.T / 2  # NT's input kernel; W_std = 1
    theta = math.pi / 4
    k1_off = math.sqrt(k0[0, 0] * k0[1, 1]) / (2 * math.pi) * (math.sin(theta) + (math.pi - theta) * math.cos(theta))
    k1 = np.array([[k0[0, 0] / 2, k1_off], [k1_off, k0[1, 1] / 2]])
    k_dot = np.array([[0.5, (math.pi - theta) / (2 * math.pi)], [(math.pi - theta) / (2 * math.pi), 0.5]])
    w2, b2 = 2.0, 0.3**2
    program = (DenseOp(4, 1.0, 0.0), ReluOp(), DenseOp(4, math.sqrt(w2), 0.3))
    nngp, ntk = exact_node_kernel(program, x, ei, ("nngp", "ntk"))
    np.testing.assert_allclose(nngp, w2 * k1 + b2, rtol=1e-12)
    np.testing.assert_allclose(ntk, (w2 * k1 + b2) + w2 * (k0 * k_dot), rtol=1e-12)


# ----------------------------------------------------------------- (c) GCN normalisation
@pytest.mark.usefixtures("x64")  # checked to float64 precision
@pytest.mark.parametrize("weighted", [False, True])
def test_gcn_normalisation_matches_dense_reference(small, weighted):
    _, ei = small
    n = 15
    w = np.random.default_rng(5).uniform(0.5, 2.0, ei.shape[1]) if weighted else None
    a = np.zeros((n, n))
    np.add.at(a, (ei[0], ei[1]), 1.0 if w is None else w)
    a_tilde = a + np.eye(n)
    d_inv_sqrt = np.diag(1 / np.sqrt(a_tilde.sum(axis=0)))
    reference = d_inv_sqrt @ a_tilde @ d_inv_sqrt
    np.testing.assert_allclose(aggregation_operator(ei, n, "gcn", True, w).toarray().T, reference, rtol=1e-12)
    # the stax layer: with K0 = I (x = sqrt(N) I), one aggregation gives C^T C = reference^T reference
    k = node_kernel(gnn.Aggregate("gcn", True, "SPARSE")[2], math.sqrt(n) * np.eye(n), ei, edge_weight=w)
    np.testing.assert_allclose(k, reference.T @ reference, rtol=1e-10, atol=1e-14)


# ----------------------------------------------------------------- (d) scipy recursion == stax
@pytest.mark.usefixtures("x64")  # checked to float64 precision
@pytest.mark.parametrize("name", list(PRESETS))
def test_exact_recursion_equals_stax(small, name):
    x, ei = small
    net = PRESETS[name]()
    want = node_kernel(net[2], x, ei, ("nngp", "ntk"))
    got = exact_node_kernel(net, x, ei, ("nngp", "ntk"))
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-8, atol=1e-8 * np.abs(w).max())
    rows, cols = np.array([3, 0, 14, 7]), np.array([1, 2])
    blocks = exact_node_kernel(net, x, ei, ("nngp", "ntk"), rows=rows, cols=cols)
    for g, w in zip(blocks, want):
        np.testing.assert_allclose(g, w[np.ix_(rows, cols)], rtol=1e-8, atol=1e-8 * np.abs(w).max())


@pytest.mark.usefixtures("x64")  # checked to float64 precision
def test_exact_recursion_weighted_sparse_float32(small):
    x, ei = small
    x = sp.csr_matrix(np.where(x > 0.5, x, 0.0))
    w = np.random.default_rng(0).uniform(0.5, 2.0, ei.shape[1])
    net = gcn(3, b_std=0.2)
    want = node_kernel(net[2], x, ei, "ntk", edge_weight=w)
    np.testing.assert_allclose(exact_node_kernel(net, x, ei, "ntk", edge_weight=w), want, rtol=1e-8)
    got32 = exact_node_kernel(net, x, ei, "ntk", edge_weight=w, dtype=np.float32)
    assert got32.dtype == np.float32
    assert rel_max(got32, want) < 1e-5


def test_bad_arguments_name_the_argument(small):
    x, ei = small
    with pytest.raises(ValueError, match="edge_index"):
        exact_node_kernel(gcn(), x, ei[:1])
    with pytest.raises(ValueError, match="get"):
        exact_node_kernel(gcn(), x, ei, "cov")
    with pytest.raises(ValueError, match="rows"):
        exact_node_kernel(gcn(), x, ei, rows=[99])
    with pytest.raises(ValueError, match="combine"):
        sage(2, "max")
    with pytest.raises(ValueError, match="beta"):
        gcnii(2, beta=[0.1])
    with pytest.raises(ValueError, match="method"):
        select_landmarks(x, 3, "greedy")
    with pytest.raises(ValueError, match="reg"):
        gp_posterior_mean(np.eye(2), np.eye(2), np.eye(2), -1.0)


# ----------------------------------------------------------------- (e) low rank
@pytest.mark.parametrize("name", list(PRESETS))
def test_lowrank_with_all_nodes_as_landmarks_is_exact(medium, name):
    x, ei, _ = medium
    net = PRESETS[name]()
    nngp, ntk = exact_node_kernel(net, x, ei, ("nngp", "ntk"))
    low = lowrank_node_kernel(net, x, ei, ("nngp", "ntk"), num_landmarks=x.shape[0])
    assert rel_max(low.block(), nngp) < 1e-6
    assert rel_max(low.block(get="ntk"), ntk) < 1e-6
    np.testing.assert_allclose(low.diag(), np.diag(low.block()), rtol=1e-10)


def test_lowrank_error_decreases_with_landmarks(medium):
    x, ei, _ = medium
    net = gcn(2, b_std=0.1)
    nngp, ntk = exact_node_kernel(net, x, ei, ("nngp", "ntk"))

    def errors(m, method):
        low = lowrank_node_kernel(net, x, ei, ("nngp", "ntk"), num_landmarks=m, landmark_method=method, seed=0)
        return [np.linalg.norm(low.block(get=g) - k) / np.linalg.norm(k) for g, k in (("nngp", nngp), ("ntk", ntk))]

    for method in ("random", "kmeans++"):
        errs = np.array([errors(m, method) for m in (10, 30, 60, 100)])
        assert (np.diff(errs, axis=0) < 0).all(), (method, errs)
        assert errs[-1].max() < 0.05, (method, errs)


def test_lowrank_blocks_and_landmarks(medium):
    x, ei, _ = medium
    low = lowrank_node_kernel(gcn(2), x, ei, num_landmarks=20, seed=4)
    assert low.landmarks.shape == (20,) and np.array_equal(low.landmarks, np.unique(low.landmarks))
    full = low.block()
    np.testing.assert_allclose(low.block([5, 1], [0, 9, 3]), full[np.ix_([5, 1], [0, 9, 3])])
    # Right after a ReLU, Nyström is exact on every pair that involves a landmark.
    program = (DenseOp(8, 1.0, 0.1), AggregateOp("gcn", True), ReluOp())
    after_relu = lowrank_node_kernel(program, x, ei, landmarks=low.landmarks).block()
    exact = exact_node_kernel(program, x, ei)
    np.testing.assert_allclose(after_relu[:, low.landmarks], exact[:, low.landmarks], rtol=1e-7)
    assert rel_max(after_relu, exact) > 1e-3  # ...and only there
    with pytest.raises(ValueError, match="NTK was not computed"):
        low.block(get="ntk")


# ----------------------------------------------------------------- GP
@pytest.mark.usefixtures("x64")  # checked to float64 precision
def test_gp_mean_matches_neural_tangents_gp_inference():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(30, 30))
    k = a @ a.T
    targets = np.eye(4)[rng.integers(0, 4, 20)]
    predict_fn = nt.predict.gp_inference(k[:20, :20], targets, diag_reg=0.05)
    np.testing.assert_allclose(gp_posterior_mean(k[:20, :20], k[20:, :20], targets, 0.05),
                               predict_fn("nngp", k_test_train=k[20:, :20]), rtol=1e-8)


def test_gp_select_on_sbm(medium):
    x, ei, labels = medium
    # disjoint splits (train 0 mod 8, val 1 mod 4, test 2 mod 4): node_gp refuses overlapping ones
    train, val, test = np.arange(0, 120, 8), np.arange(1, 120, 4), np.arange(2, 120, 4)
    res = node_gp(gcn(2), x, ei, labels, train, val, test, 3)
    assert res.test_accuracy > 0.9 and res.reg in res.val_accuracies
    low = node_gp(gcn(2), x, ei, labels, train, val, test, 3, get="ntk", method="lowrank", num_landmarks=40)
    assert low.test_accuracy > 0.9
    k = exact_node_kernel(gcn(2), x, ei)
    assert res.test_accuracy == node_gp_classify(k[np.ix_(train, train)], k[np.ix_(test, train)], labels[train], 3,
                                                 res.reg, labels[test])
    with pytest.raises(ValueError, match="kernel_block"):
        node_gp_select(lambda r, c: np.zeros((2, 2)), labels, train, val, test, 3)


# ----------------------------------------------------------------- (f) Planetoid
def planetoid(name: str):
    if not (PLANETOID / name).is_dir():
        pytest.skip(f"Planetoid data not found at {PLANETOID / name}")
    from graph_ntk.datasets.planetoid import load_planetoid

    return load_planetoid(PLANETOID, name)


def test_cora_gcn_nngp_gp_accuracy():
    """GCNGP, public split, raw features, ridge chosen on the 500 validation nodes."""
    d = planetoid("cora")
    res = node_gp(gcn(2), d.x, d.edge_index, d.y, d.train_idx, d.val_idx, d.test_idx, d.num_classes)
    assert res.test_accuracy >= 0.80, res


@pytest.mark.slow
def test_citeseer_gcn_gp_accuracy_and_cora_lowrank():
    d = planetoid("citeseer")
    for get in ("nngp", "ntk"):
        res = node_gp(gcn(2), d.x, d.edge_index, d.y, d.train_idx, d.val_idx, d.test_idx, d.num_classes, get=get)
        assert res.test_accuracy >= 0.70, (get, res)
    d = planetoid("cora")
    res = node_gp(gcn(2), d.x, d.edge_index, d.y, d.train_idx, d.val_idx, d.test_idx, d.num_classes,
                  method="lowrank", num_landmarks=1000)
    assert res.test_accuracy >= 0.78, res
