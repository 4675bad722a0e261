"""The cross executor (:mod:`graph_ntk.kernels.cross_exec`): the kernels between two chunks of
graphs without the items within one chunk, as the engine runs pairs of chunks.

Truth is the square executor on both chunks together (itself tested against NT in
``test_item_engine.py``). Sum aggregation of one-hot tags makes some pairs of distinct items
exactly collinear (correlation 1), where the ReLU's NTK factor ``1 - arccos(λ)/π`` has an
infinite slope: a rounding difference of 1e-16 in λ moves it by ~1e-8, in either executor
(against exact arithmetic both are that far off). Those cases get a 1e-7 tolerance, all
others 1e-11.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import graph_ntk.engine.item_path as item_path
import graph_ntk.nn as nn
from graph_ntk.engine import GNTK, gram
from graph_ntk.kernels.program_gram import cross_supported, node_variances, program_gram
from test_item_engine import DESCRIPTIONS, NOT_CHAINS, NUM_TAGS, NUM_X, input_dim, make_graphs, rel_err

CHAINS = [name for name in DESCRIPTIONS if name not in NOT_CHAINS]
# one input kind per description, every kind at least once
KINDS = ("labels", "features", "both", "weighted", "directed", "selfloops")


def _tolerance(name: str, kind: str) -> float:
    collinear = kind in ("labels", "directed", "selfloops") and "mean" not in name
    return 1e-7 if collinear else 1e-11


@pytest.mark.parametrize("i, name", list(enumerate(CHAINS)))
def test_cross_equals_block_of_joint_gram(i, name):
    kind = KINDS[i % len(KINDS)]
    rng = np.random.default_rng(i)
    graphs = make_graphs(kind, seed=20 + i, sizes=tuple(rng.integers(1, 9, 12)))
    program = DESCRIPTIONS[name](input_dim(kind)).program
    assert cross_supported(program) == (name != "readout_mlp")  # a ReLU after the pool needs graph variances
    if not cross_supported(program):
        return
    a, b = graphs[:7], graphs[7:]
    truth = program_gram(program, a, b, num_tags=NUM_TAGS, block_size=3)
    # tiny tiles: many block boundaries
    va = node_variances(program, a, num_tags=NUM_TAGS)
    vb = node_variances(program, b, num_tags=NUM_TAGS, max_entries=1)
    cross = program_gram(program, a, b, num_tags=NUM_TAGS, block_size=3, variances=(va, vb), backend="numpy")
    assert cross.executor == "cross" and cross.nngp.shape == (7, 5)
    tol = _tolerance(name, kind)
    assert rel_err(cross.nngp, truth.nngp) < tol and rel_err(cross.ntk, truth.ntk) < tol


def test_node_variances_do_not_depend_on_the_chunking():
    graphs = make_graphs("both", seed=3, sizes=(1, 5, 3, 8, 2, 6, 4))
    program = DESCRIPTIONS["gcn_gelu"](input_dim("both")).program
    whole = node_variances(program, graphs, num_tags=NUM_TAGS)
    cut = node_variances(program, graphs, num_tags=NUM_TAGS, max_entries=1)  # one graph per batch
    assert sorted(whole) == sorted(cut) == [1, 2]  # after each aggregation
    assert whole[2].shape == (sum(g.num_nodes for g in graphs),)
    for k in (1, 2):
        np.testing.assert_allclose(cut[k], whole[k], rtol=1e-14)
    # a graph alone gives its nodes the same variances
    single = node_variances(program, [graphs[3]], num_tags=NUM_TAGS)
    np.testing.assert_allclose(single[2], whole[2][9:17], rtol=1e-14)
    # and they are the diagonal of the square executor's node kernel, by hand: K after the
    # first aggregation of a GCN (normalised, self loops) on Dense(64) inputs is M K0 Mᵀ
    g = graphs[3]
    phi = np.concatenate([np.eye(NUM_TAGS)[g.node_labels], g.x], axis=1) / np.sqrt(NUM_TAGS + NUM_X)
    a = np.eye(g.num_nodes)
    a[g.edge_index[1], g.edge_index[0]] = 1.0
    deg = a.sum(1)
    m = a / np.sqrt(np.outer(deg, deg))
    np.testing.assert_allclose(single[1], np.diag(m @ phi @ phi.T @ m.T), rtol=1e-12)


def _node_level_variances(program, graphs):
    """Oracle: each graph's whole node kernel (no items), dense, NT's closed forms."""
    from graph_ntk.kernels.chain import chain_plan
    from graph_ntk.kernels.dense_exec import pointwise
    from graph_ntk.kernels import rules
    from graph_ntk.kernels.program_gram import _inputs
    from graph_ntk.program import Dense, Scale, normalize
    from graph_ntk.kernels.spaces import NodeSpace

    plan = chain_plan(normalize(program))
    out: dict[int, list] = {}
    for g in graphs:
        part, phi, _ = _inputs([g], NUM_TAGS, np.float64)
        x = phi[part.items]
        kern = x @ x.T
        k = 0
        for step in plan.trunk:
            if isinstance(step, tuple) and step[0] == "tap":
                continue
            if isinstance(step, tuple):
                op = step[1]
                maps = NodeSpace.from_graphs([g]).aggregation_maps(op.normalization, op.add_self_loops, op.edge_types)
                kern = sum(m.toarray() @ kern @ m.toarray().T for m in maps)
                k += 1
                out.setdefault(k, []).append(np.diag(kern).copy())
            elif isinstance(step, (Dense, Scale)):
                kern = pointwise(step, kern, None, None, None)[0]
            else:
                q = np.diag(kern)
                kern = rules.nonlinearity(step, kern, q[:, None], q[None, :])[0]
    return {k: np.concatenate(v) for k, v in out.items()}


def _symmetric_graphs():
    """Stars, cycles and paths with repeated tags: many nodes share an item within a graph."""
    from graph_ntk.data.graph import Graph
    out = []
    for n in (7, 4, 9, 5, 6):
        star = np.array([[0] * (n - 1) + list(range(1, n)), list(range(1, n)) + [0] * (n - 1)])
        out.append(Graph(n, star, node_labels=np.zeros(n, int), x=np.ones((n, NUM_X))))
        ring = np.array([list(range(n)) + [(i + 1) % n for i in range(n)], [(i + 1) % n for i in range(n)] + list(range(n))])
        out.append(Graph(n, ring, node_labels=np.arange(n) % 2, x=np.ones((n, NUM_X))))
    return out


@pytest.mark.parametrize("i, name", list(enumerate(CHAINS)))
def test_node_variances_equal_the_node_level_kernels(i, name):
    """The item-compressed pass equals every graph's own node kernel, batched (padded) or not."""
    kind = ("both", "directed", "selfloops", "weighted")[i % 4]
    graphs = make_graphs(kind, seed=40 + i, sizes=(1, 6, 3, 8, 5, 7)) + (_symmetric_graphs() if kind == "both" else [])
    program = DESCRIPTIONS[name](input_dim(kind)).program
    if not cross_supported(program):
        return
    truth = _node_level_variances(program, graphs)
    tol = 1e-12 if _tolerance(name, kind) == 1e-11 else 1e-7  # collinear items: see the module docstring
    for max_entries in (1, 200, 1 << 22):
        got = node_variances(program, graphs, num_tags=NUM_TAGS, max_entries=max_entries)
        assert sorted(got) == sorted(truth)
        for k in truth:
            np.testing.assert_allclose(got[k], truth[k], rtol=tol, atol=1e-14)


def test_shared_items_and_edge_types():
    """Chunks that share most items (one graph in both), relational aggregation, readouts of
    every depth (``each_readout``: the grid in one pass)."""
    graphs = [dataclasses.replace(g, edge_type=np.arange(g.num_edges) % 2)
              for g in make_graphs("labels", seed=5, sizes=(4, 6, 5, 3))]
    program = nn.serial(nn.Dense(64), nn.Aggregate("mean", True, edge_types=2), nn.Dense(64), nn.Relu(),
                        nn.Dense(64), nn.Aggregate("mean", True, edge_types=2), nn.Dense(64), nn.Relu(),
                        nn.Dense(64), nn.GlobalSumPool()).program
    a, b = graphs[:3], graphs[1:]
    truth = program_gram(program, a, b, num_tags=NUM_TAGS)
    v = node_variances(program, graphs, num_tags=NUM_TAGS)
    starts = np.cumsum([0] + [g.num_nodes for g in graphs])
    va = {k: x[: starts[3]] for k, x in v.items()}
    vb = {k: x[starts[1]:] for k, x in v.items()}
    cross = program_gram(program, a, b, num_tags=NUM_TAGS, variances=(va, vb), backend="numpy")
    assert rel_err(cross.nngp, truth.nngp) < 1e-12 and rel_err(cross.ntk, truth.ntk) < 1e-12

    gntk = DESCRIPTIONS["gntk_mean_jk"](NUM_TAGS).program
    truth = program_gram(gntk, a, b, num_tags=NUM_TAGS, each_readout=True)
    va, vb = (node_variances(gntk, side, num_tags=NUM_TAGS) for side in (a, b))
    cross = program_gram(gntk, a, b, num_tags=NUM_TAGS, each_readout=True, variances=(va, vb), backend="numpy")
    assert len(cross.readouts) == len(truth.readouts) == 3
    for (k1, t1), (k2, t2) in zip(cross.readouts, truth.readouts):
        assert rel_err(k1, k2) < 1e-12 and rel_err(t1, t2) < 1e-12


def test_engine_runs_chunk_pairs_on_the_cross_executor(monkeypatch):
    graphs = make_graphs("labels", seed=9, sizes=tuple(np.random.default_rng(2).integers(2, 12, 40)))
    whole = gram(GNTK(3, 2, aggregation="mean"), graphs, num_tags=NUM_TAGS, progress=False)
    used = []
    original = item_path.program_gram

    def spy(*args, **kwargs):
        out = original(*args, **kwargs)
        used.append(out.executor)
        return out
    monkeypatch.setattr(item_path, "program_gram", spy)
    chunked = gram(GNTK(3, 2, aggregation="mean"), graphs, num_tags=NUM_TAGS, memory_limit=300_000, progress=False)
    assert "cross" in used and "tiled" in used  # pairs of chunks, and chunks with themselves
    assert used.count("cross") == used.count("tiled") * (used.count("tiled") - 1) // 2
    assert rel_err(chunked, whole) < 1e-11
    np.testing.assert_array_equal(chunked, chunked.T)
    # a network the cross executor cannot run (ReLU after the readout) still chunks, jointly
    used.clear()
    net = DESCRIPTIONS["readout_mlp"](NUM_TAGS)
    whole = gram(net, graphs, num_tags=NUM_TAGS, progress=False)
    chunked = gram(net, graphs, num_tags=NUM_TAGS, memory_limit=300_000, progress=False)
    assert used and "cross" not in used
    assert rel_err(chunked, whole) < 1e-11


def test_variances_argument_is_checked():
    graphs = make_graphs("labels", seed=1)
    program = DESCRIPTIONS["gntk_mean_jk"](NUM_TAGS).program
    v = node_variances(program, graphs, num_tags=NUM_TAGS)
    with pytest.raises(ValueError, match="variances= needs graphs2"):
        program_gram(program, graphs, num_tags=NUM_TAGS, variances=(v, v), backend="numpy")
