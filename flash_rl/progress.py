"""Progress bars: one home for how they look and how often they write.

On a terminal a bar redraws in place at most every :data:`TERMINAL_INTERVAL_S`; when stderr is a file or a pipe (a
``nohup`` log, CI) every redraw is a new line, so a bar writes one at most every :data:`LOG_INTERVAL_S`.
"""
from __future__ import annotations

import sys
from typing import Any

from tqdm.auto import tqdm

TERMINAL_INTERVAL_S = 2.0
LOG_INTERVAL_S = 60.0


def redraw_interval_s() -> float:
    """Seconds between two redraws of a bar: short on a terminal, long in a log file."""
    return TERMINAL_INTERVAL_S if sys.stderr.isatty() else LOG_INTERVAL_S


def tqdm_bar(total: int, desc: str, enabled: bool = True, **kwargs: Any) -> tqdm:
    """A tqdm bar of ``total`` items on stderr; ``enabled=False`` gives a silent one. ``kwargs`` go to tqdm."""
    return tqdm(total=total, desc=desc, disable=not enabled, mininterval=redraw_interval_s(), dynamic_ncols=True,
                **kwargs)
