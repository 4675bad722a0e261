"""A small built-in graph-classification dataset, for demos and tests without downloads."""

from __future__ import annotations

import networkx as nx
import numpy as np

from graph_ntk.checks import as_count, as_seed
from graph_ntk.data.graph import Graph, GraphDataset

__all__ = ["make_demo_dataset", "DEMO_CLASSES"]

#: What each class of :func:`make_demo_dataset` is made of.
DEMO_CLASSES = (
    "ring: a cycle with a few random chords",
    "tree: a uniformly random labelled tree",
    "scale-free: a Barabasi-Albert graph (m = 2, or m = 1 which gives a tree)",
    "grid: a 2-D grid with a few edges removed",
)
_NUM_TAGS = 4
_MIN_NODES, _MAX_NODES = 10, 40


def _ring(n: int, rng: np.random.Generator) -> nx.Graph:
    g = nx.cycle_graph(n)
    for _ in range(int(rng.integers(1, 4))):
        u, v = rng.choice(n, size=2, replace=False)
        g.add_edge(int(u), int(v))
    return g


def _tree(n: int, rng: np.random.Generator) -> nx.Graph:
    # A uniformly random labelled tree is a uniformly random Pruefer sequence.
    return nx.from_prufer_sequence(rng.integers(0, n, size=n - 2).tolist())


def _scale_free(n: int, rng: np.random.Generator) -> nx.Graph:
    # m = 1 (a third of the time) makes a preferential-attachment tree: deliberately
    # close to class 1.
    m = 1 if rng.random() < 1 / 3 else 2
    return nx.barabasi_albert_graph(n, m, seed=int(rng.integers(2**31)))


def _grid(n: int, rng: np.random.Generator) -> nx.Graph:
    rows = int(rng.integers(2, int(np.sqrt(n)) + 1))
    g = nx.convert_node_labels_to_integers(nx.grid_2d_graph(rows, max(2, n // rows)))
    edges = list(g.edges())
    for i in rng.choice(len(edges), size=min(2, len(edges) - 1), replace=False):
        g.remove_edge(*edges[int(i)])
    return g


_FAMILIES = (_ring, _tree, _scale_free, _grid)


def make_demo_dataset(n_graphs: int = 300, seed: int = 0) -> GraphDataset:
    """A synthetic 4-class graph-classification dataset with node tags and 10 folds.

    Class ``c`` draws graphs of about 10-40 nodes from family ``DEMO_CLASSES[c]``: rings with
    chords, random trees, Barabasi-Albert graphs and grids. Node tags (``0..3``) are
    ``min(degree, 3)`` for half the nodes and uniformly random for the rest, so they
    carry structure but are noisy. The classes are not perfectly separable: scale-free
    graphs with ``m = 1`` (a third of them) are trees too, and 5% of the graph labels are resampled at
    random. A GNTK with sum aggregation should score clearly above chance (80-95% in
    10-fold SVM accuracy) but not 100%.

    Args:
        n_graphs: number of graphs (classes are balanced up to one graph).
        seed: random seed; the same seed gives the same dataset.

    Returns:
        A :class:`GraphDataset` named ``"demo"`` with ``num_tags = 4`` and 10 stratified
        ``folds`` (fewer when a class has fewer than 10 graphs, ``None`` below 2).
        ``meta["family"]`` holds each graph's family before label noise.

    Example:
        >>> ds = make_demo_dataset(100, seed=1)
        >>> len(ds), ds.num_tags, len(ds.folds)
        (100, 4, 10)
    """
    n_graphs = as_count(n_graphs, "n_graphs")  # 2.5 graphs is refused, not failed on deep in numpy
    rng = np.random.default_rng(as_seed(seed))
    family = rng.permutation(np.arange(n_graphs) % len(_FAMILIES))
    graphs = []
    for fam in family:
        n = int(rng.integers(_MIN_NODES, _MAX_NODES + 1))
        g = _FAMILIES[fam](n, rng)
        arcs = np.array(list(g.edges()), dtype=np.int64).reshape(-1, 2).T
        edge_index = np.concatenate([arcs, arcs[::-1]], axis=1)
        degree = np.array([d for _, d in sorted(g.degree())], dtype=np.int64)
        tags = np.where(rng.random(g.number_of_nodes()) < 0.5, np.minimum(degree, _NUM_TAGS - 1), rng.integers(0, _NUM_TAGS, degree.size))
        graphs.append(Graph(g.number_of_nodes(), edge_index, node_labels=tags))

    # Label noise keeps the task from being trivially separable.
    y = family.copy()
    noisy = rng.random(n_graphs) < 0.05
    y[noisy] = rng.integers(0, len(_FAMILIES), int(noisy.sum()))

    folds = None
    smallest = int(np.bincount(y, minlength=len(_FAMILIES))[np.unique(y)].min())
    n_splits = min(10, smallest)
    if n_splits >= 2:
        from sklearn.model_selection import StratifiedKFold  # lazy: sklearn takes ~1 s to import

        skf = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        folds = [(tr.astype(np.int64), te.astype(np.int64)) for tr, te in skf.split(np.zeros(n_graphs), y)]
    return GraphDataset(
        "demo",
        graphs,
        y.astype(np.int64),
        folds=folds,
        num_tags=_NUM_TAGS,
        meta={"family": family.astype(np.int64), "classes": np.arange(len(_FAMILIES)), "seed": seed},
    )
