"""The WL subtree kernel baseline equals GraKeL's WeisfeilerLehman + VertexHistogram exactly."""

import numpy as np
import pytest

grakel = pytest.importorskip("grakel")  # a dev dependency: installed by `uv sync`

from graph_ntk import load_gin, load_tu, wl_subtree_gram  # noqa: E402
from graph_ntk.data.graph import Graph  # noqa: E402
from graph_ntk.kernels import WLSubtreeKernel  # noqa: E402


def _to_grakel(g: Graph):
    """The same simple undirected graph in GraKeL's format (every node keeps its label)."""
    s, r = g.edge_index
    keep = s != r
    edges = {(int(a), int(b)) for a, b in zip(s[keep], r[keep])}
    edges |= {(b, a) for a, b in edges}
    return grakel.Graph(edges, node_labels={v: int(t) for v, t in enumerate(g.node_labels)})


def _grakel_wl(h: int, normalize: bool = False):
    return grakel.kernels.WeisfeilerLehman(n_iter=h, base_graph_kernel=grakel.kernels.VertexHistogram,
                                           normalize=normalize)


@pytest.fixture(scope="module")
def datasets(shared_dir):
    root = shared_dir / "datasets"
    # IMDB-B has no node labels: the degree is the label, given identically to both sides.
    return {"MUTAG": load_tu(root / "tu", "MUTAG").graphs,
            "IMDB-B": load_gin(root / "gin", "IMDBBINARY", degree_as_tag=True).graphs}


@pytest.mark.parametrize("name", ["MUTAG", "IMDB-B"])
def test_equals_grakel_for_h_1_to_5(datasets, name):
    graphs = list(datasets[name])
    theirs = [_to_grakel(g) for g in graphs]
    for h in range(1, 6):
        expected = _grakel_wl(h).fit_transform(theirs)
        got = wl_subtree_gram(graphs, h=h)
        assert got.shape == (len(graphs), len(graphs))
        np.testing.assert_array_equal(got, expected, err_msg=f"{name}, h={h}")


def test_train_test_rows_equal_grakel_transform(datasets):
    graphs = list(datasets["MUTAG"])
    train, test = graphs[:120], graphs[120:]
    for normalize in (False, True):
        wl = _grakel_wl(3, normalize).fit([_to_grakel(g) for g in train])
        expected = wl.transform([_to_grakel(g) for g in test])
        ours = WLSubtreeKernel(h=3, normalize=normalize).fit(train).transform(test)
        if normalize:
            np.testing.assert_allclose(ours, expected, rtol=1e-12)
        else:
            np.testing.assert_array_equal(ours, expected)
            np.testing.assert_array_equal(wl_subtree_gram(test, train, h=3), expected)


def test_hand_derived():
    # A: path 0-1-2 labelled (0, 1, 0); B: one edge (0, 1); C: one isolated node labelled 0.
    a = Graph(3, np.array([[0, 1, 1, 2], [1, 0, 2, 1]]), node_labels=np.array([0, 1, 0]))
    b = Graph(2, np.array([[0, 1], [1, 0]]), node_labels=np.array([0, 1]))
    c = Graph(1, np.zeros((2, 0), dtype=np.int64), node_labels=np.array([0]))
    # Depth 0 histograms: A {0:2, 1:1}, B {0:1, 1:1}, C {0:1}.
    k0 = np.array([[5, 3, 2], [3, 2, 1], [2, 1, 1]])
    # Depth 1: A {(0,{1}):2, (1,{0,0}):1}, B {(0,{1}):1, (1,{0}):1}, C {(0,{}):1}.
    k1 = np.array([[5, 2, 0], [2, 2, 0], [0, 0, 1]])
    np.testing.assert_array_equal(wl_subtree_gram([a, b, c], h=0), k0)
    np.testing.assert_array_equal(wl_subtree_gram([a, b, c], h=1), k0 + k1)
    # Depth 2: A's ends see (1,{0,0}) but B's 0-node sees (1,{0}), so A and B share nothing.
    k2 = np.diag([5, 2, 1])
    np.testing.assert_array_equal(wl_subtree_gram([a, b, c], h=2), k0 + k1 + k2)
    np.testing.assert_array_equal(wl_subtree_gram([a], [b, c], h=1), (k0 + k1)[:1, 1:])


def test_bad_input():
    g = Graph(2, np.array([[0, 1], [1, 0]]), node_labels=np.array([0, 0]))
    with pytest.raises(ValueError, match="h .*must be at least 0"):
        wl_subtree_gram([g], h=-1)
    with pytest.raises(ValueError, match="graphs2 must contain at least one graph"):
        wl_subtree_gram([g], [], h=1)
    with pytest.raises(ValueError, match=r"graphs\[0\] has no node_labels.*degree_as_tag"):
        wl_subtree_gram([Graph(2, np.array([[0, 1], [1, 0]]))], h=1)
    with pytest.raises(ValueError, match="not fitted"):
        WLSubtreeKernel().transform([g])
