r"""Node-level GNN architectures on one graph, with exact infinite-width NNGP and NTK.

Every preset (:func:`gcn`, :func:`gin`, :func:`sage`, :func:`gcnii`) returns a
:class:`NodeNetwork`: a ``stax`` triple ``(init_fn, apply_fn, kernel_fn)`` for inputs
``x`` of shape ``(1, N, F)`` (the whole graph as one "batch element") with a sparse
pattern ``(1, E, 2)`` and no pooling, so ``kernel_fn`` returns node-by-node kernels of
shape ``(1, 1, N, N)``. :func:`node_kernel` strips those axes.

Each network is written with the :mod:`graph_ntk.nn` builders: the triple NT builds and
the ``.program`` that :mod:`graph_ntk.kernels.node_kernel` evaluates without JAX (the
general dense executor over exact item classes of nodes, or a Nyström low-rank recursion)
describe one network. Kernel rules: :mod:`graph_ntk.program`.

The NTK of a ``FanInSum`` is exact only when the summed branches are independent
mean-zero Gaussian processes (at most one branch free of a fresh ``Dense``); the presets
are built so that this holds, and the Monte-Carlo tests check it.
"""

from __future__ import annotations

import math
import numbers
from typing import Literal, Sequence

import numpy as np
import scipy.sparse as sp

from graph_ntk import nn
from graph_ntk.checks import as_choice, as_count, as_grid, as_real

Implementation = Literal["DENSE", "SPARSE"]


# --------------------------------------------------------------------------- presets
def _check_std(W_std: float, b_std: float) -> tuple[float, float]:
    return as_real(W_std, "W_std", positive=True), as_real(b_std, "b_std", minimum=0)


def gcn(
    num_layers: int = 2,
    *,
    width: int = 512,
    out_dim: int = 1,
    W_std: float = math.sqrt(2.0),
    b_std: float = 0.0,
    implementation: Implementation = "SPARSE",
) -> nn.Network:
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
    num_layers = as_count(num_layers, "num_layers")
    W_std, b_std = _check_std(W_std, b_std)
    width, out_dim = as_count(width, "width"), as_count(out_dim, "out_dim")
    layers = []
    for layer in range(num_layers):
        last = layer == num_layers - 1
        layers += [nn.Dense(out_dim if last else width, W_std, b_std), nn.Aggregate("gcn", True, implementation)]
        if not last:
            layers.append(nn.Relu())
    return nn.serial(*layers)


def gin(
    num_layers: int = 2,
    mlp_layers: int = 2,
    *,
    width: int = 512,
    out_dim: int = 1,
    W_std: float = math.sqrt(2.0),
    b_std: float = 0.0,
    implementation: Implementation = "SPARSE",
) -> nn.Network:
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
    num_layers = as_count(num_layers, "num_layers")
    mlp_layers = as_count(mlp_layers, "mlp_layers")
    W_std, b_std = _check_std(W_std, b_std)
    width, out_dim = as_count(width, "width"), as_count(out_dim, "out_dim")
    layers = []
    for _ in range(num_layers):
        layers.append(nn.Aggregate("sum", True, implementation))
        for _ in range(mlp_layers):
            layers += [nn.Dense(width, W_std, b_std), nn.Relu()]
    layers.append(nn.Dense(out_dim, W_std, b_std))
    return nn.serial(*layers)


def sage(
    num_layers: int = 2,
    combine: Literal["concat", "sum"] = "concat",
    *,
    width: int = 512,
    out_dim: int = 1,
    W_std: float = math.sqrt(2.0),
    b_std: float = 0.0,
    implementation: Implementation = "SPARSE",
) -> nn.Network:
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
        >>> from graph_ntk.program import describe
        >>> describe(sage(1, 'concat').program)
        '[Dense(512, W_std=1.41421, b_std=0) > Relu | Aggregate(mean) > Dense(512, W_std=1.41421, b_std=0) > Relu]++ > Dense(1, W_std=1.41421, b_std=0)'
    """
    num_layers = as_count(num_layers, "num_layers")
    combine = as_choice(combine, "combine", ("concat", "sum"))
    W_std, b_std = _check_std(W_std, b_std)
    width, out_dim = as_count(width, "width"), as_count(out_dim, "out_dim")
    layers = []
    for _ in range(num_layers):
        neighbours = nn.Aggregate("mean", False, implementation)
        if combine == "sum":
            layers += [nn.FanOut(2), nn.parallel(nn.Dense(width, W_std, 0.0),
                                                 nn.serial(neighbours, nn.Dense(width, W_std, b_std))),
                       nn.FanInSum(), nn.Relu()]
        else:
            layers += [nn.FanOut(2), nn.parallel(nn.serial(nn.Dense(width, W_std, b_std), nn.Relu()),
                                                 nn.serial(neighbours, nn.Dense(width, W_std, b_std), nn.Relu())),
                       nn.FanInConcat()]
    layers.append(nn.Dense(out_dim, W_std, b_std))
    return nn.serial(*layers)


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
) -> nn.Network:
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
    num_layers = as_count(num_layers, "num_layers")
    alpha = as_real(alpha, "alpha", minimum=0)
    if alpha > 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha!r}")
    if beta is None:
        lam = as_real(lam, "lam", positive=True)
        betas = [math.log(lam / (layer + 1) + 1.0) for layer in range(num_layers)]
    elif isinstance(beta, numbers.Number):
        betas = [as_real(beta, "beta")] * num_layers
    else:
        betas = as_grid(beta, "beta", positive=False).tolist()
        if len(betas) != num_layers:
            raise ValueError(f"beta must have num_layers={num_layers} entries, got {len(betas)}")
    if any(not 0.0 <= b <= 1.0 for b in betas):
        raise ValueError(f"beta must lie in [0, 1], got {betas}")
    W_std, b_std = _check_std(W_std, b_std)
    width, out_dim = as_count(width, "width"), as_count(out_dim, "out_dim")

    # `stax` has no layer that picks h^(0) out of a list, so h^(0) is carried by nesting:
    # net_{l+1}(h0) = net_l(h0) -> step_l  +  alpha * V relu(h0), each a branch of a FanOut.
    net = nn.Identity()
    for b in betas:
        identity_mapping = nn.serial(nn.FanOut(2), nn.parallel(nn.Scale(1.0 - b), nn.serial(
            nn.Relu(), nn.Dense(width, W_std, b_std), nn.Scale(b))), nn.FanInSum())
        step = nn.serial(net, identity_mapping, nn.Aggregate("gcn", True, implementation), nn.Scale(1.0 - alpha))
        initial_residual = nn.serial(nn.Relu(), nn.Dense(width, W_std, b_std), nn.Scale(alpha))
        net = nn.serial(nn.FanOut(2), nn.parallel(step, initial_residual), nn.FanInSum())
    return nn.serial(nn.Dense(width, W_std, b_std), net, nn.Relu(), nn.Dense(out_dim, W_std, b_std))


# --------------------------------------------------------------------------- kernels via stax
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
    if not callable(kernel_fn):
        raise TypeError(f"kernel_fn must be the kernel_fn of a node-level network (e.g. gcn(2)[2]), got "
                        f"{type(kernel_fn).__name__}")
    x = np.asarray(x.toarray() if sp.issparse(x) else x)
    from graph_ntk.kernels.node_kernel import check_get, check_node_graph

    check_get(get)

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
