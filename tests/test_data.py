"""Graph containers and conversions: round trips, constructors agree, bad input is named."""

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp

from graph_ntk import Graph, GraphBatch, graph_from_networkx, graph_from_scipy, kernel_kwargs


def two_graphs():
    g1 = Graph(3, np.array([[0, 1, 1, 2], [1, 0, 2, 1]]), x=np.arange(6.0).reshape(3, 2))
    g2 = Graph(2, np.array([[0, 1], [1, 0]]), x=np.ones((2, 2)), edge_weight=np.array([2.0, 0.5]))
    return [g1, g2]


def test_dense_sparse_round_trip():
    dense = GraphBatch.from_graphs(two_graphs())
    sparse = dense.to_sparse()
    assert sparse.implementation == "SPARSE" and sparse.edges.shape == (2, 4, 2)
    assert (sparse.edges[1, 2:] == -1).all()  # padding arcs
    np.testing.assert_array_equal(sparse.to_dense().adjacency, dense.adjacency)
    np.testing.assert_array_equal(dense.node_mask, [[True, True, True], [True, True, False]])
    assert dense.adjacency[1, 0, 1] == 2.0 and dense.adjacency[1, 1, 0] == 0.5
    assert (dense.x[1, 2] == 0).all()


def test_from_edge_index_matches_from_graphs():
    g1, g2 = two_graphs()
    x = np.concatenate([g1.x, g2.x])
    edge_index = np.concatenate([g1.edge_index, g2.edge_index + 3], axis=1)
    weight = np.concatenate([np.ones(4), g2.edge_weight])
    batch = GraphBatch.from_edge_index(x, edge_index, np.array([0, 0, 0, 1, 1]), edge_weight=weight)
    ref = GraphBatch.from_graphs([g1, g2])
    np.testing.assert_array_equal(batch.adjacency, ref.adjacency)
    np.testing.assert_array_equal(batch.x, ref.x)


def test_from_networkx_and_scipy():
    g = nx.cycle_graph(4)
    nx.set_node_attributes(g, {0: 0, 1: 1, 2: 0, 3: 1}, "tag")
    converted = graph_from_networkx(g, node_attr="tag")
    assert converted.num_edges == 8 and converted.node_labels.tolist() == [0, 1, 0, 1]
    b = GraphBatch.from_networkx([g, nx.path_graph(3)], num_tags=None)
    assert b.x.shape == (2, 4, 1)
    a = nx.to_scipy_sparse_array(g, format="csr")
    s = graph_from_scipy(a, np.eye(4))
    np.testing.assert_array_equal(GraphBatch.from_graphs([s]).adjacency[0], a.toarray())
    assert GraphBatch.from_scipy([sp.csr_matrix(a)], [np.eye(4)]).x.shape == (1, 4, 4)


def test_kernel_kwargs_pairs():
    b1 = GraphBatch.from_graphs(two_graphs(), sparse=True)
    kw = kernel_kwargs(b1)
    assert kw["pattern"][0] is b1.edges and kw["edge_weight"][0].shape == (2, 4)
    with pytest.raises(ValueError, match="both be dense or both sparse"):
        kernel_kwargs(b1, b1.to_dense())


@pytest.mark.parametrize("make,match", [
    (lambda: Graph(3, np.array([[0, 5], [1, 0]])), "edge_index refers to node 5"),
    (lambda: Graph(0, np.zeros((2, 0), int)), "num_nodes must be at least 1"),
    (lambda: Graph(2, np.array([[0.0], [1.0]])), "integer node ids"),
    (lambda: Graph(2, np.array([0, 1])), r"shape \(2, num_edges\)"),
    (lambda: Graph(2, np.zeros((2, 0), int), x=np.array([[np.nan], [1.0]])), "NaN"),
    (lambda: Graph(2, np.zeros((2, 0), int), x=np.ones((3, 1))), r"x must have shape \(2, num_features\)"),
    (lambda: Graph(2, np.zeros((2, 0), int), node_labels=np.array([-1, 0])), "non-negative"),
    (lambda: Graph(2, np.array([[0], [1]]), edge_weight=np.ones(2)), "edge_weight"),
    (lambda: GraphBatch.from_graphs([]), "graphs is empty"),
    (lambda: GraphBatch.from_graphs(two_graphs(), n_max=2), "n_max=2"),
    (lambda: GraphBatch.from_edge_index(np.ones((3, 1)), np.array([[0], [7]]), np.zeros(3, int)),
     "node id 7"),
    (lambda: GraphBatch.from_edge_index(np.ones((3, 1)), np.zeros((2, 0), int), np.array([0, 2, 2])),
     "skips graph id"),
    (lambda: GraphBatch.from_edge_index(np.ones((3, 1)), np.zeros((2, 0), int), np.zeros(2, int)), "batch must"),
    (lambda: GraphBatch(np.ones((2, 3, 1)), np.array([3, -1]), adjacency=np.ones((2, 3, 3))), "n_nodes"),
    (lambda: GraphBatch(np.ones((1, 3, 1)), np.array([3]), adjacency=np.ones((1, 2, 2))), "adjacency must"),
])
def test_bad_input_names_the_problem(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_wrong_type_in_graph_list():
    with pytest.raises(TypeError, match=r"graphs\[1\]"):
        GraphBatch.from_graphs([two_graphs()[0], "not a graph"])
