r"""LaPool: Laplacian pooling around feature-variation leaders (finite networks only).

Noutahi, Beaini, Horwood, Giguère & Tossou (2019), "Towards Interpretable Sparse Graph
Representation Learning with Laplacian Pooling". With :math:`W = (A + A^\top)/2` and
:math:`L = D - W`:

1. signal variation :math:`v_i = \lVert (L X)_i \rVert_2`;
2. leaders: nodes with :math:`v_i \ge v_j` for every neighbour :math:`j` (isolated nodes
   lead themselves);
3. every other node is softly assigned to leaders by
   :math:`S_i = \mathrm{sparsemax}_\ell(\beta_{i\ell} \cos(x_i, x_\ell))` over the leaders
   :math:`\ell`, with :math:`\beta_{i\ell} = 1/\mathrm{dist}(i, \ell)` (hop distance; 0 if
   unreachable) when ``shortest_path_reg`` else 1; leaders keep themselves,
   :math:`S_\ell = e_\ell`;
4. :math:`X' = S^\top X`, :math:`A' = S^\top A S`.

The number of leaders depends on the features, so the pooled batch keeps ``N`` rows:
leaders in node order first, the rest padding (``node_mask`` False). Hop distances are
structure-only and computed with SciPy on the host. LaPool has no trainable parameters,
but its output is a nonlinear, discontinuous function of the (random) features, so there
is no closed-form kernel: use :func:`graph_ntk.monte_carlo_kernel`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from neural_tangents import stax
from scipy.sparse.csgraph import shortest_path

from graph_ntk.layers.pooling._base import Pooled, graph_changing_layer, on_host

__all__ = ["LaPool", "lapool", "sparsemax"]

_WHY = "its leaders and sparsemax assignment are discontinuous functions of the random features"


def sparsemax(z: jnp.ndarray, valid: jnp.ndarray | None = None) -> jnp.ndarray:
    r"""Sparsemax over the last axis (Martins & Astudillo, 2016): the Euclidean projection of
    ``z`` onto the probability simplex, :math:`\max(z - \tau, 0)`, restricted to ``valid``
    entries (others get 0; a row with no valid entry is all 0).

    Example:
        >>> [round(float(p), 3) for p in sparsemax(jnp.array([0.5, 0.1, -1.0]))]
        [0.7, 0.3, 0.0]
    """
    valid = jnp.ones(z.shape, bool) if valid is None else jnp.broadcast_to(valid, z.shape)
    # Invalid entries sink far below any real logit, so they never enter the support.
    z_valid = jnp.where(valid, z, jnp.min(jnp.where(valid, z, 0.0)) - 1e6)
    ranked = jnp.flip(jnp.sort(z_valid, axis=-1), axis=-1)
    cumulative = jnp.cumsum(ranked, axis=-1)
    r = jnp.arange(1, z.shape[-1] + 1, dtype=z.dtype)
    support = jnp.sum(1.0 + r * ranked > cumulative, axis=-1, keepdims=True)
    tau = (jnp.take_along_axis(cumulative, support - 1, axis=-1) - 1.0) / support
    return jnp.where(valid, jnp.maximum(z_valid - tau, 0.0), 0.0)


def _safe_norm(v: jnp.ndarray) -> jnp.ndarray:
    """Row norms with a zero (not NaN) gradient at 0, e.g. on padded or isolated nodes."""
    sq = jnp.sum(v**2, axis=-1)
    positive = sq > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def _hop_distances(weights: np.ndarray, real: np.ndarray) -> tuple[np.ndarray]:
    """``(B, N, N)`` hop distances between real nodes (``inf`` if unreachable or padded)."""
    out = np.full(weights.shape, np.inf)
    for b in range(weights.shape[0]):
        nodes = np.flatnonzero(real[b])
        if nodes.size:
            sub = weights[b][np.ix_(nodes, nodes)] > 0
            out[b][np.ix_(nodes, nodes)] = shortest_path(sub, unweighted=True, directed=False)
    return (out.astype(weights.dtype),)


def lapool(x: jnp.ndarray, adjacency: jnp.ndarray, node_mask: jnp.ndarray | None = None, *,
           shortest_path_reg: bool = True) -> Pooled:
    r"""The LaPool forward pass on a padded dense batch (see the module docstring).

    Example:
        >>> a = jnp.array([[[0., 1, 0], [1, 0, 1], [0, 1, 0]]])         # path 0-1-2
        >>> x = jnp.array([[[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]])
        >>> out = lapool(x, a)
        >>> out.node_mask.tolist(), out.x[0, 0].tolist()                # node 1 leads, absorbs all
        ([[True, False, False]], [2.0, 1.0])
    """
    b, n, _ = x.shape
    real = jnp.ones((b, n), x.dtype) if node_mask is None else jnp.asarray(node_mask, x.dtype)
    arcs = jnp.asarray(adjacency, x.dtype) * real[:, :, None] * real[:, None, :]
    w = (arcs + jnp.swapaxes(arcs, 1, 2)) / 2.0 * (1.0 - jnp.eye(n))
    laplacian_x = w.sum(axis=2)[:, :, None] * x - jnp.einsum("bij,bjf->bif", w, x)
    variation = _safe_norm(laplacian_x)
    beats_neighbours = jnp.where(w > 0, variation[:, :, None] >= variation[:, None, :], True)
    leader = (real > 0) & jnp.all(beats_neighbours, axis=2)

    norm = _safe_norm(x)[:, :, None]
    unit = jnp.where(norm > 0, x / jnp.where(norm > 0, norm, 1.0), 0.0)
    logits = jnp.einsum("bif,bjf->bij", unit, unit)
    if shortest_path_reg:
        (dist,) = on_host(_hop_distances, (jax.ShapeDtypeStruct((b, n, n), x.dtype),), w, real > 0)
        logits = logits * jnp.where(jnp.isfinite(dist) & (dist > 0), 1.0 / jnp.where(dist > 0, dist, 1.0), 0.0)
    soft = sparsemax(logits, leader[:, None, :])
    by_node = jnp.where(leader[:, :, None], jnp.eye(n, dtype=x.dtype), soft) * real[:, :, None]
    # Columns indexed by node -> compact columns 0..#leaders-1, leaders in node order.
    rank = jnp.cumsum(leader, axis=1) - 1
    compact = (jax.nn.one_hot(rank, n, dtype=x.dtype) * leader[:, :, None])
    s = jnp.einsum("bil,blk->bik", by_node, compact)
    x_pooled = jnp.einsum("bnk,bnf->bkf", s, x)
    a_pooled = jnp.einsum("bik,bij,bjl->bkl", s, arcs, s)
    pooled_mask = jnp.arange(n)[None, :] < leader.sum(axis=1, keepdims=True)
    return Pooled(x_pooled, a_pooled, pooled_mask, s)


@stax.layer
def LaPool(shortest_path_reg: bool = True, then=None):
    r"""Laplacian pooling (see :func:`lapool`); no trainable parameters.

    Args:
        shortest_path_reg: weight the similarities by inverse hop distances to the leaders.
        then: layers run on the pooled graph (``pattern=A'``, pooled ``node_mask``);
            ``None`` returns the pooled features ``(B, N, F)`` (rows past the leaders are 0).

    ``kernel_fn`` raises ``NotImplementedError``: use :func:`graph_ntk.monte_carlo_kernel`.

    Example:
        >>> init_fn, apply_fn, _ = LaPool()
        >>> _, params = init_fn(jax.random.PRNGKey(0), (1, 3, 2))
        >>> apply_fn(params, jnp.ones((1, 3, 2)), pattern=jnp.ones((1, 3, 3))).shape
        (1, 3, 2)
    """

    def init_pool(rng, input_shape):
        return (), input_shape

    def pool(params, x, adjacency, real):
        return lapool(x, adjacency, real, shortest_path_reg=shortest_path_reg)

    return graph_changing_layer("LaPool", _WHY, init_pool, pool, then)
