r"""Structure-only hierarchical pooling (graph coarsening) with exact infinite-width kernels.

A coarsening maps a graph with :math:`n` nodes to one with :math:`K \le n` nodes through
an assignment matrix :math:`S \in \{0, 1\}^{n \times K}` (:math:`S_{ik} = 1` when node
:math:`i` belongs to cluster :math:`k`) that depends on the graph structure alone:

.. math::  X' = S^\top X, \qquad A' = S^\top A S, \qquad
           K'(G, G') = S^\top K(G, G')\, S', \qquad \Theta'(G, G') = S^\top \Theta(G, G')\, S'.

Because :math:`S` does not depend on features or weights, the pooling is a fixed linear
map and the NNGP :math:`K` and NTK :math:`\Theta` of everything after it stay exact.
Three methods are provided, each deterministic (node order breaks every tie):

* ``'graclus'`` — greedy matching with the normalised-cut weight of Dhillon, Guan &
  Kulis (2007, the Graclus pooling used by PyG/Defferrard et al.): nodes are visited in
  index order; an unmatched node :math:`u` is paired with the unmatched neighbour
  :math:`v` maximising :math:`w_{uv}(1/d_u + 1/d_v)`, or stays a singleton.
  :math:`K \ge \lceil n/2 \rceil`.
* ``'ndp'`` — node decimation pooling (Bianchi, Grattarola, Livi & Alippi, 2020): keep
  :math:`V^+ = \{i : v_i \ge 0\}` where :math:`v` is the eigenvector of the largest
  eigenvalue of the Laplacian :math:`L = D - A` (sign fixed so its largest-magnitude
  entry is positive). :math:`S` selects :math:`V^+` (one node per cluster) and, as in the
  paper, the pooled graph is the Kron reduction
  :math:`L' = L_{++} - L_{+-} L_{--}^{+} L_{-+}`, :math:`A' = -\mathrm{offdiag}(L')`,
  with weights below ``threshold`` dropped (the induced subgraph :math:`S^\top A S` of an
  approximate max-cut side would be nearly edgeless). The paper's random-cut fallback
  for poor spectral cuts is not used, to keep :math:`S` deterministic.
* ``'kmis'`` — k-maximal-independent-set pooling (Bacciu, Conte, Grossi, Landolfi &
  Marino, 2023): greedily (in node order) select nodes at pairwise hop distance
  :math:`> k`, then assign every node to its nearest selected node (ties: the earlier
  one); maximality puts every node within :math:`k` hops of its centre.

The structure decisions use the symmetrised graph :math:`(A + A^\top)/2`; Graclus and
KMIS keep the arc directions in :math:`A' = S^\top A S` (whose diagonal holds each
cluster's internal weight).

Design: pooling changes the graph, and ``stax`` passes the same keyword arguments (the
``pattern``) to every layer, so a pooling layer cannot hand the new adjacency to the
layers that follow it in a ``stax.serial``. :func:`StructurePool` is therefore a
combinator that *wraps the rest of the network*::

    stax.serial(stax.Dense(512), Aggregate(), stax.Relu(),
                StructurePool('graclus', stax.serial(Aggregate(), stax.Dense(512), stax.Relu(),
                                                     GlobalSumPool())))

It computes :math:`S` and :math:`A'` from the ``pattern`` and real-node mask it receives,
pools features (``apply_fn``) or kernels (``kernel_fn``), and calls the wrapped layers
with ``pattern=A'`` and ``node_mask`` of the pooled nodes. Being itself an ``(init_fn,
apply_fn, kernel_fn)`` triple, it composes with ``serial``/``parallel``/``FanOut`` and
nests: a second ``StructurePool`` inside ``then`` coarsens :math:`A'` in turn, with no
extra per-level keyword argument (a precomputed ``S`` passed as a kwarg would need one
per level). :math:`S` is computed with NumPy on the host, through ``jax.pure_callback``
when the inputs are traced (``jit``, Monte Carlo sampling); :func:`coarsen` precomputes
the same ``S`` and pooled batch for inspection. So that shapes stay static, the pooled
graph keeps the padded node count :math:`N`: cluster :math:`k` of graph :math:`b` sits in
row :math:`k < K_b` and rows :math:`K_b..N-1` are padding, marked in the ``node_mask``
handed to the wrapped layers (and in NT's mask when the input used ``mask_constant``).
"""

from __future__ import annotations

from typing import Any, Callable, Literal

import jax
import jax.numpy as jnp
import numpy as np
from neural_tangents import stax
from neural_tangents import Kernel
from scipy.sparse.csgraph import shortest_path

from graph_ntk.data.batch import GraphBatch
from graph_ntk.layers.aggregate import real_nodes
from graph_ntk.layers.pooling._base import check_dense_pattern, check_nodes, on_host, pair, unpack

Method = Literal["graclus", "ndp", "kmis"]

__all__ = [
    "StructurePool",
    "coarsen",
    "coarsen_graph",
    "graclus",
    "hierarchical_gntk",
    "kmis",
    "node_decimation",
    "pool_adjacency",
    "pool_kernel",
]


# ----------------------------------------------------------------- one graph, NumPy
def _symmetric_weights(adjacency: np.ndarray) -> np.ndarray:
    """``(A + A^T)/2`` without self loops, after checking ``A`` is a square non-negative matrix."""
    a = np.asarray(adjacency, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"adjacency must be a square (n, n) matrix, got shape {a.shape}")
    if not np.all(np.isfinite(a)) or (a < 0).any():
        raise ValueError("adjacency must hold finite non-negative arc weights")
    w = (a + a.T) / 2.0
    np.fill_diagonal(w, 0.0)
    return w


def _one_hot(labels: np.ndarray, num: int) -> np.ndarray:
    return np.eye(num)[labels] if labels.size else np.zeros((0, num))


def graclus(adjacency: np.ndarray) -> np.ndarray:
    r"""Graclus greedy matching: the ``(n, K)`` cluster assignment of one graph.

    Nodes are visited in index order; an unmatched node :math:`u` is merged with the
    unmatched neighbour :math:`v` of largest normalised-cut weight
    :math:`w_{uv}(1/d_u + 1/d_v)` (:math:`w = (A + A^\top)/2`, :math:`d` its degrees;
    ties go to the lower index), or stays alone. Clusters are numbered by their first node.

    Example:
        >>> a = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0.]])
        >>> graclus(a).astype(int).tolist()   # 0-1 matched, 2 alone
        [[1, 0], [1, 0], [0, 1]]
    """
    w = _symmetric_weights(adjacency)
    n = w.shape[0]
    degree = w.sum(axis=1)
    inv_degree = np.divide(1.0, degree, out=np.zeros(n), where=degree > 0)
    cluster = -np.ones(n, dtype=np.int64)
    k = 0
    for u in range(n):
        if cluster[u] >= 0:
            continue
        cluster[u] = k
        candidates = np.flatnonzero((w[u] > 0) & (cluster < 0))
        if candidates.size:
            cut_weight = w[u, candidates] * (inv_degree[u] + inv_degree[candidates])
            cluster[candidates[np.argmax(cut_weight)]] = k
        k += 1
    return _one_hot(cluster, k)


def _top_laplacian_eigenvector(w: np.ndarray) -> np.ndarray:
    laplacian = np.diag(w.sum(axis=1)) - w
    _, vectors = np.linalg.eigh(laplacian)
    v = vectors[:, -1]
    # Eigenvectors are defined up to sign; fixing it makes the selection reproducible.
    return -v if v[np.argmax(np.abs(v))] < 0 else v


def node_decimation(adjacency: np.ndarray, threshold: float = 1e-2) -> tuple[np.ndarray, np.ndarray]:
    r"""Node decimation pooling of one graph: ``(S, A')`` with ``S`` selecting :math:`V^+`.

    :math:`V^+ = \{i : v_i \ge 0\}` for the top eigenvector :math:`v` of :math:`L = D - W`,
    :math:`W = (A + A^\top)/2` (sign fixed so the largest-magnitude entry is positive;
    entries within rounding of 0, e.g. isolated nodes, count as :math:`\ge 0`). The pooled
    graph is the Kron reduction of :math:`L` onto :math:`V^+`, with weights below
    ``threshold`` dropped (sparsification).

    Example:
        >>> a = np.array([[0, 1, 0, 0], [1, 0, 1, 0], [0, 1, 0, 1], [0, 0, 1, 0.]])  # path
        >>> s, a_pooled = node_decimation(a)
        >>> s.sum(axis=0).tolist(), a_pooled.shape   # every other node kept
        ([1.0, 1.0], (2, 2))
    """
    if threshold < 0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    w = _symmetric_weights(adjacency)
    v = _top_laplacian_eigenvector(w)
    keep = v >= -1e-10 * np.abs(v).max()
    s = np.eye(w.shape[0])[:, keep]
    laplacian = np.diag(w.sum(axis=1)) - w
    l_kk, l_kd, l_dd = laplacian[np.ix_(keep, keep)], laplacian[np.ix_(keep, ~keep)], laplacian[np.ix_(~keep, ~keep)]
    # The pseudo-inverse covers components that lie entirely in V-: they have no arcs to
    # V+ (zero columns in l_kd), so any generalised inverse gives the same reduction.
    reduced = l_kk - l_kd @ np.linalg.pinv(l_dd, hermitian=True) @ l_kd.T if l_dd.size else l_kk
    a_pooled = -reduced
    np.fill_diagonal(a_pooled, 0.0)
    a_pooled[a_pooled < threshold] = 0.0
    return s, a_pooled


def kmis(adjacency: np.ndarray, k: int = 1) -> np.ndarray:
    r"""k-MIS pooling of one graph: the ``(n, K)`` assignment to a maximal k-independent set.

    Centres are chosen greedily in node order among nodes at hop distance :math:`> k` from
    every centre chosen so far (a maximal independent set of the k-th power graph); each
    node joins its nearest centre (ties: the earlier centre).

    Example:
        >>> a = np.diag(np.ones(4), 1); a = a + a.T      # path 0-1-2-3-4
        >>> kmis(a, k=1).argmax(axis=1).tolist()          # centres 0, 2, 4
        [0, 0, 1, 1, 2]
    """
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer (hop distance), got {k!r}")
    w = _symmetric_weights(adjacency)
    hops = shortest_path(w > 0, unweighted=True, directed=False)
    centres: list[int] = []
    for u in range(w.shape[0]):
        if all(hops[u, c] > k for c in centres):
            centres.append(u)
    cluster = np.argmin(hops[:, centres], axis=1)  # argmin keeps the first (earliest) tie
    return _one_hot(cluster, len(centres))


def pool_adjacency(s: np.ndarray, adjacency: np.ndarray) -> np.ndarray:
    r"""The coarsened adjacency :math:`A' = S^\top A S` (batched over leading axes).

    Example:
        >>> pool_adjacency(np.array([[1.], [1.]]), np.array([[0, 1], [1, 0.]])).tolist()
        [[2.0]]
    """
    return np.einsum("...ik,...ij,...jl->...kl", s, adjacency, s)


_METHODS: dict[str, tuple[Callable[..., Any], tuple[str, ...]]] = {
    "graclus": (graclus, ()),
    "ndp": (node_decimation, ("threshold",)),
    "kmis": (kmis, ("k",)),
}


def _check_method(method: str, options: dict[str, Any]) -> None:
    if method not in _METHODS:
        raise ValueError(f"method must be one of {tuple(_METHODS)}, got {method!r}")
    allowed = _METHODS[method][1]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for method {method!r}; it accepts {list(allowed) or 'none'}")


def coarsen_graph(adjacency: np.ndarray, method: Method, **options: Any) -> tuple[np.ndarray, np.ndarray]:
    r"""Coarsen one (unpadded) graph: ``(S, A')`` with ``S`` of shape ``(n, K)``, ``A'`` ``(K, K)``.

    ``A' = S^T A S`` for ``'graclus'`` and ``'kmis'``, the Kron reduction for ``'ndp'``.
    ``options``: ``k`` (``'kmis'``), ``threshold`` (``'ndp'``).

    Example:
        >>> s, a2 = coarsen_graph(np.array([[0, 1], [1, 0.]]), "graclus")
        >>> s.tolist(), a2.tolist()
        ([[1.0], [1.0]], [[2.0]])
    """
    _check_method(method, options)
    fn = _METHODS[method][0]
    if method == "ndp":
        return fn(adjacency, **options)
    s = fn(adjacency, **options)
    return s, pool_adjacency(s, np.asarray(adjacency, dtype=np.float64))


def _coarsen_padded(pattern: np.ndarray, real: np.ndarray, method: str, options: dict) -> tuple[np.ndarray, np.ndarray]:
    """Padded batch version: ``S`` and ``A'`` both ``(B, N, N)``; padded nodes are never
    assigned and clusters fill the first ``K_b`` columns of each graph."""
    pattern, real = np.asarray(pattern, dtype=np.float64), np.asarray(real, dtype=bool)
    b, n = real.shape
    s_out, a_out = np.zeros((b, n, n)), np.zeros((b, n, n))
    for g in range(b):
        nodes = np.flatnonzero(real[g])
        if nodes.size == 0:
            continue
        s, a = coarsen_graph(pattern[g][np.ix_(nodes, nodes)], method, **options)
        k = s.shape[1]
        s_out[g, nodes, :k] = s
        a_out[g, :k, :k] = a
    return s_out, a_out


def coarsen(batch: GraphBatch, method: Method, **options: Any) -> tuple[np.ndarray, GraphBatch]:
    r"""Precompute the coarsening of a padded dense batch: ``(S, pooled_batch)``.

    ``S`` is ``(B, N, K)`` with ``K`` the largest cluster count in the batch (rows of
    padded nodes and columns of missing clusters are 0); ``pooled_batch`` holds
    :math:`X' = S^\top X` (zero-padded), :math:`A'` and the cluster counts. This is exactly
    what :func:`StructurePool` feeds to its wrapped layers (there padded to ``N`` rows).

    Example:
        >>> from graph_ntk import Graph
        >>> g = Graph(3, np.array([[0, 1, 1, 2], [1, 0, 2, 1]]), x=np.eye(3))
        >>> s, pooled = coarsen(GraphBatch.from_graphs([g]), "graclus")
        >>> s.shape, pooled.n_nodes.tolist()
        ((1, 3, 2), [2])
    """
    if batch.adjacency is None:
        raise ValueError("coarsen needs a dense batch (adjacency); convert with batch.to_dense()")
    _check_method(method, options)
    s, a = _coarsen_padded(batch.adjacency, batch.node_mask, method, options)
    counts = s.any(axis=1).sum(axis=1)
    k = int(counts.max())
    s, a = s[:, :, :k], a[:, :k, :k]
    x = np.einsum("bnk,bnf->bkf", s, np.where(batch.node_mask[:, :, None], batch.x, 0.0))
    return s, GraphBatch(x, counts, adjacency=a)


def pool_kernel(kernel: jnp.ndarray, s1: jnp.ndarray, s2: jnp.ndarray) -> jnp.ndarray:
    r"""Pool a node-level kernel: :math:`K'_{ab} = S_{1,a}^\top K_{ab} S_{2,b}`.

    ``kernel`` is ``(B1, B2, N1, N2)``, ``s1`` ``(B1, N1, K1)``, ``s2`` ``(B2, N2, K2)``.

    Example:
        >>> pool_kernel(np.ones((1, 1, 2, 2)), np.ones((1, 2, 1)), np.ones((1, 2, 1))).tolist()
        [[[[4.0]]]]
    """
    return jnp.einsum("aik,abij,bjl->abkl", s1, kernel, s2)


# ----------------------------------------------------------------- the stax combinator
def _pool_graph(pattern, node_mask, nt_mask, batch: int, n: int, dtype, method: str, options: dict):
    """``(S, A', pooled node_mask (B, N), pooled NT mask (B, N, 1) or None)``."""
    check_dense_pattern(pattern, batch, n, "StructurePool")
    real = real_nodes(node_mask, nt_mask, batch, n, dtype) > 0

    def host(p, r):
        s_host, a_host = _coarsen_padded(p, r, method, options)
        return s_host.astype(dtype), a_host.astype(dtype)

    shape = jax.ShapeDtypeStruct((batch, n, n), dtype)
    s, a = on_host(host, (shape, shape), pattern, real)
    pooled_real = jnp.any(s != 0, axis=1)  # a cluster exists iff it has a member
    return s, a, pooled_real, None if nt_mask is None else ~pooled_real[:, :, None]


_SPATIAL = stax.Diagonal(input=stax.Bool.NO, output=stax.Bool.NO)


@stax.layer
def StructurePool(method: Method, then=None, **options: Any):
    r"""Coarsen the graph with a structure-only method and run ``then`` on the pooled graph.

    :math:`X' = S^\top X`, and ``then`` sees ``pattern=A'`` and ``node_mask`` of the
    pooled nodes; kernels pool exactly, :math:`K' = S_1^\top K S_2` (NNGP, NTK and the
    per-graph covariances), before ``then``'s ``kernel_fn``. See the module docstring for
    the methods and the padded layout (the pooled graph keeps ``N`` rows, the unused ones
    masked).

    Args:
        method: ``'graclus'``, ``'ndp'`` or ``'kmis'``.
        then: the layers that follow on the pooled graph, an ``(init_fn, apply_fn,
            kernel_fn)`` triple (e.g. ``stax.serial(Aggregate(), stax.Dense(512),
            stax.Relu(), GlobalSumPool())``); ``None`` returns the pooled node features
            (as ``stax.Identity()``).
        **options: ``k`` for ``'kmis'`` (hop distance, default 1), ``threshold`` for
            ``'ndp'`` (Kron-reduction sparsification, default ``1e-2``).

    Inputs: node features ``(B, N, F)`` with ``pattern`` a dense ``(B, N, N)`` adjacency
    (``Aggregate(implementation='DENSE')``); padding marked by ``node_mask`` (as from
    :class:`graph_ntk.GraphBatch`) or NT's ``mask_constant``.

    Example:
        >>> import numpy as np
        >>> from neural_tangents import stax
        >>> net = stax.serial(stax.Dense(8), StructurePool('graclus', stax.serial(Aggregate(), GlobalSumPool())))
        >>> a = np.array([[[0, 1, 0], [1, 0, 1], [0, 1, 0.]]])   # path: pairs {0, 1}, {2}
        >>> float(net[2](np.ones((1, 3, 2)), None, 'nngp', pattern=(a, a))[0, 0])
        49.0
    """
    _check_method(method, options)
    then_init, then_apply, then_kernel = stax.Identity() if then is None else then

    def init_fn(rng, input_shape):
        # The pooled graph keeps the padded node count, so ``then`` sees the same shape.
        return then_init(rng, input_shape)

    def apply_fn(params, inputs, *, pattern=None, node_mask=None, mask_constant=None, **kwargs):
        x, nt_mask = unpack(inputs, mask_constant)
        check_nodes(x, "StructurePool")
        batch, n, _ = x.shape
        s, a, pooled_real, pooled_nt_mask = _pool_graph(pattern, node_mask, nt_mask, batch, n, x.dtype,
                                                        method, options)
        pooled = jnp.einsum("bnk,bnf->bkf", s, x)
        if pooled_nt_mask is not None:
            pooled = stax.MaskedArray(pooled, pooled_nt_mask)
        return then_apply(params, pooled, pattern=a, node_mask=pooled_real, mask_constant=mask_constant, **kwargs)

    @stax.requires(batch_axis=0, channel_axis=-1, diagonal_spatial=_SPATIAL)
    def kernel_fn(k: Kernel, *, pattern=(None, None), node_mask=(None, None), **kwargs) -> Kernel:
        p1, p2 = pair(pattern)
        if p1 is None or p2 is None:
            raise ValueError("StructurePool's kernel needs both graphs: kernel_fn(x1, x2, pattern=(p1, p2)); "
                             "for x2=None pass pattern=(p1, p1)")
        m1, m2 = pair(node_mask)
        b1, b2, n1, n2 = k.nngp.shape
        dtype = k.nngp.dtype
        s1, a1, real1, nt1 = _pool_graph(p1, m1, k.mask1, b1, n1, dtype, method, options)
        s2, a2, real2, nt2 = _pool_graph(p2, m2, k.mask2, b2, n2, dtype, method, options)

        def own(cov, s):
            return jnp.einsum("bik,bij,bjl->bkl", s, cov, s)

        # NT starts the NTK as a scalar 0 before any layer with parameters; keep it.
        ntk = k.ntk if k.ntk is None or jnp.ndim(k.ntk) == 0 else pool_kernel(k.ntk, s1, s2)
        pooled = k.replace(
            nngp=pool_kernel(k.nngp, s1, s2),
            ntk=ntk,
            cov1=own(k.cov1, s1),
            cov2=None if k.cov2 is None else own(k.cov2, s2),
            mask1=nt1,
            mask2=nt2,
        )
        return then_kernel(pooled, pattern=(a1, a2), node_mask=(real1, real2), **kwargs)

    return init_fn, apply_fn, kernel_fn


# ----------------------------------------------------------------- example architecture
def hierarchical_gntk(
    method: Method = "graclus",
    num_levels: int = 2,
    blocks_per_level: int = 2,
    num_mlp_layers: int = 2,
    aggregation: Literal["sum", "mean"] = "sum",
    jumping_knowledge: bool = True,
    readout: Literal["sum", "mean"] = "sum",
    *,
    input_dim: int,
    width: int = 512,
    **options: Any,
):
    r"""A GNTK (Du et al., 2019) whose graph is coarsened between levels by :func:`StructurePool`.

    Level :math:`\ell = 1..` ``num_levels`` runs ``blocks_per_level`` GNTK blocks
    (self-looped ``Aggregate`` then ``num_mlp_layers`` ReLU MLP layers, width ``width``,
    weight variance 2) on graph :math:`G_\ell`, with :math:`G_1 = G` and
    :math:`G_{\ell+1}` the ``method`` coarsening of :math:`G_\ell`. Readout as in
    :func:`graph_ntk.gntk`: ``readout`` pooling of every block (and the input) with
    jumping knowledge, else of the last block, times :math:`\sqrt 2`. With
    ``num_levels=1`` this is exactly ``gntk(blocks_per_level, ...)``.

    Every step is exact, so ``kernel_fn(..., 'ntk')`` is the hierarchical GNTK and
    ``'nngp'`` its GNNGP.

    Example:
        >>> _, _, kernel_fn = hierarchical_gntk('kmis', 2, 1, input_dim=3, k=1)
        >>> # kernel_fn(b.x, None, 'ntk', **kernel_kwargs(b)) -> (B, B) Gram matrix
    """
    # Imported here: graph_ntk.models imports graph_ntk.layers, which imports this module.
    from graph_ntk.models.gntk import gntk_from_plan

    if num_levels < 1 or blocks_per_level < 1:
        raise ValueError(f"num_levels and blocks_per_level must be >= 1, got {num_levels}, {blocks_per_level}")
    _check_method(method, options)
    plan = (["block"] * blocks_per_level + ["coarsen"]) * (num_levels - 1) + ["block"] * blocks_per_level
    return gntk_from_plan(plan, num_mlp_layers=num_mlp_layers, aggregation=aggregation,
                          jumping_knowledge=jumping_knowledge, readout=readout, input_dim=input_dim, width=width,
                          coarsen=lambda rest: StructurePool(method, rest, **options))
