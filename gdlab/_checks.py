"""Input validation: one error type, one way to check a value.

Every bad input to gdlab raises `InputError` (a `ValueError`), with a message that names
the value and says what would be valid, before anything is compiled or written. The CLI
turns it into exit code 2; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np


class InputError(ValueError):
    """A bad input: the message names the value and what would be valid."""


def is_int(value: Any) -> bool:
    """True for Python and NumPy integers (not bool), and 0-d integer arrays."""
    if isinstance(value, bool | np.bool_):
        return False
    if isinstance(value, numbers.Integral):
        return True
    return _zero_d(value, np.integer)


def is_real(value: Any) -> bool:
    """True for real numbers (not bool), NumPy scalars and 0-d JAX / NumPy arrays."""
    if isinstance(value, bool | np.bool_):
        return False
    if isinstance(value, numbers.Real):
        return True
    return _zero_d(value, np.integer) or _zero_d(value, np.floating)


def _zero_d(value: Any, kind) -> bool:
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if shape != () or dtype is None:
        return False
    try:
        return bool(np.issubdtype(np.dtype(dtype), kind))
    except TypeError:  # extended dtypes (JAX keys)
        return False


def check_int(name: str, value: Any, minimum: int | None = None, maximum: int | None = None,
              hint: str = "") -> int:
    """`value` as an int in [minimum, maximum], or an InputError naming it."""
    ok = is_int(value) and (minimum is None or int(value) >= minimum) \
        and (maximum is None or int(value) <= maximum)
    if not ok:
        raise InputError(f"{name} must be {_int_range(minimum, maximum)}"
                         f"{f' ({hint})' if hint else ''}, got {value!r}")
    return int(value)


def _int_range(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f"an integer in {minimum}..{maximum}"
    if minimum is not None:
        return f"an integer >= {minimum}"
    return "an integer" if maximum is None else f"an integer <= {maximum}"


def check_optional_int(name: str, value: Any, minimum: int | None = None,
                       maximum: int | None = None, hint: str = "") -> int | None:
    """None, or `check_int`."""
    if value is None:
        return None
    return check_int(name, value, minimum, maximum, hint or "or None")


def _finite_float(value: Any) -> float | None:
    """`value` as a finite float, or None (not real, NaN, infinite, or beyond float64:
    `float(10**400)` raises OverflowError)."""
    if not is_real(value):
        return None
    try:
        v = float(value)
    except OverflowError:
        return None
    return v if math.isfinite(v) else None


def check_positive(name: str, value: Any, hint: str = "") -> float:
    """`value` as a finite float > 0, or an InputError naming it."""
    v = _finite_float(value)
    if v is None or v <= 0:
        raise InputError(f"{name} must be a finite number > 0{f' ({hint})' if hint else ''}, "
                         f"got {value!r}")
    return float(value)


def check_real(name: str, value: Any, low: float = -math.inf, high: float = math.inf,
               open_low: bool = False, open_high: bool = False) -> float:
    """`value` as a finite float in the given interval, or an InputError naming it."""
    v = _finite_float(value)
    ok = v is not None
    if ok:
        ok = (v > low if open_low else v >= low) and (v < high if open_high else v <= high)
    if not ok:
        interval = f"{'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
        raise InputError(f"{name} must be a finite number in {interval}, got {value!r}")
    return float(value)


def check_flag(name: str, value: Any, hint: str = "") -> bool:
    """`value` as a bool (Python or NumPy), or an InputError: truth values of strings,
    arrays or None are never read as flags."""
    if not isinstance(value, bool | np.bool_):
        raise InputError(f"{name} must be True or False{f' {hint}' if hint else ''}, got "
                         f"{value!r}")
    return bool(value)


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """`value` if it is one of `choices`, else an InputError listing them."""
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        raise InputError(f"unknown {name} {value!r}; valid: {', '.join(choices)}")
    return value


def check_type(name: str, value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    """`value` if it is an instance of `kind`, else an InputError saying what it must be."""
    if not isinstance(value, kind):
        raise InputError(f"{name} must be {what}, got {type(value).__name__}")
    return value
