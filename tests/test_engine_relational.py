"""Relational aggregation over MUTAG's edge labels on the item engine == NT's kernel_fn."""

import jax
import numpy as np
import pytest

import graph_ntk as gn
import graph_ntk.nn as nn
from graph_ntk.kernels.program_gram import program_gram


@pytest.fixture(scope="module")
def mutag_tu(shared_dir):
    return gn.load_tu(shared_dir / "datasets" / "tu", "MUTAG")


def _network(types: int):
    return nn.serial(nn.Dense(64, W_std=1.3), nn.Aggregate("sum", True, edge_types=types), nn.Dense(64), nn.Relu(),
                     nn.Aggregate("mean", True, edge_types=types), nn.Dense(64, 1.0, 0.2), nn.Erf(),
                     nn.GlobalSumPool())


@pytest.mark.parametrize("executor", ["dense", "tiled"])
def test_relational_engine_equals_nt(mutag_tu, executor):
    types = mutag_tu.meta["num_edge_types"]
    graphs = mutag_tu.graphs[:10]
    net = _network(types)
    with jax.enable_x64(True):
        batch = gn.GraphBatch.from_graphs(graphs, num_tags=mutag_tu.num_tags, num_edge_types=types)
        ref = net[2](batch.x, None, ("nngp", "ntk"), **gn.kernel_kwargs(batch))
    res = program_gram(net.program, graphs, num_tags=mutag_tu.num_tags, executor=executor, block_size=7)
    for want, got in ((ref.nngp, res.nngp), (ref.ntk, res.ntk)):
        want = np.asarray(want)
        assert np.abs(got - want).max() <= 1e-8 * np.abs(want).max()
    # the edge types matter: the same network with one type gives another kernel
    plain = program_gram(_network(1).program, [gn.Graph(g.num_nodes, g.edge_index, g.node_labels) for g in graphs],
                         num_tags=mutag_tu.num_tags)
    assert np.abs(plain.ntk - res.ntk).max() > 1e-3 * np.abs(res.ntk).max()


def test_gram_uses_edge_types_and_refuses_what_nt_refuses(mutag_tu):
    types = mutag_tu.meta["num_edge_types"]
    K = gn.gram(_network(types), mutag_tu.graphs[:6], progress=False)
    assert K.shape == (6, 6) and np.all(np.linalg.eigvalsh(K) > -1e-9 * np.abs(K).max())
    no_dense = nn.serial(nn.Dense(8), nn.Aggregate("sum", True, edge_types=types), nn.Relu(), nn.GlobalSumPool())
    with pytest.raises(ValueError, match="Gaussian input"):
        gn.gram(no_dense, mutag_tu.graphs[:3], progress=False)
    with pytest.raises(ValueError, match="edge type"):
        gn.gram(_network(2), mutag_tu.graphs[:3], progress=False)
