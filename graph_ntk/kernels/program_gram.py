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
from graph_ntk.kernels.refine import FeaturePartition, feature_partition
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
        onehot = np.zeros((reps.shape[0], num_tags))
        onehot[np.arange(reps.shape[0]), reps[:, 0].astype(np.int64)] = 1.0
        cols.append(onehot)
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
    P.check_gaussian(program)
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

    A node's variance depends on its own graph only, so this runs the trunk on every graph's
    own node kernel, :math:`K_g \leftarrow \sum_t M_{g,t} K_g M_{g,t}^\top` (sparse maps) and
    NT's closed forms (:mod:`graph_ntk.kernels.rules`) entrywise, batched over graphs of equal
    size (at most ``max_entries`` entries per batch, or one graph): memory
    :math:`\max_g n_g^2`, work :math:`\sum_g n_g^2` per pointwise step and
    :math:`\sum_g n_g\,\mathrm{nnz}(M_g)` per aggregation.

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
    feats = phi[part.items]  # each node's input row
    sizes = space.sizes
    starts = np.concatenate([[0], np.cumsum(sizes)])
    aggs = [t[1] for t in plan.trunk if isinstance(t, tuple) and t[0] == "agg"]
    out = {k: np.empty(space.num_nodes) for k in range(1, len(aggs) + 1)}
    # batches of graphs of one size n: batch[b] lists its graphs
    order = np.argsort(sizes, kind="stable")
    batches, first = [], 0
    while first < order.size:
        n = int(sizes[order[first]])
        last = first + 1
        while last < order.size and sizes[order[last]] == n and (last - first + 1) * n * n <= max_entries:
            last += 1
        batches.append(order[first:last])
        first = last
    blocks: dict[tuple, list[list[sp.csr_matrix]]] = {}  # per aggregation kind: per edge type, per batch
    for op in aggs:
        key = (op.normalization, op.add_self_loops, op.edge_types)
        if key not in blocks:
            maps = space.aggregation_maps(*key)
            blocks[key] = [_graph_blocks(m, starts, batches) for m in maps]
    for b, batch in enumerate(batches):
        n = int(sizes[batch[0]])
        nodes = (starts[batch][:, None] + np.arange(n)[None, :]).ravel()  # (graphs, n) in graph order
        x = feats[nodes].reshape(batch.size, n, -1)
        kern = x @ x.transpose(0, 2, 1)
        k = 0
        for item in plan.trunk:
            if isinstance(item, tuple) and item[0] == "tap":
                continue
            if isinstance(item, tuple):  # aggregation
                op = item[1]
                ms = [per_type[b] for per_type in blocks[(op.normalization, op.add_self_loops, op.edge_types)]]
                # M_g K_g M_gᵀ = M_g (M_g K_g)ᵀ (K_g symmetric), the graphs' M_g as one block-diagonal map
                flat = kern.reshape(batch.size * n, n)
                kern = sum((m @ (m @ flat).reshape(batch.size, n, n).transpose(0, 2, 1).reshape(-1, n))
                           for m in ms).reshape(batch.size, n, n)
                k += 1
                out[k][nodes] = np.einsum("gii->gi", kern).ravel()
            elif isinstance(item, (P.Dense, P.Scale)):
                kern = pointwise(item, kern, None, None, None)[0]
            else:
                q = np.einsum("gii->gi", kern)
                kern = rules.nonlinearity(item, kern, q[:, :, None], q[:, None, :])[0]
    return out


def _graph_blocks(m: sp.csr_matrix, starts: np.ndarray, batches: list[np.ndarray]) -> list[sp.csr_matrix]:
    """Per batch of equal-size graphs, the block-diagonal part of the node map ``m`` on their
    nodes (graph-major: its arcs stay inside their graph)."""
    out = []
    for batch in batches:
        n = int(starts[batch[0] + 1] - starts[batch[0]])
        nodes = (starts[batch][:, None] + np.arange(n)[None, :]).ravel()
        out.append(m[nodes][:, nodes].tocsr())
    return out


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
