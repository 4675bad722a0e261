r"""Learned soft-clustering pools: DiffPool, MinCutPool, DMoNPool, JustBalancePool,
AsymCheegerCutPool (finite networks only), and their auxiliary losses as pure functions.

Each layer computes a soft assignment :math:`S \in [0, 1]^{N \times K}` of the nodes to
``k`` clusters (rows sum to 1 on real nodes, 0 on padding) and pools

.. math::  X' = S^\top X, \qquad A' = S^\top A S

(the exceptions are noted per layer). Messages flow along arcs, so "GNN" below means
:math:`A^\top X W`, the sum aggregation of :class:`graph_ntk.Aggregate`; dense maps use
the NT parameterisation of ``_base`` (weights :math:`\mathcal N(0,1)/\sqrt{\mathrm{fan\_in}}`).
The pooled graph always has ``k`` real nodes.

The auxiliary losses the papers add to the training objective are the functions
:func:`diffpool_losses`, :func:`mincut_losses`, :func:`dmon_losses`,
:func:`just_balance_loss` and :func:`asym_cheeger_cut_losses`: they take the selection
``S`` (``Pooled.selection`` from :func:`diffpool`, :func:`mincut_pool`, ...), the
adjacency and the node mask, and return ``{name: (B,) per-graph values}`` (Spektral's
batch-mode value is the mean). Coefficients that only weight these losses in the
reference layers (``collapse_regularization``, ``totvar_coeff``, ``balance_coeff``,
``normalized_loss``) are arguments of the loss functions here.

There is no closed-form kernel: :math:`S` is a softmax of the same random features that
it then multiplies; ``kernel_fn`` raises and :func:`graph_ntk.monte_carlo_kernel`
estimates the NNGP/NTK.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
from neural_tangents import stax

from graph_ntk.layers.pooling._base import (
    Pooled,
    activation as get_activation,
    dense_apply,
    dense_init,
    graph_changing_layer,
    mlp_apply,
    mlp_init,
)

__all__ = [
    "AsymCheegerCutPool",
    "DMoNPool",
    "DiffPool",
    "JustBalancePool",
    "MinCutPool",
    "asym_cheeger_cut_losses",
    "asym_cheeger_cut_pool",
    "diffpool",
    "diffpool_losses",
    "dmon_losses",
    "dmon_pool",
    "just_balance_loss",
    "just_balance_pool",
    "mincut_losses",
    "mincut_pool",
]

_WHY = "the assignment S = softmax(...) is a nonlinear function of the same random features it pools"


# ----------------------------------------------------------------- helpers
def _real(node_mask, x) -> jnp.ndarray:
    return jnp.ones(x.shape[:2], x.dtype) if node_mask is None else jnp.asarray(node_mask, x.dtype)


def _real_arcs(adjacency, real) -> jnp.ndarray:
    return jnp.asarray(adjacency, real.dtype) * real[:, :, None] * real[:, None, :]


def _soft_assign(logits, real) -> jnp.ndarray:
    """Row-wise softmax over clusters; rows of padded nodes are 0."""
    return jax.nn.softmax(logits, axis=-1) * real[:, :, None]


def _sym_normalise(a) -> jnp.ndarray:
    r""":math:`D^{-1/2} A D^{-1/2}` with :math:`D` the row sums (0 rows stay 0)."""
    d = a.sum(axis=-1)
    inv = jnp.where(d > 0, 1.0 / jnp.sqrt(jnp.where(d > 0, d, 1.0)), 0.0)
    return inv[:, :, None] * a * inv[:, None, :]


def _pool(s, x, a) -> tuple[jnp.ndarray, jnp.ndarray]:
    return jnp.einsum("bnk,bnf->bkf", s, x), jnp.einsum("bik,bij,bjl->bkl", s, a, s)


def _trace(m) -> jnp.ndarray:
    return jnp.trace(m, axis1=-2, axis2=-1)


def _check_k(k: int, minimum: int = 1) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < minimum:
        raise ValueError(f"k (number of clusters) must be an int >= {minimum}, got {k!r}")


def _mlp_pool_layer(name: str, k: int, mlp_hidden, mlp_activation, pool_fn: Callable, then):
    """A layer whose assignment is ``softmax(MLP(X))`` (MinCut, DMoN, JustBalance, ACC)."""
    hidden = tuple(mlp_hidden or ())
    if any(not isinstance(h, int) or h < 1 for h in hidden):
        raise ValueError(f"mlp_hidden must be a list of positive ints, got {mlp_hidden!r}")
    get_activation(mlp_activation)

    def init_pool(rng, input_shape):
        b, _, f = input_shape
        return mlp_init(rng, f, hidden, k), (b, k, f)

    def pool(params, x, adjacency, real):
        return pool_fn(params, x, adjacency, real, mlp_activation=mlp_activation)

    return graph_changing_layer(name, _WHY, init_pool, pool, then)


def _mlp_assignment(params, x, real, mlp_activation) -> jnp.ndarray:
    return _soft_assign(mlp_apply(params, x, get_activation(mlp_activation)), real)


# ----------------------------------------------------------------- DiffPool
def diffpool(params, x: jnp.ndarray, adjacency: jnp.ndarray, node_mask: jnp.ndarray | None = None, *,
             activation: str | Callable | None = None) -> Pooled:
    r"""DiffPool (Ying et al., 2018) forward pass.

    .. math::  Z = \sigma(A^\top X W_{\text{emb}}), \quad S = \mathrm{softmax}(A^\top X W_{\text{pool}}),
               \quad X' = S^\top Z, \quad A' = S^\top A S.

    ``params = (W_emb, W_pool)`` as from the layer's ``init_fn``; ``activation`` :math:`\sigma`.

    Example:
        >>> _, (params, _) = DiffPool(2)[0](jax.random.PRNGKey(0), (1, 3, 4))
        >>> diffpool(params, jnp.ones((1, 3, 4)), jnp.ones((1, 3, 3))).x.shape
        (1, 2, 4)
    """
    real = _real(node_mask, x)
    a = _real_arcs(adjacency, real)
    messages = jnp.einsum("bij,bif->bjf", a, x)
    z = get_activation(activation)(dense_apply(params[0], messages))
    s = _soft_assign(dense_apply(params[1], messages), real)
    x_pooled, a_pooled = _pool(s, z, a)
    return Pooled(x_pooled, a_pooled, jnp.ones(x_pooled.shape[:2], bool), s)


def diffpool_losses(s: jnp.ndarray, adjacency: jnp.ndarray, node_mask: jnp.ndarray | None = None) -> dict:
    r"""DiffPool's auxiliary losses per graph: link prediction
    :math:`\lVert A - S S^\top\rVert_F` and entropy :math:`\frac1n \sum_i H(S_i)`,
    :math:`H(p) = -\sum_k p_k \log p_k`, over the ``n`` real nodes.

    Example:
        >>> s = jnp.array([[[1.0, 0.0], [0.5, 0.5]]])
        >>> {k: round(float(v[0]), 4) for k, v in diffpool_losses(s, jnp.eye(2)[None]).items()}
        {'link': 0.866, 'entropy': 0.3466}
    """
    real = _real(node_mask, s)
    a = _real_arcs(adjacency, real)
    link = jnp.sqrt(jnp.sum((a - jnp.einsum("bik,bjk->bij", s, s)) ** 2, axis=(1, 2)))
    entropy = -jnp.sum(jax.scipy.special.xlogy(s, s), axis=(1, 2)) / jnp.maximum(real.sum(axis=1), 1.0)
    return {"link": link, "entropy": entropy}


@stax.layer
def DiffPool(k: int, channels: int | None = None, activation: str | Callable | None = None, then=None):
    r"""Differentiable pooling into ``k`` clusters (see :func:`diffpool`).

    Args:
        k: number of output nodes.
        channels: width of the embedding :math:`Z` (default: the input width).
        activation: applied to :math:`Z` (name or callable; ``None`` = linear).
        then: layers run on the pooled graph (``pattern=A'``); ``None`` returns ``X'``.

    Parameters: ``((W_emb, W_pool), then_params)``, entries :math:`\mathcal N(0, 1)`.
    ``kernel_fn`` raises ``NotImplementedError``: use :func:`graph_ntk.monte_carlo_kernel`.

    Example:
        >>> init_fn, apply_fn, _ = DiffPool(2, channels=5)
        >>> _, params = init_fn(jax.random.PRNGKey(0), (1, 3, 4))
        >>> apply_fn(params, jnp.ones((1, 3, 4)), pattern=jnp.ones((1, 3, 3))).shape
        (1, 2, 5)
    """
    _check_k(k)
    get_activation(activation)
    if channels is not None and (not isinstance(channels, int) or channels < 1):
        raise ValueError(f"channels must be a positive int or None, got {channels!r}")

    def init_pool(rng, input_shape):
        b, _, f = input_shape
        c = f if channels is None else channels
        emb_key, pool_key = jax.random.split(rng)
        return (dense_init(emb_key, f, c, bias=False), dense_init(pool_key, f, k, bias=False)), (b, k, c)

    def pool(params, x, adjacency, real):
        return diffpool(params, x, adjacency, real, activation=activation)

    return graph_changing_layer("DiffPool", _WHY, init_pool, pool, then)


# ----------------------------------------------------------------- MinCutPool
def mincut_pool(params, x: jnp.ndarray, adjacency: jnp.ndarray, node_mask: jnp.ndarray | None = None, *,
                mlp_activation: str | Callable = "relu") -> Pooled:
    r"""MinCutPool (Bianchi, Grattarola & Alippi, 2020) forward pass.

    .. math::  S = \mathrm{softmax}(\mathrm{MLP}(X)), \quad X' = S^\top X, \quad
               A' = \hat D^{-1/2} \hat A \hat D^{-1/2}, \quad
               \hat A = S^\top \tilde A S - \mathrm{diag}(S^\top \tilde A S),

    with :math:`\tilde A = D^{-1/2} A D^{-1/2}` the symmetrically normalised input
    adjacency (computed here from the raw ``pattern``) and :math:`\hat D` the degrees of
    :math:`\hat A`.

    Example:
        >>> _, (params, _) = MinCutPool(2)[0](jax.random.PRNGKey(0), (1, 3, 4))
        >>> mincut_pool(params, jnp.ones((1, 3, 4)), jnp.ones((1, 3, 3))).adjacency.shape
        (1, 2, 2)
    """
    real = _real(node_mask, x)
    s = _mlp_assignment(params, x, real, mlp_activation)
    x_pooled, a_pooled = _pool(s, x, _sym_normalise(_real_arcs(adjacency, real)))
    a_pooled = a_pooled * (1.0 - jnp.eye(a_pooled.shape[-1]))
    return Pooled(x_pooled, _sym_normalise(a_pooled), jnp.ones(x_pooled.shape[:2], bool), s)


def mincut_losses(s: jnp.ndarray, adjacency: jnp.ndarray, node_mask: jnp.ndarray | None = None) -> dict:
    r"""MinCutPool's auxiliary losses per graph, on :math:`\tilde A = D^{-1/2} A D^{-1/2}`:

    .. math::  L_c = -\frac{\mathrm{Tr}(S^\top \tilde A S)}{\mathrm{Tr}(S^\top \tilde D S)},
               \qquad L_o = \Big\lVert \frac{S^\top S}{\lVert S^\top S\rVert_F}
               - \frac{I_K}{\sqrt K}\Big\rVert_F,

    :math:`\tilde D` the degree matrix of :math:`\tilde A`.

    Example:
        >>> a = jnp.array([[[0.0, 1.0], [1.0, 0.0]]])
        >>> {k: round(float(v[0]), 4) for k, v in mincut_losses(jnp.eye(2)[None], a).items()}
        {'cut': -0.0, 'orthogonality': 0.0}
    """
    real = _real(node_mask, s)
    a = _sym_normalise(_real_arcs(adjacency, real))
    degree = a.sum(axis=-1)
    cut = -_trace(jnp.einsum("bik,bij,bjl->bkl", s, a, s)) / _trace(jnp.einsum("bik,bi,bil->bkl", s, degree, s))
    ss = jnp.einsum("bik,bil->bkl", s, s)
    k = s.shape[-1]
    ortho = jnp.linalg.norm(ss / jnp.linalg.norm(ss, axis=(1, 2), keepdims=True) - jnp.eye(k) / math.sqrt(k),
                            axis=(1, 2))
    return {"cut": cut, "orthogonality": ortho}


@stax.layer
def MinCutPool(k: int, mlp_hidden: Sequence[int] | None = None, mlp_activation: str | Callable = "relu", then=None):
    r"""MinCut pooling into ``k`` clusters (see :func:`mincut_pool`, :func:`mincut_losses`).

    Args:
        k: number of output nodes.
        mlp_hidden: hidden widths of the assignment MLP (``None``: one softmax layer).
        mlp_activation: activation between MLP layers.
        then: layers run on the pooled graph (``pattern=A'``); ``None`` returns ``X'``.

    Parameters: ``(mlp_params, then_params)``; ``kernel_fn`` raises ``NotImplementedError``
    (use :func:`graph_ntk.monte_carlo_kernel`).

    Example:
        >>> init_fn, apply_fn, _ = MinCutPool(2, mlp_hidden=[8])
        >>> _, params = init_fn(jax.random.PRNGKey(0), (1, 3, 4))
        >>> apply_fn(params, jnp.ones((1, 3, 4)), pattern=jnp.ones((1, 3, 3))).shape
        (1, 2, 4)
    """
    _check_k(k)
    return _mlp_pool_layer("MinCutPool", k, mlp_hidden, mlp_activation, mincut_pool, then)


# ----------------------------------------------------------------- DMoNPool
def dmon_pool(params, x: jnp.ndarray, adjacency: jnp.ndarray, node_mask: jnp.ndarray | None = None, *,
              mlp_activation: str | Callable = "relu") -> Pooled:
    r"""DMoN (Tsitsulin, Palowitch, Perozzi & Müller, 2023) forward pass:
    :math:`S = \mathrm{softmax}(\mathrm{MLP}(X))`, :math:`X' = \mathrm{SELU}(S^\top X)`
    (the SELU of the original implementation), :math:`A' = S^\top A S`.

    Example:
        >>> _, (params, _) = DMoNPool(2)[0](jax.random.PRNGKey(0), (1, 3, 4))
        >>> dmon_pool(params, jnp.ones((1, 3, 4)), jnp.ones((1, 3, 3))).x.shape
        (1, 2, 4)
    """
    real = _real(node_mask, x)
    s = _mlp_assignment(params, x, real, mlp_activation)
    x_pooled, a_pooled = _pool(s, x, _real_arcs(adjacency, real))
    return Pooled(jax.nn.selu(x_pooled), a_pooled, jnp.ones(x_pooled.shape[:2], bool), s)


def dmon_losses(s: jnp.ndarray, adjacency: jnp.ndarray, node_mask: jnp.ndarray | None = None, *,
                collapse_regularization: float = 0.1) -> dict:
    r"""DMoN's auxiliary losses per graph: modularity and (weighted) collapse regularisation,

    .. math::  L_M = -\frac{1}{2m}\mathrm{Tr}\Big(S^\top A S - \frac{(S^\top d)(S^\top d)^\top}{2m}\Big),
               \qquad L_C = \lambda\Big(\frac{\sqrt K}{n}\Big\lVert \sum_i S_i \Big\rVert_2 - 1\Big),

    :math:`d = A\mathbf 1` the degrees, :math:`2m = \sum_i d_i`, :math:`n` real nodes,
    :math:`\lambda` = ``collapse_regularization``.

    Example:
        >>> a = jnp.array([[[0.0, 1.0], [1.0, 0.0]]])
        >>> {k: round(float(v[0]), 4) + 0.0 for k, v in dmon_losses(jnp.eye(2)[None], a).items()}  # + 0.0: no -0.0
        {'modularity': 0.5, 'collapse': 0.0}
    """
    real = _real(node_mask, s)
    a = _real_arcs(adjacency, real)
    d = a.sum(axis=-1)
    two_m = d.sum(axis=-1)
    sd = jnp.einsum("bik,bi->bk", s, d)
    modularity = (_trace(jnp.einsum("bik,bij,bjl->bkl", s, a, s)) - jnp.sum(sd**2, axis=-1) / two_m) / two_m
    k = s.shape[-1]
    collapse = math.sqrt(k) / real.sum(axis=1) * jnp.linalg.norm(s.sum(axis=1), axis=-1) - 1.0
    return {"modularity": -modularity, "collapse": collapse_regularization * collapse}


@stax.layer
def DMoNPool(k: int, mlp_hidden: Sequence[int] | None = None, mlp_activation: str | Callable = "relu", then=None):
    r"""Deep modularity network pooling into ``k`` clusters (see :func:`dmon_pool`,
    :func:`dmon_losses`; the reference's ``collapse_regularization`` is an argument of the
    loss function).

    Args:
        k, mlp_hidden, mlp_activation, then: as :func:`MinCutPool`.

    Example:
        >>> init_fn, apply_fn, _ = DMoNPool(2)
        >>> _, params = init_fn(jax.random.PRNGKey(0), (1, 3, 4))
        >>> apply_fn(params, jnp.ones((1, 3, 4)), pattern=jnp.ones((1, 3, 3))).shape
        (1, 2, 4)
    """
    _check_k(k)
    return _mlp_pool_layer("DMoNPool", k, mlp_hidden, mlp_activation, dmon_pool, then)


# ----------------------------------------------------------------- JustBalancePool
def just_balance_pool(params, x: jnp.ndarray, adjacency: jnp.ndarray, node_mask: jnp.ndarray | None = None, *,
                      mlp_activation: str | Callable = "relu") -> Pooled:
    r"""Just-Balance pooling (Bianchi, 2022) forward pass: :math:`S = \mathrm{softmax}(\mathrm{MLP}(X))`,
    :math:`X' = S^\top X`, and :math:`A' = S^\top A S` with its diagonal removed and
    symmetrically normalised (as MinCutPool's connection).

    Example:
        >>> _, (params, _) = JustBalancePool(2)[0](jax.random.PRNGKey(0), (1, 3, 4))
        >>> just_balance_pool(params, jnp.ones((1, 3, 4)), jnp.ones((1, 3, 3))).x.shape
        (1, 2, 4)
    """
    real = _real(node_mask, x)
    s = _mlp_assignment(params, x, real, mlp_activation)
    x_pooled, a_pooled = _pool(s, x, _real_arcs(adjacency, real))
    a_pooled = a_pooled * (1.0 - jnp.eye(a_pooled.shape[-1]))
    return Pooled(x_pooled, _sym_normalise(a_pooled), jnp.ones(x_pooled.shape[:2], bool), s)


def just_balance_loss(s: jnp.ndarray, node_mask: jnp.ndarray | None = None, *, normalized: bool = False) -> dict:
    r"""Just-Balance's loss per graph, :math:`L_B = -\mathrm{Tr}\sqrt{S^\top S}` with the
    square root taken entry-wise (as the reference implementation), i.e.
    :math:`-\sum_k \lVert S_{:,k}\rVert_2`; divided by :math:`\sqrt{nK}` if ``normalized``.

    Example:
        >>> round(float(just_balance_loss(jnp.eye(2)[None])["balance"][0]), 4)
        -2.0
    """
    real = _real(node_mask, s)
    loss = -jnp.sum(jnp.sqrt(jnp.sum(s**2, axis=1)), axis=-1)
    if normalized:
        loss = loss / jnp.sqrt(real.sum(axis=1) * s.shape[-1])
    return {"balance": loss}


@stax.layer
def JustBalancePool(k: int, mlp_hidden: Sequence[int] | None = None, mlp_activation: str | Callable = "relu",
                    then=None):
    r"""Just-Balance pooling into ``k`` clusters (see :func:`just_balance_pool`,
    :func:`just_balance_loss`; ``normalized_loss`` is the loss function's ``normalized``).

    Args:
        k, mlp_hidden, mlp_activation, then: as :func:`MinCutPool`.

    Example:
        >>> init_fn, apply_fn, _ = JustBalancePool(2)
        >>> _, params = init_fn(jax.random.PRNGKey(0), (1, 3, 4))
        >>> apply_fn(params, jnp.ones((1, 3, 4)), pattern=jnp.ones((1, 3, 3))).shape
        (1, 2, 4)
    """
    _check_k(k)
    return _mlp_pool_layer("JustBalancePool", k, mlp_hidden, mlp_activation, just_balance_pool, then)


# ----------------------------------------------------------------- AsymCheegerCutPool
def asym_cheeger_cut_pool(params, x: jnp.ndarray, adjacency: jnp.ndarray, node_mask: jnp.ndarray | None = None, *,
                          mlp_activation: str | Callable = "relu") -> Pooled:
    r"""Asymmetric-Cheeger-cut pooling (Hansen & Bianchi, 2023, TVGNN) forward pass:
    :math:`S = \mathrm{softmax}(\mathrm{MLP}(X))`, :math:`X' = S^\top X`. The reference layer
    returns no adjacency; :math:`A' = S^\top A S` is provided so graph layers can follow.

    Example:
        >>> _, (params, _) = AsymCheegerCutPool(2)[0](jax.random.PRNGKey(0), (1, 3, 4))
        >>> asym_cheeger_cut_pool(params, jnp.ones((1, 3, 4)), jnp.ones((1, 3, 3))).x.shape
        (1, 2, 4)
    """
    real = _real(node_mask, x)
    s = _mlp_assignment(params, x, real, mlp_activation)
    x_pooled, a_pooled = _pool(s, x, _real_arcs(adjacency, real))
    return Pooled(x_pooled, a_pooled, jnp.ones(x_pooled.shape[:2], bool), s)


def asym_cheeger_cut_losses(s: jnp.ndarray, adjacency: jnp.ndarray, node_mask: jnp.ndarray | None = None, *,
                            totvar_coeff: float = 1.0, balance_coeff: float = 1.0) -> dict:
    r"""TVGNN's auxiliary losses per graph (weighted by the coefficients):

    .. math::  L_{GTV} = \frac{1}{2E}\sum_{i,j} a_{ij} \sum_k |s_{ik} - s_{jk}|, \qquad
               L_{AN} = \frac{\beta - \sum_k \lVert S_{:,k} - q_\rho(S_{:,k})\rVert_{1,\rho}}{\beta},

    :math:`E` the number of arcs, :math:`\rho = K - 1`, :math:`\beta = n\rho`,
    :math:`\lVert v\rVert_{1,\rho} = \sum_i (\rho\, v_i \text{ if } v_i \ge 0 \text{ else } -v_i)`
    and :math:`q_\rho(v)` the :math:`(\lfloor n/K\rfloor + 1)`-th largest entry of :math:`v`
    (over the :math:`n` real nodes). Needs :math:`K \ge 2`.

    Example:
        >>> a = jnp.array([[[0.0, 1.0], [1.0, 0.0]]])
        >>> {k: round(float(v[0]), 4) for k, v in asym_cheeger_cut_losses(jnp.eye(2)[None], a).items()}
        {'total_variation': 1.0, 'balance': 0.0}
    """
    k = s.shape[-1]
    _check_k(k, minimum=2)
    real = _real(node_mask, s)
    a = _real_arcs(adjacency, real)
    l1 = jnp.sum(jnp.abs(s[:, :, None, :] - s[:, None, :, :]), axis=-1)
    total_variation = jnp.sum(a * l1, axis=(1, 2)) / (2.0 * jnp.sum(a != 0, axis=(1, 2)))
    n = real.sum(axis=1)
    rho = k - 1
    ranked = jnp.sort(jnp.where(real[:, :, None] > 0, s, -jnp.inf), axis=1)[:, ::-1]  # decreasing per column
    index = jnp.floor(n / k).astype(jnp.int32)[:, None, None]
    quantile = jnp.take_along_axis(ranked, jnp.broadcast_to(index, (s.shape[0], 1, k)), axis=1)
    diff = s - quantile
    asym = jnp.sum(jnp.where(diff >= 0, rho * diff, -diff) * real[:, :, None], axis=(1, 2))
    balance = (n * rho - asym) / (n * rho)
    return {"total_variation": totvar_coeff * total_variation, "balance": balance_coeff * balance}


@stax.layer
def AsymCheegerCutPool(k: int, mlp_hidden: Sequence[int] | None = None, mlp_activation: str | Callable = "relu",
                       then=None):
    r"""Asymmetric Cheeger cut pooling into ``k >= 2`` clusters (see
    :func:`asym_cheeger_cut_pool`, :func:`asym_cheeger_cut_losses`, which takes the
    reference's ``totvar_coeff`` and ``balance_coeff``).

    Args:
        k, mlp_hidden, mlp_activation, then: as :func:`MinCutPool`.

    Example:
        >>> init_fn, apply_fn, _ = AsymCheegerCutPool(2)
        >>> _, params = init_fn(jax.random.PRNGKey(0), (1, 3, 4))
        >>> apply_fn(params, jnp.ones((1, 3, 4)), pattern=jnp.ones((1, 3, 3))).shape
        (1, 2, 4)
    """
    _check_k(k, minimum=2)
    return _mlp_pool_layer("AsymCheegerCutPool", k, mlp_hidden, mlp_activation, asym_cheeger_cut_pool, then)
