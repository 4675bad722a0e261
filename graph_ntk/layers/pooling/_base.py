r"""Shared machinery of the hierarchical and learned pools (private).

Hierarchical pools change the graph. ``stax`` hands every layer the same keyword
arguments, so the new adjacency cannot reach the layers after a pool in a ``stax.serial``;
instead a pool takes the rest of the network as ``then`` and calls it with
``pattern=A'`` and ``node_mask`` of the pooled nodes (:func:`graph_changing_layer`).

Learned parameters are drawn the neural-tangents way: every weight and bias entry is
:math:`\mathcal N(0, 1)` in ``init_fn`` and a dense map is applied as
:math:`y = \frac{1}{\sqrt{\mathrm{fan\_in}}}\, x W + \sigma_b b` with :math:`\sigma_b = 0.1`
(NT's ``Dense(W_std=1, b_std=0.1)``), so finite networks and their Monte Carlo kernels are
well scaled at any width.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from neural_tangents import stax

from graph_ntk.layers.aggregate import real_nodes

B_STD = 0.1
"""Scale of the biases of learned pools (NT's ``b_std``)."""

MC_HINT = (
    "{name} has no closed-form infinite-width kernel: {why}. Estimate its NNGP/NTK by "
    "sampling finite networks with graph_ntk.monte_carlo_kernel(network, graphs, n_samples=..., "
    "key=...) (a wrapper of neural_tangents.monte_carlo_kernel_fn that also returns standard errors)."
)


class Pooled(NamedTuple):
    """Output of a hierarchical pool on a padded batch.

    ``x`` ``(B, K, F')`` pooled features (0 on padded rows), ``adjacency`` ``(B, K, K)``,
    ``node_mask`` ``(B, K)`` True on real pooled nodes, ``selection`` ``(B, N, K)`` the
    assignment/selection matrix :math:`S` (0 on padded nodes).
    """

    x: jnp.ndarray
    adjacency: jnp.ndarray
    node_mask: jnp.ndarray
    selection: jnp.ndarray


def unpack(inputs, mask_constant) -> tuple[jnp.ndarray, jnp.ndarray | None]:
    """``(values, nt_mask)`` from an array (padding = ``mask_constant``) or a ``MaskedArray``.

    Pools that change the graph are not wrapped by ``stax.supports_masking``: their output
    mask depends on the ``pattern`` (and features), which a ``mask_fn`` never sees.
    """
    if isinstance(inputs, stax.MaskedArray):
        return inputs.masked_value, inputs.mask
    x = jnp.asarray(inputs)
    if mask_constant is None:
        return x, None
    mask = jnp.isnan(x) if math.isnan(mask_constant) else x == mask_constant
    return jnp.where(mask, 0.0, x), mask


def pair(value):
    """Kernel keyword arguments come as ``(for x1, for x2)`` pairs, or one value for both."""
    return value if isinstance(value, tuple) else (value, value)


def check_nodes(x: jnp.ndarray, name: str) -> None:
    if x.ndim != 3:
        raise ValueError(f"{name} expects node features of shape (batch, nodes, channels), got {x.shape}")


def check_dense_pattern(pattern, batch: int, n: int, name: str) -> None:
    if pattern is None:
        raise ValueError(f"{name} needs the graph: pass pattern=adjacency of shape (batch, N, N)")
    if jnp.ndim(pattern) != 3 or tuple(jnp.shape(pattern)) != (batch, n, n):
        raise ValueError(f"{name} needs a dense (batch={batch}, {n}, {n}) adjacency pattern, got shape "
                         f"{jnp.shape(pattern)}; convert edge lists with GraphBatch.to_dense()")


def real_mask(node_mask, x: jnp.ndarray, nt_mask=None) -> jnp.ndarray:
    """``(B, N)`` float, 1 on real nodes: from graph_ntk's ``node_mask`` or NT's mask."""
    return real_nodes(node_mask, nt_mask, x.shape[0], x.shape[1], x.dtype)


def on_host(fn: Callable[..., tuple], result_shapes: tuple[jax.ShapeDtypeStruct, ...], *args) -> tuple:
    """Run the NumPy function ``fn(*args)`` (returning arrays of ``result_shapes``).

    Structure-only computations (coarsening, shortest paths) are sequential graph
    algorithms, simplest in NumPy. On concrete inputs ``fn`` runs directly; under ``jit``,
    ``vmap`` or ``eval_shape`` (traced inputs) it runs through ``jax.pure_callback``. It
    never depends on parameters, so no derivative is needed through it.
    """
    if not any(isinstance(a, jax.core.Tracer) for a in args):
        return tuple(jnp.asarray(r, s.dtype) for r, s in zip(fn(*(np.asarray(a) for a in args)), result_shapes))
    # JAX converts a callback's results under the *global* 64-bit setting (the callback runs
    # outside the caller's ``jax.enable_x64`` context), so a float64 result would come back
    # as float32 and fail the dtype check. 64-bit results therefore travel as pairs of
    # uint32 words and are reassembled bit-exactly here, inside the caller's context.
    wide = [np.dtype(s.dtype).itemsize == 8 for s in result_shapes]
    carried = tuple(jax.ShapeDtypeStruct(tuple(s.shape) + (2,), np.uint32) if w else s
                    for s, w in zip(result_shapes, wide))

    def host(*host_args):
        out = fn(*host_args)
        return tuple(np.ascontiguousarray(r, s.dtype).view(np.uint32).reshape(tuple(s.shape) + (2,)) if w
                     else np.asarray(r, s.dtype) for r, s, w in zip(out, result_shapes, wide))

    out = jax.pure_callback(host, carried, *args, vmap_method="sequential")
    return tuple(jax.lax.bitcast_convert_type(r, s.dtype) if w else r for r, s, w in zip(out, result_shapes, wide))


def no_closed_form(name: str, why: str) -> Callable[..., Any]:
    """A ``kernel_fn`` that explains why there is no exact kernel and names the Monte Carlo route."""
    def kernel_fn(k, **kwargs):
        raise NotImplementedError(MC_HINT.format(name=name, why=why))

    return kernel_fn


_ACTIVATIONS: dict[str, Callable[[jnp.ndarray], jnp.ndarray]] = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "elu": jax.nn.elu,
    "selu": jax.nn.selu,
    "linear": lambda x: x,
}


def activation(name: str | Callable | None) -> Callable[[jnp.ndarray], jnp.ndarray]:
    """An activation by name (``'relu'``, ``'tanh'``, ``'sigmoid'``, ``'elu'``, ``'selu'``,
    ``'linear'``/``None``) or a callable."""
    if name is None:
        return _ACTIVATIONS["linear"]
    if callable(name):
        return name
    if name not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)} or a callable, got {name!r}")
    return _ACTIVATIONS[name]


def dense_init(rng, fan_in: int, fan_out: int, bias: bool = True):
    """NT-style parameters ``(W, b)`` (or ``(W,)``), all entries standard normal."""
    w_key, b_key = jax.random.split(rng)
    w = jax.random.normal(w_key, (fan_in, fan_out))
    return (w, jax.random.normal(b_key, (fan_out,))) if bias else (w,)


def dense_apply(params, x: jnp.ndarray) -> jnp.ndarray:
    """:math:`x W / \\sqrt{\\mathrm{fan\\_in}} + 0.1\\, b`."""
    out = x @ params[0] / math.sqrt(params[0].shape[0])
    return out + B_STD * params[1] if len(params) > 1 else out


def mlp_init(rng, fan_in: int, hidden: tuple[int, ...], fan_out: int):
    sizes = (fan_in, *hidden, fan_out)
    keys = jax.random.split(rng, len(sizes) - 1)
    return tuple(dense_init(key, a, b) for key, a, b in zip(keys, sizes[:-1], sizes[1:]))


def mlp_apply(params, x: jnp.ndarray, act: Callable[[jnp.ndarray], jnp.ndarray]) -> jnp.ndarray:
    """Dense layers with ``act`` between them (none after the last)."""
    for layer in params[:-1]:
        x = act(dense_apply(layer, x))
    return dense_apply(params[-1], x)


def masked_softmax(logits: jnp.ndarray, real: jnp.ndarray, axis: int) -> jnp.ndarray:
    """Softmax over ``axis`` restricted to entries where ``real`` (broadcastable) is 1; 0 elsewhere."""
    where = jnp.broadcast_to(real > 0, logits.shape)
    # A graph without real entries (all padding) gets zeros rather than 0/0.
    return jnp.where(where, jax.nn.softmax(logits, axis=axis, where=where), 0.0)


def graph_changing_layer(name: str, why: str, init_pool, pool, then):
    """``(init_fn, apply_fn, kernel_fn)`` of a pool that runs ``then`` on the pooled graph.

    ``init_pool(rng, input_shape) -> (pool_params, pooled_shape)`` and
    ``pool(pool_params, x, pattern, real) -> Pooled``. Parameters are
    ``(pool_params, then_params)``; ``kernel_fn`` raises (no closed form).
    """
    then_init, then_apply, _ = stax.Identity() if then is None else then

    def init_fn(rng, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"{name} expects node features of shape (batch, nodes, channels), got {input_shape}")
        pool_key, then_key = jax.random.split(rng)
        pool_params, pooled_shape = init_pool(pool_key, tuple(input_shape))
        output_shape, then_params = then_init(then_key, pooled_shape)
        return output_shape, (pool_params, then_params)

    def apply_fn(params, inputs, *, pattern=None, node_mask=None, mask_constant=None, **kwargs):
        x, nt_mask = unpack(inputs, mask_constant)
        check_nodes(x, name)
        check_dense_pattern(pattern, x.shape[0], x.shape[1], name)
        out = pool(params[0], x, jnp.asarray(pattern, x.dtype), real_mask(node_mask, x, nt_mask))
        pooled = out.x if nt_mask is None else stax.MaskedArray(out.x, ~out.node_mask[:, :, None])
        return then_apply(params[1], pooled, pattern=out.adjacency, node_mask=out.node_mask,
                          mask_constant=mask_constant, **kwargs)

    return init_fn, apply_fn, no_closed_form(name, why)
