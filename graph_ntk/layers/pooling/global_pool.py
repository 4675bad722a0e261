r"""Global (readout) pools: ``(batch, nodes, channels) -> (batch, channels)``.

Padded nodes, marked by ``node_mask`` (see :class:`graph_ntk.GraphBatch`) or by
neural-tangents' ``mask_constant``, are excluded: sums skip them, means divide by the number
of real nodes :math:`n_G`, max/min never select them. Sum and mean pools are linear, so
their kernels are exact:

.. math::  K_{\text{sum}}(G, G') = \sum_{u \in G} \sum_{v \in G'} K_{uv}, \qquad
           K_{\text{mean}}(G, G') = \frac{1}{n_G n_{G'}} \sum_{u, v} K_{uv},

and the same for the NTK. Max and min pools have no closed-form kernel; their
``kernel_fn`` raises :class:`NotImplementedError` naming the Monte Carlo route.
"""

from __future__ import annotations

import jax.numpy as jnp
from neural_tangents import stax
from neural_tangents import Kernel

from graph_ntk.layers.aggregate import real_nodes

_MC_HINT = (
    "{name} has no closed-form infinite-width kernel. Estimate it by sampling finite networks: "
    "neural_tangents.monte_carlo_kernel_fn(init_fn, apply_fn, key, n_samples) on the same "
    "stax description, or graph_ntk.monte_carlo_kernel."
)


def _node_weights(node_mask, mask, batch: int, n: int, mean: bool, dtype) -> jnp.ndarray:
    """``(batch, n)`` pooling weights: 1 (sum) or 1/n_G (mean) on real nodes, 0 on padding."""
    real = real_nodes(node_mask, mask, batch, n, dtype)
    if mean:
        count = real.sum(axis=1, keepdims=True)
        real = real / jnp.where(count > 0, count, 1.0)
    return real


def _pool_kernel(k: Kernel, node_mask, mean: bool) -> Kernel:
    b1, b2, n1, n2 = k.nngp.shape
    m1, m2 = node_mask if isinstance(node_mask, tuple) else (node_mask, node_mask)
    nt1, nt2 = k.mask1, k.mask2
    if k.cov2 is None:
        # kernel_fn(x1, None): NT leaves mask2 (and cov2) empty, but the second graphs ARE x1,
        # padding included; without this a mean pool would divide them by the padded size.
        m2 = m1 if m2 is None else m2
        nt2 = nt1 if nt2 is None else nt2
    w1 = _node_weights(m1, nt1, b1, n1, mean, k.nngp.dtype)
    w2 = _node_weights(m2, nt2, b2, n2, mean, k.nngp.dtype)

    def cross(mat):
        return jnp.einsum("ai,abij,bj->ab", w1, mat, w2)

    def own(cov, w):
        return jnp.einsum("bi,bij,bj->b", w, cov, w)

    ntk = k.ntk if k.ntk is None or jnp.ndim(k.ntk) == 0 else cross(k.ntk)
    return k.replace(
        nngp=cross(k.nngp),
        ntk=ntk,
        cov1=own(k.cov1, w1),
        cov2=None if k.cov2 is None else own(k.cov2, w2),
        batch_axis=0,
        channel_axis=1,
        is_reversed=False,
    )


def _pooled_mask(mask, input_shape):
    # The pooled output is one vector per graph: nothing left to mask.
    return None


def _check_nodes(x):
    if x.ndim != 3:
        raise ValueError(f"global pools expect node features of shape (batch, nodes, channels), got {x.shape}")


_SPATIAL = stax.Diagonal(input=stax.Bool.NO, output=stax.Bool.NO)


def _linear_pool(mean: bool):
    """Weighted node sum with weights 1 (sum) or 1/n_G (mean) on real nodes: exact kernel."""

    def init_fn(rng, input_shape):
        return input_shape[:1] + input_shape[2:], ()

    def apply_fn(params, inputs, *, node_mask=None, mask=None, **kwargs):
        _check_nodes(inputs)
        w = _node_weights(node_mask, mask, inputs.shape[0], inputs.shape[1], mean, inputs.dtype)
        return jnp.einsum("bn,bnf->bf", w, inputs)

    @stax.requires(batch_axis=0, channel_axis=-1, diagonal_spatial=_SPATIAL)
    def kernel_fn(k: Kernel, *, node_mask=(None, None), **kwargs) -> Kernel:
        return _pool_kernel(k, node_mask, mean=mean)

    return init_fn, apply_fn, kernel_fn, _pooled_mask


@stax.layer
@stax.supports_masking(remask_kernel=False)
def GlobalSumPool():
    r"""Sum of the node features of each graph, :math:`r_G = \sum_{u \in G} h_u`.

    Kernel: :math:`K'(G, G') = \sum_{u \in G, v \in G'} K_{uv}` (and the same for the NTK).

    Example:
        >>> import numpy as np
        >>> _, apply_fn, _ = GlobalSumPool()
        >>> apply_fn((), np.ones((2, 3, 4))).shape
        (2, 4)
    """
    return _linear_pool(mean=False)


@stax.layer
@stax.supports_masking(remask_kernel=False)
def GlobalMeanPool():
    r"""Mean of the node features over each graph's real nodes, :math:`r_G = \frac1{n_G}\sum_u h_u`.

    Kernel: :math:`K'(G, G') = \frac{1}{n_G n_{G'}} \sum_{u, v} K_{uv}`; padding never counts
    in :math:`n_G`.

    Example:
        >>> import numpy as np
        >>> _, apply_fn, _ = GlobalMeanPool()
        >>> float(apply_fn((), np.ones((1, 3, 2)))[0, 0])
        1.0
    """
    return _linear_pool(mean=True)


def _extremum_pool(name: str, reduce, fill: float):
    def init_fn(rng, input_shape):
        return input_shape[:1] + input_shape[2:], ()

    def apply_fn(params, inputs, *, node_mask=None, mask=None, **kwargs):
        _check_nodes(inputs)
        real = real_nodes(node_mask, mask, inputs.shape[0], inputs.shape[1], inputs.dtype)
        return reduce(jnp.where(real[:, :, None] > 0, inputs, fill), axis=1)

    def kernel_fn(k: Kernel, **kwargs) -> Kernel:
        raise NotImplementedError(_MC_HINT.format(name=name))

    return init_fn, apply_fn, kernel_fn, _pooled_mask


@stax.layer
@stax.supports_masking(remask_kernel=False)
def GlobalMaxPool():
    r"""Channel-wise maximum over each graph's real nodes, :math:`r_G = \max_{u \in G} h_u`.

    No closed-form kernel: ``kernel_fn`` raises ``NotImplementedError``; use
    ``neural_tangents.monte_carlo_kernel_fn`` on the same description.

    Example:
        >>> import numpy as np
        >>> _, apply_fn, _ = GlobalMaxPool()
        >>> apply_fn((), np.arange(6.0).reshape(1, 3, 2)).tolist()
        [[4.0, 5.0]]
    """
    return _extremum_pool("GlobalMaxPool", jnp.max, -jnp.inf)


@stax.layer
@stax.supports_masking(remask_kernel=False)
def GlobalMinPool():
    r"""Channel-wise minimum over each graph's real nodes, :math:`r_G = \min_{u \in G} h_u`.

    No closed-form kernel: ``kernel_fn`` raises ``NotImplementedError``; use
    ``neural_tangents.monte_carlo_kernel_fn`` on the same description.

    Example:
        >>> import numpy as np
        >>> _, apply_fn, _ = GlobalMinPool()
        >>> apply_fn((), np.arange(6.0).reshape(1, 3, 2)).tolist()
        [[0.0, 1.0]]
    """
    return _extremum_pool("GlobalMinPool", jnp.min, jnp.inf)
