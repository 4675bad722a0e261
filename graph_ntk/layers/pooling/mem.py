r"""MemPooling (Khasahmadi, Hassani, Moradi, Lee & Morris, 2020, "Memory-Based Graph
Networks"): soft clustering against learned memory keys (finite networks only).

For heads :math:`h = 1..H` with keys :math:`\kappa^{(h)}_j \in \mathbb R^F`, :math:`j = 1..K`,
and temperature :math:`\tau` (a Student-t kernel):

.. math::  S^{(h)}_{ij} = \frac{(1 + \lVert x_i - \kappa^{(h)}_j\rVert^2/\tau)^{-\frac{1+\tau}{2}}}
                                {\sum_{k} (1 + \lVert x_i - \kappa^{(h)}_k\rVert^2/\tau)^{-\frac{1+\tau}{2}}},
           \qquad S = \mathrm{softmax}_j\Big(\sum_h c_h S^{(h)} + c_0\Big),
           \qquad X' = S^\top X W \in \mathbb R^{K \times F'},

the head mixing :math:`(c_h, c_0)` being a 1x1 convolution over heads. Padded nodes get
zero rows of :math:`S`. The auxiliary KL loss is :func:`mem_pooling_kl_loss`. The layer
reads no adjacency (the memory layer is dense) and returns ``(B, K, F')``. ``S`` depends
nonlinearly on the random keys and features it pools, so there is no closed-form
kernel: ``kernel_fn`` raises and :func:`graph_ntk.monte_carlo_kernel` estimates it.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from neural_tangents import stax

from graph_ntk.layers.pooling._base import B_STD, check_nodes, dense_init, no_closed_form, real_mask, unpack

__all__ = ["MemPooling", "mem_pool", "mem_pooling_kl_loss"]

_EPS = 1e-15  # the clamp of the reference KL loss


def mem_pool(params, x: jnp.ndarray, node_mask: jnp.ndarray | None = None, *,
             tau: float = 1.0) -> tuple[jnp.ndarray, jnp.ndarray]:
    r"""MemPooling forward pass: ``(X', S)`` with ``X'`` ``(B, K, F')`` and ``S`` ``(B, N, K)``.

    ``params = (keys (H, K, F), (conv_w (H,), conv_b (1,)), (W (F, F'),))`` as from the
    layer's ``init_fn``; the convolution and :math:`W` are scaled by :math:`1/\sqrt H`,
    :math:`1/\sqrt F` (bias by 0.1), NT-style.

    Example:
        >>> _, params = MemPooling(3, heads=2, num_clusters=4)[0](jax.random.PRNGKey(0), (1, 5, 2))
        >>> x_pooled, s = mem_pool(params, jnp.ones((1, 5, 2)))
        >>> x_pooled.shape, s.shape, bool(jnp.allclose(s.sum(-1), 1.0))
        ((1, 4, 3), (1, 5, 4), True)
    """
    keys, (conv_w, conv_b), (w,) = params
    real = jnp.ones(x.shape[:2], x.dtype) if node_mask is None else jnp.asarray(node_mask, x.dtype)
    dist = jnp.sum((x[:, None, :, None, :] - keys[None, :, None, :, :]) ** 2, axis=-1)  # (B, H, N, K)
    t = (1.0 + dist / tau) ** (-(1.0 + tau) / 2.0)
    per_head = t / t.sum(axis=-1, keepdims=True)
    mixed = jnp.einsum("h,bhnk->bnk", conv_w, per_head) / math.sqrt(keys.shape[0]) + B_STD * conv_b[0]
    s = jax.nn.softmax(mixed, axis=-1) * real[:, :, None]
    return jnp.einsum("bnk,bnf->bkf", s, x) @ w / math.sqrt(w.shape[0]), s


def mem_pooling_kl_loss(s: jnp.ndarray) -> dict:
    r"""MemPooling's KL loss per graph, :math:`\sum_{i,j} P_{ij}\log(P_{ij}/S_{ij})` with

    .. math::  P_{ij} = \frac{S_{ij}^2 / \sum_n S_{nj}}{\sum_k S_{ik}^2 / \sum_n S_{nk}}

    (the sharpened target; rows of padded nodes give 0). Both are clamped at
    :math:`10^{-15}` as in the reference; its ``batchmean`` value is the mean over graphs.

    Example:
        >>> float(mem_pooling_kl_loss(jnp.array([[[1.0, 0.0], [0.0, 1.0]]]))["kl"][0])
        0.0
    """
    sharpened = s**2 / jnp.where(s.sum(axis=1, keepdims=True) > 0, s.sum(axis=1, keepdims=True), 1.0)
    row = sharpened.sum(axis=2, keepdims=True)
    p = sharpened / jnp.where(s.sum(axis=2, keepdims=True) == 0, 1.0, row)
    p, s = jnp.maximum(p, _EPS), jnp.maximum(s, _EPS)
    return {"kl": jnp.sum(p * (jnp.log(p) - jnp.log(s)), axis=(1, 2))}


@stax.layer
def MemPooling(out_channels: int, heads: int, num_clusters: int, tau: float = 1.0):
    r"""Memory-based pooling into ``num_clusters`` nodes of width ``out_channels`` (see
    :func:`mem_pool`, :func:`mem_pooling_kl_loss`).

    Args:
        out_channels: :math:`F'`.
        heads: :math:`H`, number of key sets.
        num_clusters: :math:`K` clusters per head (output nodes).
        tau: temperature of the Student-t kernel.

    Parameters: keys, 1x1 convolution and :math:`W`, entries :math:`\mathcal N(0, 1)`.
    ``kernel_fn`` raises ``NotImplementedError``: use :func:`graph_ntk.monte_carlo_kernel`.

    Example:
        >>> init_fn, apply_fn, _ = MemPooling(3, heads=2, num_clusters=4)
        >>> _, params = init_fn(jax.random.PRNGKey(0), (1, 5, 2))
        >>> apply_fn(params, jnp.ones((1, 5, 2))).shape
        (1, 4, 3)
    """
    for name, value in (("out_channels", out_channels), ("heads", heads), ("num_clusters", num_clusters)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau}")

    def init_fn(rng, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"MemPooling expects (batch, nodes, channels) inputs, got {input_shape}")
        f = input_shape[-1]
        key_key, conv_key, lin_key = jax.random.split(rng, 3)
        keys = jax.random.normal(key_key, (heads, num_clusters, f))
        conv = dense_init(conv_key, heads, 1)
        params = (keys, (conv[0][:, 0], conv[1]), dense_init(lin_key, f, out_channels, bias=False))
        return (input_shape[0], num_clusters, out_channels), params

    def apply_fn(params, inputs, *, node_mask=None, mask_constant=None, **kwargs):
        x, nt_mask = unpack(inputs, mask_constant)
        check_nodes(x, "MemPooling")
        return mem_pool(params, x, real_mask(node_mask, x, nt_mask), tau=tau)[0]

    return init_fn, apply_fn, no_closed_form("MemPooling", "the cluster assignment is a nonlinear function of "
                                                           "the random keys and features")
