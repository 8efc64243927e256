"""Validation shared by every ``from_dict``: a plain dict may only hold the fields its dataclass knows."""

from __future__ import annotations

from typing import Any, Iterable


def reject_unknown_fields(d: dict[str, Any], allowed: Iterable[str], what: str) -> None:
    """Raise ``ValueError`` naming the fields of ``d`` outside ``allowed`` (``what`` names the kind of object)."""
    allowed = set(allowed)
    unknown = set(d) - allowed
    if unknown:
        raise ValueError(f"unknown {what} field(s) {sorted(unknown)}; expected {sorted(allowed)}")
