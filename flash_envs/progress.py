"""Progress bars: one home for how they look and how often they write.

On a terminal a bar redraws in place at most every :data:`TERMINAL_INTERVAL_S`; when stderr is a file or a pipe (a
``nohup`` log, CI) every redraw is a new line, so a bar writes one at most every :data:`LOG_INTERVAL_S`.
"""
from __future__ import annotations

import sys
from typing import Any, Iterable, Iterator, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")

TERMINAL_INTERVAL_S = 2.0
LOG_INTERVAL_S = 60.0


def redraw_interval_s() -> float:
    """Seconds between two redraws of a bar: short on a terminal, long in a log file."""
    return TERMINAL_INTERVAL_S if sys.stderr.isatty() else LOG_INTERVAL_S


def tqdm_bar(total: int, desc: str, enabled: bool = True, **kwargs: Any) -> tqdm:
    """A tqdm bar of ``total`` items on stderr; ``enabled=False`` gives a silent one. ``kwargs`` go to tqdm."""
    return tqdm(total=total, desc=desc, disable=not enabled, mininterval=redraw_interval_s(), dynamic_ncols=True,
                **kwargs)


def counting(items: Iterable[T], bar: tqdm) -> Iterator[T]:
    """``items``, advancing ``bar`` by one as each is done (when the next is asked for): one bar can count the work
    of several loops that each take an iterable, such as :func:`~flash_envs.baselines.runner.evaluate_on_tasks`."""
    for item in items:
        yield item
        bar.update()
