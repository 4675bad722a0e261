"""The GNTK preset (a plain stax description) reproduces the reference Gram matrices."""

import jax
import neural_tangents as nt
import numpy as np
import pytest

import graph_ntk as gn
from graph_ntk.datasets import load_gin

FIXTURES = [("sum", True, "sum_L4_R2_jk"), ("mean", True, "mean_L4_R2_jk"), ("sum", False, "sum_L4_R2_nojk")]


@pytest.fixture(scope="module")
def mutag(shared_dir):
    return load_gin(shared_dir / "datasets" / "gin", "MUTAG")


@pytest.mark.usefixtures("x64")  # checked to float64 precision
@pytest.mark.parametrize("aggregation,jk,name", FIXTURES)
def test_stax_preset_reproduces_reference_fixture(mutag, shared_dir, aggregation, jk, name):
    ref = np.load(shared_dir / "fixtures" / f"gntk_MUTAG_{name}.npy")
    idx = np.arange(0, 188, 6)  # every 6th graph keeps the NT route quick; the colour engine covers all
    batch = gn.GraphBatch.from_graphs([mutag.graphs[i] for i in idx], num_tags=mutag.num_tags, sparse=True)
    _, _, kernel_fn = gn.gntk(4, 2, aggregation, jk, input_dim=mutag.num_tags, implementation="SPARSE")
    gram = np.asarray(jax.jit(lambda x: kernel_fn(x, None, "ntk", **gn.kernel_kwargs(batch)))(batch.x))
    np.testing.assert_allclose(gram, ref[np.ix_(idx, idx)], rtol=1e-7)


def test_finite_gntk_network_matches_its_kernel(mutag):
    # The JK branches use independent readout weights, so the finite network's kernel is the
    # GNTK's NNGP: Monte Carlo agrees (a shared-weight network would be off by the cross terms).
    graphs = [mutag.graphs[i] for i in (0, 1, 2, 3)]
    batch = gn.GraphBatch.from_graphs(graphs, num_tags=mutag.num_tags)
    net = gn.gntk(2, 1, "mean", True, input_dim=mutag.num_tags, width=512)
    assert _monte_carlo_error(net, batch, 8) < 0.05


def _monte_carlo_error(net, batch, samples: int) -> float:
    """Max relative error of the NNGP estimated from ``samples`` finite networks."""
    init_fn, apply_fn, kernel_fn = net
    exact = np.asarray(kernel_fn(batch.x, None, "nngp", **gn.kernel_kwargs(batch)))
    mc = nt.monte_carlo_kernel_fn(init_fn, apply_fn, jax.random.PRNGKey(0), samples, implementation=1)
    est = np.asarray(mc(batch.x, None, "nngp", **gn.kernel_kwargs(batch)))
    return float(np.abs(est - exact).max() / np.abs(exact).max())


def test_preset_arguments_are_checked():
    with pytest.raises(ValueError, match="aggregation"):
        gn.gntk(aggregation="max", input_dim=3)
    with pytest.raises(ValueError, match="input_dim"):
        gn.gntk(input_dim=0)


def _random_graphs(seed: int, count: int, num_tags: int, num_types: int | None = None):
    rng = np.random.default_rng(seed)
    graphs = []
    for _ in range(count):
        n = int(rng.integers(2, 7))
        pairs = np.array([(i, j) for i in range(n) for j in range(i + 1, n) if rng.random() < 0.5] or [(0, 1)]).T
        edges = np.concatenate([pairs, pairs[::-1]], axis=1)
        types = None if num_types is None else np.tile(rng.integers(0, num_types, pairs.shape[1]), 2)
        graphs.append(gn.Graph(n, edges, node_labels=rng.integers(0, num_tags, n), edge_type=types))
    return graphs


@pytest.mark.parametrize("aggregation,jk", [("sum", True), ("mean", False)])
def test_relational_gntk_with_one_edge_type_is_the_gntk(aggregation, jk):
    # The weight feeding a block moves behind the aggregation (both linear): for T = 1 the
    # kernel must be exactly the GNTK's, NTK and NNGP alike.
    graphs = _random_graphs(0, 6, 3, num_types=1)
    plain = [gn.Graph(g.num_nodes, g.edge_index, g.node_labels) for g in graphs]
    want = gn.gram(gn.gntk(3, 2, aggregation, jk, input_dim=3), plain, get=("nngp", "ntk"), num_tags=3, progress=False)
    got = gn.gram(gn.gntk(3, 2, aggregation, jk, input_dim=3, edge_types=1), graphs, get=("nngp", "ntk"),
                  num_tags=3, progress=False)
    # (to rounding: the arc-cosine near correlation 1 turns 1e-16 differences into ~1e-9)
    for a, b in zip(want, got):
        np.testing.assert_allclose(b, a, rtol=1e-8, atol=0)


@pytest.fixture(scope="module")
def mutag_tu(shared_dir):
    return gn.load_tu(shared_dir / "datasets" / "tu", "MUTAG")


@pytest.mark.parametrize("blocks,mlp,aggregation,jk", [(1, 1, "sum", True), (3, 2, "mean", True), (2, 1, "sum", False)])
def test_relational_gntk_on_bond_types(mutag_tu, blocks, mlp, aggregation, jk):
    types = mutag_tu.meta["num_edge_types"]
    graphs = mutag_tu.graphs[:8]
    net = gn.gntk(blocks, mlp, aggregation, jk, input_dim=mutag_tu.num_tags, edge_types=types)
    got = gn.gram(net, graphs, get=("nngp", "ntk"), progress=False, num_tags=mutag_tu.num_tags)
    with jax.enable_x64(True):  # NT's layers, node by node: the oracle
        batch = gn.GraphBatch.from_graphs(graphs, num_tags=mutag_tu.num_tags, num_edge_types=types)
        ref = net[2](batch.x, None, ("nngp", "ntk"), **gn.kernel_kwargs(batch))
    for want, K in ((ref.nngp, got[0]), (ref.ntk, got[1])):
        want = np.asarray(want)
        assert np.abs(K - want).max() <= 1e-8 * np.abs(want).max()
    assert np.linalg.eigvalsh(got[1]).min() > -1e-9 * np.abs(got[1]).max()
    # the bond types change the kernel (it is not the GNTK of the bare graphs)
    bare = [gn.Graph(g.num_nodes, g.edge_index, g.node_labels) for g in graphs]
    plain = gn.gram(gn.gntk(blocks, mlp, aggregation, jk, input_dim=mutag_tu.num_tags), bare, progress=False,
                    num_tags=mutag_tu.num_tags)
    assert np.abs(plain - got[1]).max() > 1e-3 * np.abs(plain).max()


def test_finite_relational_gntk_matches_its_kernel(mutag_tu):
    types = mutag_tu.meta["num_edge_types"]
    batch = gn.GraphBatch.from_graphs(mutag_tu.graphs[:4], num_tags=mutag_tu.num_tags, num_edge_types=types)
    net = gn.gntk(2, 1, "sum", True, input_dim=mutag_tu.num_tags, width=512, edge_types=types)
    # 32 networks: with 8 the overall scale (set by the input weights) still wanders by ~6 %
    assert _monte_carlo_error(net, batch, 32) < 0.05


def test_relational_arguments_are_checked():
    with pytest.raises(ValueError, match="edge_types"):
        gn.gntk(input_dim=3, edge_types=0)
    from graph_ntk.models.gntk import gntk_from_plan

    with pytest.raises(ValueError, match="coarsen"):
        gntk_from_plan(["block", "coarsen", "block"], num_mlp_layers=1, aggregation="sum", jumping_knowledge=True,
                       readout="sum", input_dim=3, width=8, coarsen=lambda rest: rest, edge_types=2)
