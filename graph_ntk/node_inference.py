r"""GP / kernel-regression node classification from node kernels (GNNGP, Niu et al. ICLR 2023).

With a node kernel :math:`K` (NNGP or NTK), train nodes :math:`t`, one-hot targets
:math:`Y_t` and a ridge / noise term :math:`\lambda`, the posterior mean on nodes
:math:`*` is

.. math::  \mu_* = K_{*t}\,\big(K_{tt} + \lambda\, \bar k\, I\big)^{-1} Y_t, \qquad
           \bar k = \operatorname{tr}(K_{tt}) / |t|,

and the prediction is :math:`\arg\max_c \mu_{*c}`. :math:`\lambda` is relative to the mean
diagonal :math:`\bar k`, as ``neural_tangents.predict.gp_inference(diag_reg=λ)`` with
``diag_reg_absolute_scale=False`` (same numbers; :func:`graph_ntk.gp.gp_posterior_mean`,
shared with graph-level inference, uses scipy's Cholesky in float64), so one grid suits
every kernel scale. For NTK kernels this is the mean of the infinite
ensemble trained to convergence on a ridge loss. It is chosen on the validation nodes
from a grid.

The posterior variance of each test node,
:math:`\sigma^2_* = K_{**} - K_{*t}(K_{tt} + \lambda \bar k I)^{-1} K_{t*}`, comes with the
result (:attr:`NodeGPResult.test_variance`).

Only the block ``K[train ∪ val ∪ test][:, train ∪ test]`` is needed (the test columns for
the test self-kernels :math:`K_{**}` of the variances), so :func:`node_gp_select` asks its
kernel for exactly that block: with
:func:`graph_ntk.kernels.node_kernel.exact_node_kernel` (``rows=``/``cols=``) the last
layer is formed only there (earlier layers are still N × N), with the low-rank path it
costs :math:`\Phi_{rows}\Phi_{cols}^\top`.

Example:
    >>> k = np.array([[1.0, 0.0, 0.9], [0.0, 1.0, 0.1], [0.9, 0.1, 1.0]])
    >>> node_gp_predict(k[:2][:, :2], k[2:][:, :2], np.array([0, 1]), 2, reg=0.1).tolist()
    [0]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal, Sequence

import numpy as np
import scipy.sparse as sp

from graph_ntk.checks import as_choice, as_count, as_grid, as_real, as_real_matrix
from graph_ntk.gp import gp_posterior_mean, gp_posterior_variance

__all__ = ["DEFAULT_REGS", "NodeGPResult", "gp_posterior_mean", "gp_posterior_variance", "node_gp",
           "node_gp_classify", "node_gp_predict", "node_gp_select"]

DEFAULT_REGS: tuple[float, ...] = tuple(float(r) for r in 10.0 ** np.arange(-4.0, 2.5, 0.5))
"""Default grid of relative ridge terms :math:`\\lambda` (1e-4 ... 1e2, half decades)."""


def _labels(y: np.ndarray, num_classes: int, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{name} must be a 1-D integer label array, got dtype {y.dtype} shape {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"{name} must hold labels in [0, {num_classes}), got range [{y.min()}, {y.max()}]")
    return y


def node_gp_predict(K_train_train: np.ndarray, K_test_train: np.ndarray, y_train: np.ndarray, num_classes: int,
                    reg: float) -> np.ndarray:
    """Predicted class of each test node: argmax of the GP posterior mean on one-hot targets."""
    num_classes = as_count(num_classes, "num_classes")
    reg = as_real(reg, "reg", minimum=0)
    K_train_train = as_real_matrix(K_train_train, "K_train_train")
    K_test_train = as_real_matrix(K_test_train, "K_test_train")
    y_train = _labels(y_train, num_classes, "y_train")
    if np.ndim(K_train_train) == 2 and y_train.shape[0] != np.shape(K_train_train)[0]:
        raise ValueError(f"y_train must have one label per row of K_train_train ({np.shape(K_train_train)[0]}), "
                         f"got {y_train.shape[0]}")
    return gp_posterior_mean(K_train_train, K_test_train, np.eye(num_classes)[y_train], reg).argmax(axis=1)


def node_gp_classify(K_train_train: np.ndarray, K_test_train: np.ndarray, y_train: np.ndarray, num_classes: int,
                     reg: float, y_test: np.ndarray) -> float:
    r"""Test accuracy of the GP classifier with ridge ``reg`` (see the module docstring).

    Example:
        >>> k = np.array([[1.0, 0.0, 0.9], [0.0, 1.0, 0.1], [0.9, 0.1, 1.0]])
        >>> node_gp_classify(k[:2][:, :2], k[2:][:, :2], np.array([0, 1]), 2, 0.01, np.array([0]))
        1.0
    """
    num_classes = as_count(num_classes, "num_classes")
    y_test = _labels(y_test, num_classes, "y_test")
    pred = node_gp_predict(K_train_train, K_test_train, y_train, num_classes, reg)
    if pred.shape != y_test.shape:
        raise ValueError(f"y_test must have {pred.shape[0]} labels (rows of K_test_train), got {y_test.shape[0]}")
    return float(np.mean(pred == y_test))


@dataclass(frozen=True)
class NodeGPResult:
    """Outcome of :func:`node_gp_select`: test accuracy at the ridge chosen on validation.

    Attributes:
        test_accuracy, val_accuracy: accuracies at the chosen ``reg``.
        reg: the relative ridge chosen on the validation nodes.
        val_accuracies: validation accuracy of every ``reg`` of the grid.
        test_prediction: predicted class of every test node (in ``test_idx`` order).
        test_variance: GP posterior variance of every test node at ``reg`` (its prior
            variance :math:`K_{**}` minus what the training nodes explain).
    """

    test_accuracy: float
    val_accuracy: float
    reg: float
    val_accuracies: dict[float, float] = field(repr=False)
    test_prediction: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)
    test_variance: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)


def node_gp_select(
    kernel_block: Callable[[np.ndarray, np.ndarray], np.ndarray],
    y: np.ndarray,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    test_idx: np.ndarray,
    num_classes: int,
    regs: Sequence[float] | np.ndarray = DEFAULT_REGS,
) -> NodeGPResult:
    r"""Choose :math:`\lambda` from ``regs`` by validation accuracy, report test accuracy.

    Args:
        kernel_block: ``(rows, cols) -> K[rows][:, cols]``; called once with
            ``rows = train ∪ val ∪ test`` and ``cols = train ∪ test`` (each concatenated
            in that order).
        y: ``(N,)`` integer labels (only the split nodes are read).
        train_idx, val_idx, test_idx: node indices of the splits.
        num_classes: number of classes.
        regs: grid of relative ridge terms; ties in validation accuracy go to the larger.

    Example:
        >>> k = np.array([[1.0, 0.0, 0.9, 0.1], [0.0, 1.0, 0.1, 0.8], [0.9, 0.1, 1.0, 0.0], [0.1, 0.8, 0.0, 1.0]])
        >>> r = node_gp_select(lambda r, c: k[np.ix_(r, c)], np.array([0, 1, 0, 1]), [0, 1], [2], [3], 2)
        >>> r.test_accuracy
        1.0
    """
    num_classes = as_count(num_classes, "num_classes")
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be a 1-D array of node labels, got shape {y.shape}")
    splits = []
    for name, idx in (("train_idx", train_idx), ("val_idx", val_idx), ("test_idx", test_idx)):
        idx = np.asarray(idx)
        if idx.ndim != 1 or not idx.size:
            raise ValueError(f"{name} must be a non-empty 1-D array of node indices")
        # Float indices would be truncated and a boolean mask read as node ids 0 and 1.
        if idx.dtype.kind not in "iu":
            raise TypeError(f"{name} must hold integer node indices, got dtype {idx.dtype}"
                            + ("; use np.flatnonzero(mask) for a boolean mask" if idx.dtype == bool else ""))
        if idx.min() < 0 or idx.max() >= y.size:
            bad = int(idx.min()) if idx.min() < 0 else int(idx.max())
            raise ValueError(f"{name} holds node {bad}, outside 0..{y.size - 1} (y has {y.size} labels)")
        splits.append(idx.astype(np.int64))
    train_idx, val_idx, test_idx = splits
    for (na, a), (nb, b) in ((("train_idx", train_idx), ("test_idx", test_idx)),
                             (("train_idx", train_idx), ("val_idx", val_idx)),
                             (("val_idx", val_idx), ("test_idx", test_idx))):
        shared = np.intersect1d(a, b)
        if shared.size:  # a node both fitted and scored would inflate the accuracy
            raise ValueError(f"{na} and {nb} share {shared.size} node(s) (e.g. node {int(shared[0])}); give "
                             "disjoint splits")
    regs = sorted(as_grid(regs, "regs").tolist())
    y_train = _labels(y[train_idx], num_classes, "y[train_idx]")
    y_val = _labels(y[val_idx], num_classes, "y[val_idx]")
    y_test = _labels(y[test_idx], num_classes, "y[test_idx]")
    rows, cols = np.concatenate([train_idx, val_idx, test_idx]), np.concatenate([train_idx, test_idx])
    block = np.asarray(kernel_block(rows, cols), np.float64)
    if block.shape != (rows.size, cols.size):
        raise ValueError(f"kernel_block returned shape {block.shape}, expected {(rows.size, cols.size)}")
    if not np.isfinite(block).all():
        raise ValueError("the node kernel contains NaN or infinite entries (it overflowed); rescale the features x "
                         "or use fewer layers")
    n_tr, n_val = train_idx.size, val_idx.size
    k_tt, k_vt, k_st = block[:n_tr, :n_tr], block[n_tr:n_tr + n_val, :n_tr], block[n_tr + n_val:, :n_tr]
    k_test_diag = np.diagonal(block[n_tr + n_val:, n_tr:]).copy()

    targets = np.eye(num_classes)[y_train]
    val_acc: dict[float, float] = {}
    best = regs[0]
    for reg in regs:
        val_acc[reg] = float(np.mean(gp_posterior_mean(k_tt, k_vt, targets, reg).argmax(1) == y_val))
        if val_acc[reg] >= val_acc[best]:
            best = reg
    pred = gp_posterior_mean(k_tt, k_st, targets, best).argmax(1)
    variance = gp_posterior_variance(k_tt, k_st, k_test_diag, best)
    return NodeGPResult(float(np.mean(pred == y_test)), val_acc[best], best, val_acc, pred, variance)


def node_gp(
    network,
    x: np.ndarray | sp.spmatrix,
    edge_index: np.ndarray,
    y: np.ndarray,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    test_idx: np.ndarray,
    num_classes: int,
    *,
    get: Literal["nngp", "ntk"] = "nngp",
    method: Literal["exact", "lowrank"] = "exact",
    regs: Sequence[float] | np.ndarray = DEFAULT_REGS,
    **kernel_kwargs,
) -> NodeGPResult:
    """Node-kernel GP classification end to end: kernel block, then :func:`node_gp_select`.

    ``method='exact'`` uses :func:`~graph_ntk.kernels.node_kernel.exact_node_kernel` with
    ``rows``/``cols``; ``'lowrank'`` uses
    :func:`~graph_ntk.kernels.lowrank.lowrank_node_kernel` (``kernel_kwargs`` go to it,
    e.g. ``num_landmarks``, ``landmark_method``, ``seed``).

    Example:
        >>> from graph_ntk.models.node import gcn
        >>> res = node_gp(gcn(2), data.x, data.edge_index, data.y, data.train_idx, data.val_idx,
        ...               data.test_idx, data.num_classes)  # doctest: +SKIP
        >>> round(res.test_accuracy, 3)  # doctest: +SKIP
        0.825
    """
    from graph_ntk.kernels.lowrank import lowrank_node_kernel
    from graph_ntk.kernels.node_kernel import exact_node_kernel

    get = as_choice(get, "get", ("nngp", "ntk"))
    method = as_choice(method, "method", ("exact", "lowrank"))
    reg_grid = as_grid(regs, "regs")
    y = np.asarray(y)
    num_nodes = x.shape[0] if hasattr(x, "shape") and len(x.shape) == 2 else None  # else the kernel names x
    if num_nodes is not None and y.ndim == 1 and y.size != num_nodes:
        raise ValueError(f"y must have one label per node ({num_nodes} rows of x), got {y.size} labels")
    if method == "exact":
        def block(rows, cols):
            return exact_node_kernel(network, x, edge_index, get, rows=rows, cols=cols, **kernel_kwargs)
    elif method == "lowrank":
        low = lowrank_node_kernel(network, x, edge_index, ("nngp", "ntk") if get == "ntk" else "nngp",
                                  **kernel_kwargs)

        def block(rows, cols):
            return low.block(rows, cols, get)
    return node_gp_select(block, y, train_idx, val_idx, test_idx, num_classes, reg_grid)
