"""Pooling zoo: structure-only coarsening (exact kernels vs Monte Carlo, pooled adjacency vs
numpy), the Monte Carlo helper, and learned pools (finite formulas vs independent numpy,
permutation symmetry, padding)."""

import functools

import jax
import networkx as nx
import numpy as np
import pytest
from neural_tangents import stax

from graph_ntk import Aggregate, GlobalSumPool, Graph, GraphBatch, gntk, hierarchical_gntk, kernel_kwargs
from graph_ntk.layers.pooling.coarsening import (
    StructurePool,
    coarsen,
    coarsen_graph,
    graclus,
    kmis,
    node_decimation,
)
from graph_ntk.layers.pooling.learned import (
    AsymCheegerCutPool,
    DiffPool,
    DMoNPool,
    GlobalAttentionPool,
    GlobalAttnSumPool,
    JustBalancePool,
    LaPool,
    MemPooling,
    MinCutPool,
    SAGPooling,
    SortPool,
    TopKPooling,
    asym_cheeger_cut_losses,
    asym_cheeger_cut_pool,
    diffpool,
    diffpool_losses,
    dmon_losses,
    dmon_pool,
    just_balance_loss,
    just_balance_pool,
    lapool,
    mem_pool,
    mem_pooling_kl_loss,
    mincut_losses,
    mincut_pool,
    sag_pool,
    topk_pool,
)
from graph_ntk.monte_carlo import monte_carlo_kernel
from graphs import random_graphs as shared_random_graphs

random_graphs = functools.partial(shared_random_graphs, p=0.4, weighted=False)

METHODS = [("graclus", {}), ("ndp", {}), ("kmis", {"k": 1})]


def dense(graph):
    a = np.zeros((graph.num_nodes, graph.num_nodes))
    np.add.at(a, tuple(graph.edge_index), 1.0 if graph.edge_weight is None else graph.edge_weight)
    return a


def within_se(exact, est, tol=1e-6):
    """|exact - mc| < 4 SE + tol (relative to the kernel's scale), entrywise."""
    scale = np.abs(exact).max()
    return np.abs(exact - est.mean) <= 4 * est.stderr + tol * scale


# ----------------------------------------------------------------- structure-only coarsening
def test_graclus_uses_normalised_cut_weight():
    # Node 0 (degree 1.6) has a heavier edge to hub 1 (degree 5) than to leaf 2 (degree 0.6),
    # but 1.0 * (1/1.6 + 1/5) = 0.825 < 0.6 * (1/1.6 + 1/0.6) = 1.375: the normalised cut
    # pairs 0 with the leaf. Then 1 pairs with 3 (tie with 4, lower index wins); 4 is alone.
    a = np.zeros((5, 5))
    for i, j, w in [(0, 1, 1.0), (0, 2, 0.6), (1, 3, 2.0), (1, 4, 2.0)]:
        a[i, j] = a[j, i] = w
    clusters = graclus(a).argmax(axis=1).tolist()
    assert clusters == [0, 1, 0, 1, 2]


def test_graclus_is_a_maximal_matching():
    for g in random_graphs(1, [9, 12, 6], p=0.3, weighted=True):
        a = dense(g)
        s = graclus(a)
        sizes = s.sum(axis=0)
        assert set(sizes) <= {1.0, 2.0} and s.sum() == g.num_nodes
        c = s.argmax(axis=1)
        for k in np.flatnonzero(sizes == 2):  # pairs are edges
            i, j = np.flatnonzero(c == k)
            assert a[i, j] > 0
        single = np.flatnonzero(sizes[c] == 1)  # no two singletons are adjacent (maximality)
        assert not (a[np.ix_(single, single)] > 0).any()


def test_kmis_centres_are_independent_maximal_and_nearest():
    for k in (1, 2, 3):
        for g in random_graphs(2, [10, 13], p=0.25):
            hops = dict(nx.all_pairs_shortest_path_length(nx.from_numpy_array(dense(g))))
            dist = np.array([[hops[i].get(j, np.inf) for j in range(g.num_nodes)] for i in range(g.num_nodes)])
            s = kmis(dense(g), k=k)
            assign = s.argmax(axis=1)
            centres = np.array([np.flatnonzero(assign == c).min() for c in range(s.shape[1])])
            # each cluster's centre is its smallest member (greedy in node order picks it first)
            d_cc = dist[np.ix_(centres, centres)] + np.diag(np.full(len(centres), np.inf))
            assert (d_cc > k).all()  # independent in the k-th power graph
            assert (dist[:, centres].min(axis=1) <= k).all()  # maximal: every node is covered
            np.testing.assert_array_equal(dist[np.arange(g.num_nodes), centres[assign]], dist[:, centres].min(axis=1))


def test_ndp_splits_a_bipartite_graph_and_kron_reduces():
    # A tree is bipartite: the top Laplacian eigenvector alternates in sign between the two
    # colour classes, so decimation keeps exactly one class.
    tree = nx.balanced_tree(2, 3)
    a = nx.to_numpy_array(tree)
    s, a_pooled = node_decimation(a, threshold=0.0)
    kept = np.flatnonzero(s.any(axis=1))
    colour = nx.bipartite.color(tree)
    assert len({colour[i] for i in kept}) == 1
    assert len(kept) == sum(colour[i] == colour[kept[0]] for i in tree)
    # Kron reduction reference: Schur complement of the Laplacian (connected, so invertible).
    lap = np.diag(a.sum(1)) - a
    drop = np.setdiff1d(np.arange(len(a)), kept)
    schur = lap[np.ix_(kept, kept)] - lap[np.ix_(kept, drop)] @ np.linalg.solve(lap[np.ix_(drop, drop)],
                                                                                   lap[np.ix_(drop, kept)])
    ref = -schur
    np.fill_diagonal(ref, 0.0)
    np.testing.assert_allclose(a_pooled, ref, atol=1e-10)
    # Sparsification drops the weak arcs.
    _, sparse = node_decimation(a, threshold=0.3)
    np.testing.assert_allclose(sparse, np.where(ref >= 0.3, ref, 0.0), atol=1e-10)


@pytest.mark.parametrize("method,options", METHODS)
def test_pooled_adjacency_matches_numpy_reference(method, options):
    graphs = random_graphs(3, [7, 4, 9], p=0.35, weighted=True)
    batch = GraphBatch.from_graphs(graphs, n_max=11)
    s, pooled = coarsen(batch, method, **options)
    for b, g in enumerate(graphs):
        n, a = g.num_nodes, dense(g)
        assert not s[b, n:].any()  # padded nodes are never assigned
        members = [np.flatnonzero(s[b, :n, c]) for c in range(pooled.n_nodes[b])]
        if method == "ndp":
            np.testing.assert_allclose(pooled.adjacency[b, :len(members), :len(members)],
                                       node_decimation(a)[1], atol=1e-12)
        else:  # A'[c, d] = total weight of arcs from cluster c to cluster d
            ref = np.array([[a[np.ix_(mc, md)].sum() for md in members] for mc in members])
            np.testing.assert_allclose(pooled.adjacency[b, :len(members), :len(members)], ref, atol=1e-12)
        assert not pooled.adjacency[b, len(members):].any() and not pooled.adjacency[b, :, len(members):].any()
        ref_x = np.array([g.x[mc].sum(axis=0) for mc in members])
        np.testing.assert_allclose(pooled.x[b, :len(members)], ref_x, atol=1e-12)
        np.testing.assert_array_equal(s[b, :n, :len(members)], coarsen_graph(a, method, **options)[0])
        assert not s[b, :, len(members):].any()


def structure_net(method, options, width=64):
    then = stax.serial(Aggregate("mean", True), stax.Relu(), stax.Dense(width), GlobalSumPool())
    return stax.serial(stax.Dense(width, b_std=0.1), Aggregate("sum", True), stax.Relu(), stax.Dense(width),
                       StructurePool(method, then, **options))


@pytest.mark.usefixtures("x64")  # checked to float64 precision
@pytest.mark.parametrize("method,options", METHODS)
def test_structure_pool_apply_equals_network_on_precoarsened_graph(method, options):
    graphs = random_graphs(4, [6, 8, 5])
    batch = GraphBatch.from_graphs(graphs)
    head = stax.serial(stax.Dense(16), Aggregate("sum", True), stax.Relu())
    tail = stax.serial(Aggregate("gcn", True), stax.Relu(), stax.Dense(4), GlobalSumPool())
    init_fn, apply_fn, _ = stax.serial(head, StructurePool(method, tail, **options))
    _, (p_head, p_pool) = init_fn(jax.random.PRNGKey(0), batch.x.shape)
    out = apply_fn((p_head, p_pool), batch.x, **batch.apply_kwargs())
    # Reference: run the head, pool with the precomputed S, run the tail on the pooled batch.
    h = np.asarray(head[1](p_head, batch.x, **batch.apply_kwargs()))
    s, pooled = coarsen(batch, method, **options)
    ref = tail[1](p_pool, np.einsum("bnk,bnf->bkf", s, h), pattern=pooled.adjacency, node_mask=pooled.node_mask)
    np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-10)
    # The same under jit, where S comes from a host callback on the traced pattern.
    jitted = jax.jit(lambda x, pat, m: apply_fn((p_head, p_pool), x, pattern=pat, node_mask=m))
    np.testing.assert_allclose(jitted(batch.x, batch.adjacency, batch.node_mask), out, rtol=1e-10, atol=1e-10)


@pytest.mark.usefixtures("x64")  # checked to float64 precision
def test_padding_does_not_change_the_pooled_kernel():
    graphs = random_graphs(5, [5, 7])
    tight, loose = GraphBatch.from_graphs(graphs), GraphBatch.from_graphs(graphs, n_max=12)
    # One network with a branch per method: a single kernel call checks all three.
    branches = [stax.serial(stax.Dense(8), StructurePool(m, stax.serial(Aggregate(), GlobalSumPool()), **o))
                for m, o in METHODS]
    kernel_fn = stax.serial(stax.Dense(8), Aggregate("sum", True), stax.FanOut(3), stax.parallel(*branches),
                            stax.FanInConcat())[2]
    k1 = kernel_fn(tight.x, None, "ntk", **kernel_kwargs(tight))
    k2 = kernel_fn(loose.x, None, "ntk", **kernel_kwargs(loose))
    np.testing.assert_allclose(k1, k2, rtol=1e-10)


@pytest.mark.parametrize("method,options", [METHODS[0]] + [pytest.param(*m, marks=pytest.mark.slow)
                                                            for m in METHODS[1:]])
def test_exact_nngp_matches_monte_carlo(method, options):
    # The kernel code is shared by the methods (only S differs), so by default one runs.
    batch = GraphBatch.from_graphs(random_graphs(6, [5, 7, 4]), n_max=8)
    net = structure_net(method, options, width=128)
    exact = np.asarray(net[2](batch.x, None, "nngp", **kernel_kwargs(batch)))
    est = monte_carlo_kernel(net, batch, n_samples=64, key=jax.random.PRNGKey(1), get="nngp")
    assert within_se(exact, est).all(), (exact, est.mean, est.stderr)
    assert est.stderr.max() < 0.1 * np.abs(exact).max()  # the test has power


def test_exact_ntk_matches_monte_carlo_two_levels():
    batch = GraphBatch.from_graphs(random_graphs(7, [6, 5, 7]))
    net = hierarchical_gntk("graclus", num_levels=2, blocks_per_level=1, num_mlp_layers=1, jumping_knowledge=False,
                            input_dim=3, width=32)
    exact = net[2](batch.x, None, ("nngp", "ntk"), **kernel_kwargs(batch))
    est = monte_carlo_kernel(net, batch, n_samples=8, key=jax.random.PRNGKey(2))
    for kind in ("nngp", "ntk"):
        assert within_se(np.asarray(getattr(exact, kind)), est[kind]).all(), kind
    assert np.linalg.eigvalsh(np.asarray(exact.ntk)).min() > 0
    flat = gntk(2, 1, jumping_knowledge=False, input_dim=3)[2](batch.x, None, "ntk", **kernel_kwargs(batch))
    assert not np.allclose(exact.ntk, flat, rtol=1e-2)  # pooling changes the kernel


def test_hierarchical_gntk_with_one_level_is_the_gntk():
    batch = GraphBatch.from_graphs(random_graphs(8, [5, 6]))
    ref = gntk(2, 1, input_dim=3)[2](batch.x, None, "ntk", **kernel_kwargs(batch))
    got = hierarchical_gntk("kmis", 1, 2, 1, input_dim=3)[2](batch.x, None, "ntk", **kernel_kwargs(batch))
    np.testing.assert_allclose(got, ref, rtol=1e-12)


def test_structure_pool_argument_errors():
    with pytest.raises(ValueError, match="method"):
        StructurePool("louvain")
    with pytest.raises(ValueError, match="unknown option"):
        StructurePool("graclus", k=2)
    with pytest.raises(ValueError, match="k must be"):
        kmis(np.zeros((2, 2)), k=0)
    with pytest.raises(ValueError, match="non-negative"):
        graclus(-np.ones((2, 2)))
    sparse = GraphBatch.from_graphs(random_graphs(9, [3]), sparse=True)
    _, apply_fn, _ = StructurePool("graclus")
    with pytest.raises(ValueError, match="dense"):
        apply_fn((), sparse.x, **sparse.apply_kwargs())


# ----------------------------------------------------------------- Monte Carlo helper
def test_monte_carlo_converges_on_an_exact_network():
    graphs = random_graphs(10, [4, 6, 5], features=2)
    net = stax.serial(stax.Dense(64, b_std=0.1), Aggregate("sum", True), stax.Relu(), stax.Dense(64),
                      Aggregate("mean", True), stax.Relu(), GlobalSumPool())
    batch = GraphBatch.from_graphs(graphs)
    exact = np.asarray(net[2](batch.x, None, "nngp", **kernel_kwargs(batch)))
    small = monte_carlo_kernel(net, graphs, n_samples=16, key=jax.random.PRNGKey(0), get="nngp")
    large = monte_carlo_kernel(net, graphs, n_samples=128, key=jax.random.PRNGKey(0), get="nngp")
    for est in (small, large):
        assert est.mean.shape == exact.shape and within_se(exact, est).all()
    assert large.stderr.mean() < 0.7 * small.stderr.mean()  # ~ 1/sqrt(8) expected
    assert np.abs(large.mean - exact).max() < 0.15 * np.abs(exact).max()


@pytest.mark.slow
def test_monte_carlo_cross_kernel_between_two_sets():
    graphs, other = random_graphs(10, [4, 6, 5], features=2), random_graphs(11, [7, 3], features=2)
    net = stax.serial(stax.Dense(64, b_std=0.1), Aggregate("sum", True), stax.Relu(), stax.Dense(64),
                      Aggregate("mean", True), stax.Relu(), GlobalSumPool())
    # Lists are padded to a common size here.
    cross = monte_carlo_kernel(net, graphs, other, n_samples=16, key=jax.random.PRNGKey(1), get=("nngp",))
    b1, b2 = GraphBatch.from_graphs(graphs, n_max=7), GraphBatch.from_graphs(other, n_max=7)
    exact_cross = np.asarray(net[2](b1.x, b2.x, "nngp", **kernel_kwargs(b1, b2)))
    assert cross["nngp"].mean.shape == (3, 2) and within_se(exact_cross, cross["nngp"]).all()


def test_monte_carlo_argument_errors():
    net = stax.serial(stax.Dense(4), GlobalSumPool())
    graphs = random_graphs(12, [3])
    with pytest.raises(ValueError, match="multiple of n_groups"):
        monte_carlo_kernel(net, graphs, n_samples=10, n_groups=4, key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="get"):
        monte_carlo_kernel(net, graphs, n_samples=8, key=jax.random.PRNGKey(0), get="cov1")


# ----------------------------------------------------------------- learned pools

F = 3
SIZES = [6, 6, 4]
N_MAX = 8


def learned_batch():
    """Weighted graphs ``[g, g relabelled, h]`` padded to N_MAX with large junk features on
    the padded rows (any leak of padding into a selection or sum would show). Outputs 0 and
    1 must agree wherever a pool is invariant to the node order (:func:`assert_invariant`)."""
    g, h = random_graphs(20, [SIZES[0], SIZES[2]], p=0.5, features=F, weighted=True)
    perm = np.random.default_rng(0).permutation(g.num_nodes)
    relabelled = Graph(g.num_nodes, np.argsort(perm)[g.edge_index], x=g.x[perm], edge_weight=g.edge_weight)
    graphs = [g, relabelled, h]
    b = GraphBatch.from_graphs(graphs, n_max=N_MAX)
    x = np.where(b.node_mask[:, :, None], b.x, 50.0)
    return graphs, x, b.adjacency, b.node_mask


def assert_invariant(*outputs, sort_rows=False):
    for out in outputs:
        out = np.asarray(out)
        if sort_rows:  # equal up to the order of the pooled nodes
            out = np.sort(out.reshape(out.shape[0], out.shape[1], -1), axis=1)
        np.testing.assert_allclose(out[1], out[0], rtol=1e-9, atol=1e-12)


def init(layer, seed=0):
    return layer[0](jax.random.PRNGKey(seed), (len(SIZES), N_MAX, F))[1]


def np_softmax(z, axis=-1):
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def np_dense(params, x):
    out = x @ np.asarray(params[0]) / np.sqrt(params[0].shape[0])
    return out + 0.1 * np.asarray(params[1]) if len(params) > 1 else out


def np_mlp(params, x):
    for layer in params[:-1]:
        x = np.maximum(np_dense(layer, x), 0.0)
    return np_dense(params[-1], x)


def np_topk(x, a, y, k, multiplier=1.0):
    idx = np.argsort(-y, kind="stable")[:k]
    return multiplier * x[idx] * y[idx, None], a[np.ix_(idx, idx)]


def check_rows(pooled, b, ref_x, ref_a=None):
    k = len(ref_x)
    assert pooled.node_mask[b].sum() == k and pooled.node_mask[b, :k].all()
    np.testing.assert_allclose(pooled.x[b, :k], ref_x, rtol=1e-10, atol=1e-12)
    if ref_a is not None:
        np.testing.assert_allclose(pooled.adjacency[b, :k, :k], ref_a, rtol=1e-10, atol=1e-12)
    assert not np.asarray(pooled.selection)[b, SIZES[b]:].any()  # padded nodes never selected


@pytest.mark.parametrize("ratio,min_score,nonlinearity", [(0.5, None, "tanh"), (3, None, "sigmoid"),
                                                          (0.5, 0.15, "tanh")])
@pytest.mark.usefixtures("x64")  # checked to float64 precision
def test_topk_pooling_matches_formula(ratio, min_score, nonlinearity):
    graphs, x, a, mask = learned_batch()
    layer = TopKPooling(ratio, min_score=min_score, multiplier=2.0, nonlinearity=nonlinearity)
    p, _ = init(layer)
    pooled = topk_pool(p, x, a, mask, ratio=ratio, min_score=min_score, multiplier=2.0, nonlinearity=nonlinearity)
    p = np.asarray(p)
    for b, g in enumerate(graphs):
        xb, ab = g.x, dense(g)
        if min_score is None:
            raw = xb @ p / np.linalg.norm(p)
            y = np.tanh(raw) if nonlinearity == "tanh" else 1 / (1 + np.exp(-raw))
            k = int(np.ceil(ratio * g.num_nodes)) if isinstance(ratio, float) else min(ratio, g.num_nodes)
        else:
            y = np_softmax(xb @ p)
            k = int((y > min(y.max() - 1e-7, min_score)).sum())
        check_rows(pooled, b, *np_topk(xb, ab, y, k, multiplier=2.0))
    assert_invariant(pooled.x, pooled.adjacency, pooled.node_mask)
    out = layer[1]((p, ()), x, pattern=a, node_mask=mask)
    np.testing.assert_allclose(out, pooled.x, rtol=1e-12)


def np_sag_scores(params, x, a, gnn):
    n = len(x)
    if gnn == "gcn":
        (w, bias), = params
        at = a + np.eye(n)
        d = at.sum(axis=0)
        h = x @ np.asarray(w)[:, 0] / np.sqrt(x.shape[1])
        return np.array([sum(at[i, j] * h[i] / np.sqrt(d[i] * d[j]) for i in range(n)) for j in range(n)]) \
            + 0.1 * float(bias[0])
    if gnn == "sage":
        (w_r,), (w_n, bias) = params
        mean = np.array([(a[:, j] @ x) / a[:, j].sum() if a[:, j].sum() else np.zeros(x.shape[1]) for j in range(n)])
        return (x @ np.asarray(w_r)[:, 0] + mean @ np.asarray(w_n)[:, 0]) / np.sqrt(x.shape[1]) + 0.1 * float(bias[0])
    (w,), att, bias = params
    h = x @ np.asarray(w)[:, 0] / np.sqrt(x.shape[1])
    out = np.zeros(n)
    for j in range(n):
        senders = [i for i in range(n) if a[i, j] != 0 or i == j]
        e = np.array([att[0] * h[i] + att[1] * h[j] for i in senders])
        alpha = np_softmax(np.where(e > 0, e, 0.2 * e))
        out[j] = alpha @ h[senders]
    return out + 0.1 * float(bias[0])


@pytest.mark.usefixtures("x64")  # checked to float64 precision
@pytest.mark.parametrize("gnn", ["gcn", "gat", "sage"])
def test_sag_pooling_matches_formula(gnn):
    graphs, x, a, mask = learned_batch()
    layer = SAGPooling(0.6, gnn=gnn)
    params, _ = init(layer, seed=1)
    pooled = sag_pool(params, x, a, mask, gnn=gnn, ratio=0.6)
    for b, g in enumerate(graphs):
        y = np.tanh(np_sag_scores(params, g.x, dense(g), gnn))
        check_rows(pooled, b, *np_topk(g.x, dense(g), y, int(np.ceil(0.6 * g.num_nodes))))
    assert_invariant(pooled.x, pooled.adjacency)


@pytest.mark.usefixtures("x64")  # checked to float64 precision
def test_diffpool_matches_formula_and_losses():
    graphs, x, a, mask = learned_batch()
    params, _ = init(DiffPool(3, channels=4, activation="relu"))
    pooled = diffpool(params, x, a, mask, activation="relu")
    losses = diffpool_losses(pooled.selection, a, mask)
    for b, g in enumerate(graphs):
        ab = dense(g)
        msg = ab.T @ g.x
        z = np.maximum(np_dense(params[0], msg), 0.0)
        s = np_softmax(np_dense(params[1], msg))
        check_rows(pooled, b, s.T @ z, s.T @ ab @ s)
        np.testing.assert_allclose(losses["link"][b], np.linalg.norm(ab - s @ s.T), rtol=1e-10)
        np.testing.assert_allclose(losses["entropy"][b], np.mean(-np.sum(s * np.log(s), axis=1)), rtol=1e-10)
    assert_invariant(pooled.x, pooled.adjacency, *losses.values())


def np_sym(a):
    d = a.sum(axis=1)
    inv = np.where(d > 0, 1 / np.sqrt(np.where(d > 0, d, 1)), 0)
    return inv[:, None] * a * inv[None, :]


@pytest.mark.usefixtures("x64")  # checked to float64 precision
@pytest.mark.parametrize("name", ["mincut", "dmon", "justbalance", "acc"])
def test_mlp_cluster_pools_match_formulas_and_losses(name):
    layer_cls, pool_fn = {"mincut": (MinCutPool, mincut_pool), "dmon": (DMoNPool, dmon_pool),
                          "justbalance": (JustBalancePool, just_balance_pool),
                          "acc": (AsymCheegerCutPool, asym_cheeger_cut_pool)}[name]
    graphs, x, a, mask = learned_batch()
    k = 3
    params, _ = init(layer_cls(k, mlp_hidden=[6]))
    pooled = pool_fn(params, x, a, mask)
    if name == "mincut":
        losses = mincut_losses(pooled.selection, a, mask)
    elif name == "dmon":
        losses = dmon_losses(pooled.selection, a, mask, collapse_regularization=0.3)
    elif name == "justbalance":
        losses = {**just_balance_loss(pooled.selection, mask),
                  "normalized": just_balance_loss(pooled.selection, mask, normalized=True)["balance"]}
    else:
        losses = asym_cheeger_cut_losses(pooled.selection, a, mask, totvar_coeff=0.5, balance_coeff=2.0)
    for b, g in enumerate(graphs):
        ab, n = dense(g), g.num_nodes
        s = np_softmax(np_mlp(params, g.x))
        if name == "mincut":
            at = np_sym(ab)
            ap = s.T @ at @ s
            np.fill_diagonal(ap, 0)
            check_rows(pooled, b, s.T @ g.x, np_sym(ap))
            cut = -np.trace(s.T @ at @ s) / np.trace(s.T @ np.diag(at.sum(1)) @ s)
            ss = s.T @ s
            ortho = np.linalg.norm(ss / np.linalg.norm(ss) - np.eye(k) / np.sqrt(k))
            ref = {"cut": cut, "orthogonality": ortho}
        elif name == "dmon":
            check_rows(pooled, b, jax.nn.selu(s.T @ g.x), s.T @ ab @ s)
            d = ab.sum(1)
            m2 = d.sum()
            modularity = np.trace(s.T @ (ab - np.outer(d, d) / m2) @ s) / m2
            collapse = np.sqrt(k) / n * np.linalg.norm(s.sum(0)) - 1
            ref = {"modularity": -modularity, "collapse": 0.3 * collapse}
        elif name == "justbalance":
            ap = s.T @ ab @ s
            np.fill_diagonal(ap, 0)
            check_rows(pooled, b, s.T @ g.x, np_sym(ap))
            balance = -np.trace(np.sqrt(s.T @ s))  # entry-wise root, as the reference
            ref = {"balance": balance, "normalized": balance / np.sqrt(n * k)}
        else:
            check_rows(pooled, b, s.T @ g.x, s.T @ ab @ s)
            tv = sum(ab[i, j] * np.abs(s[i] - s[j]).sum() for i in range(n) for j in range(n))
            tv /= 2 * np.count_nonzero(ab)
            q = np.sort(s, axis=0)[::-1][n // k]  # the (floor(n/K) + 1)-th largest per column
            diff = s - q
            asym = np.where(diff >= 0, (k - 1) * diff, -diff).sum()
            ref = {"total_variation": 0.5 * tv, "balance": 2.0 * (n * (k - 1) - asym) / (n * (k - 1))}
        for key, value in ref.items():
            np.testing.assert_allclose(losses[key][b], value, rtol=1e-9, atol=1e-12, err_msg=key)
    assert_invariant(pooled.x, pooled.adjacency, *losses.values())


def np_sparsemax(z):
    """Bisection on the threshold: sum(max(z - t, 0)) = 1 (independent of the sort formula)."""
    lo, hi = z.max() - 1.0, z.max()
    for _ in range(200):
        t = (lo + hi) / 2
        lo, hi = (t, hi) if np.maximum(z - t, 0).sum() > 1 else (lo, t)
    return np.maximum(z - (lo + hi) / 2, 0)


@pytest.mark.usefixtures("x64")  # checked to float64 precision
@pytest.mark.parametrize("shortest_path_reg", [True, False])
def test_lapool_matches_formula(shortest_path_reg):
    graphs, x, a, mask = learned_batch()
    pooled = lapool(x, a, mask, shortest_path_reg=shortest_path_reg)
    for b, g in enumerate(graphs):
        ab, n = dense(g), g.num_nodes
        w = (ab + ab.T) / 2  # the weights are not symmetric; LaPool works on the symmetrised graph
        v = np.linalg.norm((np.diag(w.sum(1)) - w) @ g.x, axis=1)
        leaders = [i for i in range(n) if all(v[i] >= v[j] for j in range(n) if w[i, j] > 0)]
        hops = dict(nx.all_pairs_shortest_path_length(nx.from_numpy_array(w)))
        unit = g.x / np.linalg.norm(g.x, axis=1, keepdims=True)
        s = np.zeros((n, len(leaders)))
        for i in range(n):
            if i in leaders:
                s[i, leaders.index(i)] = 1.0
                continue
            beta = np.array([1.0 / hops[i][l] if l in hops[i] else 0.0 for l in leaders]) if shortest_path_reg else 1.0
            s[i] = np_sparsemax(beta * (unit[leaders] @ unit[i]))
        check_rows(pooled, b, s.T @ g.x, s.T @ ab @ s)
    assert_invariant(pooled.x, sort_rows=True)
    out = LaPool(shortest_path_reg)[1](((), ()), x, pattern=a, node_mask=mask)
    np.testing.assert_allclose(out, pooled.x, rtol=1e-12)


@pytest.mark.usefixtures("x64")  # checked to float64 precision
def test_readout_pools_match_formulas():
    graphs, x, a, mask = learned_batch()
    gap, gas, sort = GlobalAttentionPool(4), GlobalAttnSumPool(), SortPool(6)
    p_gap, p_gas = init(gap), np.asarray(init(gas))
    out_gap = gap[1](p_gap, x, node_mask=mask)
    out_gas = gas[1](p_gas, x, node_mask=mask)
    out_sort = sort[1]((), x, node_mask=mask)
    for b, g in enumerate(graphs):
        gate = 1 / (1 + np.exp(-np_dense(p_gap[1], g.x)))
        np.testing.assert_allclose(out_gap[b], (gate * np_dense(p_gap[0], g.x)).sum(0), rtol=1e-10)
        alpha = np_softmax(g.x @ p_gas / np.sqrt(F))
        np.testing.assert_allclose(out_gas[b], alpha @ g.x, rtol=1e-10)
        top = g.x[np.argsort(-g.x[:, -1], kind="stable")][:6]
        np.testing.assert_allclose(out_sort[b], np.pad(top, ((0, 6 - len(top)), (0, 0))), rtol=1e-12)
    assert_invariant(out_gap, out_gas, out_sort)


@pytest.mark.usefixtures("x64")  # checked to float64 precision
def test_mem_pooling_matches_formula_and_kl_loss():
    graphs, x, a, mask = learned_batch()
    tau, heads, k = 0.7, 2, 3
    params = init(MemPooling(5, heads=heads, num_clusters=k, tau=tau))
    out, s_all = mem_pool(params, x, mask, tau=tau)
    keys, (conv_w, conv_b), (w,) = (np.asarray(params[0]), (np.asarray(params[1][0]), np.asarray(params[1][1])),
                                    (np.asarray(params[2][0]),))
    kl = mem_pooling_kl_loss(s_all)["kl"]
    for b, g in enumerate(graphs):
        mixed = 0.1 * conv_b[0]
        for h in range(heads):
            t = (1 + ((g.x[:, None, :] - keys[h][None]) ** 2).sum(-1) / tau) ** (-(1 + tau) / 2)
            mixed = mixed + conv_w[h] / np.sqrt(heads) * t / t.sum(1, keepdims=True)
        s = np_softmax(mixed)
        np.testing.assert_allclose(out[b], s.T @ g.x @ w / np.sqrt(F), rtol=1e-10)
        assert not np.asarray(s_all)[b, g.num_nodes:].any()
        p = s**2 / s.sum(0)
        p = p / p.sum(1, keepdims=True)
        np.testing.assert_allclose(kl[b], np.sum(p * np.log(p / s)), rtol=1e-8)
    np.testing.assert_allclose(MemPooling(5, heads, k, tau)[1](params, x, node_mask=mask), out, rtol=1e-12)
    assert_invariant(out, kl)


GRAPH_POOLS = {  # name -> layer given the layers that follow on the pooled graph
    "topk": lambda then: TopKPooling(0.5, then=then),
    "topk_min_score": lambda then: TopKPooling(min_score=0.1, then=then),
    "sag_gcn": lambda then: SAGPooling(0.5, then=then),
    "sag_gat": lambda then: SAGPooling(0.5, gnn="gat", then=then),
    "sag_sage": lambda then: SAGPooling(0.5, gnn="sage", then=then),
    "diffpool": lambda then: DiffPool(3, then=then),
    "mincut": lambda then: MinCutPool(3, [4], then=then),
    "dmon": lambda then: DMoNPool(3, then=then),
    "justbalance": lambda then: JustBalancePool(3, then=then),
    "acc": lambda then: AsymCheegerCutPool(3, then=then),
    "lapool": lambda then: LaPool(then=then),
}
READOUTS = {
    "sort": lambda: SortPool(4),
    "attention": lambda: GlobalAttentionPool(4),
    "attnsum": lambda: GlobalAttnSumPool(),
    "mem": lambda: MemPooling(4, 2, 3),
}


def all_learned_layers():
    return {**{k: make(None) for k, make in GRAPH_POOLS.items()}, **{k: make() for k, make in READOUTS.items()}}


def test_learned_pools_have_no_closed_form_kernel():
    batch = GraphBatch.from_graphs(random_graphs(22, [4, 5], features=F))
    for name, layer in all_learned_layers().items():
        net = stax.serial(stax.Dense(4), layer)
        with pytest.raises(NotImplementedError, match="graph_ntk.monte_carlo_kernel"):
            net[2](batch.x, None, "nngp", **kernel_kwargs(batch))


def test_learned_pool_monte_carlo_kernel():
    graphs = random_graphs(23, [5, 6, 4], features=F)
    then = stax.serial(Aggregate("sum", True), stax.Relu(), GlobalSumPool())
    net = stax.serial(stax.Dense(32), Aggregate("sum", True), stax.Relu(), TopKPooling(0.5, then=then))
    est = monte_carlo_kernel(net, graphs, n_samples=16, key=jax.random.PRNGKey(0), get=("nngp", "ntk"))
    for kind in ("nngp", "ntk"):
        mean, se = est[kind].mean, est[kind].stderr
        assert mean.shape == (3, 3) and np.all(np.isfinite(mean))
        np.testing.assert_allclose(mean, mean.T, rtol=1e-10)
        assert np.linalg.eigvalsh(mean).min() > -4 * se.max()
        assert (se > 0).all() and np.all(np.isfinite(se))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(GRAPH_POOLS) + list(READOUTS))
def test_every_learned_pool_has_a_monte_carlo_kernel(name):
    graphs = random_graphs(24, [5, 6], features=F)
    head = [stax.Dense(16), Aggregate("sum", True), stax.Relu()]
    if name in GRAPH_POOLS:
        net = stax.serial(*head, GRAPH_POOLS[name](stax.serial(Aggregate("sum", True), stax.Relu(), GlobalSumPool(),
                                                               stax.Dense(4))))
    else:
        flatten = [stax.Flatten()] if name in ("sort", "mem") else []
        net = stax.serial(*head, READOUTS[name](), *flatten, stax.Dense(4))
    est = monte_carlo_kernel(net, graphs, n_samples=8, n_groups=4, key=jax.random.PRNGKey(1))
    for kind in ("nngp", "ntk"):
        mean = est[kind].mean
        assert mean.shape == (2, 2) and np.all(np.isfinite(mean)) and (np.diag(mean) > 0).all()
        np.testing.assert_allclose(mean, mean.T, rtol=1e-10)
