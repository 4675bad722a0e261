r"""Exact Gram matrices of any layer program over Weisfeiler–Lehman items (no JAX).

:func:`program_gram` is the engine's entry point: it puts all graphs of the job into one
:class:`~graph_ntk.kernels.spaces.NodeSpace`, groups nodes with identical feature rows
into items (:func:`~graph_ntk.kernels.refine.feature_partition`), starts from
:math:`K^{(0)} = R R^\top / F` on the distinct rows ``R`` (NT's input kernel) and runs the
program with the tiled executor when it is a chain it can tile, else with the general
dense executor. The Gram matrix of graphs ``G_i, G'_j`` is the output kernel of their
items.

Example:
    >>> import numpy as np
    >>> from graph_ntk import program as P
    >>> from graph_ntk.data.graph import Graph
    >>> g = Graph(3, np.array([[0, 1, 1, 2], [1, 0, 2, 1]]), node_labels=np.array([0, 1, 0]))
    >>> prog = (P.Dense(8, 1.0), P.Aggregate("sum", True), P.ABRelu(0.0, 1.0), P.GlobalPool("sum"))
    >>> res = program_gram(prog, [g, g], num_tags=2)
    >>> res.nngp.shape, bool(np.isclose(res.nngp[0, 0], res.nngp[0, 1]))
    ((2, 2), True)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import scipy.sparse as sp

from graph_ntk import program as P
from graph_ntk.data.graph import Graph
from graph_ntk.kernels.chain import NotAChain, Sum, Tap, chain_plan
from graph_ntk.kernels.cross_exec import run_cross
from graph_ntk.kernels.dense_exec import State, pointwise, run_dense
from graph_ntk.kernels import rules
from graph_ntk.kernels.jax_tiles import resolve_backend
from graph_ntk.kernels.refine import FeaturePartition, feature_partition, refine
from graph_ntk.kernels.spaces import NodeSpace
from graph_ntk.kernels.tiled_exec import run_chain
from graph_ntk.kernels.tiles import reused_memory

__all__ = ["ProgramGram", "cross_supported", "node_features", "node_variances", "program_gram"]


@dataclass(frozen=True)
class ProgramGram:
    """``nngp`` and ``ntk`` Gram matrices (``len(graphs) x len(graphs2)``), the item counts
    per stage, the executor used and per-phase timings (seconds). With
    ``program_gram(..., each_readout=True)``, ``readouts`` holds the ``(nngp, ntk)`` Grams of
    every readout tap in trunk order, before the ops after the readout."""

    nngp: np.ndarray
    ntk: np.ndarray | None
    num_items: tuple[int, ...]
    executor: str
    timings: dict[str, float] = field(default_factory=dict)
    readouts: list[tuple[np.ndarray, np.ndarray]] | None = None


def node_features(graphs: Sequence[Graph], num_tags: int | None) -> tuple[np.ndarray, int]:
    """Per-node feature *keys* (labels as one column, then ``x``) and the feature dimension
    ``F`` (one-hot tags count ``num_tags`` columns), without materialising one-hot rows."""
    parts = []
    dim = 0
    if num_tags is not None and graphs[0].node_labels is not None:
        parts.append(np.concatenate([g.node_labels for g in graphs]).astype(np.float64)[:, None])
        dim += num_tags
    if graphs[0].x is not None:
        parts.append(np.concatenate([g.x for g in graphs]))
        dim += parts[-1].shape[1]
    if not parts:
        raise ValueError("the graphs carry neither node_labels nor features x")
    return np.concatenate(parts, axis=1), dim


def input_factor(part: FeaturePartition, num_tags: int | None, has_labels: bool) -> np.ndarray:
    r"""``R / \sqrt F``: the distinct feature rows (one-hot tags expanded), so that
    :math:`K^{(0)} = \Phi\Phi^\top`."""
    reps = part.representatives
    cols = []
    if has_labels and num_tags is not None:
        # One spare column for the unknown-tag code ``num_tags`` (InputEncoding's
        # handle_unknown='ignore'): its feature row is zero.
        onehot = np.zeros((reps.shape[0], num_tags + 1))
        onehot[np.arange(reps.shape[0]), reps[:, 0].astype(np.int64)] = 1.0
        cols.append(onehot[:, :num_tags])
        reps = reps[:, 1:]
    if reps.shape[1]:
        cols.append(reps)
    phi = np.concatenate(cols, axis=1)
    return phi / np.sqrt(phi.shape[1])


def program_gram(
    program: P.Program,
    graphs: Sequence[Graph],
    graphs2: Sequence[Graph] | None = None,
    *,
    num_tags: int | None = None,
    get: Sequence[str] = ("nngp", "ntk"),
    dtype=np.float64,
    executor: str = "auto",
    block_size: int | None = None,
    num_threads: int | None = None,
    progress: bool = False,
    each_readout: bool = False,
    backend: str = "auto",
    variances: tuple[dict[int, np.ndarray], dict[int, np.ndarray]] | None = None,
) -> ProgramGram:
    """The Gram matrices of ``program`` between ``graphs`` and ``graphs2`` (or itself).

    Args:
        program: a layer program (e.g. ``graph_ntk.nn`` network's ``.program``) that ends
            at graph level (after a global pool).
        graphs, graphs2: the row and column graphs; both are coloured jointly.
        num_tags: size of the one-hot label alphabet (graphs with ``node_labels``).
        get: which kernels to compute; leaving out ``'ntk'`` skips its work.
        dtype: float64 or float32.
        executor: ``'tiled'`` (chain programs only), ``'dense'`` or ``'auto'`` (tiled
            whenever the program is a chain).
        block_size: items per tile side of the tiled executor.
        num_threads: worker threads of the tiled executor (default: all usable CPUs).
        progress: a progress bar per stage.
        each_readout: also return every readout's own Gram (``readouts``; tiled executor):
            e.g. the per-depth terms of a GNTK with jumping knowledge, from which the Gram
            of every depth, with and without jumping knowledge, follows.
        backend: where the tiled executor runs its tiles: ``'numpy'`` (threads on the
            CPUs), ``'jax'`` (jitted on every local JAX device in parallel; same results) or
            ``'auto'`` (``'jax'`` only when an accelerator is present; JAX is not imported
            otherwise). The dense executor always runs on NumPy.
        variances: ``(of graphs, of graphs2)``, each node's variance per stage
            (:func:`node_variances`): then only the cross kernels between ``graphs`` and
            ``graphs2`` are computed (:mod:`graph_ntk.kernels.cross_exec`, reported as
            executor ``'cross'``; needs :func:`cross_supported` and the NumPy backend;
            ``executor`` is then ignored), never the items within one side: same numbers,
            half or less of the work when the two sides share few items.
    """
    t0 = time.perf_counter()
    backend = resolve_backend(backend)
    program = P.normalize(program)
    P.check_gaussian(program)  # the raw input is not Gaussian (as in NT)
    symmetric = graphs2 is None
    joint = list(graphs) if symmetric else list(graphs) + list(graphs2)
    if not joint or (graphs2 is not None and not list(graphs2)) or not list(graphs):
        raise ValueError("graphs (and graphs2) must hold at least one graph")
    kinds = {(g.node_labels is not None, None if g.x is None else g.x.shape[1]) for g in joint}
    if len(kinds) > 1:
        raise ValueError("every graph must carry the same node information (node_labels, features x of one "
                         "width, or both); these graphs mix " + ", ".join(sorted(map(str, kinds))))
    with reused_memory():  # stages reuse each other's memory (and calls, inside a job's context)
        return _program_gram(program, graphs, graphs2, joint, symmetric, num_tags, get, dtype, executor, block_size,
                             num_threads, progress, each_readout, backend, variances, t0)


def _program_gram(program, graphs, graphs2, joint, symmetric, num_tags, get, dtype, executor, block_size,
                  num_threads, progress, each_readout, backend, variances, t0) -> ProgramGram:
    part, phi, space = _inputs(joint, num_tags, dtype)
    timings = {"setup": time.perf_counter() - t0}
    if variances is not None:
        if symmetric or backend != "numpy" or not cross_supported(program):
            raise ValueError("variances= needs graphs2, the NumPy backend and a network that cross_supported() "
                             "accepts")
        plan = chain_plan(program, separate_taps=each_readout)
        if set(variances[0]) != set(variances[1]):
            raise ValueError("variances: both sides need the same stages (node_variances() of the same network)")
        node_vars = {k: np.concatenate([variances[0][k], variances[1][k]]) for k in variances[0]}
        groups, counts, stage_times = run_cross(plan, space, part.items, phi, len(graphs), node_vars, dtype=dtype,
                                                block=block_size, num_threads=num_threads, progress=progress)
        timings.update(stage_times)
        nngp, ntk = _evaluate_cross(plan.expr, groups)
        readouts = [(groups[g][0], groups[g][1]) for g in range(plan.num_groups)] if each_readout else None
        timings["total"] = time.perf_counter() - t0
        return ProgramGram(nngp, ntk if "ntk" in get else None, tuple(counts), "cross", timings, readouts)
    plan = None
    if executor != "dense":
        try:
            plan = chain_plan(program, separate_taps=each_readout)
        except NotAChain as why:
            if executor == "tiled" or each_readout:
                raise ValueError(f"this network cannot run on the tiled executor ({why}); use executor='dense'")
    if plan is not None:
        groups, counts, stage_times = run_chain(plan, space, part.items, phi, dtype=dtype, block=block_size,
                                                num_threads=num_threads, progress=progress, backend=backend)
        timings.update(stage_times)
        out = _evaluate(plan.expr, groups, "ntk" in get)
        used = "tiled"
        readouts = [groups[g] for g in range(plan.num_groups)] if each_readout else None
    else:
        nngp0 = phi @ phi.T
        st = State(space, part.items, nngp0, None, np.diagonal(nngp0).copy(), phi.shape[1])
        out = run_dense(program, st, want_ntk="ntk" in get)
        if out.space is not None:
            raise ValueError("the network has no global readout: end it with GlobalSumPool() or GlobalMeanPool() "
                             "to get a graph kernel")
        counts, used, readouts = (part.num_items, out.num_items), "dense", None
    n1 = len(graphs)
    rows = out.items[:n1]
    cols = rows if symmetric else out.items[n1:]

    def gram(mat: np.ndarray | None) -> np.ndarray | None:
        if mat is None:
            return np.zeros((rows.size, cols.size)) if "ntk" in get else None
        return np.asarray(mat[np.ix_(rows, cols)], dtype=np.float64)

    timings["total"] = time.perf_counter() - t0
    if readouts is not None:
        readouts = [(gram(k), gram(th)) for k, th in readouts]
    return ProgramGram(gram(out.nngp), gram(out.ntk), tuple(counts), used, timings, readouts)


def _inputs(joint: Sequence[Graph], num_tags: int | None, dtype) -> tuple[FeaturePartition, np.ndarray, NodeSpace]:
    """Items of identical feature rows, the input factor ``Φ`` and the joint node space."""
    has_labels = joint[0].node_labels is not None and num_tags is not None
    keys, _ = node_features(joint, num_tags)
    part = feature_partition(keys)
    return part, input_factor(part, num_tags, has_labels).astype(dtype), NodeSpace.from_graphs(joint)


def _distinct_terms(expr: Sum) -> list:
    """The terms of a sum, each accumulator once (plain taps of one sum share theirs)."""
    seen: set[int] = set()
    out = []
    for term in expr.terms:
        if isinstance(term, Tap):
            if term.group in seen:
                continue
            seen.add(term.group)
        out.append(term)
    return out


def _evaluate_cross(expr: Sum, groups: dict[int, list[np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """A plain readout expression (:func:`cross_supported`) on rectangular graph kernels."""
    nngp = ntk = 0.0
    for term in _distinct_terms(expr):
        k, t = groups[term.group] if isinstance(term, Tap) else _evaluate_cross(term, groups)
        nngp, ntk = nngp + k, ntk + t
    for op in expr.post:  # Dense / Scale: no variances needed
        nngp, ntk = pointwise(op, nngp, ntk, None, None)
    return nngp, ntk


def cross_supported(program: P.Program) -> bool:
    """Whether ``program_gram(..., variances=)`` can run ``program``: a chain (tiled
    executor) whose graph-level kernel is a plain sum of readouts (no op after a global
    pool: those would need each graph's own variance)."""
    try:
        plan = chain_plan(P.normalize(program))
    except NotAChain:
        return False

    def plain(expr: Sum) -> bool:
        return all(isinstance(op, (P.Dense, P.Scale)) for op in expr.post) and \
            all(isinstance(t, Tap) or plain(t) for t in expr.terms)
    return plain(plan.expr)


def node_variances(program: P.Program, graphs: Sequence[Graph], *, num_tags: int | None = None,
                   max_entries: int = 1 << 22) -> dict[int, np.ndarray]:
    r"""Each node's variance :math:`K_k(v, v)` right after every aggregation ``k`` of the
    program's trunk (float64), for ``program_gram(..., variances=)``.

    A node's variance depends on its own graph only, and within a graph :math:`K_k` is a
    function of the nodes' Weisfeiler–Lehman items at depth ``k`` (nodes of one item have
    equal rows). So this runs the trunk on every graph's own *item* kernel,
    :math:`K_g \leftarrow \sum_t M_{g,t} K_g M_{g,t}^\top` with :math:`M_{g,t}` the graph's
    items x its previous items (a representative node's arcs, summed per child item), and
    NT's closed forms (:mod:`graph_ntk.kernels.rules`) entrywise. Graphs are batched (at most
    ``max_entries`` kernel entries per batch, or one graph), each stage padded to the
    batch's largest item count with zero dummy items that no real item reads (NT's closed
    forms map a zero variance to zero).
    Work per step :math:`\sum_g c_{g,k}^2` for :math:`c_{g,k}` items of graph ``g`` (REDDIT-BINARY:
    8.5x less than its :math:`\sum_g n_g^2`).

    Example:
        >>> import numpy as np
        >>> from graph_ntk import program as P
        >>> from graph_ntk.data.graph import Graph
        >>> g = Graph(3, np.array([[0, 1, 1, 2], [1, 0, 2, 1]]), node_labels=np.array([0, 1, 0]))
        >>> prog = (P.Dense(8), P.Aggregate("sum", True), P.ABRelu(0.0, 1.0), P.Aggregate("sum", True),
        ...         P.ABRelu(0.0, 1.0), P.GlobalPool("sum"))
        >>> v = node_variances(prog, [g, g], num_tags=2)
        >>> sorted(v), v[1].round(3).tolist()  # after the first aggregation: K0 summed over N(v) ∪ {v}
        ([1, 2], [1.0, 2.5, 1.0, 1.0, 2.5, 1.0])
    """
    plan = chain_plan(P.normalize(program))
    graphs = list(graphs)
    part, phi, space = _inputs(graphs, num_tags, np.float64)
    aggs = [t[1] for t in plan.trunk if isinstance(t, tuple) and t[0] == "agg"]
    by_kind: dict[tuple, list[sp.csr_matrix]] = {}  # one set of node maps per aggregation kind
    for op in aggs:
        key = (op.normalization, op.add_self_loops, op.edge_types)
        by_kind.setdefault(key, space.aggregation_maps(*key))
    node_maps = [by_kind[(op.normalization, op.add_self_loops, op.edge_types)] for op in aggs]
    items, n_items = [part.items], part.num_items
    for maps in node_maps:
        new, _ = refine(items[-1], n_items, maps)
        items.append(new.items)
        n_items = new.num_items
    starts = np.concatenate([[0], np.cumsum(space.sizes)])
    graph_of = np.repeat(np.arange(len(graphs)), space.sizes)
    # each graph's number of distinct items per stage
    counts = np.stack([np.bincount(graph_of[np.unique(graph_of * (int(it.max()) + 1) + it, return_index=True)[1]],
                                   minlength=len(graphs)) for it in items])
    out = {k: np.empty(space.num_nodes) for k in range(1, len(aggs) + 1)}
    widest = counts.max(axis=0)
    order = np.argsort(widest, kind="stable")
    first = 0
    while first < order.size:
        last = first + 1
        # padding wastes at most ~20% of a batch's entries
        while last < order.size and (last - first + 1) * int(widest[order[last]]) ** 2 <= max_entries \
                and widest[order[last]] <= 1.1 * widest[order[first]]:
            last += 1
        _graph_batch(plan, phi, items, node_maps, starts, order[first:last], out)
        first = last
    return out


def _graph_batch(plan, phi: np.ndarray, items: list[np.ndarray], node_maps: list[list[sp.csr_matrix]],
                 starts: np.ndarray, batch: np.ndarray, out: dict[int, np.ndarray]) -> None:
    """:func:`node_variances` on one batch of graphs."""
    nodes = np.concatenate([np.arange(starts[g], starts[g + 1]) for g in batch])
    owner = np.repeat(np.arange(batch.size), starts[batch + 1] - starts[batch])
    slots, width = [], []  # per stage: each batch node's padded item slot, the padded width
    for it in items:
        key = owner * (int(it.max()) + 1) + it[nodes]
        uniq, first_node, local = np.unique(key, return_index=True, return_inverse=True)
        per_graph = np.bincount(owner[first_node], minlength=batch.size)
        c = int(per_graph.max())
        offset = np.concatenate([[0], np.cumsum(per_graph)])
        rank = np.arange(uniq.size) - offset[owner[first_node]]  # an item's place in its graph
        slots.append((owner[first_node] * c + rank, first_node, (owner * c + rank[local.ravel()])))
        width.append(c)
    b = batch.size
    blocks: dict[int, list[sp.csr_matrix]] = {}  # the batch's block of each set of node maps

    item_slot, first_node, _ = slots[0]
    x = np.zeros((b * width[0], phi.shape[1]))
    x[item_slot] = phi[items[0][nodes[first_node]]]
    x = x.reshape(b, width[0], -1)
    kern = x @ x.transpose(0, 2, 1)
    k = 0
    for step in plan.trunk:
        if isinstance(step, tuple) and step[0] == "tap":
            continue
        if isinstance(step, tuple):  # aggregation: M_g K_g M_gᵀ = M_g (M_g K_g)ᵀ, K_g symmetric
            k += 1
            parent_slot, parent_node, node_slot = slots[k][0], slots[k][1], slots[k - 1][2]
            pick = sp.csr_matrix((np.ones(parent_slot.size), (parent_slot, parent_node)),
                                 shape=(b * width[k], nodes.size))
            to_items = sp.csr_matrix((np.ones(nodes.size), (np.arange(nodes.size), node_slot)),
                                     shape=(nodes.size, b * width[k - 1]))
            c0, c1 = width[k - 1], width[k]
            flat = kern.reshape(b * c0, c0)
            total = np.zeros((b, c1, c1))
            maps = node_maps[k - 1]
            if id(maps) not in blocks:
                blocks[id(maps)] = [m[nodes][:, nodes] for m in maps]
            for m in blocks[id(maps)]:
                mg = (pick @ m @ to_items).tocsr()
                half = (mg @ flat).reshape(b, c1, c0).transpose(0, 2, 1).reshape(b * c0, c1)
                total += (mg @ half).reshape(b, c1, c1)
            kern = total
            out[k][nodes] = kern.reshape(b * c1, c1)[slots[k][2], slots[k][2] % c1]
        elif isinstance(step, (P.Dense, P.Scale)):
            kern = pointwise(step, kern, None, None, None)[0]
        else:
            q = np.einsum("gii->gi", kern)
            kern = rules.nonlinearity(step, kern, q[:, :, None], q[:, None, :])[0]


def _evaluate(expr: Sum, groups: dict[int, list[np.ndarray]], want_ntk: bool) -> State:
    """The graph-level value of a chain's readout expression (joint graph x graph kernels)."""
    total: State | None = None
    for term in _distinct_terms(expr):
        if isinstance(term, Tap):
            nngp, ntk = groups[term.group]
            st = State(None, np.arange(nngp.shape[0]), nngp, ntk, np.diagonal(nngp).copy(), 0)
        else:
            st = _evaluate(term, groups, want_ntk)
        if total is None:
            total = st
        else:
            total = State(None, total.items, total.nngp + st.nngp, total.ntk + st.ntk, total.var + st.var, 0)
    return run_dense(expr.post, total, want_ntk=want_ntk)
