r"""Neighbourhood aggregation as a neural-tangents ``stax`` layer with an exact kernel.

For one graph with (weighted) arcs :math:`i \to j` of weight :math:`a_{ij}`, the layer
computes, node-wise and channel-wise,

.. math::  h'_j = \sum_i c_{ij}\, h_i, \qquad
           c_{ij} = \begin{cases} \tilde a_{ij} & \texttt{'sum'} \\
                                  \tilde a_{ij} / d_j & \texttt{'mean'} \\
                                  \tilde a_{ij} / \sqrt{d_i d_j} & \texttt{'gcn'} \end{cases}

with :math:`\tilde a = a + I` if ``add_self_loops`` (self loops only on real, non-padded
nodes) and :math:`d_j = \sum_i \tilde a_{ij}` the weighted in-degree (nodes of degree 0
aggregate to 0). Writing :math:`C` for the matrix :math:`(c_{ij})`, the layer is linear, so
its infinite-width kernels are exact:

.. math::  K'(G, G') = C^\top K(G, G')\, C', \qquad \Theta'(G, G') = C^\top \Theta(G, G')\, C'.

Graph conventions (as ``stax.Aggregate``): inputs are ``(batch, nodes, channels)``;
``implementation='DENSE'`` takes ``pattern`` as a ``(batch, N, N)`` (weighted) adjacency with
``pattern[b, i, j]`` the weight of arc ``i -> j``; ``implementation='SPARSE'`` takes
``pattern`` as ``(batch, E, 2)`` integer ``(sender, receiver)`` pairs padded with ``-1``,
and optional ``edge_weight`` of shape ``(batch, E)``. Kernel calls take pairs:
``kernel_fn(x1, x2, pattern=(p1, p2), edge_weight=(w1, w2))``. Padded nodes are marked by
``node_mask`` (``(batch, N)``, True on real nodes; pairs for kernels), which
:class:`graph_ntk.GraphBatch` supplies; NT's own ``mask_constant`` masking also works.
Padded nodes get no self loop and no arcs, so they never reach real nodes.

Relational aggregation (``edge_types=T``, as R-GCN): one operator :math:`C_t` per edge type,
built from the arcs of type ``t`` only (self loops, if any, in every type; each type
normalised by its own degrees). The finite layer concatenates the ``T`` aggregations along
channels (``T·F`` outputs, type-major), so a following ``Dense`` has separate weights per
type (a nonlinearity directly after it has no closed form, as after NT's channel-wise
``FanInConcat``, and is refused); concatenation averages kernels over channels, hence

.. math::  K' = \frac1T \sum_t C_t^\top K\, C_t', \qquad
           \Theta' = \frac1T \sum_t C_t^\top \Theta\, C_t'.

``'DENSE'`` then takes ``pattern`` of shape ``(batch, T, N, N)`` (``pattern[b, t, i, j]``
the weight of arc ``i -> j`` of type ``t``); ``'SPARSE'`` the usual edge list plus
``edge_type`` ``(batch, E)`` integers in ``0..T-1`` (ignored on padded arcs; pairs for kernels).
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from graph_ntk.checks import as_count
from jax import ops
from neural_tangents import stax
from neural_tangents import Kernel

from graph_ntk.data.normalization import Normalization, aggregation_coefficients, check_normalization, node_scales
_IMPLEMENTATIONS = ("DENSE", "SPARSE")


def real_nodes(node_mask, mask, batch: int, n: int, dtype) -> jnp.ndarray:
    """``(batch, n)`` with 1 for real nodes and 0 for padding.

    ``node_mask`` is graph_ntk's ``(batch, n)`` mask (True on real nodes, from
    :class:`graph_ntk.GraphBatch`); ``mask`` is neural-tangents' own (True on padding),
    present when the caller used NT's ``mask_constant`` instead.
    """
    if node_mask is not None:
        node_mask = jnp.asarray(node_mask)
        if node_mask.ndim == 2 and node_mask.shape[0] == batch and node_mask.shape[1] != n:
            # A layer upstream (MemPooling, SortPool) changed the number of nodes: stax.serial
            # still hands every layer the input's mask, but each of the n pooled nodes is real.
            return jnp.ones((batch, n), dtype)
        if node_mask.shape != (batch, n):
            raise ValueError(f"node_mask must have shape ({batch}, {n}) (graphs, nodes), got {node_mask.shape}")
        return node_mask.astype(dtype)
    if mask is None:
        return jnp.ones((batch, n), dtype)
    # NT masks are per entry, (batch, n, channels) or (batch, n, 1): a node is padding when
    # all of its channels are.
    return 1.0 - jnp.all(jnp.reshape(mask, (mask.shape[0], n, -1)), axis=-1).astype(dtype)


def _dense_operator(pattern, real, normalization, add_self_loops, dtype) -> jnp.ndarray:
    """The ``(batch, N, N)`` matrix ``C`` with ``h' = C^T h`` per graph."""
    n = real.shape[1]
    if pattern.ndim != 3 or pattern.shape[1:] != (n, n):
        raise ValueError(
            f"pattern must be a (batch, {n}, {n}) adjacency for inputs with {n} nodes, got shape "
            f"{pattern.shape}; for edge lists use Aggregate(implementation='SPARSE') (after a pool that changes the "
            "number of nodes without a new graph, such as MemPooling or SortPool, there is nothing to aggregate over)"
        )
    a = pattern.astype(dtype)
    if add_self_loops:
        a = a + real[:, :, None] * jnp.eye(n, dtype=dtype)
    # Column sums are the weighted in-degrees d_j = sum_i a_ij.
    s, r = node_scales(a.sum(axis=1), normalization, xp=jnp)
    return s[:, :, None] * a * r[:, None, :]


def _sparse_operator(pattern, edge_weight, real, normalization, add_self_loops, dtype):
    """Per-arc ``(senders, receivers, coefficients)``, self loops appended; padding has weight 0."""
    batch, n = real.shape
    if pattern.ndim != 3 or pattern.shape[0] != batch or pattern.shape[2] != 2:
        raise ValueError(
            f"pattern must be (batch={batch}, num_edges, 2) (sender, receiver) pairs padded with -1, "
            f"got shape {pattern.shape}; for adjacency matrices use Aggregate(implementation='DENSE')"
        )
    senders, receivers = pattern[..., 0], pattern[..., 1]
    valid = (senders >= 0) & (receivers >= 0)
    w = jnp.ones(senders.shape, dtype) if edge_weight is None else jnp.asarray(edge_weight, dtype)
    if w.shape != senders.shape:
        raise ValueError(f"edge_weight must have shape {senders.shape} (batch, num_edges), got {w.shape}")
    w = jnp.where(valid, w, 0.0)
    senders, receivers = jnp.where(valid, senders, 0), jnp.where(valid, receivers, 0)
    if add_self_loops:
        nodes = jnp.broadcast_to(jnp.arange(n), (batch, n))
        senders = jnp.concatenate([senders, nodes], axis=1)
        receivers = jnp.concatenate([receivers, nodes], axis=1)
        w = jnp.concatenate([w, real], axis=1)
    def coefficients(s, r, w_):
        return aggregation_coefficients(s, r, w_, n, normalization, xp=jnp, segment_sum=_segment_sum)

    return senders, receivers, jax.vmap(coefficients)(senders, receivers, w)


def _segment_sum(values, segment_ids, num_segments):
    return ops.segment_sum(values, segment_ids, num_segments=num_segments)


def _concrete(value):
    """``value`` as a numpy array, or ``None`` while it is traced (checks then wait for eager calls)."""
    try:
        return np.asarray(value)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def _relational_dense(pattern, real, normalization, add_self_loops, dtype, num_types: int) -> jnp.ndarray:
    """``(batch, T, N, N)``: one :func:`_dense_operator` per edge type (own degrees, own self loops)."""
    n = real.shape[1]
    if pattern.ndim != 4 or pattern.shape[1] != num_types or pattern.shape[2:] != (n, n):
        raise ValueError(
            f"with edge_types={num_types}, pattern must be a (batch, {num_types}, {n}, {n}) stack of per-type "
            f"adjacencies for inputs with {n} nodes, got shape {pattern.shape}; GraphBatch.from_graphs(..., "
            f"num_edge_types={num_types}) builds it"
        )
    return jnp.stack([_dense_operator(pattern[:, t], real, normalization, add_self_loops, dtype)
                      for t in range(num_types)], axis=1)


def _relational_sparse(pattern, edge_weight, edge_type, real, normalization, add_self_loops, dtype,
                       num_types: int):
    """One :func:`_sparse_operator` per edge type (the arcs of other types get weight 0), as
    ``(senders, receivers, coefficients)`` with the types stacked on axis 0 of the coefficients:
    every type lists the same arcs, so senders and receivers are shared."""
    if edge_type is None:
        raise ValueError(f"Aggregate(edge_types={num_types}, implementation='SPARSE') needs edge_type=: one type "
                         f"in 0..{num_types - 1} per arc, shape (batch, num_edges), as GraphBatch supplies")
    edge_type = jnp.asarray(edge_type)
    if pattern.ndim != 3 or edge_type.shape != pattern.shape[:2]:
        raise ValueError(f"edge_type must have shape {pattern.shape[:2]} (batch, num_edges), like the edge list, "
                         f"got {edge_type.shape}")
    if not jnp.issubdtype(edge_type.dtype, jnp.integer):
        raise TypeError(f"edge_type must hold integer types 0..{num_types - 1}, got dtype {edge_type.dtype}")
    types, arcs = _concrete(edge_type), _concrete(pattern)
    if types is not None and arcs is not None:
        on_real = types[(arcs >= 0).all(axis=-1)]
        if on_real.size and (on_real.min() < 0 or on_real.max() >= num_types):
            bad = int(on_real.max() if on_real.max() >= num_types else on_real.min())
            raise ValueError(f"edge_type holds type {bad} on a real arc, outside 0..{num_types - 1} for "
                             f"edge_types={num_types}; renumber the types or raise edge_types")
    w = jnp.ones(edge_type.shape, dtype) if edge_weight is None else jnp.asarray(edge_weight, dtype)
    ops_ = [_sparse_operator(pattern, jnp.where(edge_type == t, w, jnp.zeros((), dtype)), real, normalization,
                             add_self_loops, dtype) for t in range(num_types)]
    return ops_[0][0], ops_[0][1], jnp.stack([o[2] for o in ops_])


def _segment_aggregate(values, senders, receivers, coef, axis: int, n: int):
    """``out[..., j, ...] = sum_e coef_e * values[..., senders_e, ...]`` over arcs ``e`` into ``j``.

    Gathers one arc's source row at a time along ``axis``: memory O(E x other dims), never
    O(E1 x E2) for a pair of graphs.
    """
    moved = jnp.moveaxis(values, axis, 0)
    messages = moved[senders] * coef.reshape((-1,) + (1,) * (moved.ndim - 1))
    return jnp.moveaxis(ops.segment_sum(messages, receivers, num_segments=n), 0, axis)


@stax.layer
@stax.supports_masking(remask_kernel=True)
def Aggregate(
    normalization: Normalization = "sum",
    add_self_loops: bool = False,
    implementation: Literal["DENSE", "SPARSE"] = "DENSE",
    edge_types: int | None = None,
):
    r"""Graph neighbourhood aggregation ``h'_j = sum_i c_ij h_i`` with an exact NNGP/NTK.

    Args:
        normalization: ``'sum'`` (plain neighbour sum, as GIN and the GNTK's ``uniform``
            scaling), ``'mean'`` (divide by the in-degree, the GNTK's ``degree`` scaling) or
            ``'gcn'`` (symmetric :math:`D^{-1/2} \tilde A D^{-1/2}`, as GCN).
        add_self_loops: aggregate over :math:`N(j) \cup \{j\}` (weight 1 for the self loop).
        implementation: ``'DENSE'`` for ``(batch, N, N)`` adjacency patterns (matrix
            products) or ``'SPARSE'`` for ``(batch, E, 2)`` edge lists (``segment_sum``; the
            kernel costs O(N·E) memory per graph pair instead of NT's O(E^2)).
        edge_types: ``T`` for relational aggregation: one aggregation per edge type,
            concatenated along channels (``T·F`` outputs); ``None`` (default) ignores types.
            The pattern is then ``(batch, T, N, N)`` (DENSE), or the edge list comes with
            ``edge_type=`` ``(batch, E)`` (SPARSE).

    Returns:
        ``(init_fn, apply_fn, kernel_fn)``. ``kernel_fn`` computes
        :math:`K' = C_1^\top K C_2` (with edge types: :math:`\frac1T\sum_t C_{1,t}^\top K C_{2,t}`)
        for ``nngp``, ``ntk`` and the per-graph covariances.

    Example:
        >>> import numpy as np
        >>> from neural_tangents import stax
        >>> _, apply_fn, kernel_fn = stax.serial(stax.Dense(8), Aggregate('mean', add_self_loops=True))
        >>> x = np.random.randn(2, 3, 4); a = np.ones((2, 3, 3))
        >>> kernel_fn(x, None, 'ntk', pattern=(a, a)).shape
        (2, 2, 3, 3)
        >>> rel = Aggregate('sum', True, edge_types=2)          # two bond types
        >>> a2 = np.ones((2, 2, 3, 3))                          # (batch, types, N, N)
        >>> rel[1]((), x, pattern=a2).shape                     # 2 x 4 channels
        (2, 3, 8)
    """
    check_normalization(normalization)
    implementation = str(implementation).upper()
    if implementation not in _IMPLEMENTATIONS:
        raise ValueError(f"implementation must be 'DENSE' or 'SPARSE', got {implementation!r}")
    if edge_types is not None:
        edge_types = as_count(edge_types, "edge_types (the number of edge types, or None)")
    sparse = implementation == "SPARSE"
    num_types = None if edge_types is None else int(edge_types)

    def init_fn(rng, input_shape):
        if num_types is None:
            return input_shape, ()
        return (*input_shape[:-1], num_types * input_shape[-1]), ()

    def operator(pattern, edge_weight, edge_type, node_mask, mask, batch, n, dtype):
        """The aggregation operator; with edge types, a list (SPARSE) or a stacked axis 1 (DENSE)."""
        real = real_nodes(node_mask, mask, batch, n, dtype)
        pattern = jnp.asarray(pattern)
        if num_types is None and edge_type is not None:
            raise ValueError("edge_type was given but this Aggregate ignores types; use Aggregate(..., edge_types=T)")
        if sparse:
            if num_types is not None:
                return _relational_sparse(pattern, edge_weight, edge_type, real, normalization, add_self_loops,
                                          dtype, num_types)
            return _sparse_operator(pattern, edge_weight, real, normalization, add_self_loops, dtype)
        if edge_weight is not None:
            raise ValueError("edge_weight is for implementation='SPARSE'; put weights into the dense pattern")
        if num_types is not None:
            if edge_type is not None:
                raise ValueError("edge_type is for implementation='SPARSE'; the dense pattern carries the types "
                                 "along its axis 1, shape (batch, edge_types, N, N)")
            return _relational_dense(pattern, real, normalization, add_self_loops, dtype, num_types)
        return _dense_operator(pattern, real, normalization, add_self_loops, dtype)

    def aggregate(op, inputs, n):
        if not sparse:
            return jnp.einsum("bij,bif->bjf", op, inputs)
        return jax.vmap(lambda x, s, r, c: _segment_aggregate(x, s, r, c, 0, n))(inputs, *op)

    def apply_fn(params, inputs, *, pattern=None, edge_weight=None, edge_type=None, node_mask=None, mask=None,
                 **kwargs):
        if pattern is None:
            raise ValueError("Aggregate needs the graph: call apply_fn(params, x, pattern=adjacency_or_edges)")
        if inputs.ndim != 3:
            raise ValueError(f"Aggregate expects node features of shape (batch, nodes, channels), got {inputs.shape}")
        batch, n, _ = inputs.shape
        op = operator(pattern, edge_weight, edge_type, node_mask, mask, batch, n, inputs.dtype)
        if num_types is None:
            return aggregate(op, inputs, n)
        if sparse:
            per_type = jax.vmap(lambda c: aggregate((op[0], op[1], c), inputs, n))(op[2])
        else:
            per_type = jnp.einsum("btij,bif->tbjf", op, inputs)
        # Type-major channels: output channel t*F + f is channel f aggregated over type t.
        return jnp.concatenate(list(per_type), axis=-1)

    @stax.requires(batch_axis=0, channel_axis=-1,
                   diagonal_spatial=stax.Diagonal(input=stax.Bool.NO, output=stax.Bool.NO))
    def kernel_fn(k: Kernel, *, pattern=(None, None), edge_weight=(None, None), edge_type=(None, None),
                  node_mask=(None, None), **kwargs) -> Kernel:
        # A single pattern (x2=None) stands for the pair (pattern, pattern).
        p1, p2 = pattern if isinstance(pattern, tuple) else (pattern, pattern)
        if p1 is None or p2 is None:
            raise ValueError("Aggregate's kernel needs the graphs: kernel_fn(x1, x2, pattern=(p1, p2)) "
                             "or **graph_ntk.kernel_kwargs(batch1, batch2)")
        w1, w2 = edge_weight if isinstance(edge_weight, tuple) else (edge_weight, edge_weight)
        t1, t2 = edge_type if isinstance(edge_type, tuple) else (edge_type, edge_type)
        m1, m2 = node_mask if isinstance(node_mask, tuple) else (node_mask, node_mask)
        b1, b2, n1, n2 = k.nngp.shape
        dtype = k.nngp.dtype
        op1 = operator(p1, w1, t1, m1, k.mask1, b1, n1, dtype)
        op2 = operator(p2, w2, t2, m2, k.mask2, b2, n2, dtype)

        if not sparse:
            if num_types is None:
                def cross(mat):  # (B1, B2, N1, N2) -> C1^T mat C2
                    return jnp.einsum("aij,abik,bkl->abjl", op1, mat, op2)

                def own(cov, op):  # (B, N, N) -> C^T cov C
                    return jnp.einsum("bij,bik,bkl->bjl", op, cov, op)
            else:
                def cross(mat):  # mean over types of C1_t^T mat C2_t
                    return jnp.einsum("atij,abik,btkl->abjl", op1, mat, op2) / num_types

                def own(cov, op):
                    return jnp.einsum("btij,bik,btkl->bjl", op, cov, op) / num_types
        else:
            def cross_one(mat, o1, o2):
                rows = jax.vmap(lambda m, s, r, c: _segment_aggregate(m, s, r, c, 1, n1), (0, 0, 0, 0))
                mat = rows(mat, *o1)  # aggregate graph-1 nodes: vmapped over B1
                cols = jax.vmap(lambda m, s, r, c: _segment_aggregate(m, s, r, c, 2, n2), (1, 0, 0, 0), 1)
                return cols(mat, *o2)  # then graph-2 nodes: vmapped over B2

            def own_one(cov, o):
                n = cov.shape[-1]
                step = jax.vmap(lambda m, s, r, c: _segment_aggregate(_segment_aggregate(m, s, r, c, 0, n),
                                                                     s, r, c, 1, n))
                return step(cov, *o)

            if num_types is None:
                def cross(mat):
                    return cross_one(mat, op1, op2)

                def own(cov, op):
                    return own_one(cov, op)
            else:
                # Types share the arcs and differ only in coefficients: vmap over them.
                def cross(mat):
                    per_type = jax.vmap(lambda c1, c2: cross_one(mat, (*op1[:2], c1), (*op2[:2], c2)))
                    return per_type(op1[2], op2[2]).mean(axis=0)

                def own(cov, op):
                    return jax.vmap(lambda c: own_one(cov, (*op[:2], c)))(op[2]).mean(axis=0)

        nngp = cross(k.nngp)
        # NT starts the NTK as a scalar 0 before any layer with parameters; keep it.
        ntk = k.ntk if k.ntk is None or jnp.ndim(k.ntk) == 0 else cross(k.ntk)
        cov1 = own(k.cov1, op1) if k.cov1 is not None else None
        cov2 = own(k.cov2, op2) if k.cov2 is not None else None
        # Like NT's channel-wise FanInConcat, T > 1 blocks of channels with different
        # covariances are not one Gaussian: a nonlinearity needs a Dense (per-type weights)
        # first, and NT's activations refuse non-Gaussian inputs.
        gaussian = k.is_gaussian and (num_types is None or num_types == 1)
        return k.replace(nngp=nngp, ntk=ntk, cov1=cov1, cov2=cov2, is_gaussian=gaussian)

    def mask_fn(mask, input_shape):
        # The layer masks whole nodes (see real_nodes); with types, collapse the channels as
        # NT's Dense does, since T*F output channels no longer match a per-channel mask.
        if num_types is None:
            return mask
        return jnp.all(mask, axis=-1, keepdims=True)

    return init_fn, apply_fn, kernel_fn, mask_fn
