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

from graph_ntk import program as P
from graph_ntk.data.graph import Graph
from graph_ntk.kernels.chain import NotAChain, Sum, Tap, chain_plan
from graph_ntk.kernels.dense_exec import State, run_dense
from graph_ntk.kernels.jax_tiles import resolve_backend
from graph_ntk.kernels.refine import FeaturePartition, feature_partition
from graph_ntk.kernels.spaces import NodeSpace
from graph_ntk.kernels.tiled_exec import run_chain

__all__ = ["ProgramGram", "node_features", "program_gram"]


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
    has_labels = joint[0].node_labels is not None and num_tags is not None
    keys, _ = node_features(joint, num_tags)
    part = feature_partition(keys)
    phi = input_factor(part, num_tags, has_labels).astype(dtype)
    space = NodeSpace.from_graphs(joint)
    timings = {"setup": time.perf_counter() - t0}
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


def _evaluate(expr: Sum, groups: dict[int, list[np.ndarray]], want_ntk: bool) -> State:
    """The graph-level value of a chain's readout expression (joint graph x graph kernels)."""
    seen: set[int] = set()
    total: State | None = None
    for term in expr.terms:
        if isinstance(term, Tap):
            if term.group in seen:  # plain taps of one sum share their accumulator
                continue
            seen.add(term.group)
            nngp, ntk = groups[term.group]
            st = State(None, np.arange(nngp.shape[0]), nngp, ntk, np.diagonal(nngp).copy(), 0)
        else:
            st = _evaluate(term, groups, want_ntk)
        if total is None:
            total = st
        else:
            total = State(None, total.items, total.nngp + st.nngp, total.ntk + st.ntk, total.var + st.var, 0)
    return run_dense(expr.post, total, want_ntk=want_ntk)
