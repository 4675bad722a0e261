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

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from neural_tangents import stax
from neural_tangents import Kernel

from graph_ntk.data.batch import GraphBatch
from graph_ntk.data.coarsening import Method, coarsen_graph, graclus, kmis, node_decimation, pool_adjacency
from graph_ntk.data.coarsening import check_method as _check_method
from graph_ntk.layers.aggregate import real_nodes
from graph_ntk.layers.pooling._base import check_dense_pattern, check_nodes, on_host, pair, unpack


__all__ = [
    "StructurePool",
    "coarsen",
    "coarsen_graph",
    "graclus",
    "kmis",
    "node_decimation",
    "pool_adjacency",
    "pool_kernel",
]


# ----------------------------------------------------------------- one graph, NumPy
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
        >>> from graph_ntk import Aggregate, GlobalSumPool
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
