r"""Builders with neural-tangents' names that also carry a JAX-free layer program.

Every function here returns a :class:`Network`: it unpacks like NT's ``stax`` triple
``(init_fn, apply_fn, kernel_fn)`` (NT builds the finite network and its reference
``kernel_fn``, on first use) and carries ``.program``, the same network as the ops of
:mod:`graph_ntk.program`, which :func:`graph_ntk.gram` runs on the exact compressed engine
over Weisfeiler–Lehman classes of the node features. Composing ``graph_ntk.nn`` pieces keeps
the program; a plain NT layer inside (``stax.Dense``, ``stax.Sin``, ``stax.Exp``, ...) makes the
description *opaque*: still a valid triple, evaluated on the node path, and
:func:`graph_ntk.gram` says once which layer made it so (``.opaque``).

Building a description never imports JAX; only unpacking the triple does.

Example:
    >>> import graph_ntk.nn as nn
    >>> gin = nn.serial(nn.Dense(64), nn.Aggregate("sum", add_self_loops=True),
    ...                 nn.Dense(64), nn.Erf(), nn.GlobalSumPool())
    >>> from graph_ntk.program import describe
    >>> gin
    Network(Dense(64) > Aggregate(sum, self loops) > Dense(64) > Erf > GlobalPool(sum))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable, Literal

import numpy as np

from graph_ntk import program as P
from graph_ntk.checks import as_choice, as_count, as_flag, as_real

__all__ = [
    "ABRelu", "Abs", "Aggregate", "Dense", "Erf", "FanInConcat", "FanInSum", "FanOut", "Gelu", "GlobalMeanPool",
    "GlobalSumPool", "Identity", "LeakyRelu", "Network", "Relu", "Scale", "Sign", "StructurePool", "parallel",
    "program_of", "serial",
]


class Network(Sequence):
    """A ``stax`` triple built on first use, with its layer program.

    Attributes:
        program: the :mod:`graph_ntk.program` ops, or ``None`` when a layer has no program.
        opaque: ``None``, or the name of the first layer without a program.
        edge_types: the largest ``edge_types`` of its relational ``Aggregate`` layers (``None``
            without one), known even when the description is opaque, so that the node path
            builds per-type adjacencies for it.
    """

    def __init__(self, build: Callable[[], tuple], program: P.Program | None, opaque: str | None = None,
                 edge_types: int | None = None) -> None:
        self._build: Callable[[], tuple] = build
        self._triple: tuple | None = None
        self.program, self.opaque, self.edge_types = program, opaque, edge_types

    @property
    def triple(self) -> tuple:
        """``(init_fn, apply_fn, kernel_fn)`` from neural-tangents (built once)."""
        if self._triple is None:
            from graph_ntk import _compat

            _compat.install_import_hook()  # patches neural-tangents for the installed JAX first
            try:
                self._triple = tuple(self._build())
            except ModuleNotFoundError as err:  # the stax side is an extra: say how to install it
                raise (_compat.stax_missing(err, "a graph_ntk.nn network's stax triple") or err) from err
        return self._triple

    def __getitem__(self, i):
        return self.triple[i]

    def __len__(self) -> int:
        return 3

    def __repr__(self) -> str:
        if self.program is None:
            return f"Network(opaque: {self.opaque})"
        return f"Network({P.describe(self.program) or 'Identity'})"


def program_of(layer: Any) -> tuple[P.Program | None, str | None]:
    """``(program, opaque)`` of any layer: a :class:`Network`'s, or ``(None, name)`` for a
    plain ``stax`` triple (named by its functions, e.g. ``'Sin'``)."""
    if isinstance(layer, Network):
        return layer.program, layer.opaque
    name = getattr(layer[0], "__name__", None) if isinstance(layer, (tuple, list)) and layer else None
    return None, name or type(layer).__name__


def _stax():
    import graph_ntk  # noqa: F401

    from neural_tangents import stax

    return stax


def _leaf(program: P.Program, build: Callable[[], tuple]) -> Network:
    return Network(build, program)


def _compose(layers: Sequence[Any], combine: Callable[[list[P.Program]], P.Program], build: Callable[[], tuple]
             ) -> Network:
    for i, layer in enumerate(layers):
        if not isinstance(layer, Network) and not (isinstance(layer, (tuple, list)) and len(layer) == 3
                                                   and all(callable(f) for f in layer)):
            raise TypeError(f"layer {i} is a {type(layer).__name__}, not a layer: give graph_ntk.nn layers or "
                            "neural-tangents stax triples (init_fn, apply_fn, kernel_fn)")
    programs: list[P.Program] = []
    opaque = None
    for layer in layers:
        prog, why = program_of(layer)
        if prog is None:
            opaque = opaque or why
        else:
            programs.append(prog)
    types = [layer.edge_types for layer in layers if isinstance(layer, Network) and layer.edge_types]
    return Network(build, None if opaque else combine(programs), opaque, max(types) if types else None)


def _triples(layers: Sequence[Any]) -> list:
    return [layer.triple if isinstance(layer, Network) else layer for layer in layers]


# ----------------------------------------------------------------------- combinators
def serial(*layers: Any) -> Network:
    """NT's ``stax.serial``: the layers one after the other.

    Example:
        >>> serial(Dense(8), Relu()).program
        (Dense(width=8, W_std=1.0, b_std=0.0), ABRelu(a=0.0, b=1.0))
    """
    return _compose(layers, lambda progs: tuple(op for p in progs for op in p),
                    lambda: _stax().serial(*_triples(layers)))


def parallel(*layers: Any) -> Network:
    """NT's ``stax.parallel``: one layer per input branch (between ``FanOut`` and a ``FanIn``).

    Example:
        >>> serial(FanOut(2), parallel(Dense(8), serial(Aggregate(), Dense(8))), FanInSum())
        Network([Dense(8) | Aggregate(sum) > Dense(8)]+)
    """
    return _compose(layers, lambda progs: (P.Parallel(tuple(progs)),), lambda: _stax().parallel(*_triples(layers)))


def FanOut(num: int) -> Network:
    """NT's ``stax.FanOut``: ``num`` copies of the input.

    Example:
        >>> serial(FanOut(2), parallel(Dense(8), Dense(8)), FanInConcat())
        Network([Dense(8) | Dense(8)]++)
    """
    num = as_count(num, "FanOut: num", maximum=1024)
    return _leaf((P.FanOut(num),), lambda: _stax().FanOut(num))


def FanInSum() -> Network:
    r"""NT's ``stax.FanInSum``: sum of the branches, :math:`K = \sum_b K_b` (exact for
    independent branches).

    Example:
        >>> serial(FanOut(2), parallel(Dense(8), Dense(8)), FanInSum())
        Network([Dense(8) | Dense(8)]+)
    """
    return _leaf((P.FanIn("sum"),), lambda: _stax().FanInSum())


def FanInConcat(axis: int = -1) -> Network:
    """NT's ``stax.FanInConcat`` along channels: the width-weighted mean of the branch kernels.

    Example:
        >>> serial(FanOut(2), parallel(Dense(8), Dense(16)), FanInConcat())
        Network([Dense(8) | Dense(16)]++)
    """
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"FanInConcat: axis must be an integer (-1: channels), got {axis!r}")
    if axis != -1:
        return Network(lambda: _stax().FanInConcat(axis), None, f"FanInConcat(axis={axis})")
    return _leaf((P.FanIn("concat"),), lambda: _stax().FanInConcat(axis))


def Identity() -> Network:
    """NT's ``stax.Identity``.

    Example:
        >>> Identity().program
        ()
    """
    return _leaf((), lambda: _stax().Identity())


# ----------------------------------------------------------------------- dense layers
def Dense(out_dim: int, W_std: float = 1.0, b_std: float | None = None, batch_axis: int = 0,
          channel_axis: int = -1, parameterization: str = "ntk", s: tuple[int, int] = (1, 1)) -> Network:
    r"""NT's ``stax.Dense``: :math:`K' = \sigma_w^2 K + \sigma_b^2`, :math:`\Theta' = K' + \sigma_w^2\Theta`.

    Only the default NTK parameterisation over the last axis has a program; other settings
    give an opaque (node-path) description.

    Example:
        >>> Dense(64, W_std=2 ** 0.5, b_std=0.1).program
        (Dense(width=64, W_std=1.4142135623730951, b_std=0.1),)
    """
    out_dim = as_count(out_dim, "Dense: out_dim")
    for axis_name, axis in (("batch_axis", batch_axis), ("channel_axis", channel_axis)):
        if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"Dense: {axis_name} must be an integer axis, got {axis!r}")
    parameterization = as_choice(parameterization, "Dense: parameterization", ("ntk", "standard"))
    if not (isinstance(s, (tuple, list)) and len(s) == 2):
        raise TypeError(f"Dense: s must be a pair of integers (NT's standard-parameterisation scales), got {s!r}")
    s = (as_count(s[0], "Dense: s[0]"), as_count(s[1], "Dense: s[1]"))
    W_std = as_real(W_std, "Dense: W_std", minimum=0.0)
    b_std = None if b_std is None else as_real(b_std, "Dense: b_std", minimum=0.0)

    def build():
        return _stax().Dense(out_dim, W_std, b_std, batch_axis, channel_axis, parameterization, s)

    if parameterization != "ntk" or channel_axis != -1 or batch_axis != 0 or tuple(s) != (1, 1):
        return Network(build, None, f"Dense(parameterization={parameterization!r})")
    return _leaf((P.Dense(out_dim, W_std, 0.0 if b_std is None else b_std),), build)


def Scale(c: float) -> Network:
    """Multiplication by a constant: kernels scale by :math:`c^2` (:class:`graph_ntk.Scale`).

    Example:
        >>> Scale(0.5).program
        (Scale(c=0.5),)
    """
    c = P.scale_constant(c)

    def build():
        from graph_ntk.layers.scale import Scale as StaxScale

        return StaxScale(c)

    return _leaf((P.Scale(c),), build)


# ----------------------------------------------------------------------- nonlinearities
def ABRelu(a: float, b: float, do_stabilize: bool = False) -> Network:
    r"""NT's ``stax.ABRelu``: :math:`\phi(x) = a\min(x, 0) + b\max(x, 0)`.

    Example:
        >>> ABRelu(-0.5, 1.0).program
        (ABRelu(a=-0.5, b=1.0),)
    """
    a, b = as_real(a, "ABRelu: a"), as_real(b, "ABRelu: b")
    do_stabilize = as_flag(do_stabilize, "ABRelu: do_stabilize")
    return _leaf((P.ABRelu(a, b),), lambda: _stax().ABRelu(a, b, do_stabilize))


def Relu(do_stabilize: bool = False) -> Network:
    """NT's ``stax.Relu`` (``ABRelu(0, 1)``).

    Example:
        >>> Relu().program
        (ABRelu(a=0.0, b=1.0),)
    """
    do_stabilize = as_flag(do_stabilize, "Relu: do_stabilize")
    return _leaf((P.ABRelu(0.0, 1.0),), lambda: _stax().Relu(do_stabilize))


def LeakyRelu(alpha: float, do_stabilize: bool = False) -> Network:
    """NT's ``stax.LeakyRelu`` (``ABRelu(alpha, 1)``).

    Example:
        >>> LeakyRelu(0.1).program
        (ABRelu(a=0.1, b=1.0),)
    """
    alpha = as_real(alpha, "LeakyRelu: alpha")
    do_stabilize = as_flag(do_stabilize, "LeakyRelu: do_stabilize")
    return _leaf((P.ABRelu(alpha, 1.0),), lambda: _stax().LeakyRelu(alpha, do_stabilize))


def Abs(do_stabilize: bool = False) -> Network:
    """NT's ``stax.Abs`` (``ABRelu(-1, 1)``).

    Example:
        >>> Abs().program
        (ABRelu(a=-1.0, b=1.0),)
    """
    do_stabilize = as_flag(do_stabilize, "Abs: do_stabilize")
    return _leaf((P.ABRelu(-1.0, 1.0),), lambda: _stax().Abs(do_stabilize))


def Erf(a: float = 1.0, b: float = 1.0, c: float = 0.0) -> Network:
    r"""NT's ``stax.Erf``: :math:`\phi(x) = a\,\operatorname{erf}(bx) + c`.

    Example:
        >>> Erf().program
        (Erf(a=1.0, b=1.0, c=0.0),)
    """
    a, b, c = as_real(a, "Erf: a"), as_real(b, "Erf: b"), as_real(c, "Erf: c")
    return _leaf((P.Erf(a, b, c),), lambda: _stax().Erf(a, b, c))


def Gelu(approximate: bool = False) -> Network:
    r"""NT's ``stax.Gelu``: :math:`\phi(x) = x\,\Phi(x)` (exact form only).

    Example:
        >>> (Gelu().program, Gelu(approximate=True).opaque)
        ((Gelu(approximate=False),), 'Gelu(approximate=True)')
    """
    if as_flag(approximate, "Gelu: approximate"):
        return Network(lambda: _stax().Gelu(True), None, "Gelu(approximate=True)")
    return _leaf((P.Gelu(False),), lambda: _stax().Gelu(False))


def Sign() -> Network:
    """NT's ``stax.Sign``.

    Example:
        >>> Sign().program
        (Sign(),)
    """
    return _leaf((P.Sign(),), lambda: _stax().Sign())


# ----------------------------------------------------------------------- graph layers
def Aggregate(normalization: Literal["sum", "mean", "gcn"] = "sum", add_self_loops: bool = False,
              implementation: Literal["DENSE", "SPARSE"] = "DENSE", edge_types: int | None = None) -> Network:
    r"""Neighbourhood aggregation :math:`h'_j = \sum_i c_{ij} h_i` (:class:`graph_ntk.Aggregate`);
    with ``edge_types=T`` one aggregation per edge type, concatenated along channels.

    Example:
        >>> Aggregate("mean", add_self_loops=True).program
        (Aggregate(normalization='mean', add_self_loops=True, edge_types=None),)
    """
    normalization = as_choice(normalization, "Aggregate: normalization", ("sum", "mean", "gcn"))
    add_self_loops = as_flag(add_self_loops, "Aggregate: add_self_loops")
    implementation = as_choice(implementation, "Aggregate: implementation", ("DENSE", "SPARSE"))
    types = None if edge_types is None else as_count(edge_types, "Aggregate: edge_types")

    def build():
        from graph_ntk.layers.aggregate import Aggregate as StaxAggregate

        if edge_types is None:
            return StaxAggregate(normalization, add_self_loops, implementation)
        return StaxAggregate(normalization, add_self_loops, implementation, edge_types=edge_types)

    return Network(build, (P.Aggregate(normalization, add_self_loops, types),), None, types)


def GlobalSumPool() -> Network:
    r"""Sum over each graph's real nodes: :math:`K'(G, G') = \sum_{u,v} K[u, v]`.

    Example:
        >>> serial(Aggregate(), Dense(8), GlobalSumPool())
        Network(Aggregate(sum) > Dense(8) > GlobalPool(sum))
    """
    def build():
        from graph_ntk.layers.pooling import GlobalSumPool as StaxPool

        return StaxPool()

    return _leaf((P.GlobalPool("sum"),), build)


def GlobalMeanPool() -> Network:
    r"""Mean over each graph's real nodes: :math:`K'(G, G') = \frac{1}{|V||V'|}\sum_{u,v} K[u, v]`.

    Example:
        >>> serial(Aggregate(), Dense(8), GlobalMeanPool())
        Network(Aggregate(sum) > Dense(8) > GlobalPool(mean))
    """
    def build():
        from graph_ntk.layers.pooling import GlobalMeanPool as StaxPool

        return StaxPool()

    return _leaf((P.GlobalPool("mean"),), build)


def StructurePool(method: Literal["graclus", "ndp", "kmis"], then: Any = None, **options: Any) -> Network:
    r"""Structure-only coarsening :math:`K' = S^\top K S'`, then ``then`` on the coarse graph
    (:class:`graph_ntk.StructurePool`).

    Example:
        >>> StructurePool("graclus", serial(Aggregate(), GlobalSumPool())).program[0]
        StructurePool(method='graclus', options=())
    """
    from graph_ntk.data.coarsening import check_method

    check_method(method, options)
    rest = Identity() if then is None else then
    if not isinstance(rest, (Network, tuple, list)):
        raise TypeError(f"StructurePool: then must be a network (graph_ntk.nn or a stax triple), got {type(rest).__name__}")

    def build():
        from graph_ntk.layers.pooling import StructurePool as StaxStructurePool

        return StaxStructurePool(method, _triples([rest])[0], **options)

    prog, why = program_of(rest)
    op = P.StructurePool(method, tuple(sorted((k, float(v)) for k, v in options.items())))
    return Network(build, None if prog is None else (op, *prog), why,
                   rest.edge_types if isinstance(rest, Network) else None)
