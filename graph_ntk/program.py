r"""The layer program: a JAX-free description of a graph network, one frozen op per layer.

Every builder of :mod:`graph_ntk.nn` returns a ``stax`` triple that also carries
``.program``, a tuple of the ops below. The program is what the exact compressed engine
(:mod:`graph_ntk.kernels`) evaluates; NT builds the finite network and the reference
``kernel_fn`` from the same builders, so the two can never describe different networks.

Kernel rules (``K`` NNGP, :math:`\Theta` NTK, input :math:`K^{(0)} = x x'^\top / F`,
:math:`\Theta^{(0)} = 0`, as in neural-tangents):

=======================  ===================================================================
op                       rule
=======================  ===================================================================
``Dense(w, W, b)``       :math:`K' = W^2 K + b^2`, :math:`\Theta' = K' + W^2\Theta`
``Aggregate``            :math:`K' = C^\top K C'`, :math:`\Theta' = C^\top\Theta C'`
                         (:math:`C` the normalised adjacency, see
                         :func:`graph_ntk.data.normalization.aggregation_coefficients`);
                         with ``edge_types=T`` the mean over the ``T`` per-type operators
``ABRelu``/``Erf``/...   NT's closed forms (:mod:`graph_ntk.kernels.rules`):
                         :math:`K' = \mathbb E[\phi(u)\phi(v)]`,
                         :math:`\Theta' = \Theta\odot\mathbb E[\phi'(u)\phi'(v)]`
``Scale(c)``             :math:`K' = c^2 K`, :math:`\Theta' = c^2\Theta`
``Branch(.., 'sum')``    sum of the branch kernels (NT's ``FanInSum``)
``Branch(.., 'concat')`` width-weighted mean of the branch kernels (``FanInConcat``)
``GlobalPool``           :math:`K'(G, G') = \sum_{u \in G, v \in G'} K[u, v]`
                         (divided by :math:`|V||V'|` for ``'mean'``)
``StructurePool``        :math:`K' = S^\top K S'` with the structure-only assignment
                         :math:`S`; later ops run on the coarsened graph
=======================  ===================================================================

Example:
    >>> prog = (Dense(64, 1.0, 0.0), Aggregate("mean", True), ABRelu(0.0, 1.0), GlobalPool("sum"))
    >>> describe(prog)
    'Dense(64) > Aggregate(mean, self loops) > Relu > GlobalPool(sum)'
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Literal, Union

from graph_ntk.checks import show

__all__ = [
    "ABRelu",
    "Aggregate",
    "Branch",
    "Dense",
    "Erf",
    "FanIn",
    "FanOut",
    "Gelu",
    "GlobalPool",
    "Op",
    "Parallel",
    "Program",
    "Scale",
    "Sign",
    "check_gaussian",
    "StructurePool",
    "describe",
    "normalize",
]

Normalization = Literal["sum", "mean", "gcn"]


@dataclass(frozen=True)
class Dense:
    """Fully connected layer of ``width`` channels, NT's NTK parameterisation."""

    width: int
    W_std: float = 1.0
    b_std: float = 0.0


@dataclass(frozen=True)
class Aggregate:
    """Neighbourhood aggregation :math:`h'_j = \\sum_i c_{ij} h_i` (one per edge type when
    ``edge_types`` is set: the finite layer concatenates them along channels)."""

    normalization: Normalization = "sum"
    add_self_loops: bool = False
    edge_types: int | None = None


@dataclass(frozen=True)
class ABRelu:
    r""":math:`\phi(x) = a\min(x, 0) + b\max(x, 0)`: ``Relu`` (0, 1), ``LeakyRelu(α)``
    (α, 1), ``Abs`` (-1, 1), identity (1, 1)."""

    a: float
    b: float


@dataclass(frozen=True)
class Erf:
    r""":math:`\phi(x) = a\,\operatorname{erf}(b x) + c`."""

    a: float = 1.0
    b: float = 1.0
    c: float = 0.0


@dataclass(frozen=True)
class Gelu:
    r""":math:`\phi(x) = x\,\Phi(x)` (``approximate=False``; NT has no closed form otherwise)."""

    approximate: bool = False


@dataclass(frozen=True)
class Sign:
    r""":math:`\phi(x) = \operatorname{sign}(x)`."""


@dataclass(frozen=True)
class Scale:
    """Multiplication by the constant ``c``."""

    c: float


def scale_constant(c: Any) -> float:
    """``c`` as a finite float, for the ``Scale`` layers (both the program op and NT's triple).

    A NaN or infinite ``c`` would otherwise only surface as a non-finite Gram matrix,
    blamed on overflow.

    Example:
        >>> scale_constant(2)
        2.0
    """
    if isinstance(c, bool) or not isinstance(c, numbers.Real):
        raise TypeError(f"Scale: c must be a real number, got {show(c)} ({type(c).__name__})")
    if not math.isfinite(c):
        raise ValueError(f"Scale: c must be finite, got {show(c)}")
    return float(c)


@dataclass(frozen=True)
class GlobalPool:
    """Readout over each graph's nodes: ``'sum'`` or ``'mean'``."""

    mode: Literal["sum", "mean"] = "sum"


@dataclass(frozen=True)
class StructurePool:
    """Structure-only coarsening (``'graclus'``, ``'ndp'``, ``'kmis'``); ``options`` are
    ``(name, value)`` pairs (``k`` for kmis, ``threshold`` for ndp)."""

    method: str
    options: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Branch:
    """The same input into every branch, then ``FanInSum`` (``'sum'``) or ``FanInConcat``
    along channels (``'concat'``)."""

    branches: tuple["Program", ...]
    combine: Literal["sum", "concat"]


# Markers produced by the builders FanOut / parallel / FanIn*; ``normalize`` turns each
# FanOut ... FanIn run into a Branch.
@dataclass(frozen=True)
class FanOut:
    num: int


@dataclass(frozen=True)
class Parallel:
    branches: tuple["Program", ...]


@dataclass(frozen=True)
class FanIn:
    combine: Literal["sum", "concat"]


Op = Union[Dense, Aggregate, ABRelu, Erf, Gelu, Sign, Scale, GlobalPool, StructurePool, Branch, FanOut, Parallel, FanIn]
Program = tuple[Op, ...]
ELEMENTWISE = (ABRelu, Erf, Gelu, Sign)


def normalize(program: Program) -> Program:
    """Resolve ``FanOut(n) [Parallel(...)] FanIn`` runs into :class:`Branch` ops, recursively.

    ``FanOut(n)`` directly followed by a ``FanIn`` gives ``n`` identical identity branches.

    Raises:
        ValueError: for a ``FanOut`` without a matching ``FanIn`` (or the reverse), or a
            ``Parallel`` whose branch count differs from the ``FanOut``.

    Example:
        >>> normalize((FanOut(2), Parallel(((Dense(4),), ())), FanIn("sum")))
        (Branch(branches=((Dense(width=4, W_std=1.0, b_std=0.0),), ()), combine='sum'),)
    """
    out: list[Op] = []
    ops = list(program)
    i = 0
    while i < len(ops):
        op = ops[i]
        if isinstance(op, FanOut):
            branches: tuple[Program, ...] = ((),) * op.num
            j = i + 1
            nxt = ops[j] if j < len(ops) else None
            if isinstance(nxt, Parallel):
                if len(nxt.branches) != op.num:
                    raise ValueError(f"FanOut({op.num}) is followed by parallel() of {len(nxt.branches)} branches")
                branches = nxt.branches
                j += 1
            close = ops[j] if j < len(ops) else None
            if not isinstance(close, FanIn):
                raise ValueError("FanOut(...) and parallel(...) must be closed by FanInSum() or FanInConcat()")
            out.append(Branch(tuple(normalize(b) for b in branches), close.combine))
            i = j + 1
        elif isinstance(op, (Parallel, FanIn)):
            raise ValueError(f"{type(op).__name__} without a preceding FanOut: branches start with FanOut(n)")
        else:
            out.append(op)
            i += 1
    return tuple(out)


def check_gaussian(program: Program, gaussian: bool = False) -> bool:
    """Refuse what has no closed form, as NT does: a nonlinearity (or a ``FanInSum``) on an
    activation that is not Gaussian — the raw input features, after a nonlinearity, a ``FanInConcat`` or a
    relational ``Aggregate`` (its channel blocks have different covariances), until the next
    ``Dense``. Returns whether the output is Gaussian.

    Example:
        >>> check_gaussian((Dense(8), Aggregate("sum", edge_types=3), Dense(8), ABRelu(0.0, 1.0)))
        False
    """
    for op in normalize(program):
        if isinstance(op, Dense):
            gaussian = True
        elif isinstance(op, ELEMENTWISE):
            if not gaussian:
                raise ValueError(f"{_name(op)} needs a Gaussian input: put a Dense before it (the raw node "
                                 "features, and the output of a nonlinearity, a FanInConcat or an Aggregate with "
                                 "edge_types, are not Gaussian; neural-tangents refuses them too)")
            gaussian = False
        elif isinstance(op, Aggregate) and op.edge_types and op.edge_types > 1:
            gaussian = False
        elif isinstance(op, Branch):
            outs = [check_gaussian(b, gaussian) for b in op.branches]
            if op.combine == "sum" and not all(outs):
                raise ValueError("FanInSum needs Gaussian branches: end every branch with a Dense")
            gaussian = all(outs) and op.combine == "sum"
    return gaussian


def _name(op: Op) -> str:
    if isinstance(op, Dense):
        extra = "" if op.W_std == 1.0 and op.b_std == 0.0 else f", W_std={op.W_std:g}, b_std={op.b_std:g}"
        return f"Dense({op.width}{extra})"
    if isinstance(op, Aggregate):
        parts = [op.normalization] + (["self loops"] if op.add_self_loops else [])
        parts += [f"{op.edge_types} edge types"] if op.edge_types else []
        return f"Aggregate({', '.join(parts)})"
    if isinstance(op, ABRelu):
        named = {(0.0, 1.0): "Relu", (-1.0, 1.0): "Abs", (1.0, 1.0): "Identity"}
        if (op.a, op.b) in named:
            return named[(op.a, op.b)]
        return f"LeakyRelu({op.a:g})" if op.b == 1.0 else f"ABRelu({op.a:g}, {op.b:g})"
    if isinstance(op, Erf):
        return "Erf" if (op.a, op.b, op.c) == (1.0, 1.0, 0.0) else f"Erf({op.a:g}, {op.b:g}, {op.c:g})"
    if isinstance(op, Scale):
        return f"Scale({op.c:g})" if not math.isclose(op.c, math.sqrt(2.0)) else "Scale(sqrt 2)"
    if isinstance(op, GlobalPool):
        return f"GlobalPool({op.mode})"
    if isinstance(op, StructurePool):
        return f"StructurePool({op.method})"
    if isinstance(op, Branch):
        inner = " | ".join(describe(b) or "Identity" for b in op.branches)
        return f"[{inner}]{'+' if op.combine == 'sum' else '++'}"
    return type(op).__name__


def describe(program: Program) -> str:
    """A one-line human-readable description of ``program`` (for logs and sidecars)."""
    return " > ".join(_name(op) for op in normalize(program))
