r"""Score-based node selection: ``TopKPooling`` and ``SAGPooling`` (finite networks only).

Both score every node, keep the best ones and gate their features by the score
(Gao & Ji 2019 "Graph U-Nets"; Cangea et al. 2018; Knyazev et al. 2019; and Lee, Lee &
Kang 2019 "Self-Attention Graph Pooling"). For a score vector :math:`y`:

.. math::  \mathbf i = \mathrm{top}_k(y), \qquad X' = m\,(X \odot y)_{\mathbf i}, \qquad
           A' = A_{\mathbf i, \mathbf i},

with :math:`k = \lceil \text{ratio}\cdot n\rceil` for a float ratio or :math:`\min(\text{ratio}, n)`
for an integer, and multiplier :math:`m`. With ``min_score`` :math:`\tilde\alpha` instead,
:math:`y = \mathrm{softmax}(s)` over the graph's nodes and :math:`\mathbf i = \{i : y_i >
\min(\tilde\alpha, \max_j y_j - 10^{-7})\}` (so the best node always survives). Kept nodes
are ordered by decreasing score (ties: lower index), so the output does not depend on the
input node order. Pooled rows beyond a graph's :math:`k` are padding (``node_mask``
False). The selection is a discontinuous function of the weights, so there is no closed
form kernel; use :func:`graph_ntk.monte_carlo_kernel`.
"""

from __future__ import annotations

import math
from typing import Literal

import jax
import jax.numpy as jnp
from neural_tangents import stax

from graph_ntk.layers.pooling._base import (
    B_STD,
    Pooled,
    dense_apply,
    dense_init,
    graph_changing_layer,
    masked_softmax,
)

__all__ = ["SAGPooling", "TopKPooling", "sag_pool", "topk_pool"]

_WHY = "the kept node set is a discontinuous (top-k) function of the random weights"
_MIN_SCORE_TOL = 1e-7
_GNNS = ("gcn", "gat", "sage")


def _check_selection(ratio: float | int, min_score: float | None, nonlinearity: str) -> None:
    if min_score is None:
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)):
            raise ValueError(f"ratio must be a float in (0, 1] or an int >= 1, got {ratio!r}")
        if isinstance(ratio, int) and ratio < 1 or isinstance(ratio, float) and not 0 < ratio <= 1:
            raise ValueError(f"ratio must be a float in (0, 1] or an int >= 1, got {ratio!r}")
    elif not 0 <= min_score <= 1:
        raise ValueError(f"min_score must lie in [0, 1], got {min_score}")
    if nonlinearity not in ("tanh", "sigmoid"):
        raise ValueError(f"nonlinearity must be 'tanh' or 'sigmoid', got {nonlinearity!r}")


def _num_kept(n: int | jnp.ndarray, ratio: float | int):
    if isinstance(ratio, int):
        return jnp.minimum(ratio, n)
    # The small offset keeps e.g. 0.3 * 10 at 3 despite rounding up to 3.0000000000000004.
    return jnp.ceil(ratio * n - 1e-6).astype(jnp.int32)


def _output_nodes(n: int, ratio: float | int, min_score: float | None) -> int:
    """Static row count of the pooled batch: an upper bound of every graph's kept count."""
    if min_score is not None:
        return n
    return min(ratio, n) if isinstance(ratio, int) else min(n, math.ceil(ratio * n - 1e-6))


def _select(raw: jnp.ndarray, x, adjacency, real, ratio, min_score, multiplier, nonlinearity) -> Pooled:
    """Keep the top nodes by score ``raw`` (``(B, N)``) and gate them (see the module docstring)."""
    b, n = raw.shape
    if min_score is None:
        y = jnp.tanh(raw) if nonlinearity == "tanh" else jax.nn.sigmoid(raw)
    else:
        y = masked_softmax(raw, real, axis=1)
    rows = _output_nodes(n, ratio, min_score)
    # Stable sort of -y with padding last: decreasing score, ties to the lower index.
    perm = jnp.argsort(jnp.where(real > 0, -y, jnp.inf), axis=1, stable=True)[:, :rows]
    kept_real = jnp.take_along_axis(real, perm, axis=1) > 0
    if min_score is None:
        keep = (jnp.arange(rows)[None, :] < _num_kept(real.sum(axis=1, keepdims=True), ratio)) & kept_real
    else:
        best = jnp.max(jnp.where(real > 0, y, -jnp.inf), axis=1, keepdims=True)
        keep = (jnp.take_along_axis(y, perm, axis=1) > jnp.minimum(best - _MIN_SCORE_TOL, min_score)) & kept_real
    selection = jax.nn.one_hot(perm, n, dtype=x.dtype).transpose(0, 2, 1) * keep[:, None, :]
    gated = multiplier * x * y[:, :, None]
    x_pooled = jnp.einsum("bnk,bnf->bkf", selection, gated)
    a_pooled = jnp.einsum("bik,bij,bjl->bkl", selection, adjacency, selection)
    return Pooled(x_pooled, a_pooled, keep, selection)


def topk_pool(p: jnp.ndarray, x: jnp.ndarray, adjacency: jnp.ndarray, node_mask: jnp.ndarray | None = None, *,
              ratio: float | int = 0.5, min_score: float | None = None, multiplier: float = 1.0,
              nonlinearity: Literal["tanh", "sigmoid"] = "tanh") -> Pooled:
    r"""The TopKPooling forward pass on a padded dense batch.

    Scores :math:`y = \sigma(Xp / \lVert p\rVert)` (``nonlinearity`` :math:`\sigma`), or
    :math:`y = \mathrm{softmax}(Xp)` with ``min_score``; then the module docstring's selection.

    Args:
        p: the projection vector ``(F,)`` (the layer's parameters).
        x: ``(B, N, F)``; adjacency ``(B, N, N)``; node_mask ``(B, N)`` True on real nodes.

    Example:
        >>> x = jnp.array([[[1.0], [3.0], [2.0]]]); a = jnp.ones((1, 3, 3))
        >>> out = topk_pool(jnp.array([1.0]), x, a, ratio=2)
        >>> [round(v, 3) for v in out.x[0, :, 0].tolist()]   # nodes 1 and 2, gated by tanh(3), tanh(2)
        [2.985, 1.928]
    """
    _check_selection(ratio, min_score, nonlinearity)
    real = jnp.ones(x.shape[:2], x.dtype) if node_mask is None else jnp.asarray(node_mask, x.dtype)
    raw = x @ p
    if min_score is None:
        raw = raw / jnp.linalg.norm(p)
    return _select(raw, x, adjacency, real, ratio, min_score, multiplier, nonlinearity)


@stax.layer
def TopKPooling(ratio: float | int = 0.5, min_score: float | None = None, multiplier: float = 1.0,
                nonlinearity: Literal["tanh", "sigmoid"] = "tanh", then=None):
    r"""Top-k pooling with a learned projection :math:`p` (gPool / TopKPooling).

    Args:
        ratio: fraction of nodes kept per graph (float in (0, 1]) or their number (int).
        min_score: keep nodes whose softmax score exceeds it instead (ignores ``ratio``).
        multiplier: factor applied to the pooled features.
        nonlinearity: ``'tanh'`` (default) or ``'sigmoid'`` score gate.
        then: layers run on the pooled graph (they receive ``pattern=A'`` and the pooled
            ``node_mask``); ``None`` returns the pooled features ``(B, K, F)``.

    Parameters: ``(p, then_params)`` with :math:`p \sim \mathcal N(0, I_F)`.
    ``kernel_fn`` raises ``NotImplementedError``: use :func:`graph_ntk.monte_carlo_kernel`.

    Example:
        >>> init_fn, apply_fn, _ = TopKPooling(ratio=0.5)
        >>> _, params = init_fn(jax.random.PRNGKey(0), (2, 6, 3))
        >>> apply_fn(params, jnp.ones((2, 6, 3)), pattern=jnp.ones((2, 6, 6))).shape
        (2, 3, 3)
    """
    _check_selection(ratio, min_score, nonlinearity)

    def init_pool(rng, input_shape):
        b, n, f = input_shape
        return jax.random.normal(rng, (f,)), (b, _output_nodes(n, ratio, min_score), f)

    def pool(p, x, adjacency, real):
        return topk_pool(p, x, adjacency, real, ratio=ratio, min_score=min_score, multiplier=multiplier,
                         nonlinearity=nonlinearity)

    return graph_changing_layer("TopKPooling", _WHY, init_pool, pool, then)


# ----------------------------------------------------------------- SAGPooling
def _sag_init(rng, f: int, gnn: str):
    k1, k2, k3 = jax.random.split(rng, 3)
    if gnn == "gcn":
        return (dense_init(k1, f, 1),)
    if gnn == "sage":  # root and neighbour weights, one bias
        return dense_init(k1, f, 1, bias=False), dense_init(k2, f, 1)
    # gat: projection, (source, target) attention coefficients, bias
    return dense_init(k1, f, 1, bias=False), jax.random.normal(k2, (2,)), jax.random.normal(k3, (1,))


def _sag_scores(params, x, adjacency, real, gnn: str) -> jnp.ndarray:
    """``(B, N)`` scores of a one-output GNN layer; messages flow along arcs ``i -> j``."""
    arcs = adjacency * real[:, :, None] * real[:, None, :]
    if gnn == "gcn":
        # GCNConv: h'_j = sum_i a~_ij h_i / sqrt(d_i d_j), a~ = A + I on real nodes.
        a = arcs + jnp.eye(x.shape[1]) * real[:, :, None]
        d = a.sum(axis=1)
        inv = jnp.where(d > 0, 1.0 / jnp.sqrt(jnp.where(d > 0, d, 1.0)), 0.0)
        h = dense_apply((params[0][0],), x)[..., 0]
        return jnp.einsum("bi,bij,bj->bj", inv * h, a, inv) + B_STD * params[0][1][0]
    if gnn == "sage":
        # SAGEConv (mean): h'_j = W_r x_j + W_n mean_{i -> j} x_i + b (arc weights weight the mean).
        d = arcs.sum(axis=1)
        mean = jnp.einsum("bij,bif->bjf", arcs, x) / jnp.where(d > 0, d, 1.0)[:, :, None]
        return dense_apply(params[0], x)[..., 0] + dense_apply(params[1], mean)[..., 0]
    # GATConv, one head, self loops: alpha_ij = softmax_i LeakyReLU(a_s h_i + a_t h_j).
    h = dense_apply(params[0], x)[..., 0]
    support = (arcs != 0) | (jnp.eye(x.shape[1], dtype=bool) & (real[:, :, None] > 0))
    e = jax.nn.leaky_relu(params[1][0] * h[:, :, None] + params[1][1] * h[:, None, :], 0.2)
    alpha = masked_softmax(e, support, axis=1)
    return jnp.einsum("bij,bi->bj", alpha, h) + B_STD * params[2][0]


def sag_pool(params, x: jnp.ndarray, adjacency: jnp.ndarray, node_mask: jnp.ndarray | None = None, *,
             gnn: Literal["gcn", "gat", "sage"] = "gcn", ratio: float | int = 0.5, min_score: float | None = None,
             multiplier: float = 1.0, nonlinearity: Literal["tanh", "sigmoid"] = "tanh") -> Pooled:
    r"""The SAGPooling forward pass: scores :math:`s = \mathrm{GNN}(X, A)` with one output
    channel, then :math:`y = \sigma(s)` (or softmax with ``min_score``) and the top-k
    selection of the module docstring.

    The scorers (weights scaled by :math:`1/\sqrt F`, bias by 0.1, see ``_base``):
    ``'gcn'`` :math:`s_j = \sum_i \tilde a_{ij} (x_i \cdot w)/\sqrt{d_i d_j} + b` with
    :math:`\tilde A = A + I`; ``'sage'`` :math:`s_j = x_j\cdot w_r + \mathrm{mean}_{i\to j}
    x_i \cdot w_n + b` (arc-weighted mean); ``'gat'`` :math:`s_j = \sum_{i \in N(j)\cup\{j\}}
    \alpha_{ij} h_i + b`, :math:`h = Xw`, :math:`\alpha_{ij} = \mathrm{softmax}_i\,
    \mathrm{LeakyReLU}_{0.2}(a_s h_i + a_t h_j)`.

    Example:
        >>> _, (params, _) = SAGPooling(0.5)[0](jax.random.PRNGKey(0), (1, 4, 2))
        >>> sag_pool(params, jnp.ones((1, 4, 2)), jnp.ones((1, 4, 4)), ratio=0.5).x.shape
        (1, 2, 2)
    """
    if gnn not in _GNNS:
        raise ValueError(f"gnn must be one of {_GNNS}, got {gnn!r}")
    _check_selection(ratio, min_score, nonlinearity)
    real = jnp.ones(x.shape[:2], x.dtype) if node_mask is None else jnp.asarray(node_mask, x.dtype)
    raw = _sag_scores(params, x, adjacency, real, gnn)
    return _select(raw, x, adjacency, real, ratio, min_score, multiplier, nonlinearity)


@stax.layer
def SAGPooling(ratio: float | int = 0.5, gnn: Literal["gcn", "gat", "sage"] = "gcn", min_score: float | None = None,
               multiplier: float = 1.0, nonlinearity: Literal["tanh", "sigmoid"] = "tanh", then=None):
    r"""Self-attention graph pooling: top-k selection by the scores of a one-channel GNN.

    Args:
        ratio, min_score, multiplier, nonlinearity, then: as :func:`TopKPooling`.
        gnn: the scoring layer, ``'gcn'``, ``'gat'`` or ``'sage'`` (see :func:`sag_pool`).

    Parameters: ``(scorer_params, then_params)``, entries :math:`\mathcal N(0, 1)`.
    ``kernel_fn`` raises ``NotImplementedError``: use :func:`graph_ntk.monte_carlo_kernel`.

    Example:
        >>> init_fn, apply_fn, _ = SAGPooling(0.5, gnn='gat')
        >>> _, params = init_fn(jax.random.PRNGKey(0), (1, 4, 2))
        >>> apply_fn(params, jnp.ones((1, 4, 2)), pattern=jnp.ones((1, 4, 4))).shape
        (1, 2, 2)
    """
    if gnn not in _GNNS:
        raise ValueError(f"gnn must be one of {_GNNS}, got {gnn!r}")
    _check_selection(ratio, min_score, nonlinearity)

    def init_pool(rng, input_shape):
        b, n, f = input_shape
        return _sag_init(rng, f, gnn), (b, _output_nodes(n, ratio, min_score), f)

    def pool(params, x, adjacency, real):
        return sag_pool(params, x, adjacency, real, gnn=gnn, ratio=ratio, min_score=min_score,
                        multiplier=multiplier, nonlinearity=nonlinearity)

    return graph_changing_layer("SAGPooling", _WHY, init_pool, pool, then)
