"""What gram() accepts as a model: the GNTK preset description, ``graph_ntk.nn`` networks
(with a layer program), stax triples and bare ``kernel_fn``s (node path)."""

from __future__ import annotations

import functools
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Callable, Literal

import numpy as np

from graph_ntk import program as P
from graph_ntk.checks import as_choice, as_count, as_flag

__all__ = ["GNTK"]

@dataclass(frozen=True)
class GNTK:
    r"""The GNTK / GNNGP architecture of Du et al. (2019), as a hashable description.

    :meth:`stax` builds the ``stax`` triple (:func:`graph_ntk.models.gntk`); :func:`gram`
    :meth:`network` builds the same description with :mod:`graph_ntk.nn`.

    Args:
        num_blocks: L, aggregate + MLP blocks.
        num_mlp_layers: R, ReLU layers per block.
        aggregation: ``'sum'`` (:math:`c_u = 1`) or ``'mean'`` (:math:`c_u = 1/(|N(u)|+1)`).
        jumping_knowledge: read out every level, or only the last.
        readout: ``'sum'`` or ``'mean'`` over each graph's nodes.

    Example:
        >>> GNTK(num_blocks=2, aggregation="mean").config()["aggregation"]
        'mean'
    """

    num_blocks: int = 4
    num_mlp_layers: int = 2
    aggregation: Literal["sum", "mean"] = "sum"
    jumping_knowledge: bool = True
    readout: Literal["sum", "mean"] = "sum"

    def __post_init__(self) -> None:
        for name in ("num_blocks", "num_mlp_layers"):
            object.__setattr__(self, name, as_count(getattr(self, name), f"GNTK {name}"))
        as_choice(self.aggregation, "GNTK aggregation", ("sum", "mean"))
        as_choice(self.readout, "GNTK readout", ("sum", "mean"))
        object.__setattr__(self, "jumping_knowledge", as_flag(self.jumping_knowledge, "GNTK jumping_knowledge"))

    def network(self, input_dim: int, implementation: Literal["DENSE", "SPARSE"] = "DENSE"):
        """The :func:`graph_ntk.gntk` network (a ``graph_ntk.nn`` description) for ``input_dim``
        node features."""
        from graph_ntk.models.gntk import gntk

        return gntk(self.num_blocks, self.num_mlp_layers, self.aggregation, self.jumping_knowledge,
                    self.readout, input_dim=input_dim, implementation=implementation)

    def stax(self, input_dim: int, implementation: Literal["DENSE", "SPARSE"] = "DENSE"):
        """The ``(init_fn, apply_fn, kernel_fn)`` triple for ``input_dim`` node features."""
        return tuple(self.network(input_dim, implementation))

    def config(self) -> dict[str, Any]:
        """A JSON-able description (part of the cache key)."""
        return {"model": "GNTK", **asdict(self)}


_SAID: set[str] = set()


def _say_once(message: str) -> None:
    """Warn about ``message`` once per process (repeated gram() calls stay quiet)."""
    if message not in _SAID:
        _SAID.add(message)
        warnings.warn(message, UserWarning, stacklevel=4)


def check_model(model: Any) -> None:
    """Refuse, before any other work, what no path can evaluate: a class instead of an
    instance, or an object that is no description, triple or ``kernel_fn``."""
    if isinstance(model, type):
        raise TypeError(f"model is the class {model.__name__}, not a description: pass an instance, e.g. "
                        f"{model.__name__}() (or a graph_ntk.nn network)")
    from graph_ntk.nn import Network

    if isinstance(model, (GNTK, Network)):
        return
    if isinstance(model, tuple) and len(model) == 3:
        model = model[2]
    if not callable(model):
        raise TypeError(f"model must be a graph_ntk.nn description, a GNTK, a stax triple or a kernel_fn, "
                        f"got {type(model).__name__}")


def _resolve_model(model: Any, input_dim: int, implementation: str, config: Any
                   ) -> tuple[Any, Callable | None, dict[str, Any]]:
    """``(program, kernel_fn, settings)``: the layer program when the description has one
    (else ``None`` and the ``kernel_fn`` for the node path) and the cache-key settings."""
    from graph_ntk.nn import Network

    if isinstance(model, type):
        raise TypeError(f"model is the class {model.__name__}, not a description: pass an instance, e.g. "
                        f"{model.__name__}() (or a graph_ntk.nn network)")
    if isinstance(model, GNTK):
        network = _gntk_network(model, input_dim, implementation)
        return P.normalize(network.program), lambda: network[2], {**model.config(), "opaque": None}
    if isinstance(model, Network):
        if model.program is not None:
            program = P.normalize(model.program)
            P.check_gaussian(program)  # the node path's NT refuses the same networks
            return program, lambda: model[2], {"model": "program", "program": repr(program), "opaque": None,
                                               "edge_types": model.edge_types}
        return None, lambda: model[2], {"model": "kernel_fn", "config": config, "opaque": model.opaque,
                                        "edge_types": model.edge_types}
    if isinstance(model, tuple) and len(model) == 3 and callable(model[2]):
        model = model[2]  # a whole stax triple
    if not callable(model):
        raise TypeError(f"model must be a graph_ntk.nn description, a GNTK, a stax triple or a kernel_fn, "
                        f"got {type(model).__name__}")
    return None, lambda: model, {"model": "kernel_fn", "config": config, "opaque": None}


@functools.lru_cache(maxsize=64)
def _gntk_network(model: GNTK, input_dim: int, implementation: str):
    # Cached so that repeated gram() calls share one kernel_fn and hence jit's compile cache.
    return model.network(input_dim, implementation)


