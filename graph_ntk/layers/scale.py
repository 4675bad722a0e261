"""Multiplication by a constant, ``h' = c h``: kernels scale by ``c^2``."""

from __future__ import annotations

from neural_tangents import stax
from neural_tangents import Kernel

from graph_ntk.program import scale_constant


@stax.layer
@stax.supports_masking(remask_kernel=False)
def Scale(c: float):
    r"""Scale the activations by a constant: :math:`h' = c\,h`, so :math:`K' = c^2 K`,
    :math:`\Theta' = c^2 \Theta` (the layer has no parameters).

    Used e.g. for the factor 2 in the GNTK readout of Du et al. (2019).

    Example:
        >>> import numpy as np
        >>> _, apply_fn, _ = Scale(2.0)
        >>> apply_fn((), np.ones(3)).tolist()
        [2.0, 2.0, 2.0]
    """
    c = scale_constant(c)

    def init_fn(rng, input_shape):
        return input_shape, ()

    def apply_fn(params, inputs, **kwargs):
        return c * inputs

    def kernel_fn(k: Kernel, **kwargs) -> Kernel:
        c2 = c * c
        return k.replace(
            nngp=c2 * k.nngp,
            ntk=None if k.ntk is None else c2 * k.ntk,
            cov1=c2 * k.cov1,
            cov2=None if k.cov2 is None else c2 * k.cov2,
        )

    return init_fn, apply_fn, kernel_fn
