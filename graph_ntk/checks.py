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
from typing import Any, Sequence, TypeVar

import numpy as np

__all__ = ["as_choice", "as_count", "as_flag", "as_real"]

T = TypeVar("T")


def as_count(value: Any, name: str, minimum: int = 1) -> int:
    """``value`` as a Python int >= ``minimum``; bools, floats (2.7 is not 2) and strings are refused.

    Example:
        >>> as_count(np.int32(3), "num_nodes")
        3
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})"
                        + ("; round it explicitly if that is meant" if isinstance(value, (float, np.floating)) else ""))
    if value < minimum:
        why = ": empty graphs have no kernel" if name == "num_nodes" else ""
        raise ValueError(f"{name} must be at least {minimum}, got {value}{why}")
    return int(value)


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
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {value!r}")
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
        raise ValueError(f"{name} must be one of {listed}, got {value!r}")
    return value  # type: ignore[return-value]
