r"""The general executor: any layer program on dense item x item kernel matrices.

Every activation of the network is held as a :class:`State`: the item of every element of
its node set (nodes, clusters, or graphs after a global pool; see
:mod:`graph_ntk.kernels.refine`) and the ``C x C`` item kernels ``K`` (NNGP),
:math:`\Theta` (NTK, ``None`` while identically zero, as before the first ``Dense``) and
the variances ``diag K``. Ops act as in :mod:`graph_ntk.program`:

* ``Dense``, ``Scale`` and the nonlinearities entry-wise (NT's closed forms,
  :mod:`graph_ntk.kernels.rules`), in row chunks;
* graph maps (``Aggregate``, ``GlobalPool``, ``StructurePool``) refine the items and
  become :math:`K' = \sum_t M_t K M_t^\top` with the sparse item matrices :math:`M_t`;
* ``Branch``: each branch runs on the same input; the results are put on the common
  refinement of their items (the pairs of items) and added, or averaged with the branches'
  widths for ``'concat'``.

This executor handles every program (residual connections, concatenation, hierarchies)
and is exact; its memory is a few ``C x C`` matrices, so the Gram engine uses it when the
item count is moderate or the program mixes node-level activations of different depths,
and the tiled executor (:mod:`graph_ntk.kernels.tiled_exec`) for long chains on large
datasets.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp

from graph_ntk import program as P
from graph_ntk.kernels import rules
from graph_ntk.kernels.refine import refine
from graph_ntk.kernels.spaces import NodeSpace

__all__ = ["State", "run_dense"]

_ROWS_ELEMENTS = 1 << 21  # entries per chunk of entry-wise work


@dataclass
class State:
    """One activation: items of the elements of ``space`` (``None``: graphs) and their kernels."""

    space: NodeSpace | None
    items: np.ndarray
    nngp: np.ndarray
    ntk: np.ndarray | None
    var: np.ndarray
    width: int

    @property
    def num_items(self) -> int:
        return int(self.var.size)


def pointwise(op: P.Op, nngp: np.ndarray, ntk: np.ndarray | None, var_rows: np.ndarray, var_cols: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray | None]:
    """``op`` (Dense, Scale or a nonlinearity) on a block with row / column variances."""
    if isinstance(op, P.Dense):
        return rules.dense(op, nngp, 0.0 if ntk is None else ntk)  # None: an NTK that is still zero
    if isinstance(op, P.Scale):
        return rules.scale(op, nngp, ntk)
    return rules.nonlinearity(op, nngp, var_rows[:, None], var_cols[None, :], ntk)


def pointwise_variance(op: P.Op, var: np.ndarray) -> np.ndarray:
    if isinstance(op, P.Dense):
        return rules.dense(op, var, None)[0]
    if isinstance(op, P.Scale):
        return rules.scale(op, var, None)[0]
    return rules.nonlinearity_variance(op, var)


def _pointwise_state(op: P.Op, st: State, want_ntk: bool) -> State:
    n = st.num_items
    step = max(1, _ROWS_ELEMENTS // max(1, n))
    nngp = np.empty_like(st.nngp)
    ntk_in = st.ntk
    dense_ntk = isinstance(op, P.Dense) and want_ntk
    ntk = np.empty_like(st.nngp) if (ntk_in is not None or dense_ntk) else None
    for a in range(0, n, step):
        rows = slice(a, a + step)
        k, t = pointwise(op, st.nngp[rows], None if ntk_in is None else ntk_in[rows], st.var[rows], st.var)
        nngp[rows] = k
        if ntk is not None:
            ntk[rows] = t
    width = op.width if isinstance(op, P.Dense) else st.width
    return replace(st, nngp=nngp, ntk=ntk if want_ntk else None, var=pointwise_variance(op, st.var), width=width)


def _sandwich(ms: list[sp.csr_matrix], k: np.ndarray) -> np.ndarray:
    """:math:`\\sum_t M_t K M_t^\\top` for symmetric ``K`` (sparse @ dense, twice)."""
    out = None
    for m in ms:
        left = m @ k  # (C', C)
        part = np.asarray(m @ left.T)  # (C', C'), symmetric because K is
        out = part if out is None else out + part
    return out


def _linear_map(st: State, maps: list[sp.csr_matrix], space: NodeSpace | None, width: int) -> State:
    part, ms = refine(st.items, st.num_items, maps)
    nngp = _sandwich(ms, st.nngp)
    ntk = None if st.ntk is None else _sandwich(ms, st.ntk)
    return State(space, part.items, nngp, ntk, np.diagonal(nngp).copy(), width)


def _merge(states: list[State], combine: str) -> State:
    if len({id(s.space) for s in states}) != 1:
        raise ValueError("the branches of a FanOut ... FanIn end on different graphs (one is pooled, another "
                         "not); every branch must end with the same kind of output")
    if combine == "sum":
        weights = [1.0] * len(states)
        if len({s.width for s in states}) != 1:
            raise ValueError(f"FanInSum needs branches of equal width, got {[s.width for s in states]}")
        width = states[0].width
    else:
        total = sum(s.width for s in states)
        weights, width = [s.width / total for s in states], total
    key = np.stack([s.items for s in states], axis=1)
    _, first, joint = np.unique(key, axis=0, return_index=True, return_inverse=True)
    joint = joint.ravel()
    maps = [s.items[first] for s in states]  # joint item -> branch item
    nngp = sum(w * s.nngp[np.ix_(m, m)] for w, s, m in zip(weights, states, maps))
    ntks = [w * s.ntk[np.ix_(m, m)] for w, s, m in zip(weights, states, maps) if s.ntk is not None]
    var = sum(w * s.var[m] for w, s, m in zip(weights, states, maps))
    return State(states[0].space, joint, nngp, sum(ntks) if ntks else None, var, width)


def run_dense(program: P.Program, st: State, *, want_ntk: bool = True) -> State:
    """Run the (normalised) ``program`` on ``st``; returns the output activation's state."""
    for op in program:
        if isinstance(op, (P.Dense, P.Scale, *P.ELEMENTWISE)):
            st = _pointwise_state(op, st, want_ntk)
        elif isinstance(op, P.Aggregate):
            if st.space is None:
                raise ValueError("Aggregate after a global pool: there is no graph left to aggregate over")
            maps = st.space.aggregation_maps(op.normalization, op.add_self_loops, op.edge_types)
            st = _linear_map(st, maps, st.space, st.width * (op.edge_types or 1))
        elif isinstance(op, P.GlobalPool):
            if st.space is None:
                raise ValueError("a second global pool: the graphs are already pooled")
            st = _linear_map(st, [st.space.pool_map(op.mode)], None, st.width)
        elif isinstance(op, P.StructurePool):
            if st.space is None:
                raise ValueError("StructurePool after a global pool: there is no graph left to coarsen")
            s_t, coarse = st.space.coarsen(op.method, dict(op.options))
            st = _linear_map(st, [s_t], coarse, st.width)
        elif isinstance(op, P.Branch):
            st = _merge([run_dense(b, st, want_ntk=want_ntk) for b in op.branches], op.combine)
        else:
            raise TypeError(f"unknown layer op {op!r}")
    return st
