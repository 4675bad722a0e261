r"""Node-level GNN architectures on one graph, with exact infinite-width NNGP and NTK.

Every preset (:func:`gcn`, :func:`gin`, :func:`sage`, :func:`gcnii`) returns a
:class:`NodeNetwork`: a ``stax`` triple ``(init_fn, apply_fn, kernel_fn)`` for inputs
``x`` of shape ``(1, N, F)`` (the whole graph as one "batch element") with a sparse
pattern ``(1, E, 2)`` and no pooling, so ``kernel_fn`` returns node-by-node kernels of
shape ``(1, 1, N, N)``. :func:`node_kernel` strips those axes.

Each network is first written as a small *layer program* (tuples of :class:`DenseOp`,
:class:`AggregateOp`, :class:`ReluOp`, :class:`ScaleOp`, :class:`BranchOp`), kept on the
triple as ``.program``. The same program is turned into ``stax`` layers here and is
evaluated without JAX by :mod:`graph_ntk.kernels.node_kernel` (scipy sparse products for
large graphs, or a Nyström low-rank recursion), so all three paths describe one network.

Kernel rules of the ops (``K`` NNGP, :math:`\Theta` NTK, :math:`C` the aggregation
operator with :math:`h' = C^\top h`, input :math:`K^{(0)} = x x^\top / F`,
:math:`\Theta^{(0)} = 0`):

* ``DenseOp``: :math:`K' = \sigma_w^2 K + \sigma_b^2`, :math:`\Theta' = K' + \sigma_w^2 \Theta`;
* ``AggregateOp``: :math:`K' = C^\top K C`, :math:`\Theta' = C^\top \Theta C`;
* ``ReluOp`` (arc-cosine kernel): with :math:`\cos\theta_{ij} = K_{ij} / \sqrt{K_{ii}K_{jj}}`,
  :math:`K'_{ij} = \frac{\sqrt{K_{ii}K_{jj}}}{2\pi}\big(\sin\theta_{ij} + (\pi-\theta_{ij})\cos\theta_{ij}\big)`,
  :math:`\Theta' = \Theta \odot \dot K`, :math:`\dot K_{ij} = \frac{\pi - \theta_{ij}}{2\pi}` (the
  :math:`+K` of the usual NTK recursion comes from the next ``DenseOp``);
* ``ScaleOp(c)``: :math:`K' = c^2 K`, :math:`\Theta' = c^2 \Theta`;
* ``BranchOp``: the same input goes to every branch; ``'sum'`` adds the branch kernels,
  ``'concat'`` (along channels) averages them weighted by branch width.

``BranchOp(..., 'sum')`` is exact only when the summed branches are independent
mean-zero Gaussian processes (at most one branch free of a fresh ``DenseOp``); the
presets are built so that this holds, and the Monte-Carlo tests check it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Sequence, Union

import numpy as np
import scipy.sparse as sp
from neural_tangents import stax

from graph_ntk.layers.aggregate import Aggregate
from graph_ntk.layers.scale import Scale

Implementation = Literal["DENSE", "SPARSE"]


# --------------------------------------------------------------------------- layer program
@dataclass(frozen=True)
class DenseOp:
    """Fully connected layer of ``width`` channels (NT ``Dense``, NTK parameterisation)."""

    width: int
    W_std: float
    b_std: float


@dataclass(frozen=True)
class AggregateOp:
    """Neighbourhood aggregation :math:`h' = C^\\top h` (see :class:`graph_ntk.Aggregate`)."""

    normalization: Literal["sum", "mean", "gcn"]
    add_self_loops: bool


@dataclass(frozen=True)
class ReluOp:
    """Element-wise ReLU."""


@dataclass(frozen=True)
class ScaleOp:
    """Multiplication by the constant ``c``."""

    c: float


@dataclass(frozen=True)
class BranchOp:
    """``FanOut`` into ``branches`` (each a program), then ``FanInSum`` or ``FanInConcat``."""

    branches: tuple["Program", ...]
    combine: Literal["sum", "concat"]


Op = Union[DenseOp, AggregateOp, ReluOp, ScaleOp, BranchOp]
Program = tuple[Op, ...]


def _op_to_stax(op: Op, implementation: Implementation):
    if isinstance(op, DenseOp):
        return stax.Dense(op.width, W_std=op.W_std, b_std=op.b_std)
    if isinstance(op, AggregateOp):
        return Aggregate(op.normalization, op.add_self_loops, implementation)
    if isinstance(op, ReluOp):
        return stax.Relu()
    if isinstance(op, ScaleOp):
        return Scale(op.c)
    if isinstance(op, BranchOp):
        fan_in = stax.FanInSum() if op.combine == "sum" else stax.FanInConcat(axis=-1)
        return stax.serial(stax.FanOut(len(op.branches)),
                           stax.parallel(*(program_to_stax(b, implementation) for b in op.branches)),
                           fan_in)
    raise TypeError(f"unknown layer op {op!r}")


def program_to_stax(program: Program, implementation: Implementation = "SPARSE"):
    """The ``stax`` triple of a layer program (the empty program is the identity)."""
    if not program:
        return stax.Identity()
    return stax.serial(*(_op_to_stax(op, implementation) for op in program))


class NodeNetwork(tuple):
    """A ``stax`` triple ``(init_fn, apply_fn, kernel_fn)`` that also carries its layer program.

    Unpacks like any triple (``init_fn, apply_fn, kernel_fn = gcn()``); ``.program`` is what
    :mod:`graph_ntk.kernels.node_kernel` evaluates.
    """

    program: Program

    def __new__(cls, program: Program, implementation: Implementation = "SPARSE") -> "NodeNetwork":
        implementation = str(implementation).upper()
        if implementation not in ("DENSE", "SPARSE"):
            raise ValueError(f"implementation must be 'DENSE' or 'SPARSE', got {implementation!r}")
        net = super().__new__(cls, program_to_stax(program, implementation))
        net.program = program
        return net


# --------------------------------------------------------------------------- presets
def _check_positive_int(name: str, value: int, minimum: int = 1) -> int:
    if int(value) != value or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_std(W_std: float, b_std: float) -> None:
    if not W_std > 0:
        raise ValueError(f"W_std must be positive, got {W_std!r}")
    if not b_std >= 0:
        raise ValueError(f"b_std must be non-negative, got {b_std!r}")


def gcn(
    num_layers: int = 2,
    *,
    width: int = 512,
    out_dim: int = 1,
    W_std: float = math.sqrt(2.0),
    b_std: float = 0.0,
    implementation: Implementation = "SPARSE",
) -> NodeNetwork:
    r"""Graph convolutional network (Kipf & Welling 2017); its NNGP is the GCNGP of Niu et al.

    .. math::  h^{(1)} = \hat A^\top (x W^{(1)} + b^{(1)}), \qquad
               h^{(l+1)} = \hat A^\top (\mathrm{ReLU}(h^{(l)}) W^{(l+1)} + b^{(l+1)}),

    with :math:`\hat A = D^{-1/2}(A + I)D^{-1/2}`; the last of ``num_layers`` layers has
    ``out_dim`` channels and no ReLU. Kernel: :math:`K^{(l+1)} = \hat A^\top(\sigma_w^2
    \mathrm{relu}(K^{(l)}) + \sigma_b^2)\hat A`, starting from :math:`\hat A^\top(\sigma_w^2
    x x^\top/F + \sigma_b^2)\hat A`.

    Example:
        >>> _, _, kernel_fn = gcn(2)
        >>> x = np.eye(3)[None]; edges = np.array([[[0, 1], [1, 0], [1, 2], [2, 1]]])
        >>> kernel_fn(x, None, 'nngp', pattern=(edges, edges)).shape
        (1, 1, 3, 3)
    """
    num_layers = _check_positive_int("num_layers", num_layers)
    _check_std(W_std, b_std)
    program: list[Op] = []
    for layer in range(num_layers):
        last = layer == num_layers - 1
        program += [DenseOp(out_dim if last else width, W_std, b_std), AggregateOp("gcn", True)]
        if not last:
            program.append(ReluOp())
    return NodeNetwork(tuple(program), implementation)


def gin(
    num_layers: int = 2,
    mlp_layers: int = 2,
    *,
    width: int = 512,
    out_dim: int = 1,
    W_std: float = math.sqrt(2.0),
    b_std: float = 0.0,
    implementation: Implementation = "SPARSE",
) -> NodeNetwork:
    r"""Graph isomorphism network GIN-0 (Xu et al. 2019) with a linear node read-out.

    .. math::  h^{(l+1)}_v = \mathrm{MLP}^{(l+1)}\Big(h^{(l)}_v + \sum_{u \in N(v)} h^{(l)}_u\Big),
               \qquad f(v) = h^{(L)}_v W_{\mathrm{out}} + b_{\mathrm{out}},

    each MLP being ``mlp_layers`` × (Dense → ReLU). The sum aggregation
    (``AggregateOp('sum', add_self_loops=True)``) is GIN's :math:`\epsilon = 0`.

    Example:
        >>> init_fn, apply_fn, kernel_fn = gin(num_layers=2, mlp_layers=1)
        >>> len(gin(3, 2).program)  # 3 x (aggregate + 2 x (dense, relu)) + read-out
        16
    """
    num_layers = _check_positive_int("num_layers", num_layers)
    mlp_layers = _check_positive_int("mlp_layers", mlp_layers)
    _check_std(W_std, b_std)
    program: list[Op] = []
    for _ in range(num_layers):
        program.append(AggregateOp("sum", True))
        for _ in range(mlp_layers):
            program += [DenseOp(width, W_std, b_std), ReluOp()]
    program.append(DenseOp(out_dim, W_std, b_std))
    return NodeNetwork(tuple(program), implementation)


def sage(
    num_layers: int = 2,
    combine: Literal["concat", "sum"] = "concat",
    *,
    width: int = 512,
    out_dim: int = 1,
    W_std: float = math.sqrt(2.0),
    b_std: float = 0.0,
    implementation: Implementation = "SPARSE",
) -> NodeNetwork:
    r"""GraphSAGE-mean (Hamilton et al. 2017) with a linear node read-out.

    A self branch and a neighbour-mean branch with separate weights,

    .. math::  \texttt{'sum'}:\ h' = \mathrm{ReLU}\big(h W_s + (\bar A^\top h) W_n + b\big), \qquad
               \texttt{'concat'}:\ h' = \mathrm{ReLU}\big([\,h W_s + b_s \,\|\, (\bar A^\top h) W_n + b_n]\big),

    :math:`\bar A` the mean over neighbours (no self loop); ``num_layers`` such layers and
    then :math:`f = h^{(L)} W_{\mathrm{out}} + b_{\mathrm{out}}`. ``'sum'`` is PyG's
    ``SAGEConv`` (bias on the neighbour branch only), ``'concat'`` the reference code's
    ``concat=True``. For ``'concat'`` the ReLU is applied inside each branch before the
    channel concatenation — the same function, since ReLU acts element-wise — because the
    kernel of a ReLU needs Gaussian (not concatenated, differently distributed) inputs;
    the concatenation's kernel is the mean of the two branch kernels (layer width
    ``2 * width``).

    Example:
        >>> _, _, kernel_fn = sage(2, 'sum')
        >>> isinstance(sage(1, 'concat').program[0], BranchOp)
        True
    """
    num_layers = _check_positive_int("num_layers", num_layers)
    if combine not in ("concat", "sum"):
        raise ValueError(f"combine must be 'concat' or 'sum', got {combine!r}")
    _check_std(W_std, b_std)
    neighbours = AggregateOp("mean", False)
    program: list[Op] = []
    for _ in range(num_layers):
        if combine == "sum":
            program += [BranchOp(((DenseOp(width, W_std, 0.0),), (neighbours, DenseOp(width, W_std, b_std))), "sum"),
                        ReluOp()]
        else:
            program.append(BranchOp(((DenseOp(width, W_std, b_std), ReluOp()),
                                     (neighbours, DenseOp(width, W_std, b_std), ReluOp())), "concat"))
    program.append(DenseOp(out_dim, W_std, b_std))
    return NodeNetwork(tuple(program), implementation)


def gcnii(
    num_layers: int = 4,
    alpha: float = 0.1,
    beta: float | Sequence[float] | None = None,
    *,
    lam: float = 0.5,
    width: int = 512,
    out_dim: int = 1,
    W_std: float = math.sqrt(2.0),
    b_std: float = 0.0,
    implementation: Implementation = "SPARSE",
) -> NodeNetwork:
    r"""GCNII-style deep GCN (Chen et al. 2020): initial residual + identity mapping.

    In pre-activation form, with :math:`\hat A` the GCN operator and :math:`\phi` = ReLU:

    .. math::
        h^{(0)} = x W_{\mathrm{in}}, \qquad
        h^{(l+1)} = (1-\alpha)\,\hat A^\top\big[(1-\beta_l)\, h^{(l)} + \beta_l\, \phi(h^{(l)}) W^{(l)}\big]
                    + \alpha\, \phi(h^{(0)}) V^{(l)}, \qquad
        f = \phi(h^{(L)}) W_{\mathrm{out}}.

    GCNII itself adds :math:`\alpha H^{(0)}` and uses one :math:`W^{(l)}` for both terms;
    those terms are correlated with :math:`h^{(l)}` (which contains :math:`h^{(0)}` through
    the identity paths), and neither ``FanInSum``'s kernel nor an exact recursion on
    :math:`K` alone can account for that cross-covariance. Here the initial residual goes
    through its own fresh :math:`V^{(l)}`, so all summands are independent mean-zero
    Gaussians and the kernel below is exact (checked against Monte Carlo in the tests):
    :math:`K^{(l+1)} = (1-\alpha)^2 \hat A^\top[(1-\beta_l)^2 K^{(l)} + \beta_l^2
    \sigma_w^2\,\mathrm{relu}(K^{(l)})]\hat A + \alpha^2 \sigma_w^2\, \mathrm{relu}(K^{(0)})`
    (for ``b_std = 0``).

    Args:
        num_layers: L, the number of propagation layers.
        alpha: initial-residual weight :math:`\alpha \in [0, 1]`.
        beta: identity-mapping weights :math:`\beta_l`, one float for all layers or one
            per layer; ``None`` uses GCNII's :math:`\beta_l = \log(\lambda / l + 1)`.
        lam: :math:`\lambda` of that schedule.

    Example:
        >>> _, _, kernel_fn = gcnii(num_layers=8, alpha=0.1, lam=0.5)
    """
    num_layers = _check_positive_int("num_layers", num_layers)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha!r}")
    if beta is None:
        if not lam > 0:
            raise ValueError(f"lam must be positive, got {lam!r}")
        betas = [math.log(lam / (layer + 1) + 1.0) for layer in range(num_layers)]
    elif np.ndim(beta) == 0:
        betas = [float(beta)] * num_layers
    else:
        betas = [float(b) for b in beta]
        if len(betas) != num_layers:
            raise ValueError(f"beta must have num_layers={num_layers} entries, got {len(betas)}")
    if any(not 0.0 <= b <= 1.0 for b in betas):
        raise ValueError(f"beta must lie in [0, 1], got {betas}")
    _check_std(W_std, b_std)

    # `stax` has no layer that picks h^(0) out of a list, so h^(0) is carried by nesting:
    # net_{l+1}(h0) = net_l(h0) -> step_l  +  alpha * V relu(h0), each a branch of a FanOut.
    net: Program = ()
    for b in betas:
        identity_mapping = BranchOp(((ScaleOp(1.0 - b),), (ReluOp(), DenseOp(width, W_std, b_std), ScaleOp(b))), "sum")
        step = net + (identity_mapping, AggregateOp("gcn", True), ScaleOp(1.0 - alpha))
        initial_residual = (ReluOp(), DenseOp(width, W_std, b_std), ScaleOp(alpha))
        net = (BranchOp((step, initial_residual), "sum"),)
    program = (DenseOp(width, W_std, b_std),) + net + (ReluOp(), DenseOp(out_dim, W_std, b_std))
    return NodeNetwork(program, implementation)


# --------------------------------------------------------------------------- kernels via stax
def check_node_graph(x: np.ndarray, edge_index, edge_weight=None) -> np.ndarray:
    """Validate one graph's ``(N, F)`` features, ``(2, E)`` arcs and optional weights; return the arcs.

    Every problem is one ``ValueError``/``TypeError`` naming the argument: features that are
    not real numbers or not finite, arcs that are ragged, non-integer or out of range,
    weights of the wrong length or not finite.

    Example:
        >>> check_node_graph(np.eye(2), [[0, 1], [1, 0]]).tolist()
        [[0, 1], [1, 0]]
    """
    from graph_ntk.data.graph import as_edge_index, as_float_array, check_finite

    if not hasattr(x, "ndim") or not hasattr(x, "dtype"):
        raise TypeError(f"x must be an (num_nodes, features) array, got {type(x).__name__}")
    if x.ndim != 2:
        raise ValueError(f"x must be (num_nodes, features), got shape {x.shape}")
    values = x.tocsr().data if sp.issparse(x) else x
    if values.dtype.kind not in "biuf":
        raise TypeError(f"x must hold real-valued node features, got dtype {values.dtype}; convert them to floats")
    bad = ~np.isfinite(values)
    if bad.any():
        first = int(np.flatnonzero(bad.reshape(-1))[0])
        node = int(np.searchsorted(x.tocsr().indptr, first, "right") - 1) if sp.issparse(x) else first // x.shape[1]
        raise ValueError(f"x contains NaN or infinite values (first on node {node}); clean or impute the node "
                         "features first")
    edge_index = as_edge_index(edge_index, x.shape[0])
    if edge_weight is not None:
        w = as_float_array(edge_weight, "edge_weight", "arc weights")
        if w.shape != (edge_index.shape[1],):
            raise ValueError(f"edge_weight must have shape ({edge_index.shape[1]},), got {w.shape}")
        check_finite(w, "edge_weight", "give every arc a finite weight")
    return edge_index



def node_kernel(
    kernel_fn,
    x: np.ndarray | sp.spmatrix,
    edge_index: np.ndarray,
    get: str | tuple[str, ...] = "nngp",
    edge_weight: np.ndarray | None = None,
) -> np.ndarray | tuple[np.ndarray, ...]:
    r"""Node × node kernel(s) of a node-level ``stax`` network on one graph, via its ``kernel_fn``.

    Calls ``kernel_fn(x[None], None, get, pattern=(p, p))`` with the sparse pattern
    ``p = edge_index.T[None]`` and returns the ``(N, N)`` matrices. Sparse ``x`` is made
    dense (fine for Cora/CiteSeer; NT's input kernel is :math:`x x^\top / F`). The
    ``Aggregate(implementation='SPARSE')`` kernel needs O(N·E) memory here; for large
    graphs use :func:`graph_ntk.kernels.node_kernel.exact_node_kernel`.

    Args:
        kernel_fn: from a node-level network, e.g. ``gcn()[2]`` (built with
            ``implementation='SPARSE'``).
        x: ``(N, F)`` node features (dense or scipy sparse).
        edge_index: ``(2, E)`` integer arcs ``sender -> receiver``.
        get: ``'nngp'``, ``'ntk'`` or a tuple of them.
        edge_weight: optional ``(E,)`` arc weights.

    Returns:
        One ``(N, N)`` array, or a tuple in the order of ``get``.

    Example:
        >>> x = np.eye(3); ei = np.array([[0, 1, 1, 2], [1, 0, 2, 1]])
        >>> node_kernel(gcn(1)[2], x, ei).shape
        (3, 3)
    """
    x = np.asarray(x.toarray() if sp.issparse(x) else x)
    edge_index = check_node_graph(x, edge_index, edge_weight)
    pattern = edge_index.T[None].astype(np.int32)
    kwargs = {"pattern": (pattern, pattern)}
    if edge_weight is not None:
        w = np.asarray(edge_weight, dtype=x.dtype)
        if w.shape != (edge_index.shape[1],):
            raise ValueError(f"edge_weight must have shape ({edge_index.shape[1]},), got {w.shape}")
        kwargs["edge_weight"] = (w[None], w[None])
    out = kernel_fn(x[None], None, get, **kwargs)
    if isinstance(get, str):
        return np.asarray(out)[0, 0]
    return tuple(np.asarray(k)[0, 0] for k in out)
