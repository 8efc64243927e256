"""The Markdown that every report and benchmark writes: tables and "estimate [95% CI]" cells."""
from __future__ import annotations

import math
from typing import Iterable, Sequence

#: What a CI cell shows where there was nothing to resample (one run, one app): the CI is NaN.
NO_CI = "no CI"


def md_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """The lines of a GitHub-flavoured Markdown table; each cell is written as ``str(cell)``, so format numbers
    first. A ``|`` in a cell is escaped and a line break becomes a space (a server's name from a user's file broke
    the table)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows]
    return lines


def _cell(value: object) -> str:
    return " ".join(str(value).replace("|", "\\|").splitlines())


def ci_brackets(ci: Sequence[float], digits: int = 1) -> str:
    """``"[low, high]"`` for ``ci = (low, high)``, with ``digits`` decimals; ``"[no CI]"`` where the CI is NaN."""
    low, high = ci
    return f"[{NO_CI}]" if math.isnan(low) else f"[{low:.{digits}f}, {high:.{digits}f}]"


def fmt_ci(point: float, ci: Sequence[float], digits: int = 1) -> str:
    """``"point [low, high]"`` for ``ci = (low, high)``, with ``digits`` decimals (``"point [no CI]"`` where the CI is
    NaN)."""
    return f"{point:.{digits}f} {ci_brackets(ci, digits)}"


def percent(fraction: float) -> str:
    """``fraction`` as a percentage with the digits it needs: ``90%``, ``97.5%``, ``99.9%`` (``.0%`` would print
    0.975 and 0.98 both as ``98%``, and 0.999 as ``100%``)."""
    return f"{fraction * 100:g}%"
