r"""Monte Carlo NNGP/NTK estimates with standard errors, for any graph network.

Layers without a closed-form infinite-width kernel (max/min readouts, learned pools)
still have one, defined by sampling finite networks: for ``n`` independent
initialisations :math:`\theta_s`,

.. math::  \hat K(G, G') = \frac1n \sum_s \frac1{F}\langle f_{\theta_s}(G), f_{\theta_s}(G')\rangle,
           \qquad
           \hat\Theta(G, G') = \frac1n \sum_s \frac1{F}
                \Big\langle \frac{\partial f_{\theta_s}(G)}{\partial\theta},
                            \frac{\partial f_{\theta_s}(G')}{\partial\theta}\Big\rangle,

which is what :func:`neural_tangents.monte_carlo_kernel_fn` computes (traced over the
``F`` output channels). :func:`monte_carlo_kernel` runs it once, reading the running mean
after every ``n/G`` samples, so the ``G`` group means :math:`\bar K_g` are independent
and give the standard error of the estimate,

.. math::  \mathrm{SE} = \mathrm{std}(\bar K_1, \dots, \bar K_G) / \sqrt{G}.
"""

from __future__ import annotations

from collections import abc
from dataclasses import dataclass
from typing import Any, Sequence

import jax
import neural_tangents as nt
import numpy as np
from neural_tangents import stax

from graph_ntk.data.batch import GraphBatch, kernel_kwargs
from graph_ntk.checks import as_choice, as_count, as_seed, show
from graph_ntk.data.graph import Graph

__all__ = ["KernelEstimate", "monte_carlo_kernel"]

_KINDS = ("nngp", "ntk")


@dataclass(frozen=True)
class KernelEstimate:
    """A Monte Carlo kernel estimate: ``mean`` and its ``stderr`` (same shape), from
    ``n_samples`` networks in ``n_groups`` groups."""

    mean: np.ndarray
    stderr: np.ndarray
    n_samples: int
    n_groups: int


def _batches(first, second, num_tags: int | None, encoding, num_edge_types: int | None
             ) -> tuple[GraphBatch, GraphBatch | None]:
    """Both sets as batches padded to one node count (lists are padded here, their tags
    encoded as :func:`graph_ntk.gram` encodes them)."""
    from graph_ntk.engine.inputs import _as_graph_list, resolve_encoding

    # Lists are checked here, so an empty list or a stray object gets a message naming it
    # instead of failing inside max() or GraphBatch.from_graphs.
    sets = [s if isinstance(s, GraphBatch) else _as_graph_list(s, name)[0]
            for s, name in ((first, "graphs_or_batch"), (second, "graphs2"))[:1 if second is None else 2]]
    lists = [s for s in sets if not isinstance(s, GraphBatch)]
    if lists:
        enc, coded1, coded2 = resolve_encoding(encoding, num_tags, lists[0], lists[1] if len(lists) > 1 else None)
        coded = iter([coded1] + ([coded2] if coded2 is not None else []))
        sets = [s if isinstance(s, GraphBatch) else next(coded) for s in sets]
        num_tags = enc.num_tags
    n = max(s.x.shape[1] if isinstance(s, GraphBatch) else max(g.num_nodes for g in s) for s in sets)
    batches = [s if isinstance(s, GraphBatch) else GraphBatch.from_graphs(list(s), n_max=n, num_tags=num_tags,
                                                                          num_edge_types=num_edge_types)
               for s in sets]
    if any(b.x.shape[1] != n for b in batches):
        raise ValueError("both sets must be padded to the same node count, got "
                         f"{[b.x.shape[1] for b in batches]}; build them with GraphBatch.from_graphs(..., n_max=...)")
    return batches[0], (batches[1] if second is not None else None)


def _typed_key(key: Any) -> bool:
    """Whether ``key`` is a new-style typed JAX key (``jax.random.key(0)``, a scalar)."""
    return isinstance(key, jax.Array) and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)


def monte_carlo_kernel(
    network,
    graphs_or_batch: GraphBatch | Sequence[Graph],
    graphs2: GraphBatch | Sequence[Graph] | None = None,
    *,
    n_samples: int,
    key: jax.Array | int,
    get: str | Sequence[str] = ("nngp", "ntk"),
    batch_size: int = 0,
    n_groups: int = 8,
    num_tags: int | None = None,
    implementation: int = 1,
    encoding: Any = None,
    num_edge_types: int | None = None,
    **apply_kwargs: Any,
) -> KernelEstimate | dict[str, KernelEstimate]:
    r"""Monte Carlo NNGP and/or NTK of ``network`` between two sets of graphs, with standard errors.

    Args:
        network: an ``(init_fn, apply_fn, ...)`` stax triple (its ``kernel_fn`` is not used).
        graphs_or_batch: a :class:`GraphBatch` or a list of :class:`Graph` (padded here).
        graphs2: the second set (default: the first). Lists are padded to the node count
            of the larger set; batches must be both dense or both sparse.
        n_samples: number of sampled networks; a multiple of ``n_groups``.
        key: ``jax.random.PRNGKey`` for the initialisations, or an integer seed.
        get: ``'nngp'``, ``'ntk'`` or a tuple of them.
        batch_size: compute the kernel in blocks of this many graphs (must divide both
            set sizes; 0 = all at once), as ``neural_tangents.monte_carlo_kernel_fn``.
        n_groups: number of independent groups for the standard error (>= 2).
        num_tags, encoding: the input encoding of graph lists, as for :func:`graph_ntk.gram`
            (default: the one the graphs carry).
        num_edge_types: ``T`` of the network's relational ``Aggregate(edge_types=T)`` for
            graph lists (default: the ``graph_ntk.nn`` description's own).
        implementation: neural-tangents' empirical-NTK implementation (1 = Jacobian
            contraction, which works for every graph_ntk layer).
        **apply_kwargs: extra keyword arguments for ``apply_fn`` (paired as ``(v1, v2)``
            tuples where they differ between the two sets).

    Returns:
        A :class:`KernelEstimate` if ``get`` is a string, else ``{kind: KernelEstimate}``.
        ``mean`` has the exact kernel's shape, e.g. ``(B1, B2)`` after a readout.

    Example:
        >>> from graph_ntk import Aggregate, GlobalSumPool, Graph
        >>> g = Graph(3, np.array([[0, 1], [1, 2]]), x=np.eye(3))
        >>> net = stax.serial(stax.Dense(64), Aggregate(), stax.Relu(), GlobalSumPool())
        >>> est = monte_carlo_kernel(net, [g, g], n_samples=16, key=0, get='nngp')
        >>> est.mean.shape, bool((est.stderr >= 0).all())
        ((2, 2), True)
    """
    if isinstance(network, type) or not (isinstance(network, abc.Sequence) and not isinstance(network, str)
                                         and len(network) >= 2 and callable(network[0]) and callable(network[1])):
        raise TypeError(f"network must be a stax triple (init_fn, apply_fn, kernel_fn) or a graph_ntk.nn network "
                        f"(for a GNTK: GNTK(...).stax(input_dim)), got {type(network).__name__}: sampling needs init_fn and apply_fn")
    kinds: tuple[str, ...]
    if isinstance(get, str):
        kinds = (as_choice(get, "get", _KINDS),)
    elif isinstance(get, (tuple, list)) and get:
        kinds = tuple(as_choice(kind, "get", _KINDS) for kind in get)
    else:
        raise TypeError(f"get must be 'nngp', 'ntk' or a tuple of them, got {show(get)} ({type(get).__name__})")
    n_groups = as_count(n_groups, "n_groups", 1)
    n_samples = as_count(n_samples, "n_samples", 1)
    if n_groups < 2:
        raise ValueError(f"n_groups must be >= 2 to estimate a standard error, got {n_groups}")
    if n_samples < n_groups or n_samples % n_groups:
        raise ValueError(f"n_samples ({n_samples}) must be a positive multiple of n_groups ({n_groups})")
    batch_size = as_count(batch_size, "batch_size", 0)
    # NT's ids: 0 = AUTO, 1 = Jacobian contraction, 2 = NTK-vector products, 3 = structured derivatives.
    implementation = as_count(implementation, "implementation", minimum=0, maximum=3)
    if not (isinstance(key, (jax.Array, np.ndarray)) and np.ndim(key) > 0) and not _typed_key(key):
        key = jax.random.PRNGKey(as_seed(key, "key"))  # a plain seed, as users pass to numpy
    init_fn, apply_fn = network[0], network[1]

    if num_edge_types is None:
        num_edge_types = getattr(network, "edge_types", None)  # a graph_ntk.nn description knows it
    elif num_edge_types is not None:
        num_edge_types = as_count(num_edge_types, "num_edge_types")
    b1, b2 = _batches(graphs_or_batch, graphs2, num_tags, encoding, num_edge_types)
    kwargs = {**kernel_kwargs(b1, b2), **apply_kwargs}

    group = n_samples // n_groups
    checkpoints = [group * (g + 1) for g in range(n_groups)]
    sampler = nt.monte_carlo_kernel_fn(init_fn, stax.unmask_fn(apply_fn), key, checkpoints, batch_size=batch_size,
                                       device_count=0, implementation=implementation)
    x2 = None if b2 is None else b2.x
    # The generator yields running means after group, 2*group, ... samples; differences of
    # running sums are the independent group means.
    totals = [tuple(np.asarray(v) * group * (g + 1) for v in est)
              for g, est in enumerate(sampler(b1.x, x2, kinds, **kwargs))]
    estimates = {}
    for i, kind in enumerate(kinds):
        sums = np.stack([t[i] for t in totals])
        means = np.diff(sums, axis=0, prepend=0.0) / group
        estimates[kind] = KernelEstimate(mean=means.mean(axis=0), stderr=means.std(axis=0, ddof=1) / np.sqrt(n_groups),
                                         n_samples=n_samples, n_groups=n_groups)
    return estimates[kinds[0]] if isinstance(get, str) else estimates
