"""Validation shared by every ``from_dict``: a plain dict may only hold the fields its dataclass knows."""

from __future__ import annotations

from typing import Any, Iterable


def check_fields(d: dict[str, Any], allowed: Iterable[str], what: str, required: Iterable[str] = ()) -> None:
    """Raise ``ValueError`` naming the fields of ``d`` outside ``allowed``, or the ``required`` ones it lacks
    (``what`` names the kind of object)."""
    allowed = set(allowed)
    unknown = set(d) - allowed
    if unknown:
        raise ValueError(f"unknown {what} field(s) {sorted(unknown)}; expected {sorted(allowed)}")
    missing = set(required) - set(d)
    if missing:
        raise ValueError(f"{what} needs the field(s) {sorted(missing)}")
