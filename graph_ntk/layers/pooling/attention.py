r"""Learned attention readouts: ``GlobalAttentionPool`` and ``GlobalAttnSumPool`` (finite only).

Both map node features ``(B, N, F)`` to one vector per graph, over the real nodes only
(padding from ``node_mask`` or NT's ``mask_constant``):

* gated attention (Li, Tarlow, Brockschmidt & Zemel, 2016, "Gated Graph Sequence Neural
  Networks"): :math:`r = \sum_i \sigma(x_i W_g + b_g) \odot (x_i W + b)`, shape ``(B, channels)``;
* attention sum: :math:`r = \sum_i \alpha_i x_i`, :math:`\alpha = \mathrm{softmax}_i(x_i \cdot a)`
  (softmax across the graph's nodes, not features), shape ``(B, F)``.

Weights use the NT parameterisation of ``_base``. The gates/attention are nonlinear
functions of the random weights multiplying other random features, so there is no
closed-form kernel: ``kernel_fn`` raises and :func:`graph_ntk.monte_carlo_kernel` estimates it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from neural_tangents import stax

from graph_ntk.layers.pooling._base import (
    check_nodes,
    dense_apply,
    dense_init,
    masked_softmax,
    no_closed_form,
    real_mask,
    unpack,
)

__all__ = ["GlobalAttentionPool", "GlobalAttnSumPool"]


@stax.layer
def GlobalAttentionPool(channels: int):
    r"""Gated attention readout :math:`r_G = \sum_{i \in G} \sigma(x_i W_g + b_g) \odot (x_i W + b)`.

    Args:
        channels: output width.

    Parameters: ``((W, b), (W_g, b_g))``, entries :math:`\mathcal N(0, 1)`, applied as
    :math:`xW/\sqrt F + 0.1\,b`. ``kernel_fn`` raises ``NotImplementedError``: use
    :func:`graph_ntk.monte_carlo_kernel`.

    Example:
        >>> init_fn, apply_fn, _ = GlobalAttentionPool(4)
        >>> _, params = init_fn(jax.random.PRNGKey(0), (2, 3, 5))
        >>> apply_fn(params, jnp.ones((2, 3, 5))).shape
        (2, 4)
    """
    if not isinstance(channels, int) or channels < 1:
        raise ValueError(f"channels must be a positive int, got {channels!r}")

    def init_fn(rng, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"GlobalAttentionPool expects (batch, nodes, channels) inputs, got {input_shape}")
        value_key, gate_key = jax.random.split(rng)
        f = input_shape[-1]
        return (input_shape[0], channels), (dense_init(value_key, f, channels), dense_init(gate_key, f, channels))

    def apply_fn(params, inputs, *, node_mask=None, mask_constant=None, **kwargs):
        x, nt_mask = unpack(inputs, mask_constant)
        check_nodes(x, "GlobalAttentionPool")
        gate = jax.nn.sigmoid(dense_apply(params[1], x))
        return jnp.einsum("bn,bnc->bc", real_mask(node_mask, x, nt_mask), gate * dense_apply(params[0], x))

    return init_fn, apply_fn, no_closed_form("GlobalAttentionPool", "the sigmoid gate multiplies correlated "
                                                                    "random features")


@stax.layer
def GlobalAttnSumPool():
    r"""Attention-weighted sum :math:`r_G = \sum_{i \in G} \alpha_i x_i`,
    :math:`\alpha = \mathrm{softmax}_{i \in G}(x_i \cdot a / \sqrt F)`.

    Parameters: the attention vector :math:`a \sim \mathcal N(0, I_F)`. ``kernel_fn`` raises
    ``NotImplementedError``: use :func:`graph_ntk.monte_carlo_kernel`.

    Example:
        >>> init_fn, apply_fn, _ = GlobalAttnSumPool()
        >>> _, params = init_fn(jax.random.PRNGKey(0), (1, 3, 2))
        >>> apply_fn(params, jnp.ones((1, 3, 2))).tolist()     # equal scores: the mean
        [[1.0, 1.0]]
    """

    def init_fn(rng, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"GlobalAttnSumPool expects (batch, nodes, channels) inputs, got {input_shape}")
        return (input_shape[0], input_shape[-1]), jax.random.normal(rng, (input_shape[-1],))

    def apply_fn(params, inputs, *, node_mask=None, mask_constant=None, **kwargs):
        x, nt_mask = unpack(inputs, mask_constant)
        check_nodes(x, "GlobalAttnSumPool")
        alpha = masked_softmax(dense_apply((params[:, None],), x)[..., 0], real_mask(node_mask, x, nt_mask), axis=1)
        return jnp.einsum("bn,bnf->bf", alpha, x)

    return init_fn, apply_fn, no_closed_form("GlobalAttnSumPool", "the softmax attention is a nonlinear "
                                                                  "function of the features it weights")
