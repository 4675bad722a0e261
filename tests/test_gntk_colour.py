"""GNTK / GNNGP Gram by WL colour compression: fixtures, a naive per-pair reference, invariances."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from graph_ntk.data.graph import Graph
from graph_ntk.datasets import load_gin
from graph_ntk.kernels import gntk_gram_colour, wl_colours

FIXTURES = [("sum", True, "sum_L4_R2_jk"), ("mean", True, "mean_L4_R2_jk"), ("sum", False, "sum_L4_R2_nojk")]


def naive_gntk_pair(
    g1: Graph, g2: Graph, num_tags: int, num_blocks: int, num_mlp_layers: int, aggregation: str, jk: bool, readout: str
) -> tuple[float, float]:
    """(NTK, NNGP) of one graph pair, node by node, following the fixture README literally."""

    def scaling(g: Graph) -> np.ndarray:
        a = np.zeros((g.num_nodes, g.num_nodes))
        a[g.edge_index[0], g.edge_index[1]] = 1.0
        a = np.maximum(a, a.T)
        np.fill_diagonal(a, 0.0)  # the simple graph's adjacency, then Ã = A + I
        a += np.eye(g.num_nodes)
        return a if aggregation == "sum" else a / a.sum(axis=1, keepdims=True)

    def run(xa, xb, pa, pb, var_a=None, var_b=None):
        s0 = xa @ xb.T
        k = pa @ s0 @ pb.T
        t = k.copy()
        jump_t, jump_k, variances = s0.copy(), s0.copy(), []
        for block in range(num_blocks):
            if block > 0:
                k, t = pa @ k @ pb.T, pa @ t @ pb.T
            for layer in range(num_mlp_layers):
                if var_a is None:  # the pair (G, G): variances are its own diagonal
                    da = db = np.sqrt(np.diag(k))
                    variances.append(da)
                else:
                    da, db = var_a[block * num_mlp_layers + layer], var_b[block * num_mlp_layers + layer]
                lam = np.clip(k / da[:, None] / db[None, :], -1.0, 1.0)
                angle = np.arccos(lam)
                k_new = da[:, None] * db[None, :] * (np.sin(angle) + (np.pi - angle) * np.cos(angle)) / np.pi
                t = t * (np.pi - angle) / np.pi + k_new
                k = k_new
            jump_t += t
            jump_k += k
        return (jump_t, jump_k) if jk else (t, k), variances

    x1, x2 = np.eye(num_tags)[g1.node_labels], np.eye(num_tags)[g2.node_labels]
    p1, p2 = scaling(g1), scaling(g2)
    _, var1 = run(x1, x1, p1, p1)
    _, var2 = run(x2, x2, p2, p2)
    (t, k), _ = run(x1, x2, p1, p2, var1, var2)
    norm = 1.0 if readout == "sum" else g1.num_nodes * g2.num_nodes
    return 2.0 * t.sum() / norm, 2.0 * k.sum() / norm


def random_graph(rng: np.random.Generator, max_nodes: int = 8, num_tags: int = 3) -> Graph:
    n = int(rng.integers(1, max_nodes + 1))
    upper = np.triu(rng.random((n, n)) < rng.uniform(0.1, 0.6), 1)
    s, r = np.nonzero(upper | upper.T)
    return Graph(n, np.stack([s, r]), node_labels=rng.integers(0, num_tags, n))


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b) / np.abs(b)))


@pytest.fixture(scope="module")
def mutag(shared_dir):
    return load_gin(shared_dir / "datasets" / "gin", "MUTAG").graphs


@pytest.mark.parametrize("aggregation, jk, name", FIXTURES)
def test_reproduces_reference_fixtures(shared_dir, mutag, aggregation, jk, name):
    ref = np.load(shared_dir / "fixtures" / f"gntk_MUTAG_{name}.npy")
    res = gntk_gram_colour(mutag, num_blocks=4, num_mlp_layers=2, aggregation=aggregation, jumping_knowledge=jk)
    assert res.ntk.shape == (188, 188)
    assert rel_err(res.ntk, ref) < 1e-7
    single = gntk_gram_colour(mutag, aggregation=aggregation, jumping_knowledge=jk, dtype=np.float32)
    assert rel_err(single.ntk, ref) < 1e-4


def test_fixture_independent_of_blocking_and_threads(shared_dir, mutag):
    ref = np.load(shared_dir / "fixtures" / "gntk_MUTAG_mean_L4_R2_jk.npy")
    a = gntk_gram_colour(mutag, aggregation="mean", block_size=128, num_threads=1)
    b = gntk_gram_colour(mutag, aggregation="mean", block_size=200, num_threads=3)
    assert rel_err(a.ntk, ref) < 1e-7
    # Blocking changes the summation order; arccos near 1 turns that into ~1e-11.
    np.testing.assert_allclose(a.ntk, b.ntk, rtol=1e-9)
    np.testing.assert_allclose(a.nngp, b.nngp, rtol=1e-9)


@pytest.mark.parametrize("aggregation", ["sum", "mean"])
@pytest.mark.parametrize("jk", [True, False])
@pytest.mark.parametrize("readout", ["sum", "mean"])
def test_matches_naive_per_pair(aggregation, jk, readout):
    rng = np.random.default_rng(7)
    graphs = [random_graph(rng) for _ in range(9)]
    others = [random_graph(rng) for _ in range(4)]
    opts = dict(num_blocks=3, num_mlp_layers=2, aggregation=aggregation, jumping_knowledge=jk, readout=readout)
    sym = gntk_gram_colour(graphs, block_size=3, **opts)
    rect = gntk_gram_colour(graphs, others, block_size=4, **opts)
    for res, right in ((sym, graphs), (rect, others)):
        ref = np.array([[naive_gntk_pair(a, b, 3, 3, 2, aggregation, jk, readout) for b in right] for a in graphs])
        # The reference's arccos of a clipped ~1 cosine carries ~1e-9 noise; ours is exact there.
        assert rel_err(res.ntk, ref[..., 0]) < 1e-7
        assert rel_err(res.nngp, ref[..., 1]) < 1e-12


def test_rectangular_equals_block_of_joint_gram():
    rng = np.random.default_rng(3)
    graphs = [random_graph(rng, 10, 4) for _ in range(12)]
    joint = gntk_gram_colour(graphs, aggregation="mean", num_blocks=2, num_mlp_layers=3, block_size=5)
    rect = gntk_gram_colour(graphs[:7], graphs[7:], aggregation="mean", num_blocks=2, num_mlp_layers=3, block_size=5)
    np.testing.assert_allclose(rect.ntk, joint.ntk[:7, 7:], rtol=1e-9)
    np.testing.assert_allclose(rect.nngp, joint.nngp[:7, 7:], rtol=1e-9)


def test_symmetric_psd_and_invariant_to_node_and_graph_order():
    rng = np.random.default_rng(11)
    graphs = [random_graph(rng, 12, 3) for _ in range(15)]
    res = gntk_gram_colour(graphs, block_size=7)
    for gram in (res.ntk, res.nngp):
        np.testing.assert_array_equal(gram, gram.T)
        assert np.linalg.eigvalsh(gram).min() > -1e-10 * np.abs(gram).max()

    def relabel(g: Graph) -> Graph:
        perm = rng.permutation(g.num_nodes)  # node v becomes perm[v]
        labels = np.empty_like(g.node_labels)
        labels[perm] = g.node_labels
        return Graph(g.num_nodes, perm[g.edge_index], node_labels=labels)

    order = rng.permutation(len(graphs))
    shuffled = gntk_gram_colour([relabel(graphs[i]) for i in order], block_size=7)
    np.testing.assert_allclose(shuffled.ntk, res.ntk[np.ix_(order, order)], rtol=1e-9)
    np.testing.assert_allclose(shuffled.nngp, res.nngp[np.ix_(order, order)], rtol=1e-9)


def test_self_loops_and_repeated_arcs_are_ignored():
    rng = np.random.default_rng(5)
    plain = [random_graph(rng) for _ in range(5)]
    noisy = []
    for g in plain:
        loops = np.stack([np.arange(g.num_nodes)] * 2)[:, : max(1, g.num_nodes // 2)]
        arcs = np.concatenate([g.edge_index, g.edge_index, loops], axis=1)
        noisy.append(Graph(g.num_nodes, arcs, node_labels=g.node_labels))
    np.testing.assert_allclose(gntk_gram_colour(noisy).ntk, gntk_gram_colour(plain).ntk, rtol=1e-9)


def test_wl_colour_counts(shared_dir, mutag):
    assert wl_colours(mutag, 4).num_colours == (7, 26, 171, 572, 1197)
    assert wl_colours(mutag, 4, distinguish_self=True).num_colours[-1] == 1197
    ptc = load_gin(shared_dir / "datasets" / "gin", "PTC").graphs
    assert wl_colours(ptc, 4).num_colours[-1] == 3999
    assert wl_colours(ptc, 4, distinguish_self=True).num_colours[-1] == 4000


def naive_wl(graphs: list[Graph], depth: int, distinguish_self: bool) -> list[list[tuple]]:
    """Colours as explicit nested keys (unfolding trees), per depth."""
    colours = [[(int(t),) for t in g.node_labels] for g in graphs]
    out = [colours]
    for _ in range(depth):
        nxt = []
        for g, col in zip(graphs, colours):
            nbrs = [set() for _ in range(g.num_nodes)]
            for s, r in g.edge_index.T:
                if s != r:
                    nbrs[r].add(int(s))
                    nbrs[s].add(int(r))
            if distinguish_self:
                keys = [(col[v], tuple(sorted(Counter(col[u] for u in nbrs[v]).items()))) for v in range(g.num_nodes)]
            else:
                keys = [tuple(sorted(Counter(col[u] for u in nbrs[v] | {v}).items())) for v in range(g.num_nodes)]
            nxt.append(keys)
        colours = nxt
        out.append(colours)
    return out


@pytest.mark.parametrize("distinguish_self", [False, True])
def test_wl_colours_are_exact(distinguish_self):
    rng = np.random.default_rng(2)
    graphs = [random_graph(rng, 9, 2) for _ in range(30)]
    wl = wl_colours(graphs, 3, distinguish_self=distinguish_self)
    offsets = np.concatenate([[0], np.cumsum([g.num_nodes for g in graphs])])
    for level, keys in enumerate(naive_wl(graphs, 3, distinguish_self)):
        flat = [key for per_graph in keys for key in per_graph]
        ids = wl.node_colours[level]
        # Same key <=> same id, in both directions.
        assert len(set(flat)) == len(set(ids.tolist())) == len(set(zip(flat, ids.tolist())))
        counts = wl.graph_counts[level].toarray()
        for gi in range(len(graphs)):
            mine = ids[offsets[gi] : offsets[gi + 1]]
            np.testing.assert_array_equal(counts[gi], np.bincount(mine, minlength=counts.shape[1]))


def test_wl_child_counts_describe_closed_neighbourhoods():
    rng = np.random.default_rng(4)
    graphs = [random_graph(rng, 9, 3) for _ in range(20)]
    wl = wl_colours(graphs, 2)
    offsets = np.concatenate([[0], np.cumsum([g.num_nodes for g in graphs])])
    for level in (1, 2):
        m = wl.child_counts[level - 1].toarray()
        for gi, g in enumerate(graphs):
            a = np.zeros((g.num_nodes, g.num_nodes))
            a[g.edge_index[0], g.edge_index[1]] = 1
            a = np.maximum(a, a.T) + np.eye(g.num_nodes)
            prev = wl.node_colours[level - 1][offsets[gi] : offsets[gi + 1]]
            here = wl.node_colours[level][offsets[gi] : offsets[gi + 1]]
            for v in range(g.num_nodes):
                np.testing.assert_array_equal(m[here[v]], np.bincount(prev, weights=a[v], minlength=m.shape[1]))


def test_classical_refinement_refines_closed_one(mutag):
    closed = wl_colours(mutag, 4)
    classic = wl_colours(mutag, 4, distinguish_self=True)
    for a, b in zip(classic.node_colours, closed.node_colours):
        pairs = set(zip(a.tolist(), b.tolist()))
        assert len(pairs) == len(set(a.tolist()))  # each classical colour has one closed colour


def test_bad_input():
    g = Graph(2, np.array([[0, 1], [1, 0]]), node_labels=np.array([0, 1]))
    unlabelled = Graph(2, np.array([[0, 1], [1, 0]]))
    with pytest.raises(ValueError, match="graphs must contain"):
        gntk_gram_colour([])
    with pytest.raises(ValueError, match="graphs2 must contain"):
        gntk_gram_colour([g], [])
    with pytest.raises(ValueError, match=r"graphs\[1\] has no node_labels"):
        gntk_gram_colour([g, unlabelled])
    with pytest.raises(ValueError, match=r"graphs2\[0\] has no node_labels"):
        gntk_gram_colour([g], [unlabelled])
    with pytest.raises(ValueError, match="aggregation"):
        gntk_gram_colour([g], aggregation="max")
    with pytest.raises(ValueError, match="dtype"):
        gntk_gram_colour([g], dtype=np.int32)
    with pytest.raises(ValueError, match="graphs must contain"):
        wl_colours([], 2)
