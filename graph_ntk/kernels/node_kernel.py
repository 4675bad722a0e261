r"""Node × node NNGP / NTK of a node-level GNN on one large graph, without JAX.

Evaluates the layer program of a :class:`graph_ntk.models.node.NodeNetwork` (the same
recursion its ``stax`` ``kernel_fn`` computes, see the table in
:mod:`graph_ntk.models.node`) in two ways:

* :func:`exact_node_kernel` — exact, with scipy sparse products: an aggregation is
  :math:`K \leftarrow C^\top K C` as sparse @ dense @ sparse (O(N·(E+N)) time, no O(N·E)
  gather buffers as in the ``stax`` sparse kernel), ReLU is the arc-cosine map applied in
  row chunks in numpy. Every layer but the last needs the full :math:`N \times N` kernel
  (the last ReLU needs all pairs it mixes, and an aggregation needs all neighbours'
  rows), so memory is a few :math:`N^2` floats: 20k nodes in float32 is 1.6 GB per matrix.
  The *last* op is evaluated only on the requested block ``K[rows][:, cols]``.
* :func:`lowrank_node_kernel` — Nyström through ``m`` landmark nodes ``S``; memory
  O(N·m). Every kernel is kept as a factor, :math:`K \approx \Phi\Phi^\top`,
  :math:`\Theta \approx \Psi\Psi^\top`:

  - aggregation: :math:`\Phi \leftarrow C^\top \Phi` (exact, O((E+N)·m));
  - dense: :math:`\Phi \leftarrow [\sigma_w\Phi,\ \sigma_b \mathbf 1]`,
    :math:`\Psi \leftarrow [\Phi',\ \sigma_w \Psi]` (exact);
  - branches: factors are concatenated (``'sum'``) or concatenated with weights
    :math:`\sqrt{w_i/\sum w}` (``'concat'``) (exact);
  - ReLU: with the exact diagonal :math:`d_i = \|\Phi_i\|^2` of the current factor,
    :math:`K'_{NS}` and :math:`\Theta'_{NS} = \Theta_{NS} \odot \dot K_{NS}` are
    computed exactly from :math:`K_{NS} = \Phi\Phi_S^\top`, :math:`\Theta_{NS} = \Psi\Psi_S^\top`,
    then re-factorised :math:`\Phi' = K'_{NS} (K'_{SS})^{-1/2}` (likewise :math:`\Psi'`), so
    :math:`\Phi'\Phi'^\top = K'_{NS} K'^{-1}_{SS} K'_{SN}` — exact on every pair with a
    landmark, approximate elsewhere. With ``S`` = all nodes it is exact.

  Landmarks (:func:`select_landmarks`): ``'random'`` (uniform without replacement,
  seeded) or ``'kmeans++'`` (the D²-sampling seeds of k-means++ on the node features,
  which spread them over feature space; O(N·m·F) time).

Both take ``x`` dense or scipy sparse and start from :math:`K^{(0)} = x x^\top / F`,
:math:`\Theta^{(0)} = 0`, like NT.

Example:
    >>> from graph_ntk.models.node import gcn
    >>> x = np.eye(4); ei = np.array([[0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2]])
    >>> k = exact_node_kernel(gcn(2), x, ei, 'nngp')
    >>> low = lowrank_node_kernel(gcn(2), x, ei, num_landmarks=4)
    >>> bool(np.allclose(low.block(), k))
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
import scipy.sparse as sp

from graph_ntk.data.graph import as_float_array
from graph_ntk.models.node import (
    AggregateOp,
    BranchOp,
    DenseOp,
    NodeNetwork,
    Op,
    Program,
    ReluOp,
    ScaleOp,
    check_node_graph,
)

__all__ = [
    "LowRankNodeKernel",
    "aggregation_operator",
    "exact_node_kernel",
    "lowrank_node_kernel",
    "select_landmarks",
]

_GETS = ("nngp", "ntk")
_CHUNK_ELEMENTS = 1 << 22  # entries per ReLU row chunk: bounds the temporaries to ~6 x 32 MB


# --------------------------------------------------------------------------- shared pieces
def aggregation_operator(
    edge_index: np.ndarray,
    num_nodes: int,
    normalization: Literal["sum", "mean", "gcn"],
    add_self_loops: bool,
    edge_weight: np.ndarray | None = None,
    dtype=np.float64,
) -> sp.csr_matrix:
    r"""The transposed aggregation matrix :math:`C^\top` (CSR), so that :math:`h' = C^\top h`.

    Same operator as :class:`graph_ntk.Aggregate`: :math:`c_{ij} = s_i \tilde a_{ij} r_j` with
    :math:`\tilde a = a + I` if ``add_self_loops``, :math:`d_j = \sum_i \tilde a_{ij}`, and
    :math:`(s, r) = (1, 1)` for ``'sum'``, :math:`(1, 1/d)` for ``'mean'``,
    :math:`(d^{-1/2}, d^{-1/2})` for ``'gcn'`` (0 where :math:`d = 0`); repeated arcs add up.

    Example:
        >>> ct = aggregation_operator(np.array([[0, 1], [1, 0]]), 2, 'gcn', True)
        >>> ct.toarray().round(12).tolist()
        [[0.5, 0.5], [0.5, 0.5]]
    """
    if normalization not in ("sum", "mean", "gcn"):
        raise ValueError(f"normalization must be 'sum', 'mean' or 'gcn', got {normalization!r}")
    senders, receivers = np.asarray(edge_index[0], np.int64), np.asarray(edge_index[1], np.int64)
    w = np.ones(senders.size, dtype) if edge_weight is None else np.asarray(edge_weight, dtype)
    if add_self_loops:
        nodes = np.arange(num_nodes)
        senders, receivers = np.concatenate([senders, nodes]), np.concatenate([receivers, nodes])
        w = np.concatenate([w, np.ones(num_nodes, dtype)])
    degree = np.bincount(receivers, weights=w, minlength=num_nodes).astype(dtype)
    inv = np.divide(1.0, degree, out=np.zeros_like(degree), where=degree > 0)
    if normalization == "sum":
        coef = w
    elif normalization == "mean":
        coef = w * inv[receivers]
    else:
        inv_sqrt = np.sqrt(inv)
        coef = inv_sqrt[senders] * w * inv_sqrt[receivers]
    # Row j of C^T collects the arcs into j: duplicate (j, i) entries are summed by tocsr.
    return sp.coo_matrix((coef.astype(dtype), (receivers, senders)), shape=(num_nodes, num_nodes)).tocsr()


def _arccos(k: np.ndarray, d_rows: np.ndarray, d_cols: np.ndarray, ntk: np.ndarray | None):
    r"""ReLU kernel of one block: returns :math:`(K', \Theta \odot \dot K)` (second None
    when ``ntk`` is None), for the block ``k`` of pre-activation covariances with row and
    column variances ``d_rows``, ``d_cols``. NT's formula: :math:`K' = (\sqrt{d_i d_j - k^2}
    + (\pi - \theta) k) / 2\pi`, :math:`\theta = \operatorname{atan2}(\sqrt{d_i d_j - k^2}, k)`."""
    root = np.sqrt(np.maximum(np.multiply.outer(d_rows, d_cols) - k * k, 0.0))
    angle = np.arctan2(root, k)
    # Zero-variance nodes: NT takes theta = pi/2 there (atan2(0, 0) would give 0).
    angle[(root == 0) & (k == 0)] = np.pi / 2
    k_dot = (np.pi - angle) / (2 * np.pi)
    new = root / (2 * np.pi) + k_dot * k
    return new, None if ntk is None else ntk * k_dot


def _features(x, dtype) -> np.ndarray | sp.csr_matrix:
    """``x`` in ``dtype`` (dense or CSR); refuses strings, complex numbers and ragged lists by name."""
    if sp.issparse(x):
        if x.dtype.kind not in "biuf":
            raise TypeError(f"x must hold real-valued node features, got dtype {x.dtype}")
        return x.astype(dtype).tocsr()
    if not (isinstance(x, np.ndarray) and x.dtype.kind in "biuf"):
        x = as_float_array(x, "x", "node features")
    return np.asarray(x, dtype)


def _check_get(get: str | Sequence[str]) -> tuple[str, ...]:
    gets = (get,) if isinstance(get, str) else tuple(get)
    if not gets or any(g not in _GETS for g in gets):
        raise ValueError(f"get must be 'nngp', 'ntk' or a tuple of them, got {get!r}")
    return gets


def _program(network: NodeNetwork | Program) -> Program:
    program = network.program if isinstance(network, NodeNetwork) else network
    if not isinstance(program, tuple):
        raise ValueError(f"network must be a NodeNetwork (e.g. graph_ntk.models.node.gcn()) or a layer-program "
                         f"tuple, got {type(network).__name__}")
    return program


def _index(idx, n: int, name: str) -> np.ndarray:
    if idx is None:
        return np.arange(n)
    idx = np.asarray(idx)
    if idx.ndim != 1 or (idx.size and (idx.min() < -n or idx.max() >= n)) or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"{name} must be a 1-D array of node indices in 0..{n - 1}")
    return idx


class _Graph:
    """Graph data shared by all ops of one evaluation; aggregation operators are cached."""

    def __init__(self, edge_index, edge_weight, num_nodes: int, dtype):
        self.edge_index, self.edge_weight, self.num_nodes, self.dtype = edge_index, edge_weight, num_nodes, dtype
        self._ops: dict[tuple[str, bool], sp.csr_matrix] = {}

    def ct(self, op: AggregateOp) -> sp.csr_matrix:
        key = (op.normalization, op.add_self_loops)
        if key not in self._ops:
            self._ops[key] = aggregation_operator(self.edge_index, self.num_nodes, *key, self.edge_weight, self.dtype)
        return self._ops[key]


def _combine_widths(op: BranchOp, widths: list[int]) -> tuple[list[float], int]:
    """Weights of the branch kernels and the output width (NT's FanInSum / FanInConcat rules)."""
    if op.combine == "sum":
        if len(set(widths)) != 1:
            raise ValueError(f"BranchOp(combine='sum') needs branches of equal width, got {widths}")
        return [1.0] * len(widths), widths[0]
    total = sum(widths)
    return [w / total for w in widths], total


# --------------------------------------------------------------------------- exact path
@dataclass
class _Exact:
    """Kernels of one activation: ``ntk`` is None (not tracked), 0.0 (identically zero) or an array."""

    nngp: np.ndarray
    ntk: np.ndarray | float | None
    width: int

    def copy(self) -> "_Exact":
        ntk = self.ntk.copy() if isinstance(self.ntk, np.ndarray) else self.ntk
        return _Exact(self.nngp.copy(), ntk, self.width)

    def block(self, rows, cols) -> "_Exact":
        ntk = self.ntk[np.ix_(rows, cols)] if isinstance(self.ntk, np.ndarray) else self.ntk
        return _Exact(self.nngp[np.ix_(rows, cols)], ntk, self.width)


def _transpose_inplace(m: np.ndarray, block: int = 1024) -> None:
    """Transpose the square array ``m`` in place, one pair of tiles at a time (O(block²) extra memory)."""
    n = m.shape[0]
    for i in range(0, n, block):
        m[i:i + block, i:i + block] = m[i:i + block, i:i + block].T.copy()
        for j in range(i + block, n, block):
            upper = m[i:i + block, j:j + block].copy()
            m[i:i + block, j:j + block] = m[j:j + block, i:i + block].T
            m[j:j + block, i:i + block] = upper.T


def _sandwich(ct: sp.csr_matrix, st: "_Exact", name: str) -> None:
    r"""``st.<name> = C^T K C`` for symmetric ``K``, as ``ct @ (ct @ K)^T``.

    ``K`` is released as soon as ``ct @ K`` exists and the transpose is done in place, so
    at most two N x N arrays are alive for this kernel (scipy would copy a transposed view
    into a third).
    """
    m = ct @ getattr(st, name)
    setattr(st, name, None)
    _transpose_inplace(m)
    setattr(st, name, ct @ m)


def _full(op: Op, st: _Exact, g: _Graph) -> None:
    """Apply ``op`` to the full kernels in place (``st`` is consumed)."""
    if isinstance(op, DenseOp):
        st.nngp *= op.W_std**2
        st.nngp += op.b_std**2
        if isinstance(st.ntk, np.ndarray):
            st.ntk *= op.W_std**2
            st.ntk += st.nngp
        elif st.ntk is not None:
            st.ntk = st.nngp.copy()
        st.width = op.width
    elif isinstance(op, AggregateOp):
        ct = g.ct(op)
        _sandwich(ct, st, "nngp")
        if isinstance(st.ntk, np.ndarray):
            _sandwich(ct, st, "ntk")
    elif isinstance(op, ScaleOp):
        st.nngp *= op.c**2
        if isinstance(st.ntk, np.ndarray):
            st.ntk *= op.c**2
    elif isinstance(op, ReluOp):
        d = np.diag(st.nngp).copy()
        step = max(1, _CHUNK_ELEMENTS // max(1, d.size))
        ntk = st.ntk if isinstance(st.ntk, np.ndarray) else None
        for a in range(0, d.size, step):
            new, new_ntk = _arccos(st.nngp[a:a + step], d[a:a + step], d, None if ntk is None else ntk[a:a + step])
            st.nngp[a:a + step] = new
            if new_ntk is not None:
                ntk[a:a + step] = new_ntk
    elif isinstance(op, BranchOp):
        outs = [_run(branch, st if i == len(op.branches) - 1 else st.copy(), g) for i, branch in enumerate(op.branches)]
        _merge(op, outs, st)
    else:
        raise TypeError(f"unknown layer op {op!r}")


def _weighted_sum(mats: list, weights: list[float]) -> np.ndarray | float:
    """``sum(w * m)`` accumulated in place into the branches' own arrays (0.0 = zero NTK)."""
    acc = 0.0
    for w, m in zip(weights, mats):
        if not isinstance(m, np.ndarray):
            continue
        if w != 1.0:
            m *= w
        if isinstance(acc, np.ndarray):
            acc += m
        else:
            acc = m
    return acc


def _merge(op: BranchOp, outs: list[_Exact], st: _Exact) -> None:
    """Write the combination of the branch results ``outs`` (consumed) into ``st``."""
    weights, st.width = _combine_widths(op, [o.width for o in outs])
    st.nngp = _weighted_sum([o.nngp for o in outs], weights)
    if st.ntk is not None:
        st.ntk = _weighted_sum([o.ntk for o in outs], weights)


def _block(op: Op, st: _Exact, rows: np.ndarray, cols: np.ndarray, g: _Graph) -> _Exact:
    """``op`` applied to the full kernels ``st``, evaluated only on ``K'[rows][:, cols]``."""
    if isinstance(op, (DenseOp, ScaleOp)):  # element-wise: slice first
        out = st.block(rows, cols)
        _full(op, out, g)
        return out
    if isinstance(op, AggregateOp):
        ct = g.ct(op)
        ct_rows, ct_cols = ct[rows], ct[cols]

        def side(k):
            return (ct_cols @ np.ascontiguousarray((ct_rows @ k).T)).T

        ntk = side(st.ntk) if isinstance(st.ntk, np.ndarray) else st.ntk
        return _Exact(side(st.nngp), ntk, st.width)
    if isinstance(op, ReluOp):
        d = np.diag(st.nngp)
        ntk = st.ntk[np.ix_(rows, cols)] if isinstance(st.ntk, np.ndarray) else None
        new, new_ntk = _arccos(st.nngp[np.ix_(rows, cols)], d[rows], d[cols], ntk)
        return _Exact(new, st.ntk if new_ntk is None else new_ntk, st.width)
    if isinstance(op, BranchOp):
        outs = [_run(branch, st if i == len(op.branches) - 1 else st.copy(), g, rows, cols)
                for i, branch in enumerate(op.branches)]
        out = _Exact(outs[0].nngp, outs[0].ntk, 0)
        _merge(op, outs, out)
        return out
    raise TypeError(f"unknown layer op {op!r}")


def _run(program: Program, st: _Exact, g: _Graph, rows=None, cols=None) -> _Exact:
    """Run ``program`` on ``st`` (consumed); with ``rows``/``cols`` only the last op is blocked."""
    if rows is None:
        for op in program:
            _full(op, st, g)
        return st
    if not program:
        return st.block(rows, cols)
    for op in program[:-1]:
        _full(op, st, g)
    return _block(program[-1], st, rows, cols, g)


def exact_node_kernel(
    network: NodeNetwork | Program,
    x: np.ndarray | sp.spmatrix,
    edge_index: np.ndarray,
    get: str | tuple[str, ...] = "nngp",
    *,
    rows: np.ndarray | None = None,
    cols: np.ndarray | None = None,
    edge_weight: np.ndarray | None = None,
    dtype=np.float64,
) -> np.ndarray | tuple[np.ndarray, ...]:
    r"""Exact node × node NNGP and/or NTK of ``network`` on one graph, with scipy.

    Equals ``node_kernel(network[2], x, edge_index, get)`` (the ``stax`` kernel) to
    rounding, at O(N²) memory and O(L·N·(E+N)) time for the aggregations plus O(N²·F)
    for the input kernel.

    Args:
        network: a node-level preset (:mod:`graph_ntk.models.node`) or its ``.program``.
        x: ``(N, F)`` node features, dense or scipy sparse.
        edge_index: ``(2, E)`` integer arcs ``sender -> receiver``.
        get: ``'nngp'``, ``'ntk'`` or a tuple of them.
        rows, cols: node indices; only ``K[rows][:, cols]`` of the *last* op is formed
            (all earlier layers are full N x N; ``None`` = all nodes).
        edge_weight: optional ``(E,)`` arc weights.
        dtype: ``np.float64`` or ``np.float32`` (halves memory; ~1e-6 relative accuracy).

    Returns:
        An array ``(len(rows), len(cols))`` for a single ``get``, else a tuple in ``get``'s order.

    Example:
        >>> from graph_ntk.models.node import gcn
        >>> x = np.eye(3); ei = np.array([[0, 1, 1, 2], [1, 0, 2, 1]])
        >>> exact_node_kernel(gcn(2), x, ei, ('nngp', 'ntk'), rows=[0], cols=[1, 2])[1].shape
        (1, 2)
    """
    program = _program(network)
    gets = _check_get(get)
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    x = _features(x, dtype)
    edge_index = check_node_graph(x, edge_index, edge_weight)
    n, f = x.shape
    blocked = rows is not None or cols is not None
    rows, cols = _index(rows, n, "rows"), _index(cols, n, "cols")

    k0 = x @ x.T
    k0 = np.ascontiguousarray(k0.toarray() if sp.issparse(k0) else k0, dtype)
    k0 /= f
    state = _Exact(k0, 0.0 if "ntk" in gets else None, f)
    del k0
    g = _Graph(edge_index, edge_weight, n, dtype)
    out = _run(program, state, g, rows, cols) if blocked else _run(program, state, g)

    def result(name: str) -> np.ndarray:
        k = out.nngp if name == "nngp" else out.ntk
        return k if isinstance(k, np.ndarray) else np.zeros((rows.size, cols.size), dtype)

    return result(gets[0]) if isinstance(get, str) else tuple(result(name) for name in gets)


# --------------------------------------------------------------------------- low-rank path
def _kmeans_pp(x: np.ndarray | sp.csr_matrix, m: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding: each next row drawn with probability ∝ squared distance to the chosen ones."""
    n = x.shape[0]
    sq = np.asarray(x.multiply(x).sum(axis=1)).ravel() if sp.issparse(x) else np.einsum("ij,ij->i", x, x)

    def dist2(i: int) -> np.ndarray:
        dots = np.asarray(x @ x[i].T.toarray()).ravel() if sp.issparse(x) else x @ x[i]
        return np.maximum(sq + sq[i] - 2 * dots, 0.0)

    chosen = [int(rng.integers(n))]
    d2 = dist2(chosen[0])
    for _ in range(m - 1):
        d2[chosen[-1]] = 0.0  # rounding may leave a tiny positive self-distance
        total = d2.sum()
        if total > 0:
            nxt = int(np.searchsorted(np.cumsum(d2), rng.random() * total, side="right"))
        else:  # every remaining row duplicates a landmark: any unused node will do
            nxt = int(rng.choice(np.setdiff1d(np.arange(n), chosen)))
        chosen.append(min(nxt, n - 1))
        d2 = np.minimum(d2, dist2(chosen[-1]))
    return np.sort(np.array(chosen))


def select_landmarks(
    x: np.ndarray | sp.spmatrix,
    num_landmarks: int,
    method: Literal["random", "kmeans++"] = "random",
    seed: int = 0,
) -> np.ndarray:
    """Sorted indices of ``num_landmarks`` distinct landmark nodes (all nodes if that many or more).

    ``'random'``: uniform without replacement. ``'kmeans++'``: the seeding of k-means++
    (Arthur & Vassilvitskii 2007) on the rows of ``x``: the first landmark is uniform, each
    next one is drawn with probability proportional to its squared feature distance to the
    nearest landmark so far, so landmarks cover the feature space (O(N·F) per landmark).

    Example:
        >>> select_landmarks(np.eye(5), 2, 'random', seed=0).shape
        (2,)
    """
    n = x.shape[0]
    if int(num_landmarks) != num_landmarks or num_landmarks < 1:
        raise ValueError(f"num_landmarks must be a positive integer, got {num_landmarks!r}")
    if method not in ("random", "kmeans++"):
        raise ValueError(f"method must be 'random' or 'kmeans++', got {method!r}")
    if num_landmarks >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    if method == "random":
        return np.sort(rng.choice(n, int(num_landmarks), replace=False))
    return _kmeans_pp(x.tocsr() if sp.issparse(x) else np.asarray(x, np.float64), int(num_landmarks), rng)


@dataclass(frozen=True)
class LowRankNodeKernel:
    r"""Low-rank node kernels :math:`K \approx \Phi\Phi^\top`, :math:`\Theta \approx \Psi\Psi^\top`.

    Attributes:
        nngp: :math:`\Phi`, ``(N, r)`` (dense, or scipy sparse if no ReLU was applied).
        ntk: :math:`\Psi`, ``(N, r')``, or None if not computed.
        landmarks: the landmark node indices.
    """

    nngp: np.ndarray | sp.spmatrix
    ntk: np.ndarray | sp.spmatrix | None
    landmarks: np.ndarray

    def _factor(self, get: str):
        if get not in _GETS:
            raise ValueError(f"get must be 'nngp' or 'ntk', got {get!r}")
        factor = self.nngp if get == "nngp" else self.ntk
        if factor is None:
            raise ValueError("the NTK was not computed: call lowrank_node_kernel(..., get=('nngp', 'ntk'))")
        return factor

    def block(self, rows=None, cols=None, get: str = "nngp") -> np.ndarray:
        r"""``K[rows][:, cols]`` as :math:`\Phi_{rows}\Phi_{cols}^\top` (``None`` = all nodes)."""
        factor = self._factor(get)
        n = factor.shape[0]
        a, b = factor[_index(rows, n, "rows")], factor[_index(cols, n, "cols")]
        out = a @ b.T
        return out.toarray() if sp.issparse(out) else np.asarray(out)

    def diag(self, get: str = "nngp") -> np.ndarray:
        """The diagonal :math:`\\|\\Phi_i\\|^2` of the low-rank kernel."""
        factor = self._factor(get)
        sq = factor.multiply(factor).sum(axis=1) if sp.issparse(factor) else np.einsum("ij,ij->i", factor, factor)
        return np.asarray(sq).ravel()


@dataclass
class _LowRank:
    phi: np.ndarray | sp.spmatrix
    psi: np.ndarray | sp.spmatrix | None
    width: int


def _hstack(parts: list) -> np.ndarray | sp.spmatrix:
    """Column-concatenate factors, skipping empty ones; sparse only if every part is sparse."""
    nonempty = [p for p in parts if p.shape[1]]
    if len(nonempty) <= 1:  # an all-empty list is a zero kernel: keep its (N, 0) factor
        return nonempty[0] if nonempty else parts[0]
    parts = nonempty
    if all(sp.issparse(p) for p in parts):
        return sp.hstack(parts, format="csr")
    return np.hstack([p.toarray() if sp.issparse(p) else p for p in parts])


def _gram_rows(factor, landmarks: np.ndarray) -> np.ndarray:
    r""":math:`\Phi \Phi_S^\top`, dense ``(N, m)``."""
    out = factor @ factor[landmarks].T
    return out.toarray() if sp.issparse(out) else np.asarray(out)


def _nystrom(k_ns: np.ndarray, landmarks: np.ndarray, jitter: float) -> np.ndarray:
    r""":math:`K_{NS} K_{SS}^{-1/2}` with :math:`K_{SS} = K_{NS}[S]`; eigen-directions of
    :math:`K_{SS}` with eigenvalue below ``jitter`` × mean diagonal are dropped (a truncated
    pseudo-inverse: nearly-duplicate landmarks give near-null directions whose inverse
    square root would amplify rounding noise)."""
    k_ss = k_ns[landmarks]
    k_ss = (k_ss + k_ss.T) / 2
    values, vectors = np.linalg.eigh(k_ss)
    keep = values > jitter * max(float(np.mean(np.diag(k_ss))), np.finfo(k_ss.dtype).tiny)
    return k_ns @ (vectors[:, keep] / np.sqrt(values[keep]))


def _lowrank(op: Op, st: _LowRank, g: _Graph, landmarks: np.ndarray, jitter: float) -> _LowRank:
    """``op`` applied to factored kernels (returns a new state; ``st`` is not modified)."""
    n = g.num_nodes
    if isinstance(op, DenseOp):
        parts = [op.W_std * st.phi]
        if op.b_std:
            parts.append(np.full((n, 1), op.b_std, g.dtype))
        phi = _hstack(parts)
        psi = None if st.psi is None else _hstack([phi, op.W_std * st.psi])
        return _LowRank(phi, psi, op.width)
    if isinstance(op, AggregateOp):
        ct = g.ct(op)
        return _LowRank(ct @ st.phi, None if st.psi is None else ct @ st.psi, st.width)
    if isinstance(op, ScaleOp):
        return _LowRank(op.c * st.phi, None if st.psi is None else op.c * st.psi, st.width)
    if isinstance(op, ReluOp):
        phi = st.phi
        d = np.asarray(phi.multiply(phi).sum(axis=1)).ravel() if sp.issparse(phi) else np.einsum("ij,ij->i", phi, phi)
        k_ns = _gram_rows(phi, landmarks)
        theta_ns = None if st.psi is None else _gram_rows(st.psi, landmarks)
        step = max(1, _CHUNK_ELEMENTS // landmarks.size)
        for a in range(0, n, step):
            new, new_theta = _arccos(k_ns[a:a + step], d[a:a + step], d[landmarks],
                                     None if theta_ns is None else theta_ns[a:a + step])
            k_ns[a:a + step] = new
            if new_theta is not None:
                theta_ns[a:a + step] = new_theta
        psi = None if theta_ns is None else _nystrom(theta_ns, landmarks, jitter)
        return _LowRank(_nystrom(k_ns, landmarks, jitter), psi, st.width)
    if isinstance(op, BranchOp):
        outs = [_lowrank_run(branch, st, g, landmarks, jitter) for branch in op.branches]
        weights, width = _combine_widths(op, [o.width for o in outs])
        scales = [np.sqrt(w) for w in weights]
        phi = _hstack([s * o.phi for s, o in zip(scales, outs)])
        psi = None if st.psi is None else _hstack([s * o.psi for s, o in zip(scales, outs)])
        return _LowRank(phi, psi, width)
    raise TypeError(f"unknown layer op {op!r}")


def _lowrank_run(program: Program, st: _LowRank, g: _Graph, landmarks: np.ndarray, jitter: float) -> _LowRank:
    for op in program:
        st = _lowrank(op, st, g, landmarks, jitter)
    return st


def lowrank_node_kernel(
    network: NodeNetwork | Program,
    x: np.ndarray | sp.spmatrix,
    edge_index: np.ndarray,
    get: str | tuple[str, ...] = "nngp",
    *,
    num_landmarks: int = 500,
    landmarks: np.ndarray | None = None,
    landmark_method: Literal["random", "kmeans++"] = "random",
    seed: int = 0,
    edge_weight: np.ndarray | None = None,
    dtype=np.float64,
    jitter: float | None = None,
) -> LowRankNodeKernel:
    r"""Nyström low-rank node NNGP / NTK through landmark nodes (see the module docstring).

    Memory O(N·m) and time O(L·(E·m + N·m²) + m³) per ReLU, for ``m`` landmarks; any block
    is then :math:`\Phi_{rows}\Phi_{cols}^\top`. Exact when every node is a landmark.

    Args:
        network: a node-level preset or its ``.program``.
        x, edge_index, edge_weight: the graph (as :func:`exact_node_kernel`).
        get: ``'nngp'`` or ``('nngp', 'ntk')`` (the NTK recursion needs the NNGP factors).
        num_landmarks: ``m``, used when ``landmarks`` is not given.
        landmarks: explicit landmark node indices.
        landmark_method, seed: landmark choice (``method`` of :func:`select_landmarks`).
        dtype: ``np.float64`` or ``np.float32``.
        jitter: relative eigenvalue cut-off of :math:`K_{SS}` (default 1e-10 in float64,
            1e-5 in float32).

    Example:
        >>> from graph_ntk.models.node import gcn
        >>> x = np.random.default_rng(0).normal(size=(50, 8))
        >>> ei = np.array([np.arange(49), np.arange(1, 50)]); ei = np.hstack([ei, ei[::-1]])
        >>> low = lowrank_node_kernel(gcn(2), x, ei, ('nngp', 'ntk'), num_landmarks=20)
        >>> low.block([0, 1], [2, 3, 4], get='ntk').shape
        (2, 3)
    """
    program = _program(network)
    gets = _check_get(get)
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    jitter = (1e-10 if dtype == np.float64 else 1e-5) if jitter is None else float(jitter)
    if not jitter >= 0:
        raise ValueError(f"jitter must be non-negative, got {jitter!r}")
    x = _features(x, dtype)
    edge_index = check_node_graph(x, edge_index, edge_weight)
    n, f = x.shape
    if landmarks is None:
        landmarks = select_landmarks(x, num_landmarks, landmark_method, seed)
    else:
        landmarks = np.unique(_index(landmarks, n, "landmarks") % n)
        if not landmarks.size:
            raise ValueError("landmarks is empty: give at least one landmark node")

    phi = x / np.sqrt(f).astype(dtype)
    phi = sp.csr_matrix(phi) if sp.issparse(x) else np.asarray(phi)
    psi = np.zeros((n, 0), dtype) if "ntk" in gets else None
    g = _Graph(edge_index, edge_weight, n, dtype)
    out = _lowrank_run(program, _LowRank(phi, psi, f), g, landmarks, jitter)
    return LowRankNodeKernel(out.phi, out.psi, landmarks)
