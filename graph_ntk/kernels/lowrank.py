r"""Nyström low-rank node NNGP / NTK of a node-level GNN through ``m`` landmark nodes.

Memory O(N·m). Every kernel is kept as a factor, :math:`K \approx \Phi\Phi^\top`,
:math:`\Theta \approx \Psi\Psi^\top`:

- aggregation: :math:`\Phi \leftarrow [M_1\Phi, \dots, M_T\Phi]` (exact; one map per edge type);
- dense: :math:`\Phi \leftarrow [\sigma_w\Phi,\ \sigma_b \mathbf 1]`,
  :math:`\Psi \leftarrow [\Phi',\ \sigma_w \Psi]` (exact);
- branches: factors are concatenated (``'sum'``) or concatenated with weights
  :math:`\sqrt{w_i/\sum w}` (``'concat'``) (exact);
- a nonlinearity: with the exact diagonal :math:`d_i = \|\Phi_i\|^2` of the current factor,
  :math:`K'_{NS}` and :math:`\Theta'_{NS}` are NT's closed forms
  (:mod:`graph_ntk.kernels.rules`) on :math:`K_{NS} = \Phi\Phi_S^\top`,
  :math:`\Theta_{NS} = \Psi\Psi_S^\top`, then re-factorised :math:`\Phi' = K'_{NS}
  (K'_{SS})^{-1/2}` (likewise :math:`\Psi'`), so :math:`\Phi'\Phi'^\top = K'_{NS}
  K'^{-1}_{SS} K'_{SN}` — exact on every pair with a landmark, approximate elsewhere. With
  ``S`` = all nodes it is exact.

Landmarks (:func:`select_landmarks`): ``'random'`` (uniform without replacement, seeded)
or ``'kmeans++'`` (the D²-sampling seeds of k-means++ on the node features).

Example:
    >>> from graph_ntk.models.node import gcn
    >>> x = np.eye(4); ei = np.array([[0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2]])
    >>> from graph_ntk.kernels.node_kernel import exact_node_kernel
    >>> low = lowrank_node_kernel(gcn(2), x, ei, num_landmarks=4)
    >>> bool(np.allclose(low.block(), exact_node_kernel(gcn(2), x, ei)))
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from graph_ntk import program as P
from graph_ntk.checks import as_choice, as_count, as_real, as_seed
from graph_ntk.kernels import rules
from graph_ntk.kernels.node_kernel import (check_cast, check_dtype, check_get, check_node_finite, index, node_program,
                                           node_space)
from graph_ntk.kernels.spaces import NodeSpace

__all__ = ["LowRankNodeKernel", "lowrank_node_kernel", "select_landmarks"]

_GETS = ("nngp", "ntk")
_CHUNK_ELEMENTS = 1 << 22  # entries per row chunk of the nonlinearity


def _kmeans_pp(x: np.ndarray | sp.csr_matrix, m: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding of scikit-learn (:func:`sklearn.cluster.kmeans_plusplus`) on the rows of ``x``."""
    from sklearn.cluster import kmeans_plusplus

    _, chosen = kmeans_plusplus(x, m, random_state=int(rng.integers(2**31 - 1)))
    chosen = np.unique(chosen)
    if chosen.size < m:  # rows duplicating a landmark can be drawn again: top up with unused nodes
        rest = np.setdiff1d(np.arange(x.shape[0]), chosen)
        chosen = np.union1d(chosen, rng.choice(rest, m - chosen.size, replace=False))
    return chosen


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
    num_landmarks = as_count(num_landmarks, "num_landmarks")
    method = as_choice(method, "method", ("random", "kmeans++"))
    seed = as_seed(seed)
    if num_landmarks >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    if method == "random":
        return np.sort(rng.choice(n, num_landmarks, replace=False))
    return _kmeans_pp(x.tocsr() if sp.issparse(x) else np.asarray(x, np.float64), num_landmarks, rng)


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
        get = as_choice(get, "get", _GETS)
        factor = self.nngp if get == "nngp" else self.ntk
        if factor is None:
            raise ValueError("the NTK was not computed: call lowrank_node_kernel(..., get=('nngp', 'ntk'))")
        return factor

    def block(self, rows=None, cols=None, get: str = "nngp") -> np.ndarray:
        r"""``K[rows][:, cols]`` as :math:`\Phi_{rows}\Phi_{cols}^\top` (``None`` = all nodes)."""
        factor = self._factor(get)
        n = factor.shape[0]
        a, b = factor[index(rows, n, "rows")], factor[index(cols, n, "cols")]
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is refused just below, by name
            out = a @ b.T
        out = out.toarray() if sp.issparse(out) else np.asarray(out)
        check_node_finite(out, f"the low-rank node {get.upper()}", out.dtype)
        return out

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


def _lowrank(op: P.Op, st: _LowRank, space: NodeSpace, landmarks: np.ndarray, jitter: float) -> _LowRank:
    """``op`` applied to factored kernels (returns a new state; ``st`` is not modified)."""
    n = space.num_nodes
    dtype = st.phi.dtype
    if isinstance(op, P.Dense):
        parts = [op.W_std * st.phi]
        if op.b_std:
            parts.append(np.full((n, 1), op.b_std, dtype))
        phi = _hstack(parts)
        psi = None if st.psi is None else _hstack([phi, op.W_std * st.psi])
        return _LowRank(phi, psi, op.width)
    if isinstance(op, P.Aggregate):
        maps = [m.astype(dtype) for m in space.aggregation_maps(op.normalization, op.add_self_loops, op.edge_types)]
        phi = _hstack([m @ st.phi for m in maps])
        psi = None if st.psi is None else _hstack([m @ st.psi for m in maps])
        return _LowRank(phi, psi, st.width * (op.edge_types or 1))
    if isinstance(op, P.Scale):
        return _LowRank(op.c * st.phi, None if st.psi is None else op.c * st.psi, st.width)
    if isinstance(op, P.ELEMENTWISE):
        phi = st.phi
        d = np.asarray(phi.multiply(phi).sum(axis=1)).ravel() if sp.issparse(phi) else np.einsum("ij,ij->i", phi, phi)
        k_ns = _gram_rows(phi, landmarks)
        theta_ns = None if st.psi is None else _gram_rows(st.psi, landmarks)
        step = max(1, _CHUNK_ELEMENTS // landmarks.size)
        for a in range(0, n, step):
            rows = slice(a, a + step)
            new, new_theta = rules.nonlinearity(op, k_ns[rows], d[rows][:, None], d[landmarks][None, :],
                                                None if theta_ns is None else theta_ns[rows])
            k_ns[rows] = new
            if new_theta is not None:
                theta_ns[rows] = new_theta
        # An overflow here would be dropped by _nystrom's eigenvalue cut-off as if it were a
        # null direction, leaving a silently all-zero kernel.
        check_node_finite(k_ns, "the low-rank node NNGP", dtype)
        if theta_ns is not None:
            check_node_finite(theta_ns, "the low-rank node NTK", dtype)
        psi = None if theta_ns is None else _nystrom(theta_ns, landmarks, jitter)
        return _LowRank(_nystrom(k_ns, landmarks, jitter), psi, st.width)
    if isinstance(op, P.Branch):
        outs = [_lowrank_run(branch, st, space, landmarks, jitter) for branch in op.branches]
        widths = [o.width for o in outs]
        if op.combine == "sum":
            weights, width = [1.0] * len(outs), widths[0]
        else:
            weights, width = [w / sum(widths) for w in widths], sum(widths)
        scales = [np.sqrt(w) for w in weights]
        phi = _hstack([s * o.phi for s, o in zip(scales, outs)])
        psi = None if st.psi is None else _hstack([s * o.psi for s, o in zip(scales, outs)])
        return _LowRank(phi, psi, width)
    raise ValueError(f"{type(op).__name__} is not supported by the low-rank node kernel")


def _lowrank_run(program: P.Program, st: _LowRank, space: NodeSpace, landmarks: np.ndarray, jitter: float
                 ) -> _LowRank:
    for op in program:
        st = _lowrank(op, st, space, landmarks, jitter)
    return st


def lowrank_node_kernel(
    network: Any,
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
    program, gets, dtype = node_program(network), check_get(get), check_dtype(dtype)
    jitter = (1e-10 if dtype == np.float64 else 1e-5) if jitter is None else as_real(jitter, "jitter", minimum=0)
    # Checked before the kernel work (select_landmarks checks them again when called alone).
    num_landmarks, seed = as_count(num_landmarks, "num_landmarks"), as_seed(seed)
    space, _ = node_space(x, edge_index, edge_weight)
    with np.errstate(over="ignore"):
        x = x.astype(dtype).tocsr() if sp.issparse(x) else np.asarray(x, dtype)
    check_cast(x.data if sp.issparse(x) else x, dtype)
    n, f = x.shape
    if landmarks is None:
        landmarks = select_landmarks(x, num_landmarks, landmark_method, seed)
    else:
        landmarks = np.unique(index(landmarks, n, "landmarks") % n)
        if not landmarks.size:
            raise ValueError("landmarks is empty: give at least one landmark node")

    phi = x / np.sqrt(f).astype(dtype)
    phi = sp.csr_matrix(phi) if sp.issparse(x) else np.asarray(phi)
    psi = np.zeros((n, 0), dtype) if "ntk" in gets else None
    out = _lowrank_run(program, _LowRank(phi, psi, f), space, landmarks, jitter)
    return LowRankNodeKernel(out.phi, out.psi, landmarks)
