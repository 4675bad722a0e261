r"""The Graph Neural Tangent Kernel (Du et al., NeurIPS 2019) as one ``stax`` description.

Paper hyper-parameters → arguments:

=====================  ==========================================================
paper                  :func:`gntk`
=====================  ==========================================================
L (BLOCK layers)       ``num_blocks`` (the reference CLI's ``num_layers`` is L + 1)
R (MLP layers/block)   ``num_mlp_layers``
c_u = 1 (``uniform``)  ``aggregation='sum'``
c_u = 1/|N(u)|+1       ``aggregation='mean'`` (the reference's ``degree`` scaling)
jumping knowledge      ``jumping_knowledge=True`` (readout from every block and the input)
sum readout            ``readout='sum'`` (``'mean'`` averages over each graph's nodes)
=====================  ==========================================================

The network, for node features :math:`x_u \in \mathbb{R}^d` (one-hot tags in the paper):

.. math::
    h^{(0)} = W^{(0)} x \quad (\sigma_w^2 = d, \text{ so } K^{(0)} = \Theta^{(0)} = \langle x_u, x'_v\rangle),\\
    h^{(l)} = \big[\mathrm{Dense}_{\sqrt2}\circ\mathrm{ReLU}\big]^{R}
              \Big(\sum_{u \in N(v)\cup\{v\}} c_u\, h^{(l-1)}_u\Big), \qquad l = 1..L,\\
    f(G) = \sqrt{2} \sum_{l \in \mathcal{L}} \mathrm{Pool}(h^{(l)}),
    \quad \mathcal{L} = \{0..L\} \text{ with JK, else } \{L\},

where with JK each level's readout uses its own copy of the last weight matrix
:math:`W^{(l)}` (independent of the one feeding block l+1), so the finite network's
outputs at different levels are independent and its kernel is exactly the GNTK.

Its NTK is the GNTK, :math:`\Theta(G,G') = 2 \sum_{l\in\mathcal L} \sum_{u,v}\Theta^{(l)}_{uv}`,
and its NNGP the GNNGP (same with :math:`K^{(l)}`); this reproduces the authors' reference
Gram matrices exactly (``tests/test_gntk.py``).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Literal, Sequence


from graph_ntk import nn
from graph_ntk.checks import as_choice, as_count, as_flag


def gntk(
    num_blocks: int = 4,
    num_mlp_layers: int = 2,
    aggregation: Literal["sum", "mean"] = "sum",
    jumping_knowledge: bool = True,
    readout: Literal["sum", "mean"] = "sum",
    *,
    input_dim: int,
    width: int = 512,
    implementation: Literal["DENSE", "SPARSE"] = "DENSE",
    edge_types: int | None = None,
):
    r"""The GNTK / GNNGP network of Du et al. (2019) as an NT ``stax`` triple.

    Args:
        num_blocks: L, the number of aggregate + MLP blocks.
        num_mlp_layers: R, ReLU layers per block.
        aggregation: ``'sum'`` or ``'mean'`` neighbour scaling (self loop included).
        jumping_knowledge: read out every level (input and each block) or only the last.
        readout: ``'sum'`` or ``'mean'`` over each graph's nodes.
        input_dim: the node-feature dimension d; the first layer has weight variance d so
            that the input kernel is the plain inner product :math:`\langle x_u, x'_v\rangle`
            used by the paper (NT's ``Dense`` otherwise divides it by d).
        width: hidden width of the finite network (the kernel does not depend on it).
        implementation: ``Aggregate`` implementation, ``'DENSE'`` or ``'SPARSE'``.
        edge_types: ``T`` for the relational GNTK over discrete edge labels
            (``Graph.edge_type`` in ``0..T-1``, e.g. MUTAG's bond types): every block
            aggregates each type separately, R-GCN style, :math:`\sum_t W_t C_t^\top h`
            (self loops in every type). The weight that feeds a block then acts after the
            aggregation instead of before it (both are linear, so for ``T = 1`` the kernel is
            exactly the GNTK's), with variance :math:`T\sigma^2` so that
            :math:`K' = \sigma^2 \sum_t C_t^\top K C_t`: the cross-type terms
            :math:`C_s^\top K C_t` (:math:`s \ne t`) of the plain GNTK are dropped.

    Returns:
        A :class:`graph_ntk.nn.Network`: ``(init_fn, apply_fn, kernel_fn)`` with
        ``kernel_fn(..., 'ntk')`` the GNTK and ``'nngp'`` the GNNGP, and ``.program``, which
        :func:`graph_ntk.gram` runs on the exact compressed engine.

    Example:
        >>> from graph_ntk import Graph, GraphBatch, kernel_kwargs
        >>> g = Graph(3, np.array([[0, 1, 1, 2], [1, 0, 2, 1]]), node_labels=np.array([0, 1, 0]))  # doctest: +SKIP
        >>> b = GraphBatch.from_graphs([g], num_tags=2)  # doctest: +SKIP
        >>> _, _, kernel_fn = gntk(2, 2, input_dim=2)  # doctest: +SKIP
        >>> kernel_fn(b.x, None, 'ntk', **kernel_kwargs(b)).shape  # doctest: +SKIP
        (1, 1)
    """
    as_count(num_blocks, "num_blocks", maximum=256)
    return gntk_from_plan(["block"] * num_blocks, num_mlp_layers=num_mlp_layers, aggregation=aggregation,
                          jumping_knowledge=jumping_knowledge, readout=readout, input_dim=input_dim,
                          width=width, implementation=implementation, edge_types=edge_types)


def gntk_from_plan(
    plan: Sequence[Literal["block", "coarsen"]],
    *,
    num_mlp_layers: int,
    aggregation: Literal["sum", "mean"],
    jumping_knowledge: bool,
    readout: Literal["sum", "mean"],
    input_dim: int,
    width: int,
    implementation: Literal["DENSE", "SPARSE"] = "DENSE",
    coarsen: Callable | None = None,
    edge_types: int | None = None,
):
    """The GNTK network for a sequence of steps: ``'block'`` (aggregate + MLP, read out with
    jumping knowledge) or ``'coarsen'`` (``coarsen(rest)`` wraps the rest of the network,
    e.g. ``StructurePool``). ``["block"] * L`` is :func:`gntk`; see :func:`gntk` for the
    other arguments.
    """
    as_count(num_mlp_layers, "num_mlp_layers", maximum=256)
    as_choice(aggregation, "aggregation", ("sum", "mean"))
    as_choice(readout, "readout", ("sum", "mean"))
    jumping_knowledge = as_flag(jumping_knowledge, "jumping_knowledge")
    as_count(input_dim, "input_dim")
    as_count(width, "width")
    if plan[-1] != "block" or ("coarsen" in plan and coarsen is None):
        raise ValueError("plan must end with a 'block', and 'coarsen' steps need coarsen=")
    if edge_types is not None:
        as_count(edge_types, "edge_types (the number of edge labels, or None)")
    if edge_types is not None and "coarsen" in plan:
        raise ValueError("edge_types cannot be combined with coarsening: coarsened graphs have no edge labels")
    pool = nn.GlobalSumPool() if readout == "sum" else nn.GlobalMeanPool()
    relu_dense = [nn.Relu(), nn.Dense(width, W_std=math.sqrt(2.0))]
    # Each block ends with a ReLU; the Dense(sqrt 2) that completes its last MLP layer is
    # drawn separately for the readout and for the next block. With separate weights the
    # JK branches are independent Gaussian processes, so NT's FanInSum (which adds kernels
    # and ignores cross-covariances) is exact for the finite network too, and both branches
    # see the reference's (K_l, Theta_l).
    mlp = relu_dense * (num_mlp_layers - 1) + [nn.Relu()]
    out_dense = lambda: nn.Dense(width, W_std=math.sqrt(2.0))  # noqa: E731
    in_dense = lambda: nn.Dense(width, W_std=math.sqrt(input_dim))  # noqa: E731

    if edge_types is None:
        def body(w_std: float) -> list:  # fed by a Dense(w_std) in front (feed below)
            return [nn.Aggregate(aggregation, add_self_loops=True, implementation=implementation), *mlp]

        def feed(dense: Callable) -> list:
            return [dense()]
    else:
        # The per-type aggregations are concatenated along channels, so a Dense must follow
        # them (NT refuses a ReLU there); it takes the place of the Dense that feeds a plain
        # block, with T times the variance, because the concatenation averages over types.
        def body(w_std: float) -> list:
            return [nn.Aggregate(aggregation, add_self_loops=True, implementation=implementation,
                                 edge_types=edge_types),
                    nn.Dense(width, W_std=w_std * math.sqrt(edge_types)), *mlp]

        def feed(dense: Callable) -> list:
            return []

    # Built from the last step backwards: with JK each block forks into "read out here" and
    # "continue", and the pooled readouts of all blocks are summed. (NT warns at kernel
    # time that FanInSum assumes independent branches; ours are, see above.)
    rest = None
    for i, step in reversed(list(enumerate(plan))):
        w_std = math.sqrt(input_dim) if i == 0 else math.sqrt(2.0)  # the first block is fed by the input
        if step == "coarsen":
            rest = coarsen(rest)
        elif rest is None:
            rest = nn.serial(*body(w_std), out_dense(), pool)
        elif jumping_knowledge:
            rest = nn.serial(*body(w_std), nn.FanOut(2),
                               nn.parallel(nn.serial(out_dense(), pool), nn.serial(*feed(out_dense), rest)),
                               nn.FanInSum())
        else:
            rest = nn.serial(*body(w_std), *feed(out_dense), rest)
    if not jumping_knowledge:
        return nn.serial(*feed(in_dense), rest, nn.Scale(math.sqrt(2.0)))
    return nn.serial(nn.FanOut(2), nn.parallel(nn.serial(in_dense(), pool), nn.serial(*feed(in_dense), rest)),
                       nn.FanInSum(), nn.Scale(math.sqrt(2.0)))


def hierarchical_gntk(
    method: Literal["graclus", "ndp", "kmis"] = "graclus",
    num_levels: int = 2,
    blocks_per_level: int = 2,
    num_mlp_layers: int = 2,
    aggregation: Literal["sum", "mean"] = "sum",
    jumping_knowledge: bool = True,
    readout: Literal["sum", "mean"] = "sum",
    *,
    input_dim: int,
    width: int = 512,
    **options: Any,
):
    r"""A GNTK (Du et al., 2019) whose graph is coarsened between levels by :func:`StructurePool`.

    Level :math:`\ell = 1..` ``num_levels`` runs ``blocks_per_level`` GNTK blocks
    (self-looped ``Aggregate`` then ``num_mlp_layers`` ReLU MLP layers, width ``width``,
    weight variance 2) on graph :math:`G_\ell`, with :math:`G_1 = G` and
    :math:`G_{\ell+1}` the ``method`` coarsening of :math:`G_\ell`. Readout as in
    :func:`graph_ntk.gntk`: ``readout`` pooling of every block (and the input) with
    jumping knowledge, else of the last block, times :math:`\sqrt 2`. With
    ``num_levels=1`` this is exactly ``gntk(blocks_per_level, ...)``.

    Every step is exact, so ``kernel_fn(..., 'ntk')`` is the hierarchical GNTK and
    ``'nngp'`` its GNNGP.

    Example:
        >>> _, _, kernel_fn = hierarchical_gntk('kmis', 2, 1, input_dim=3, k=1)
        >>> # kernel_fn(b.x, None, 'ntk', **kernel_kwargs(b)) -> (B, B) Gram matrix
    """
    as_count(num_levels, "num_levels", maximum=64)
    as_count(blocks_per_level, "blocks_per_level", maximum=64)
    from graph_ntk.data.coarsening import check_method

    check_method(method, options)
    plan = (["block"] * blocks_per_level + ["coarsen"]) * (num_levels - 1) + ["block"] * blocks_per_level
    return gntk_from_plan(plan, num_mlp_layers=num_mlp_layers, aggregation=aggregation,
                          jumping_knowledge=jumping_knowledge, readout=readout, input_dim=input_dim, width=width,
                          coarsen=lambda rest: nn.StructurePool(method, rest, **options))
