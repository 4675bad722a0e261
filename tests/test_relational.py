"""Relational aggregation Aggregate(edge_types=T): dense == sparse, == the explicit formula
mean_t C_t^T K C_t', == concatenated per-type aggregations, == Monte Carlo; data and TU edge labels."""

import jax
import numpy as np
import pytest
from neural_tangents import stax

from graph_ntk import Aggregate, GlobalSumPool, Graph, GraphBatch, kernel_kwargs, load_tu, monte_carlo_kernel
from graphs import random_graphs

T = 3
NORMS = ["sum", "mean", "gcn"]


def typed_graphs(seed, sizes, *, num_types=T, weighted=True):
    """Random graphs whose arcs get uniformly random types 0..num_types-1."""
    rng = np.random.default_rng(seed + 1000)
    return [Graph(g.num_nodes, g.edge_index, x=g.x, edge_weight=g.edge_weight,
                  edge_type=rng.integers(0, num_types, g.num_edges))
            for g in random_graphs(seed, sizes, p=0.45, weighted=weighted)]


def batches(graphs, n_max, *, sparse, num_types=T):
    return GraphBatch.from_graphs(graphs, sparse=sparse, n_max=n_max, num_edge_types=num_types)


def operators(graph, n_max, norm, self_loops, num_types=T):
    """The per-type (n_max, n_max) operators C_t, written out in numpy from the definition."""
    out = []
    for t in range(num_types):
        a = np.zeros((n_max, n_max))
        sel = graph.edge_type == t
        w = graph.edge_weight[sel] if graph.edge_weight is not None else 1.0
        np.add.at(a, (graph.edge_index[0][sel], graph.edge_index[1][sel]), w)
        if self_loops:
            a[np.arange(graph.num_nodes), np.arange(graph.num_nodes)] += 1.0
        d = a.sum(axis=0)
        inv = np.where(d > 0, 1.0 / np.where(d > 0, d, 1.0), 0.0)
        if norm == "mean":
            a = a * inv[None, :]
        elif norm == "gcn":
            a = np.sqrt(inv)[:, None] * a * np.sqrt(inv)[None, :]
        out.append(a)
    return out


def net(norm, implementation, num_types=T):
    return stax.serial(
        stax.Dense(8, W_std=1.3, b_std=0.2), Aggregate(norm, True, implementation, edge_types=num_types),
        stax.Dense(8), stax.Relu(), stax.Dense(8), Aggregate(norm, False, implementation, edge_types=num_types),
        stax.Dense(1))


@pytest.mark.parametrize("norm", NORMS)
def test_dense_equals_sparse(norm):
    with jax.enable_x64(True):
        g1, g2 = typed_graphs(0, [4, 6, 3]), typed_graphs(1, [5, 2])
        d1, d2 = batches(g1, 6, sparse=False), batches(g2, 6, sparse=False)
        s1, s2 = batches(g1, 6, sparse=True), batches(g2, 6, sparse=True)
        kd = net(norm, "DENSE")[2](d1.x, d2.x, None, **kernel_kwargs(d1, d2))
        ks = net(norm, "SPARSE")[2](s1.x, s2.x, None, **kernel_kwargs(s1, s2))
        for name in ("nngp", "ntk", "cov1", "cov2"):
            a, b = np.asarray(getattr(kd, name)), np.asarray(getattr(ks, name))
            assert np.abs(a).max() > 1e-3, name  # not trivially zero
            np.testing.assert_allclose(a, b, atol=1e-6, err_msg=name)
        # Padded nodes stay out: their rows and columns are zero.
        assert np.all(np.asarray(kd.nngp)[0, 0, 4:, :] == 0)


@pytest.mark.parametrize("implementation", ["DENSE", "SPARSE"])
def test_one_edge_type_is_plain_aggregate(implementation):
    with jax.enable_x64(True):
        graphs = typed_graphs(2, [4, 6, 3], num_types=1)
        typed = batches(graphs, 6, sparse=implementation == "SPARSE", num_types=1)
        plain = GraphBatch.from_graphs(graphs, sparse=implementation == "SPARSE", n_max=6)
        def model(agg):  # a nonlinearity right after: with one type the output stays Gaussian
            return stax.serial(stax.Dense(8, W_std=1.3, b_std=0.2), agg, stax.Relu(), stax.Dense(1))[2]

        k_typed = model(Aggregate("gcn", True, implementation, edge_types=1))(
            typed.x, None, ("nngp", "ntk"), **kernel_kwargs(typed))
        k_plain = model(Aggregate("gcn", True, implementation))(plain.x, None, ("nngp", "ntk"), **kernel_kwargs(plain))
        for a, b in zip(k_typed, k_plain):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-10)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("implementation", ["DENSE", "SPARSE"])
def test_kernel_is_mean_over_types(norm, implementation):
    """K' = (1/T) sum_t C_t^T K C_t' for NNGP, NTK and cov1, with K, Theta from NT."""
    with jax.enable_x64(True):
        g1, g2 = typed_graphs(3, [4, 6, 3]), typed_graphs(4, [5, 2])
        b1, b2 = (batches(g, 6, sparse=implementation == "SPARSE") for g in (g1, g2))
        base = stax.serial(stax.Dense(8, b_std=0.3), stax.Relu(), stax.Dense(8))
        k = base[2](b1.x, b2.x, None)
        out = stax.serial(base, Aggregate(norm, True, implementation, edge_types=T))[2](
            b1.x, b2.x, None, **kernel_kwargs(b1, b2))
        c1 = [operators(g, 6, norm, True) for g in g1]
        c2 = [operators(g, 6, norm, True) for g in g2]
        for name in ("nngp", "ntk"):
            mat = np.asarray(getattr(k, name))
            want = np.array([[sum(c1[a][t].T @ mat[a, b] @ c2[b][t] for t in range(T)) / T
                              for b in range(len(g2))] for a in range(len(g1))])
            np.testing.assert_allclose(np.asarray(getattr(out, name)), want, atol=1e-10, err_msg=name)
        cov = np.asarray(k.cov1)
        want = np.array([sum(c1[a][t].T @ cov[a] @ c1[a][t] for t in range(T)) / T for a in range(len(g1))])
        np.testing.assert_allclose(np.asarray(out.cov1), want, atol=1e-10)
        assert not out.is_gaussian  # T blocks of channels: a nonlinearity needs a Dense first
        with pytest.raises(ValueError, match="Gaussian"):
            stax.serial(base, Aggregate(norm, True, implementation, edge_types=T), stax.Relu())[2](
                b1.x, None, "nngp", **kernel_kwargs(b1))


@pytest.mark.parametrize("implementation", ["DENSE", "SPARSE"])
def test_apply_concatenates_per_type_aggregations(implementation):
    with jax.enable_x64(True):
        graphs = typed_graphs(5, [5, 3, 6])
        b = batches(graphs, 6, sparse=implementation == "SPARSE")
        init_fn, apply_fn, _ = Aggregate("mean", True, implementation, edge_types=T)
        assert init_fn(jax.random.PRNGKey(0), (3, 6, 3))[0] == (3, 6, 3 * T)
        out = np.asarray(apply_fn((), b.x, **b.apply_kwargs()))
        assert out.shape == (3, 6, 3 * T)
        plain = Aggregate("mean", True, implementation)[1]
        for t in range(T):
            kept = [Graph(g.num_nodes, g.edge_index[:, g.edge_type == t], x=g.x,
                          edge_weight=g.edge_weight[g.edge_type == t]) for g in graphs]
            one = GraphBatch.from_graphs(kept, sparse=implementation == "SPARSE", n_max=6)
            np.testing.assert_allclose(out[..., 3 * t: 3 * (t + 1)], plain((), one.x, **one.apply_kwargs()),
                                       atol=1e-12)
        # And against the numpy operators: h'_t = C_t^T h.
        for i, g in enumerate(graphs):
            want = np.concatenate([c.T @ b.x[i] for c in operators(g, 6, "mean", True)], axis=1)
            np.testing.assert_allclose(out[i], want, atol=1e-12)


def test_monte_carlo_agrees_and_rejects_wrong_kernels():
    """The sampled finite network's NNGP/NTK matches the exact kernel; 'sum over types' and
    'ignore the types' are rejected."""
    with jax.enable_x64(True):
        graphs = typed_graphs(6, [5, 4, 6], weighted=False)
        b = batches(graphs, 6, sparse=False)

        def model(agg):
            return stax.serial(stax.Dense(16), agg, stax.Dense(1), GlobalSumPool())

        relational = model(Aggregate("sum", True, edge_types=T))
        est = monte_carlo_kernel(relational, b, n_samples=512, n_groups=32, key=jax.random.PRNGKey(7),
                                 get=("nngp", "ntk"))
        exact = relational[2](b.x, None, ("nngp", "ntk"), **kernel_kwargs(b))
        plain_b = GraphBatch.from_graphs(graphs, n_max=6)
        ignore = model(Aggregate("sum", True))[2](plain_b.x, None, ("nngp", "ntk"), **kernel_kwargs(plain_b))
        for i, kind in enumerate(("nngp", "ntk")):
            e = est[kind]
            z = np.abs(e.mean - np.asarray(exact[i])) / e.stderr
            assert z.max() < 4.5, (kind, z)
            z_sum = np.abs(e.mean - T * np.asarray(exact[i])) / e.stderr
            z_ignore = np.abs(e.mean - np.asarray(ignore[i])) / e.stderr
            assert z_sum.max() > 10 and z_ignore.max() > 10, (kind, z_sum.max(), z_ignore.max())


def test_bad_input_messages():
    with jax.enable_x64(True):
        graphs = typed_graphs(7, [4, 3])
        dense, sparse = batches(graphs, 4, sparse=False), batches(graphs, 4, sparse=True)
        x = dense.x
        apply_dense = Aggregate("sum", True, "DENSE", edge_types=T)[1]
        apply_sparse = Aggregate("sum", True, "SPARSE", edge_types=T)[1]
        with pytest.raises(ValueError, match=r"pattern must be a \(batch, 3, 4, 4\)"):
            apply_dense((), x, pattern=dense.adjacency[:, 0])
        with pytest.raises(ValueError, match="edge_type is for implementation='SPARSE'"):
            apply_dense((), x, pattern=dense.adjacency, edge_type=sparse.edge_type)
        with pytest.raises(ValueError, match="needs edge_type="):
            apply_sparse((), x, pattern=sparse.edges)
        with pytest.raises(ValueError, match="edge_type must have shape"):
            apply_sparse((), x, pattern=sparse.edges, edge_type=sparse.edge_type[:, :-1])
        bad = np.where(sparse.edges[..., 0] >= 0, T, -1)
        with pytest.raises(ValueError, match="type 3 on a real arc, outside 0..2"):
            apply_sparse((), x, pattern=sparse.edges, edge_type=bad)
        with pytest.raises(ValueError, match="ignores types"):
            Aggregate("sum", True, "SPARSE")[1]((), x, pattern=sparse.edges, edge_type=sparse.edge_type)
        for wrong, exc in ((0, ValueError), (-2, ValueError), (1.5, TypeError), (True, TypeError)):
            with pytest.raises(exc, match="edge_types .*must be"):
                Aggregate(edge_types=wrong)
        with pytest.raises(ValueError, match="needs the graphs"):
            Aggregate(edge_types=T)[2](x, None, "nngp")
        # Data side.
        with pytest.raises(ValueError, match=r"graphs\[0\] has edge type 2, outside 0..1"):
            GraphBatch.from_graphs([Graph(2, np.array([[0], [1]]), x=np.ones((2, 1)), edge_type=np.array([2]))],
                                   num_edge_types=2)
        with pytest.raises(ValueError, match=r"graphs\[0\] has no edge_type"):
            GraphBatch.from_graphs([Graph(2, np.array([[0], [1]]), x=np.ones((2, 1)))], num_edge_types=2)
        with pytest.raises(ValueError, match="num_edge_types"):
            kernel_kwargs(sparse, GraphBatch.from_graphs(graphs, sparse=True))


def test_batches_with_and_without_types():
    graphs = typed_graphs(8, [4, 2, 5])
    plain = GraphBatch.from_graphs(graphs)  # types ignored unless asked for
    assert plain.adjacency.shape == (3, 5, 5) and plain.edge_type is None and plain.num_edge_types is None
    assert set(plain.apply_kwargs()) == {"pattern", "node_mask"}
    dense = batches(graphs, None, sparse=False)
    assert dense.adjacency.shape == (3, T, 5, 5)
    np.testing.assert_allclose(dense.adjacency.sum(axis=1), plain.adjacency)
    sparse = dense.to_sparse()
    assert sparse.num_edge_types == T and sparse.edge_type.shape == sparse.edges.shape[:2]
    assert (sparse.edge_type[sparse.edges[..., 0] < 0] == -1).all()
    assert "edge_type" in sparse.apply_kwargs() and "edge_type" not in dense.apply_kwargs()
    assert kernel_kwargs(sparse)["edge_type"][0] is sparse.edge_type
    np.testing.assert_allclose(sparse.to_dense().adjacency, dense.adjacency)
    direct = batches(graphs, None, sparse=True)
    for b, g in enumerate(graphs):
        np.testing.assert_array_equal(direct.edge_type[b, : g.num_edges], g.edge_type)


def test_tu_edge_labels_mutag(shared_dir):
    root = shared_dir / "datasets" / "tu"
    ds = load_tu(root, "MUTAG")
    t = ds.meta["num_edge_types"]
    raw = np.loadtxt(root / "MUTAG" / "MUTAG_edge_labels.txt", dtype=np.int64)
    assert t == len(np.unique(raw)) == 4
    types = np.concatenate([g.edge_type for g in ds.graphs])
    assert types.min() >= 0 and types.max() < t
    # MUTAG has no duplicate arcs, so the per-type counts are the file's.
    np.testing.assert_array_equal(np.bincount(types, minlength=t),
                                  [np.sum(raw == v) for v in ds.meta["edge_label_values"]])
    for g in ds.graphs:  # both arcs of an undirected bond carry the bond's type
        arc_type = {(int(s), int(r)): int(k) for s, r, k in zip(*g.edge_index, g.edge_type)}
        assert all(arc_type[(r, s)] == k for (s, r), k in arc_type.items())
    b = GraphBatch.from_graphs(ds.graphs[:5], num_tags=ds.num_tags, num_edge_types=t)
    assert b.adjacency.shape[1] == t


def test_tu_edge_labels_follow_deduplication(tmp_path):
    folder = tmp_path / "TOY"
    folder.mkdir()
    # One graph of 3 nodes; arc 1->2 listed twice with label 5, once with label 7; arc 2->3 label 5.
    (folder / "TOY_graph_indicator.txt").write_text("1\n1\n1\n")
    (folder / "TOY_graph_labels.txt").write_text("1\n")
    (folder / "TOY_A.txt").write_text("2, 3\n1, 2\n1, 2\n1, 2\n")
    (folder / "TOY_edge_labels.txt").write_text("5\n5\n7\n5\n")
    ds = load_tu(tmp_path, "TOY")
    g = ds.graphs[0]
    assert ds.meta["num_edge_types"] == 2 and ds.meta["edge_label_values"].tolist() == [5, 7]
    assert g.edge_index.T.tolist() == [[0, 1], [0, 1], [1, 2]]
    assert g.edge_type.tolist() == [0, 1, 0]
    assert ds.meta["duplicate_arcs_removed"] == 1
    (folder / "TOY_edge_labels.txt").write_text("5\n5\n7\n")
    with pytest.raises(Exception, match="3 lines but TOY_A.txt lists 4 arcs"):
        load_tu(tmp_path, "TOY")


def test_nt_mask_constant_equals_node_mask():
    """NT's own masking (padded entries = mask_constant) gives the same kernel as node_mask."""
    with jax.enable_x64(True):
        b = batches(typed_graphs(9, [4, 6, 3]), 6, sparse=False)
        model = stax.serial(Aggregate("sum", True, edge_types=T), stax.Dense(4), GlobalSumPool())
        masked = np.where(b.node_mask[..., None], b.x, 99.0)
        k_nt = model[2](masked, None, "nngp", mask_constant=99.0, pattern=b.adjacency)
        k_ours = model[2](b.x, None, "nngp", **kernel_kwargs(b))
        assert np.abs(np.asarray(k_ours)).max() > 1e-3
        np.testing.assert_allclose(np.asarray(k_nt), np.asarray(k_ours), atol=1e-12)
