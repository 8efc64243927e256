"""Validation shared across the package: the fields of a plain dict (every ``from_dict``), and numbers passed to a
constructor (:func:`check_number`, :func:`check_whole`), with errors that name the argument."""

from __future__ import annotations

import math
import numbers
import reprlib
from typing import Any, Iterable

import numpy as np


def check_mapping(d: Any, what: str) -> dict[str, Any]:
    """``d`` if it is a dict (the plain form of a ``what``), else a ``TypeError`` naming ``what`` and ``d``'s type (a
    YAML ``app: null`` is ``None``)."""
    if not isinstance(d, dict):
        raise TypeError(f"{what}: expected a mapping of fields, got {type(d).__name__}")
    return d


def check_fields(d: dict[str, Any], allowed: Iterable[str], what: str, required: Iterable[str] = ()) -> None:
    """Raise ``TypeError`` if ``d`` is not a dict, ``ValueError`` naming the fields of ``d`` outside ``allowed``, or
    the ``required`` ones it lacks (``what`` names the kind of object)."""
    check_mapping(d, what)
    allowed = set(allowed)
    unknown = set(d) - allowed
    if unknown:
        raise ValueError(f"unknown {what} field(s) {sorted(unknown)}; expected {sorted(allowed)}")
    missing = set(required) - set(d)
    if missing:
        raise ValueError(f"{what} needs the field(s) {sorted(missing)}")


def is_real_number(value: Any) -> bool:
    """Whether ``value`` is a real number (a Python or NumPy int or float; not a bool, not a string)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _fits_a_float(value: Any) -> bool:
    """Whether the real number ``value`` is finite as a float: an int too large for one (``10**400``, which YAML reads
    from 401 digits) is not, where ``math.isfinite`` would raise an OverflowError."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def check_number(name: str, value: Any, low: float, high: float = math.inf, *, strict: bool = False) -> float:
    """``value`` as a float if it is a finite number in ``[low, high]`` (``(low, high]`` if ``strict``).

    Otherwise a TypeError (not a number) or ValueError (out of range) that names the argument ``name``.
    """
    if not is_real_number(value):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    above = value > low if strict else value >= low
    if not (_fits_a_float(value) and above and value <= high):
        bound = f"{'>' if strict else '>='} {low:g}" + ("" if high == math.inf else f" and <= {high:g}")
        raise ValueError(f"{name} must be a finite number {bound}, got {reprlib.repr(value)}")   # (401 digits: cut)
    return float(value)


def check_whole(name: str, value: Any, low: int) -> int:
    """``value`` as an int if it is a whole number >= ``low`` that a float holds (``2.0`` is 2; ``2.5`` is refused,
    and so is ``10**400``, which YAML reads from 401 digits and which no count, length or size multiplied by a float
    survives).

    Otherwise a TypeError (not a number) or ValueError (not whole, below ``low``, or past a float) that names the
    argument ``name``.
    """
    if not is_real_number(value):
        raise TypeError(f"{name} must be a whole number, got {value!r} ({type(value).__name__})")
    if isinstance(value, numbers.Integral) and not _fits_a_float(value):
        raise ValueError(f"{name} must be a whole number >= {low} that a float holds (below 1.8e308), got "
                         f"{reprlib.repr(value)}")
    if not (math.isfinite(value) and value == int(value) and value >= low):
        raise ValueError(f"{name} must be a whole number >= {low}, got {value!r}")
    return int(value)


#: The largest seed: SB3 seeds NumPy's legacy generator (``np.random.seed``), which takes 0 .. 2**32 - 1.
MAX_SEED = 2**32 - 1


def check_seed(name: str, value: Any) -> int:
    """``value`` as an int if it is a whole number in [0, :data:`MAX_SEED`], else a TypeError or ValueError naming the
    argument ``name`` (numpy's own error, deep inside SB3, names none)."""
    seed = check_whole(name, value, 0)
    if seed > MAX_SEED:
        raise ValueError(f"{name} must be a whole number in [0, 2**32 - 1], got {value!r}")
    return seed


def check_finite_observations(values: np.ndarray, given: Any, owner: str) -> None:
    """A ValueError naming ``owner`` (a policy's ``predict``) unless every value of ``values`` (the observations
    ``given``, as an array) is finite: a NaN failed deep inside a heuristic's rule, or picked an arbitrary action."""
    if not np.isfinite(values).all():
        raise ValueError(f"{owner}: observations must be finite numbers, got {given!r}")


def check_flag(name: str, value: Any) -> bool:
    """``value`` if it is a bool (NumPy's included), else a TypeError naming the argument ``name``: a string such as
    ``"no"`` would otherwise count as true."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")
    return bool(value)
