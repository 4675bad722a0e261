r"""Degree normalisation of neighbourhood aggregation, defined once for every code path.

An aggregation :math:`h'_j = \sum_i c_{ij} h_i` over (weighted) arcs :math:`i \to j` of
weight :math:`w_{ij}` uses the coefficients

.. math::  c_{ij} = s_i\, w_{ij}\, r_j, \qquad (s, r) = \begin{cases}
           (1, 1) & \texttt{'sum'} \\
           (1, 1/d) & \texttt{'mean'} \\
           (d^{-1/2}, d^{-1/2}) & \texttt{'gcn'} \end{cases}

with :math:`d_j = \sum_i w_{ij}` the weighted in-degree (self loops included when the
caller appended them; repeated arcs add up) and the factor 0 wherever :math:`d \le 0`
(such nodes aggregate to 0).

The functions are array-module agnostic: pass ``xp=jax.numpy`` inside jitted / vmapped
JAX code (:class:`graph_ntk.Aggregate`), keep the NumPy default elsewhere
(:func:`graph_ntk.kernels.spaces.aggregation_matrix`). This module imports
neither JAX nor SciPy.
"""

from __future__ import annotations

from typing import Any, Callable, Literal

import numpy as np

__all__ = ["NORMALIZATIONS", "aggregation_coefficients", "check_normalization", "in_degrees", "node_scales"]

Normalization = Literal["sum", "mean", "gcn"]
NORMALIZATIONS: tuple[str, ...] = ("sum", "mean", "gcn")


def check_normalization(normalization: str) -> str:
    """Return ``normalization`` if it is ``'sum'``, ``'mean'`` or ``'gcn'``, else raise ValueError."""
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be 'sum', 'mean' or 'gcn', got {normalization!r}")
    return normalization


def in_degrees(receivers, weights, num_nodes: int, xp: Any = np,
               segment_sum: Callable | None = None):
    r"""Weighted in-degrees :math:`d_j = \sum_{e:\, \mathrm{receiver}(e) = j} w_e`, shape ``(num_nodes,)``.

    Args:
        receivers: ``(E,)`` integer receiver of each arc (every entry in ``0..num_nodes-1``).
        weights: ``(E,)`` arc weights (0 for padding arcs).
        num_nodes: number of nodes.
        xp: the array module (``numpy`` or ``jax.numpy``).
        segment_sum: optional ``segment_sum(values, segment_ids, num_segments)``; default
            ``np.bincount`` for NumPy and ``zeros().at[receivers].add(weights)`` otherwise.

    Example:
        >>> in_degrees(np.array([1, 1, 0]), np.array([1.0, 2.0, 0.5]), 3).tolist()
        [0.5, 3.0, 0.0]
    """
    if segment_sum is not None:
        return segment_sum(weights, receivers, num_nodes)
    if xp is np:
        weights = np.asarray(weights)
        degree = np.bincount(np.asarray(receivers), weights=weights, minlength=num_nodes)
        return degree.astype(weights.dtype, copy=False)
    return xp.zeros((num_nodes,), weights.dtype).at[receivers].add(weights)


def node_scales(degree, normalization: Normalization, xp: Any = np):
    r"""Per-node factors ``(s, r)`` with :math:`c_{ij} = s_i w_{ij} r_j` (see the module docstring).

    ``degree`` may have leading batch axes; the factors have its shape (and dtype).
    Nodes of degree :math:`\le 0` get 0 for ``'mean'`` and ``'gcn'``.

    Example:
        >>> s, r = node_scales(np.array([4.0, 0.0]), 'gcn')
        >>> s.tolist(), r.tolist()
        ([0.5, 0.0], [0.5, 0.0])
    """
    check_normalization(normalization)
    if normalization == "sum":
        one = xp.ones_like(degree)
        return one, one
    positive = degree > 0
    safe = xp.where(positive, degree, 1)  # no 1/0 even in the branch that is thrown away
    if normalization == "mean":
        return xp.ones_like(degree), xp.where(positive, 1 / safe, 0)
    inv_sqrt = xp.where(positive, 1 / xp.sqrt(safe), 0)
    return inv_sqrt, inv_sqrt


def aggregation_coefficients(
    senders,
    receivers,
    weights,
    num_nodes: int,
    normalization: Normalization,
    xp: Any = np,
    segment_sum: Callable | None = None,
):
    r"""Coefficient :math:`c_e = s_{\mathrm{sender}(e)}\, w_e\, r_{\mathrm{receiver}(e)}` of every arc.

    The degrees are those of this arc list (append self loops first if wanted). Works
    per graph; under ``jax.vmap`` with ``xp=jax.numpy`` for batches.

    Args:
        senders, receivers: ``(E,)`` integer endpoints, all in ``0..num_nodes-1`` (map padding
            arcs to any node and give them weight 0).
        weights: ``(E,)`` arc weights.
        num_nodes: number of nodes.
        normalization: ``'sum'``, ``'mean'`` or ``'gcn'``.
        xp, segment_sum: array module and optional segment sum, as in :func:`in_degrees`.

    Returns:
        ``(E,)`` coefficients, dtype of ``weights``.

    Example:
        >>> s = np.array([0, 1, 2]); r = np.array([1, 1, 1])
        >>> aggregation_coefficients(s, r, np.ones(3), 3, 'mean').round(6).tolist()
        [0.333333, 0.333333, 0.333333]
    """
    check_normalization(normalization)
    if normalization == "sum":
        return weights
    s, r = node_scales(in_degrees(receivers, weights, num_nodes, xp, segment_sum), normalization, xp)
    if normalization == "mean":
        return weights * r[receivers]
    return s[senders] * weights * r[receivers]
