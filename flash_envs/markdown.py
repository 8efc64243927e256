"""The Markdown that every report and benchmark writes: tables and "estimate [95% CI]" cells."""
from __future__ import annotations

from typing import Iterable, Sequence


def md_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """The lines of a GitHub-flavoured Markdown table; each cell is written as ``str(cell)``, so format numbers
    first."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def fmt_ci(point: float, ci: Sequence[float], digits: int = 1) -> str:
    """``"point [low, high]"`` for ``ci = (low, high)``, with ``digits`` decimals."""
    low, high = ci
    return f"{point:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"
