"""Malformed inputs across the public API: each must raise a one-line ValueError/TypeError
(or a loader's DatasetFormatError / DatasetNotFoundError, both ValueErrors) whose message
names the offending argument or file.

Every case is ``(id, call, exception type, regex the message must match)``; the regex is
the argument's (or file's) name plus a word of the explanation, so a message that stops
naming the argument fails the test.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp

from graph_ntk import (
    GNTK,
    Graph,
    GraphBatch,
    GraphDataset,
    GraphKernelTransformer,
    evaluate,
    gntk,
    graph_from_networkx,
    graph_from_scipy,
    gram,
    kernel_kwargs,
    make_demo_dataset,
    nn,
    node_gp_classify,
    one_hot,
    wl_subtree_gram,
)
from graph_ntk.engine.inputs import _input_dim
from graph_ntk.datasets import DatasetFormatError, load_gin, load_planetoid, load_tu
from graph_ntk.kernels.lowrank import lowrank_node_kernel
from graph_ntk.kernels.node_kernel import exact_node_kernel
from graph_ntk.models.node import gcn, node_kernel
from graph_ntk.node_inference import node_gp_select

EI = np.array([[0, 1, 1, 2], [1, 0, 2, 1]])  # a path on 3 nodes


def g3(**kw) -> Graph:
    kw.setdefault("x", np.ones((3, 2)))
    return Graph(3, EI, **kw)


def lab3(labels=(0, 1, 0)) -> Graph:
    return Graph(3, EI, node_labels=np.array(labels))


def batch(**kw) -> GraphBatch:
    args = {"x": np.ones((2, 3, 2)), "n_nodes": np.array([3, 2]), "adjacency": np.zeros((2, 3, 3))}
    args.update(kw)
    return GraphBatch(**args)


def sparse_batch(**kw) -> GraphBatch:
    args = {"x": np.ones((1, 3, 2)), "n_nodes": np.array([3]), "edges": np.array([[[0, 1], [1, 0]]]),
            "edge_weight": np.ones((1, 2))}
    args.update(kw)
    return GraphBatch(**args)


def nan_at(shape, index) -> np.ndarray:
    a = np.ones(shape)
    a[index] = np.nan
    return a


def ds3(**kw) -> GraphDataset:
    args = {"name": "d", "graphs": [g3(), g3(), g3()], "y": np.array([0, 1, 0])}
    args.update(kw)
    return GraphDataset(**args)


def networkx_with(node_data=None, edge_data=None) -> nx.Graph:
    g = nx.path_graph(3)
    for v in g.nodes:
        g.nodes[v].update(node_data or {})
    for u, v in g.edges:
        g.edges[u, v].update(edge_data or {})
    return g


def node_call(fn, x=None, edge_index=EI, **kw):
    return lambda: fn(gcn(1), np.eye(3) if x is None else x, edge_index, **kw)


K4 = np.array([[1.0, 0.0, 0.9, 0.1], [0.0, 1.0, 0.1, 0.8], [0.9, 0.1, 1.0, 0.0], [0.1, 0.8, 0.0, 1.0]])
Y4 = np.array([0, 1, 0, 1])


def block4(rows, cols):
    return K4[np.ix_(rows, cols)]


def monte_carlo(graphs, graphs2=None, **kw):
    from graph_ntk.monte_carlo import monte_carlo_kernel  # loads JAX, so only when a case needs it

    kw.setdefault("n_samples", 8)
    return monte_carlo_kernel(gntk(1, 1, input_dim=2, width=4), graphs, graphs2, key=0, **kw)


def stax_scale(c):
    from graph_ntk.layers.scale import Scale  # neural-tangents' layer, imported only here

    return Scale(c)


# ----------------------------------------------------------------------- in-memory cases
CASES = [
    # Graph: num_nodes
    ("graph-num_nodes-None", lambda: Graph(None, EI), TypeError, r"num_nodes must be an integer.*None"),
    ("graph-num_nodes-2.7", lambda: Graph(2.7, [[0], [1]]), TypeError, r"num_nodes must be an integer.*2\.7"),
    ("graph-num_nodes-float-whole", lambda: Graph(3.0, EI), TypeError, r"num_nodes must be an integer"),
    ("graph-num_nodes-bool", lambda: Graph(True, []), TypeError, r"num_nodes must be an integer.*True"),
    ("graph-num_nodes-str", lambda: Graph("3", EI), TypeError, r"num_nodes must be an integer.*'3'"),
    ("graph-num_nodes-zero", lambda: Graph(0, []), ValueError, r"num_nodes must be at least 1"),
    ("graph-num_nodes-negative", lambda: Graph(-2, []), ValueError, r"num_nodes must be at least 1"),
    # Graph: edge_index
    ("graph-edge_index-ragged", lambda: Graph(3, [[0, 1, 2], [1, 0]]), ValueError, r"edge_index.*unequal lengths"),
    ("graph-edge_index-float", lambda: Graph(3, [[0.0, 1.0], [1.0, 0.0]]), TypeError, r"edge_index must hold integer"),
    ("graph-edge_index-float-frac", lambda: Graph(3, [[0.5, 1], [1, 0]]), TypeError, r"edge_index must hold integer"),
    ("graph-edge_index-str", lambda: Graph(3, [["0", "1"], ["1", "0"]]), TypeError, r"edge_index must hold integer"),
    ("graph-edge_index-bool", lambda: Graph(3, [[True], [False]]), TypeError, r"edge_index must hold integer"),
    ("graph-x-no-columns", lambda: Graph(3, EI, x=np.ones((3, 0))), ValueError, r"x has shape \(3, 0\): no feature"),
    ("graph-edge_index-3rows", lambda: Graph(3, np.zeros((3, 2), int)), ValueError, r"edge_index must have shape \(2"),
    ("graph-edge_index-transposed", lambda: Graph(3, EI.T), ValueError, r"edge_index must have shape.*transpose"),
    ("graph-edge_index-1d", lambda: Graph(3, [0, 1]), ValueError, r"edge_index must have shape \(2"),
    ("graph-edge_index-too-large", lambda: Graph(3, [[0, 5], [1, 0]]), ValueError, r"edge_index refers to node 5"),
    ("graph-edge_index-negative", lambda: Graph(3, [[0, -1], [1, 0]]), ValueError, r"edge_index refers to node -1"),
    # Graph: node information
    ("graph-x-str", lambda: g3(x=np.array([["a", "b"]] * 3)), TypeError, r"x must hold real numbers.*strings"),
    ("graph-x-complex", lambda: g3(x=np.ones((3, 2)) * 1j), TypeError, r"x must hold real numbers.*complex"),
    ("graph-x-ragged", lambda: g3(x=[[1.0, 2.0], [3.0], [4.0, 5.0]]), ValueError, r"x must be a rectangular"),
    ("graph-x-nan", lambda: g3(x=nan_at((3, 2), (1, 0))), ValueError, r"x contains NaN.*\(1, 0\)"),
    ("graph-x-inf", lambda: g3(x=np.full((3, 2), np.inf)), ValueError, r"x contains NaN or infinite"),
    ("graph-x-rows", lambda: g3(x=np.ones((4, 2))), ValueError, r"x must have shape \(3, num_features\)"),
    ("graph-x-1d", lambda: g3(x=np.ones(3)), ValueError, r"x must have shape \(3, num_features\)"),
    ("graph-x-sparse", lambda: g3(x=sp.csr_matrix(np.ones((3, 2)))), TypeError, r"x must be a dense.*toarray"),
    ("graph-labels-float", lambda: lab3([0.0, 1.0, 0.0]), TypeError, r"node_labels must hold integer"),
    ("graph-labels-str", lambda: lab3(["C", "N", "O"]), TypeError, r"node_labels must hold integer"),
    ("graph-labels-length", lambda: lab3([0, 1]), ValueError, r"node_labels must be 3 integers"),
    ("graph-labels-negative", lambda: lab3([0, -1, 0]), ValueError, r"node_labels must be non-negative.*renumber"),
    ("graph-edge_weight-length", lambda: g3(edge_weight=np.ones(3)), ValueError, r"edge_weight must have one value per arc"),
    ("graph-edge_weight-nan", lambda: g3(edge_weight=nan_at(4, 2)), ValueError, r"edge_weight contains NaN"),
    ("graph-edge_weight-str", lambda: g3(edge_weight=np.array(["a"] * 4)), TypeError, r"edge_weight must hold real"),
    ("graph-edge_type-float", lambda: g3(edge_type=np.ones(4) * 0.5), TypeError, r"edge_type must hold integer"),
    ("graph-edge_type-negative", lambda: g3(edge_type=-np.ones(4, int)), ValueError, r"edge_type must hold non-negative"),
    ("graph-edge_type-length", lambda: g3(edge_type=np.ones(2, int)), ValueError, r"edge_type must be one integer per arc"),
    # GraphDataset
    ("dataset-non-graph", lambda: ds3(graphs=[g3(), {"x": 1}]), TypeError, r"graphs\[1\] is a dict"),
    ("dataset-networkx-graph", lambda: ds3(graphs=[nx.path_graph(3)]), TypeError, r"graphs\[0\] is a Graph.*graph_from_networkx"),
    ("dataset-single-graph", lambda: ds3(graphs=g3()), TypeError, r"graphs must be a list"),
    ("dataset-graphs-int", lambda: ds3(graphs=5), TypeError, r"graphs must be a list"),
    ("dataset-empty", lambda: ds3(graphs=[], y=[]), ValueError, r"has no graphs"),
    ("dataset-y-length", lambda: ds3(y=[0, 1]), ValueError, r"y must have one label per graph \(3\)"),
    ("dataset-name", lambda: ds3(name=None), TypeError, r"name must be a string"),
    ("dataset-num_tags-zero", lambda: ds3(num_tags=0), ValueError, r"num_tags must be at least 1"),
    ("dataset-num_tags-float", lambda: ds3(num_tags=2.5), TypeError, r"num_tags must be an integer"),
    ("dataset-num_tags-small", lambda: ds3(graphs=[lab3([0, 4, 0])], y=[0], num_tags=3), ValueError,
     r"num_tags=3 but a graph has node label 4"),
    ("dataset-folds-not-pair", lambda: ds3(folds=[(np.array([0]),)]), TypeError, r"folds\[0\] must be a \(train_idx, test_idx\)"),
    ("dataset-folds-range", lambda: ds3(folds=[(np.array([0]), np.array([7]))]), ValueError, r"folds\[0\]\[1\].*index 7"),
    ("subset-too-large", lambda: ds3().subset([0, 5]), ValueError, r"index holds graph index 5, outside 0\.\.2"),
    ("subset-negative", lambda: ds3().subset([-1]), ValueError, r"index holds graph index -1"),
    ("subset-float", lambda: ds3().subset([0.5, 1.0]), TypeError, r"index must hold integer graph indices"),
    ("subset-empty", lambda: ds3().subset([]), ValueError, r"index is empty"),
    ("subset-mask-length", lambda: ds3().subset([True, False]), ValueError, r"index is a boolean mask of shape \(2,\)"),
    ("subset-2d", lambda: ds3().subset([[0, 1]]), ValueError, r"index must be a 1-D"),
    ("subset-ragged", lambda: ds3().subset([[0, 1], [2]]), ValueError, r"index must be a rectangular"),
    # GraphBatch
    ("batch-x-nan", lambda: batch(x=nan_at((2, 3, 2), (1, 0, 1))), ValueError, r"x contains NaN.*\(1, 0, 1\)"),
    ("batch-x-inf", lambda: batch(x=np.full((2, 3, 2), -np.inf)), ValueError, r"x contains NaN or infinite"),
    ("batch-adjacency-nan", lambda: batch(adjacency=nan_at((2, 3, 3), (0, 1, 2))), ValueError, r"adjacency contains NaN"),
    ("batch-edge_weight-nan", lambda: sparse_batch(edge_weight=nan_at((1, 2), (0, 1))), ValueError, r"edge_weight contains NaN"),
    ("batch-x-str", lambda: batch(x=np.full((2, 3, 2), "a")), TypeError, r"x must hold real numbers"),
    ("batch-x-2d", lambda: batch(x=np.ones((3, 2))), ValueError, r"x must have shape \(graphs, nodes, features\)"),
    ("batch-n_nodes-range", lambda: batch(n_nodes=np.array([3, 4])), ValueError, r"n_nodes must be 2 counts in \[1, 3\]"),
    ("batch-n_nodes-float", lambda: batch(n_nodes=np.array([3.0, 2.0])), ValueError, r"n_nodes must be 2 integer"),
    ("batch-no-structure", lambda: batch(adjacency=None), ValueError, r"exactly one of adjacency.*or edges"),
    ("batch-adjacency-shape", lambda: batch(adjacency=np.zeros((2, 3, 2))), ValueError, r"adjacency must have shape \(2, 3, 3\)"),
    ("batch-edges-float", lambda: sparse_batch(edges=np.array([[[0.0, 1.0], [1.0, 0.0]]])), TypeError, r"edges must hold integer"),
    ("batch-edges-range", lambda: sparse_batch(edges=np.array([[[0, 3], [1, 0]]])), ValueError, r"edges must hold node ids in 0\.\.2"),
    ("batch-edge_weight-shape", lambda: sparse_batch(edge_weight=np.ones((1, 3))), ValueError, r"edge_weight must have shape \(1, 2\)"),
    ("batch-dense-edge_weight", lambda: batch(edge_weight=np.ones((2, 2))), ValueError, r"edge_weight goes with edges"),
    ("from_graphs-empty", lambda: GraphBatch.from_graphs([]), ValueError, r"graphs is empty"),
    ("from_graphs-single", lambda: GraphBatch.from_graphs(g3()), TypeError, r"graphs must be a sequence.*single Graph"),
    ("from_graphs-non-graph", lambda: GraphBatch.from_graphs([g3(), "g"]), TypeError, r"graphs\[1\] is a str"),
    ("from_graphs-num_tags", lambda: GraphBatch.from_graphs([lab3()], num_tags=0), ValueError, r"num_tags must be at least 1"),
    ("from_graphs-n_max", lambda: GraphBatch.from_graphs([g3()], n_max=2), ValueError, r"n_max=2 is smaller"),
    ("from_graphs-n_max-float", lambda: GraphBatch.from_graphs([g3()], n_max=4.5), TypeError, r"n_max must be an integer"),
    ("from_graphs-label-1e6", lambda: GraphBatch.from_graphs([lab3([0, 10**6, 1])]), ValueError,
     r"num_tags=1000001 .*renumber the node labels"),
    ("one_hot-huge", lambda: one_hot(np.array([10**6]), 10**6 + 1), ValueError, r"num_tags=1000001 .*renumber"),
    ("one_hot-range", lambda: one_hot(np.array([0, 3]), 2), ValueError, r"node labels must lie in \[0, 2\)"),
    ("from_graphs-unlabelled", lambda: GraphBatch.from_graphs([lab3(), Graph(3, EI)]), ValueError,
     r"graphs\[1\]: graphs carry neither node_labels"),
    ("from_graphs-feature-width", lambda: GraphBatch.from_graphs([g3(), g3(x=np.ones((3, 5)))]), ValueError,
     r"graphs\[1\] has 5 node features but graphs\[0\] has 2"),
    ("from_edge_index-ragged", lambda: GraphBatch.from_edge_index(np.ones((3, 1)), [[0, 1], [1]], np.zeros(3, int)),
     ValueError, r"edge_index must be a rectangular"),
    ("from_edge_index-float-ids", lambda: GraphBatch.from_edge_index(np.ones((3, 1)), EI * 1.0, np.zeros(3, int)),
     TypeError, r"edge_index must hold integer"),
    ("from_edge_index-weight", lambda: GraphBatch.from_edge_index(np.ones((3, 1)), EI, np.zeros(3, int),
                                                                  edge_weight=np.ones(2)),
     ValueError, r"edge_weight must have one value per arc \(4\)"),
    ("from_edge_index-batch-float", lambda: GraphBatch.from_edge_index(np.ones((3, 1)), EI, np.zeros(3)),
     TypeError, r"batch must hold integer graph ids"),
    ("from_edge_index-x-nan", lambda: GraphBatch.from_edge_index(nan_at((3, 1), (2, 0)), EI, np.zeros(3, int)),
     ValueError, r"x contains NaN"),
    ("kernel_kwargs-mixed", lambda: kernel_kwargs(GraphBatch.from_graphs([g3()]),
                                                  GraphBatch.from_graphs([g3()], sparse=True)),
     ValueError, r"batch1 and batch2 must both be dense or both sparse"),
    # Converters
    ("networkx-not-a-graph", lambda: graph_from_networkx([[0, 1]]), TypeError, r"g must be a networkx graph"),
    ("networkx-empty", lambda: graph_from_networkx(nx.Graph()), ValueError, r"networkx graph has no nodes"),
    ("networkx-attr-missing", lambda: graph_from_networkx(nx.path_graph(3), node_attr="tag"), ValueError,
     r"node_attr='tag' is missing on node 0"),
    ("networkx-attr-str", lambda: graph_from_networkx(networkx_with({"tag": "C"}), node_attr="tag"), TypeError,
     r"node_attr='tag' holds string tags .*dataset_from_networkx"),
    ("networkx-attr-name", lambda: graph_from_networkx(nx.path_graph(3), node_attr=5), TypeError,
     r"node_attr must be the name of an attribute"),
    ("networkx-weight-str", lambda: graph_from_networkx(networkx_with(edge_data={"w": "heavy"}), weight="w"),
     TypeError, r"weight='w' of edge \(0, 1\) must be a number"),
    ("networkx-weight-nan", lambda: graph_from_networkx(networkx_with(edge_data={"w": float("nan")}), weight="w"),
     ValueError, r"edge_weight contains NaN"),
    ("scipy-non-square", lambda: graph_from_scipy(sp.csr_matrix(np.ones((2, 3)))), ValueError, r"adjacency must be square"),
    ("scipy-3d", lambda: graph_from_scipy(np.ones((2, 2, 2))), ValueError, r"adjacency must be a square 2-D"),
    ("scipy-empty", lambda: graph_from_scipy(sp.csr_matrix((0, 0))), ValueError, r"adjacency is 0 x 0"),
    ("scipy-features-rows", lambda: graph_from_scipy(sp.eye(3), np.ones((2, 1))), ValueError,
     r"features must have shape \(3, num_features\)"),
    ("scipy-features-str", lambda: graph_from_scipy(sp.eye(3), np.full((3, 1), "a")), TypeError,
     r"features must hold real numbers"),
    ("scipy-adjacency-nan", lambda: graph_from_scipy(sp.csr_matrix(nan_at((2, 2), (0, 1)))), ValueError,
     r"adjacency contains NaN"),
    ("scipy-adjacency-str", lambda: graph_from_scipy(np.full((2, 2), "1")), TypeError, r"adjacency must hold real"),
    # gram()
    ("gram-get", lambda: gram(GNTK(1, 1), [lab3()], get="kernel", progress=False), ValueError, r"get must be 'nngp', 'ntk'"),
    ("gram-get-None", lambda: gram(GNTK(1, 1), [lab3()], get=None, progress=False), ValueError, r"get must be 'nngp', 'ntk'"),
    ("gram-get-empty", lambda: gram(GNTK(1, 1), [lab3()], get=(), progress=False), ValueError, r"get must be"),
    ("gram-dtype", lambda: gram(GNTK(1, 1), [lab3()], dtype="float16", progress=False), ValueError, r"dtype must be 'float32'"),
    ("gram-dtype-numpy", lambda: gram(GNTK(1, 1), [lab3()], dtype=np.float16, progress=False), ValueError, r"dtype must be"),
    ("gram-block_size-zero", lambda: gram(GNTK(1, 1), [lab3()], block_size=0, progress=False), ValueError, r"block_size must be"),
    ("gram-block_size-float", lambda: gram(GNTK(1, 1), [lab3()], block_size=2.5, progress=False), TypeError, r"block_size must be an integer, got 2.5"),
    ("gram-block_size-str", lambda: gram(GNTK(1, 1), [lab3()], block_size="8", progress=False), TypeError, r"block_size must be"),
    ("gram-num_tags-zero", lambda: gram(GNTK(1, 1), [lab3()], num_tags=0, progress=False), ValueError, r"num_tags must be"),
    ("gram-num_tags-str", lambda: gram(GNTK(1, 1), [lab3()], num_tags="2", progress=False), TypeError, r"num_tags must be"),
    ("gram-num_tags-small", lambda: gram(GNTK(1, 1), [lab3([0, 5, 0])], num_tags=3, progress=False), ValueError,
     r"num_tags=3 but a graph has node label 5"),
    ("gram-memory_limit-str", lambda: gram(GNTK(1, 1), [lab3()], memory_limit="4GB", progress=False), TypeError,
     r"memory_limit .*must be"),
    ("gram-memory_limit-neg", lambda: gram(GNTK(1, 1), [lab3()], memory_limit=-1, progress=False), ValueError,
     r"memory_limit .*must be"),
    ("gram-memory_limit-float", lambda: gram(GNTK(1, 1), [lab3()], memory_limit=1e9, progress=False), TypeError,
     r"memory_limit .*must be"),
    ("gram-graphs-empty", lambda: gram(GNTK(1, 1), [], progress=False), ValueError, r"graphs is empty"),
    ("gram-graphs-non-graph", lambda: gram(GNTK(1, 1), [lab3(), np.eye(3)], progress=False), TypeError,
     r"graphs\[1\] is a ndarray"),
    ("gram-graphs-single", lambda: gram(GNTK(1, 1), lab3(), progress=False), TypeError, r"graphs must be a sequence.*single"),
    ("gram-graphs-int", lambda: gram(GNTK(1, 1), 7, progress=False), TypeError, r"graphs must be a GraphDataset"),
    ("gram-graphs2-empty", lambda: gram(GNTK(1, 1), [lab3()], [], progress=False), ValueError, r"graphs2 is empty"),
    ("gram-graphs2-non-graph", lambda: gram(GNTK(1, 1), [lab3()], ["g"], progress=False), TypeError, r"graphs2\[0\] is a str"),
    ("gram-mixed-labels-and-x", lambda: gram(GNTK(1, 1), [lab3([0, 1, 0]), g3(x=np.ones((3, 2)))], progress=False),
     ValueError, r"graph 1 .*lacks discrete node_labels but graph 0 has them"),
    ("gram-mixed-x-presence", lambda: gram(GNTK(1, 1), [g3(node_labels=np.array([0, 1, 0])), lab3([0, 1, 1])],
                                           num_tags=2, progress=False),
     ValueError, r"graph 1 .*lacks continuous features x"),
    ("gram-mixed-across-graphs2", lambda: gram(GNTK(1, 1), [lab3([0, 1, 0])], [g3(x=np.ones((3, 2)))], progress=False),
     ValueError, r"graph 1 \(counting graphs, then graphs2\)"),
    ("gram-feature-width", lambda: gram(GNTK(1, 1), [g3(), g3(x=np.ones((3, 4)))], progress=False), ValueError,
     r"node features x of different widths \[2, 4\]"),
    ("gram-method", lambda: gram(GNTK(1, 1), [lab3()], method="fast", progress=False), ValueError, r"method must be one of"),
    ("gram-implementation", lambda: gram(GNTK(1, 1), [lab3()], implementation="csr", progress=False), ValueError,
     r"implementation must be 'DENSE' or 'SPARSE'"),
    ("gram-model", lambda: gram("gntk", [lab3()], progress=False), TypeError, r"model must be a graph_ntk.nn description"),
    ("gram-output", lambda: gram(GNTK(1, 1), [lab3()], output="K.txt", progress=False), ValueError, r"output must end in \.npy"),
    # Node-level kernels (check_node_graph)
    ("exact-x-nan", node_call(exact_node_kernel, nan_at((3, 3), (2, 1))), ValueError, r"x contains NaN.*node 2"),
    ("exact-x-inf", node_call(exact_node_kernel, np.full((3, 3), np.inf)), ValueError, r"x contains NaN or infinite"),
    ("lowrank-x-nan", node_call(lowrank_node_kernel, nan_at((3, 3), (1, 0)), num_landmarks=2), ValueError,
     r"x contains NaN.*node 1"),
    ("lowrank-x-inf", node_call(lowrank_node_kernel, nan_at((3, 3), (0, 0)) * 0 + np.inf, num_landmarks=2), ValueError,
     r"x contains NaN or infinite"),
    ("exact-x-sparse-nan", node_call(exact_node_kernel, sp.csr_matrix(nan_at((3, 3), (2, 2)))), ValueError,
     r"x contains NaN.*node 2"),
    ("exact-x-float32-overflow", node_call(exact_node_kernel, np.full((3, 3), 1e300), dtype=np.float32), ValueError,
     r"x contains NaN or infinite"),
    ("exact-x-str", node_call(exact_node_kernel, np.full((3, 3), "a")), TypeError, r"x must hold real numbers"),
    ("lowrank-x-complex", node_call(lowrank_node_kernel, np.eye(3) * 1j), TypeError, r"x must hold real numbers.*complex"),
    ("exact-x-ragged", node_call(exact_node_kernel, [[1.0, 2.0], [3.0]]), ValueError, r"x must be a rectangular"),
    ("exact-x-1d", node_call(exact_node_kernel, np.ones(3)), ValueError, r"x must be \(num_nodes, features\)"),
    ("exact-edge_index-float", node_call(exact_node_kernel, edge_index=EI * 1.0), TypeError, r"edge_index must hold integer"),
    ("exact-edge_index-ragged", node_call(exact_node_kernel, edge_index=[[0, 1], [1]]), ValueError,
     r"edge_index must be a rectangular"),
    ("lowrank-edge_index-range", node_call(lowrank_node_kernel, edge_index=[[0, 3], [1, 0]]), ValueError,
     r"edge_index refers to node 3"),
    ("exact-edge_weight-length", node_call(exact_node_kernel, edge_weight=np.ones(3)), ValueError,
     r"edge_weight must have shape \(4,\)"),
    ("exact-edge_weight-nan", node_call(exact_node_kernel, edge_weight=nan_at(4, 0)), ValueError, r"edge_weight contains NaN"),
    ("exact-get", node_call(exact_node_kernel, get="kernel"), ValueError, r"get must be one of 'nngp', 'ntk'"),
    ("exact-rows", node_call(exact_node_kernel, rows=[0, 9]), ValueError, r"rows must be a 1-D array of node indices"),
    ("exact-dtype", node_call(exact_node_kernel, dtype=np.float16), ValueError, r"dtype must be float32 or float64"),
    ("exact-network", lambda: exact_node_kernel("gcn", np.eye(3), EI), ValueError, r"network must be a graph_ntk.nn description"),
    ("stax-node_kernel-x-nan", lambda: node_kernel(gcn(1)[2], nan_at((3, 3), (0, 2)), EI), ValueError,
     r"x contains NaN.*node 0"),
    ("exact-x-no-features", node_call(exact_node_kernel, np.zeros((3, 0))), ValueError, r"x has shape \(3, 0\), no features"),
    # Node-level presets and the GNTK builders
    ("gcn-width-zero", lambda: gcn(2, width=0), ValueError, r"width must be at least 1, got 0"),
    ("gcn-out_dim-zero", lambda: gcn(2, out_dim=0), ValueError, r"out_dim must be at least 1, got 0"),
    ("gcn-num_layers-float", lambda: gcn(2.0), TypeError, r"num_layers must be an integer, got 2\.0.*round it"),
    ("gcn-num_layers-None", lambda: gcn(None), TypeError, r"num_layers must be an integer"),
    ("gntk-width-zero", lambda: gntk(2, input_dim=3, width=0), ValueError, r"width must be at least 1, got 0"),
    ("gntk-input_dim-float", lambda: gntk(2, input_dim=2.5), TypeError, r"input_dim must be an integer, got 2\.5"),
    ("gntk-num_blocks-float", lambda: gntk(2.5, input_dim=3), TypeError, r"num_blocks must be an integer, got 2\.5"),
    ("gntk-num_blocks-bool", lambda: gntk(True, input_dim=3), TypeError, r"num_blocks must be an integer, got True"),
    ("nn-Scale-nan", lambda: nn.Scale(float("nan")), ValueError, r"Scale: c must be finite"),
    ("nn-Scale-str", lambda: nn.Scale("2"), TypeError, r"Scale: c must be a real number"),
    ("stax-Scale-inf", lambda: stax_scale(float("inf")), ValueError, r"Scale: c must be finite"),
    # Node-level GP inference
    ("node_gp-train_idx-range", lambda: node_gp_select(block4, Y4, [0, 9], [2], [3], 2), ValueError,
     r"train_idx holds node 9, outside 0\.\.3"),
    ("node_gp-test_idx-y-short", lambda: node_gp_select(block4, Y4[:3], [0, 1], [2], [3], 2), ValueError,
     r"test_idx holds node 3, outside 0\.\.2"),
    ("node_gp-train_idx-float", lambda: node_gp_select(block4, Y4, [0.0, 1.0], [2], [3], 2), TypeError,
     r"train_idx must hold integer node indices"),
    ("node_gp-val_idx-mask", lambda: node_gp_select(block4, Y4, [0, 1], np.array([0, 0, 1, 0], bool), [3], 2),
     TypeError, r"val_idx must hold integer.*flatnonzero"),
    ("node_gp-num_classes-float", lambda: node_gp_select(block4, Y4, [0, 1], [2], [3], 2.5), TypeError,
     r"num_classes must be an integer"),
    ("node_gp-kernel-nan", lambda: node_gp_select(lambda r, c: np.full((r.size, c.size), np.nan), Y4, [0, 1], [2],
                                                  [3], 2),
     ValueError, r"node kernel contains NaN"),
    ("classify-K_test_train-nan", lambda: node_gp_classify(np.eye(2), np.full((1, 2), np.nan), [0, 1], 2, 0.1, [0]),
     ValueError, r"k_test_train .*contains NaN"),
    ("classify-K_train_train-inf", lambda: node_gp_classify(np.full((2, 2), np.inf), np.ones((1, 2)), [0, 1], 2, 0.1, [0]),
     ValueError, r"k_train_train .*contains NaN or infinite"),
    ("classify-y_train-length", lambda: node_gp_classify(np.eye(2), np.ones((1, 2)), [0, 1, 0], 2, 0.1, [0]),
     ValueError, r"y_train must have one label per row of K_train_train \(2\)"),
    # Graph collections outside gram()
    ("wl-graphs-single", lambda: wl_subtree_gram(lab3()), TypeError, r"graphs must be a sequence.*single Graph"),
    ("wl-graphs-int", lambda: wl_subtree_gram(3), TypeError, r"graphs must be a GraphDataset or a sequence"),
    ("transformer-X-single", lambda: GraphKernelTransformer(GNTK(1, 1)).fit(lab3()), TypeError,
     r"X must be a sequence of Graph, got a single Graph"),
    ("transformer-X-int", lambda: GraphKernelTransformer(GNTK(1, 1)).fit(4), TypeError, r"X must be a list of"),
    ("monte_carlo-graphs-empty", lambda: monte_carlo([]), ValueError, r"graphs_or_batch is empty"),
    ("monte_carlo-graphs-single", lambda: monte_carlo(lab3()), TypeError, r"graphs_or_batch must be a sequence"),
    ("monte_carlo-graphs2-non-graph", lambda: monte_carlo([lab3()], ["g"]), TypeError, r"graphs2\[0\] is a str"),
    ("monte_carlo-n_groups-float", lambda: monte_carlo([lab3()], n_groups=2.0), TypeError, r"n_groups must be an integer"),
    ("monte_carlo-batch_size-neg", lambda: monte_carlo([lab3()], batch_size=-1), ValueError, r"batch_size must be at least 0"),
    ("demo-n_graphs-float", lambda: make_demo_dataset(2.5), TypeError, r"n_graphs must be an integer"),
    # evaluate()
    ("evaluate-K-empty", lambda: evaluate(np.zeros((0, 0)), np.zeros(0)), ValueError, r"K is 0 x 0"),
    ("evaluate-y-nan", lambda: evaluate(np.eye(6) + 1, nan_at(6, 3)), ValueError, r"y contains NaN.*first at 3"),
    ("evaluate-fold-not-pair", lambda: evaluate(np.eye(6) + 1, np.arange(6) % 2, [np.arange(4)]), ValueError,
     r"fold 0 must be a \(train_idx, test_idx\) pair"),
    ("evaluate-fold-ragged", lambda: evaluate(np.eye(6) + 1, np.arange(6) % 2, [([0, 1], [[2], [3, 4]])]), ValueError,
     r"fold 0: its train or test part is a ragged list"),
    ("evaluate-y-length", lambda: evaluate(np.eye(6) + 1, np.arange(5) % 2), ValueError, r"y must have one label per row of K \(6\)"),
    ("evaluate-K-not-square", lambda: evaluate(np.ones((6, 5)), np.arange(6) % 2), ValueError, r"K must be a square Gram matrix"),
    ("evaluate-K-1d", lambda: evaluate(np.ones(6), np.arange(6) % 2), ValueError, r"K must be a square Gram matrix"),
    ("evaluate-K-nan", lambda: evaluate(nan_at((6, 6), (1, 2)), np.arange(6) % 2), ValueError, r"K contains NaN"),
    ("evaluate-protocols", lambda: evaluate(np.eye(6) + 1, np.arange(6) % 2, protocols=("svm",)), ValueError,
     r"protocols must be drawn from"),
    ("evaluate-folds-range", lambda: evaluate(np.eye(6) + 1, np.arange(6) % 2, [(np.array([0, 1]), np.array([9]))],
                                              protocols=("nested",)),
     ValueError, r"fold 0 has indices outside 0\.\.5"),
]


@pytest.mark.parametrize("call, exc, pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_input(call, exc, pattern):
    with pytest.raises(exc, match=pattern) as err:
        call()
    assert "\n" not in str(err.value), str(err.value)


# ----------------------------------------------------------------------- files on disk
TOY_GIN = "2\n2 1\n0 1 1\n1 1 0\n3 0\n1 1 1\n0 2 0 2\n1 1 1\n"
TOY_TU = {
    "A": "1, 2\n2, 1\n3, 4\n4, 3\n4, 5\n5, 4\n",
    "graph_indicator": "1\n1\n2\n2\n2\n",
    "graph_labels": "1\n-1\n",
    "node_labels": "5\n7\n5\n9\n7\n",
}


def write_gin(root: Path, text: str, folds: dict[str, str] | None = None) -> Path:
    (root / "BAD").mkdir(parents=True)
    (root / "BAD" / "BAD.txt").write_text(text)
    if folds is not None:
        (root / "BAD" / "10fold_idx").mkdir()
        for name, body in folds.items():
            (root / "BAD" / "10fold_idx" / name).write_text(body)
    return root


def write_tu(root: Path, **override: str | None) -> Path:
    (root / "BAD").mkdir(parents=True)
    for part, text in {**TOY_TU, **override}.items():
        if text is not None:
            (root / "BAD" / f"BAD_{part}.txt").write_text(text)
    return root


PLANETOID_PARTS = ("x", "y", "tx", "ty", "allx", "ally", "graph", "test.index")


def write_planetoid(root: Path, broken: str | None = None, missing: str | None = None) -> Path:
    """A tiny valid Planetoid set (4 nodes, 2 classes); ``broken`` gets garbage bytes."""
    folder = root / "toy"
    folder.mkdir(parents=True)
    objs = {
        "x": sp.csr_matrix(np.eye(2, 3)), "y": np.eye(2), "allx": sp.csr_matrix(np.eye(3)[:3]),
        "ally": np.eye(2)[[0, 1, 0]], "tx": sp.csr_matrix(np.ones((1, 3))), "ty": np.eye(2)[[1]],
        "graph": {0: [1], 1: [0, 2], 2: [1, 3], 3: [2]},
    }
    for part in PLANETOID_PARTS:
        if part == missing:
            continue
        path = folder / f"ind.toy.{part}"
        if part == broken:
            path.write_bytes(b"not a pickle at all")
        elif part == "test.index":
            path.write_text("3\n")
        else:
            path.write_bytes(pickle.dumps(objs[part]))
    return root


FILE_CASES = [
    ("gin-root-None", lambda tmp: load_gin(None, "BAD"), TypeError, r"root must be the path of the folder"),
    ("gin-name-None", lambda tmp: load_gin(tmp, None), TypeError, r"name must be the dataset name"),
    ("gin-root-missing", lambda tmp: load_gin(tmp / "nowhere", "BAD"), ValueError, r"dataset root .*nowhere does not exist"),
    ("gin-root-is-file", lambda tmp: load_gin(write_gin(tmp, TOY_GIN) / "BAD" / "BAD.txt", "BAD"), ValueError,
     r"BAD\.txt is a file, not a folder"),
    ("gin-unknown-name", lambda tmp: load_gin(write_gin(tmp, TOY_GIN), "GOOD"), ValueError, r"no GIN dataset 'GOOD'.*BAD"),
    ("gin-count-too-high", lambda tmp: load_gin(write_gin(tmp, "3" + TOY_GIN[1:]), "BAD"), DatasetFormatError,
     r"BAD\.txt line 9: file ends after 2 graphs"),
    ("gin-count-too-low", lambda tmp: load_gin(write_gin(tmp, "1" + TOY_GIN[1:]), "BAD"), DatasetFormatError,
     r"BAD\.txt line 5: extra line"),
    ("gin-non-numeric", lambda tmp: load_gin(write_gin(tmp, TOY_GIN.replace("1 1 0", "1 one 0")), "BAD"),
     DatasetFormatError, r"BAD\.txt line 4: 'one' is not an integer"),
    ("gin-float-token", lambda tmp: load_gin(write_gin(tmp, TOY_GIN.replace("3 0", "3 0.5")), "BAD"),
     DatasetFormatError, r"BAD\.txt line 5: '0\.5' is not an integer"),
    ("gin-neighbour-range", lambda tmp: load_gin(write_gin(tmp, TOY_GIN.replace("0 1 1\n1 1 0", "0 1 1\n1 1 4")), "BAD"),
     DatasetFormatError, r"BAD\.txt line 4: neighbour index 4 out of range 0\.\.1"),
    ("gin-neighbour-count", lambda tmp: load_gin(write_gin(tmp, TOY_GIN.replace("0 2 0 2", "0 3 0 2")), "BAD"),
     DatasetFormatError, r"BAD\.txt line 7: .*3 neighbours"),
    ("gin-zero-nodes", lambda tmp: load_gin(write_gin(tmp, "1\n0 1\n"), "BAD"), DatasetFormatError,
     r"BAD\.txt line 2: graph 0 declares 0 nodes"),
    ("gin-fold-missing", lambda tmp: load_gin(write_gin(tmp, TOY_GIN, folds={}), "BAD"), ValueError,
     r"train_idx-1\.txt: file not found"),
    ("gin-fold-range", lambda tmp: load_gin(write_gin(tmp, TOY_GIN, folds={"train_idx-1.txt": "0\n5\n"}), "BAD"),
     DatasetFormatError, r"train_idx-1\.txt line 2: graph index 5 out of range 0\.\.1"),
    ("gin-fold-non-numeric", lambda tmp: load_gin(write_gin(tmp, TOY_GIN, folds={"train_idx-1.txt": "0\nx\n"}), "BAD"),
     DatasetFormatError, r"train_idx-1\.txt line 2: 'x' is not an integer"),
    ("tu-root-None", lambda tmp: load_tu(None, "BAD"), TypeError, r"root must be the path of the folder holding the TU"),
    ("tu-root-missing", lambda tmp: load_tu(tmp / "nowhere", "BAD"), ValueError, r"dataset root .*nowhere does not exist"),
    ("tu-name-path", lambda tmp: load_tu(tmp, "a/b"), ValueError, r"invalid dataset name 'a/b'"),
    ("tu-missing-labels", lambda tmp: load_tu(write_tu(tmp, graph_labels=None), "BAD"), ValueError,
     r"BAD_graph_labels\.txt: file not found"),
    ("tu-missing-A", lambda tmp: load_tu(write_tu(tmp, A=None), "BAD"), ValueError, r"BAD_A\.txt: file not found"),
    ("tu-A-non-numeric", lambda tmp: load_tu(write_tu(tmp, A="1, 2\n2, one\n"), "BAD"), DatasetFormatError,
     r"BAD_A\.txt line 2: 'one' is not an integer"),
    ("tu-A-range", lambda tmp: load_tu(write_tu(tmp, A="1, 2\n2, 6\n"), "BAD"), DatasetFormatError,
     r"BAD_A\.txt line 2: node id out of range 1\.\.5"),
    ("tu-A-zero-based", lambda tmp: load_tu(write_tu(tmp, A="0, 1\n1, 0\n"), "BAD"), DatasetFormatError,
     r"BAD_A\.txt line 1: node id out of range 1\.\.5"),
    ("tu-labels-count", lambda tmp: load_tu(write_tu(tmp, graph_labels="1\n"), "BAD"), DatasetFormatError,
     r"BAD_graph_labels\.txt line 2: file ends after 1 labels"),
    ("tu-node-labels-count", lambda tmp: load_tu(write_tu(tmp, node_labels="1\n2\n"), "BAD"), DatasetFormatError,
     r"BAD_node_labels\.txt line 3: file ends after 2 lines"),
    ("tu-attributes-nan", lambda tmp: load_tu(write_tu(tmp, node_attributes="1.0\n2.0\nnan\n1.0\n1.0\n"), "BAD"),
     DatasetFormatError, r"BAD_node_attributes\.txt line 3: non-finite attribute"),
    ("tu-attributes-columns", lambda tmp: load_tu(write_tu(tmp, node_attributes="1.0, 2\n2.0\n1\n1\n1\n"), "BAD"),
     DatasetFormatError, r"BAD_node_attributes\.txt line 2: expected"),
    ("tu-indicator-start", lambda tmp: load_tu(write_tu(tmp, graph_indicator="0\n0\n1\n1\n1\n"), "BAD"),
     DatasetFormatError, r"BAD_graph_indicator\.txt line 1: graph ids must start at 1"),
    ("planetoid-root-None", lambda tmp: load_planetoid(None, "toy"), TypeError, r"root must be the path of the folder"),
    ("planetoid-name-None", lambda tmp: load_planetoid(tmp, None), TypeError, r"name must be the dataset name"),
    ("planetoid-root-missing", lambda tmp: load_planetoid(tmp / "nowhere", "cora"), ValueError,
     r"dataset root .*nowhere does not exist"),
    ("planetoid-missing-allx", lambda tmp: load_planetoid(write_planetoid(tmp, missing="allx"), "toy"), ValueError,
     r"ind\.toy\.allx: file not found \(features of all non-test nodes\)"),
    ("planetoid-missing-index", lambda tmp: load_planetoid(write_planetoid(tmp, missing="test.index"), "toy"), ValueError,
     r"ind\.toy\.test\.index: file not found"),
    ("planetoid-broken-pickle", lambda tmp: load_planetoid(write_planetoid(tmp, broken="graph"), "toy"),
     DatasetFormatError, r"ind\.toy\.graph: not a readable Planetoid pickle"),
    ("planetoid-broken-index", lambda tmp: load_planetoid(write_planetoid(tmp, broken="test.index"), "toy"),
     DatasetFormatError, r"ind\.toy\.test\.index line 1: 'not' is not an integer"),
]


@pytest.mark.parametrize("call, exc, pattern", [c[1:] for c in FILE_CASES], ids=[c[0] for c in FILE_CASES])
def test_malformed_files(tmp_path, call, exc, pattern):
    with pytest.raises(exc, match=pattern) as err:
        call(tmp_path)
    assert "\n" not in str(err.value), str(err.value)


def test_toy_planetoid_is_valid(tmp_path):
    """The broken Planetoid cases above differ from a loadable set in one file only."""
    data = load_planetoid(write_planetoid(tmp_path), "toy")
    assert data.num_nodes == 4 and data.num_classes == 2 and data.test_idx.tolist() == [3]


def test_mixed_labels_refused_only_when_mixed():
    """Uniform collections still work: labels everywhere, or labels and x everywhere."""
    labelled = [lab3([0, 1, 0]), lab3([1, 1, 0])]
    both = [g3(node_labels=np.array([0, 1, 0])), g3(node_labels=np.array([1, 0, 0]))]
    assert gram(GNTK(1, 1), labelled, progress=False).shape == (2, 2)
    assert _input_dim(both, 2) == 4 and _input_dim([g3(), g3()], None) == 2


def test_subset_accepts_boolean_mask():
    ds = ds3()
    assert len(ds.subset(np.array([True, False, True]))) == 2
    assert ds.subset([2, 0]).y.tolist() == [0, 0]
