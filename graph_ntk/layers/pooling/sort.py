r"""SortPool (Zhang, Cui, Neumann & Chen, 2018, DGCNN): the top ``k`` nodes by last channel.

Each graph's real nodes are sorted by their last feature channel, decreasing (ties: lower
index first), and the first ``k`` rows are kept; graphs with fewer than ``k`` nodes are
zero-padded to ``k``. The output ``(B, k, F)`` does not depend on the input node order.
Sorting by a random feature is discontinuous in the weights of the layers before it, so
there is no closed-form kernel: ``kernel_fn`` raises and :func:`graph_ntk.monte_carlo_kernel`
estimates it.
"""

from __future__ import annotations

import jax.numpy as jnp
from neural_tangents import stax

from graph_ntk.layers.pooling._base import check_nodes, no_closed_form, real_mask, unpack

__all__ = ["SortPool", "sort_pool"]


def sort_pool(x: jnp.ndarray, k: int, node_mask: jnp.ndarray | None = None) -> jnp.ndarray:
    """The ``k`` real nodes with the largest last channel, in decreasing order, zero-padded.

    Example:
        >>> sort_pool(jnp.array([[[1.0, 0.2], [2.0, 0.9], [3.0, 0.5]]]), 4)[0, :, 0].tolist()
        [2.0, 3.0, 1.0, 0.0]
    """
    real = jnp.ones(x.shape[:2], x.dtype) if node_mask is None else jnp.asarray(node_mask, x.dtype)
    order = jnp.argsort(jnp.where(real > 0, -x[..., -1], jnp.inf), axis=1, stable=True)[:, :k]
    kept = jnp.take_along_axis(x, order[:, :, None], axis=1) * jnp.take_along_axis(real, order, axis=1)[:, :, None]
    return jnp.pad(kept, ((0, 0), (0, k - kept.shape[1]), (0, 0)))


@stax.layer
def SortPool(k: int):
    r"""Keep the ``k`` nodes with the largest last channel (see :func:`sort_pool`).

    Example:
        >>> _, apply_fn, _ = SortPool(2)
        >>> apply_fn((), jnp.ones((3, 5, 4))).shape
        (3, 2, 4)
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")

    def init_fn(rng, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"SortPool expects (batch, nodes, channels) inputs, got {input_shape}")
        return (input_shape[0], k, input_shape[2]), ()

    def apply_fn(params, inputs, *, node_mask=None, mask_constant=None, **kwargs):
        x, nt_mask = unpack(inputs, mask_constant)
        check_nodes(x, "SortPool")
        return sort_pool(x, k, real_mask(node_mask, x, nt_mask))

    return init_fn, apply_fn, no_closed_form("SortPool", "sorting by a random channel is discontinuous")
