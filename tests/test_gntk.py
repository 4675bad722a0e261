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
    init_fn, apply_fn, kernel_fn = gn.gntk(2, 1, "mean", True, input_dim=mutag.num_tags, width=512)
    exact = np.asarray(kernel_fn(batch.x, None, "nngp", **gn.kernel_kwargs(batch)))
    mc = nt.monte_carlo_kernel_fn(init_fn, apply_fn, jax.random.PRNGKey(0), 8, implementation=1)
    est = np.asarray(mc(batch.x, None, "nngp", **gn.kernel_kwargs(batch)))
    assert np.abs(est - exact).max() / np.abs(exact).max() < 0.05


def test_preset_arguments_are_checked():
    with pytest.raises(ValueError, match="aggregation"):
        gn.gntk(aggregation="max", input_dim=3)
    with pytest.raises(ValueError, match="input_dim"):
        gn.gntk(input_dim=0)
