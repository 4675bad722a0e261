"""Make neural-tangents 0.6.5 importable on JAX 0.8.0 to 0.10.2, without TensorFlow.

``import graph_ntk`` installs an import hook (:func:`install_import_hook`) that applies the
fixes below the moment ``neural_tangents`` is first imported, by anyone; the ``graph_ntk.pth``
file installed with the package runs ``import graph_ntk`` at interpreter start, so the order
of a user's imports does not matter.

Everything graph_ntk needs to work around in its dependencies lives here, so it can be
read (and removed) in one place. Two problems are solved:

1. ``neural_tangents/__init__.py`` imports ``neural_tangents.experimental``, which
   imports TensorFlow and tf2jax (~2 GB, never installed: the ``[stax]`` extra lists NT's
   other runtime needs and NT itself is installed with ``--no-deps``; the project's own
   environment keeps them out with ``[tool.uv] override-dependencies``). graph_ntk does not use that module, so a stub is registered in
   ``sys.modules`` before neural-tangents is imported.
2. JAX removed from its public ``jax.core`` / ``jax.util`` / ``jax.interpreters.ad`` /
   ``jax.lax`` namespaces names that NT 0.6.5 reads at import time or inside
   ``stax``/``predict``/``empirical``. They still exist in ``jax._src``; we put the same
   objects back under their old public names (never replacing a name JAX still has).

``SHIMMED`` lists every restored name; ``tests/test_compat.py`` checks each one.
"""

from __future__ import annotations

import importlib
import sys
import types

# (public module, attribute, private module that still defines it, attribute there)
_SHIMS: tuple[tuple[str, str, str, str], ...] = (
    ("jax.core", "Jaxpr", "jax._src.core", "Jaxpr"),
    ("jax.core", "JaxprEqn", "jax._src.core", "JaxprEqn"),
    ("jax.core", "Var", "jax._src.core", "Var"),
    ("jax.core", "Literal", "jax._src.core", "Literal"),
    ("jax.core", "Primitive", "jax._src.core", "Primitive"),
    ("jax.util", "safe_zip", "jax._src.util", "safe_zip"),
    ("jax.util", "safe_map", "jax._src.util", "safe_map"),
)

SHIMMED: list[str] = []


def _install_experimental_stub() -> None:
    name = "neural_tangents.experimental"
    if name not in sys.modules:
        stub = types.ModuleType(name)
        stub.__doc__ = (
            "Stub installed by graph_ntk: neural_tangents.experimental needs TensorFlow, "
            "which graph_ntk does not install."
        )
        sys.modules[name] = stub


def _ensure_module(name: str) -> types.ModuleType:
    """Import ``name``, creating an empty module if JAX no longer ships it (jax.util)."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError:
        parent, _, child = name.rpartition(".")
        module = types.ModuleType(name)
        sys.modules[name] = module
        setattr(importlib.import_module(parent), child, module)
        SHIMMED.append(name)
        return module


def _restore_jax_names() -> None:
    for public, attr, private, private_attr in _SHIMS:
        module = _ensure_module(public)
        if hasattr(module, attr):
            continue
        source = importlib.import_module(private)
        setattr(module, attr, getattr(source, private_attr))
        SHIMMED.append(f"{public}.{attr}")
    # `zeros_like_p` is gone from JAX altogether. NT only uses it as a dictionary key for
    # its structured-derivative rules; a primitive that never occurs in a traced program
    # keeps that table importable and can never match anything.
    import jax.interpreters.ad as ad

    if not hasattr(ad, "zeros_like_p"):
        from jax._src.core import Primitive

        setattr(ad, "zeros_like_p", Primitive("zeros_like"))
        SHIMMED.append("jax.interpreters.ad.zeros_like_p")


_patched = False


def patch() -> None:
    """Apply both fixes. Idempotent."""
    global _patched
    if not _patched:
        _patched = True
        _install_experimental_stub()
        _restore_jax_names()


class _PatchBeforeNeuralTangents:
    """A meta path finder that runs :func:`patch` right before ``neural_tangents`` is first
    imported (duck-typed: ``importlib.abc`` alone would double the cost of ``import graph_ntk``).

    ``import graph_ntk`` stays light (JAX takes ~1.5 s to import and the data and
    colour-engine paths never need it), yet any later ``import neural_tangents`` -- by
    graph_ntk or by the user -- finds JAX already patched. The ``graph_ntk.pth`` file that
    the wheel installs runs ``import graph_ntk`` at interpreter start, so the hook is there
    even when a user imports neural-tangents first.
    """

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        if fullname == "neural_tangents":
            patch()
        return None  # let the regular finders load the module


def install_import_hook() -> None:
    """Register the hook (idempotent); patch at once if NT is already imported."""
    if "neural_tangents" in sys.modules:
        patch()
    if not any(isinstance(f, _PatchBeforeNeuralTangents) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchBeforeNeuralTangents())


STAX_INSTALL = "pip install 'graph_ntk[stax]' && pip install --no-deps neural-tangents==0.6.5"
_STAX_MODULES = ("jax", "jaxlib", "neural_tangents", "frozendict")


def stax_missing(err: ModuleNotFoundError, what: str) -> ModuleNotFoundError | None:
    """One-line error for ``what`` when ``err`` is a missing stax-side package (JAX,
    neural-tangents), which the core distribution does not install; ``None`` otherwise."""
    if (err.name or "").partition(".")[0] not in _STAX_MODULES:
        return None
    return ModuleNotFoundError(f"{what} needs JAX and neural-tangents (the stax side), "
                               f"which are not installed: {STAX_INSTALL}", name=err.name)
