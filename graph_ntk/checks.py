"""One validation policy for every public argument, applied once at the boundary.

The rules (the same everywhere, so the same mistake gets the same message):

* a count is a Python or NumPy integer: ``2.5`` is not silently ``2``, ``True`` is not ``1``;
* a flag is a real ``bool``: the string ``"no"`` is not ``True``;
* a real number is finite: NaN and infinities are refused here, not blamed on overflow later;
* a choice is one of the listed strings;
* every error names the argument and says how to fix it.

Example:
    >>> as_count(np.int32(3), "num_blocks"), as_flag(False, "normalize"), as_real(2, "W_std")
    (3, False, 2.0)
"""

from __future__ import annotations

import math
import numbers
import os
from pathlib import Path
from typing import Any, Sequence, TypeVar

import numpy as np

__all__ = ["as_choice", "as_count", "as_flag", "as_grid", "as_path", "as_real", "as_real_matrix", "as_seed", "show"]

#: Largest count accepted by default: widths, depths and sizes beyond it are mistakes (and
#: would overflow or exhaust memory before any useful message).
MAX_COUNT = 2**31 - 1


def show(value: Any, limit: int = 60) -> str:
    """``repr(value)`` on one short line (arrays and sparse matrices print over many lines).

    Example:
        >>> show(np.zeros((100, 100)))
        'ndarray of shape (100, 100)'
    """
    if isinstance(value, np.ndarray) and value.size > 8:
        return f"ndarray of shape {value.shape}"
    if hasattr(value, "nnz") and hasattr(value, "shape"):
        return f"{type(value).__name__} of shape {value.shape}"
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."

T = TypeVar("T")


def as_count(value: Any, name: str, minimum: int = 1, maximum: int = MAX_COUNT) -> int:
    """``value`` as a Python int in ``minimum..maximum``; bools, floats (2.7 is not 2) and
    strings are refused.

    Example:
        >>> as_count(np.int32(3), "num_nodes")
        3
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {show(value)} ({type(value).__name__})"
                        + ("; round it explicitly if that is meant" if isinstance(value, (float, np.floating)) else ""))
    if value < minimum:
        why = ": empty graphs have no kernel" if name == "num_nodes" else ""
        raise ValueError(f"{name} must be at least {minimum}, got {value}{why}")
    if value > maximum:
        raise ValueError(f"{name} must be at most {maximum}, got {value}")
    return int(value)


def as_seed(value: Any, name: str = "seed") -> int:
    """A random seed: an integer in ``0 .. 2**32 - 1`` (what NumPy and scikit-learn accept).

    Example:
        >>> as_seed(7)
        7
    """
    return as_count(value, name, minimum=0, maximum=2**32 - 1)


def as_grid(values: Any, name: str, *, positive: bool = True) -> np.ndarray:
    """A non-empty 1-D grid of finite reals (``> 0`` unless ``positive=False``) as float64;
    a single number, strings, bytes and booleans are refused.

    Example:
        >>> as_grid([1, 10], "c_grid").tolist()
        [1.0, 10.0]
    """
    if isinstance(values, (str, bytes, numbers.Number, dict, set)) or values is None or not hasattr(values, "__iter__"):
        raise TypeError(f"{name} must be a sequence of numbers (e.g. [0.1, 1, 10]), got {show(values)}")
    items = list(values)
    if not items:
        raise ValueError(f"{name} is empty: give at least one value")
    out = np.array([as_real(v, f"{name}[{i}]", positive=positive) for i, v in enumerate(items)])
    return out


def as_path(value: Any, name: str) -> Path:
    """A file or folder name (``str`` or ``os.PathLike``) as a :class:`pathlib.Path`, ``~`` expanded.

    Example:
        >>> as_path("out/K.npy", "output").name
        'K.npy'
    """
    if not isinstance(value, (str, os.PathLike)) or isinstance(value, bytes):
        raise TypeError(f"{name} must be a file or folder name (a str or pathlib.Path), got {show(value)} "
                        f"({type(value).__name__})")
    try:
        return Path(value).expanduser()
    except RuntimeError as exc:  # "~user" of an unknown user
        raise ValueError(f"{name} {str(value)!r} cannot be resolved: {exc}") from None


def as_flag(value: Any, name: str) -> bool:
    """``value`` as a bool; only ``True``/``False`` (or NumPy's) are accepted, never truthiness.

    Example:
        >>> as_flag(np.bool_(True), "add_self_loops")
        True
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")


def as_real(value: Any, name: str, *, minimum: float | None = None, positive: bool = False) -> float:
    """``value`` as a finite float (bools, strings, complex numbers, NaN and inf refused),
    optionally ``>= minimum`` or ``> 0``.

    Example:
        >>> as_real(np.float32(0.5), "alpha")
        0.5
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {show(value)} ({type(value).__name__})")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {show(value)}")
    if positive and out <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    if minimum is not None and out < minimum:
        raise ValueError(f"{name} must be at least {minimum:g}, got {value!r}")
    return out


def as_choice(value: Any, name: str, choices: Sequence[T]) -> T:
    """``value`` if it is one of ``choices`` (compared as strings are: exactly).

    Example:
        >>> as_choice("mean", "aggregation", ("sum", "mean"))
        'mean'
    """
    if not isinstance(value, str) or value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {listed}, got {show(value)}")
    return value  # type: ignore[return-value]


def as_real_matrix(K: Any, name: str) -> np.ndarray:
    """``K`` as float64, refusing what a silent cast would corrupt: complex numbers (the
    imaginary part would be dropped), strings, booleans and Python objects.

    Example:
        >>> as_real_matrix([[1, 2]], "K").dtype
        dtype('float64')
    """
    try:
        arr = np.asarray(K)
    except (ValueError, TypeError):
        raise ValueError(f"{name} must be a rectangular array of numbers, got a ragged list") from None
    if arr.dtype.kind not in "iuf":
        what = {"c": "complex numbers", "b": "booleans", "U": "strings", "S": "bytes", "O": "Python objects"}
        raise TypeError(f"{name} must hold real numbers, got {what.get(arr.dtype.kind, str(arr.dtype))} "
                        f"(dtype {arr.dtype})")
    return arr.astype(np.float64, copy=False)
