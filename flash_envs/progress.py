"""Progress bars: one home for how they look and how often they write.

On a terminal a bar redraws in place at most every :data:`TERMINAL_INTERVAL_S`; when stderr is a file or a pipe (a
``nohup`` log, CI) every redraw is a new line, so a bar writes one at most every :data:`LOG_INTERVAL_S`. Worker
processes whose bars run beside other processes' each draw on a line of their own (:func:`set_bar_line`).
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


_bar_line: int | None = None


class _BarOnALine(tqdm):
    """A bar drawn on a line below the cursor: once cleared, it puts the cursor back at the start of the line it
    came from (tqdm leaves it after the blanks it cleared with, where the next text, such as a report, would start)."""

    def close(self) -> None:
        drawn = not self.disable
        super().close()
        if drawn:
            self.fp.write("\r")
            self.fp.flush()


def set_bar_line(line: int | None) -> None:
    """Draw this process's bars on terminal line ``line`` below the cursor (tqdm's ``position``), unless a bar is
    given one: a worker process's, beside the bars of the parent and of other workers, which each count their lines
    only among their own. (``TQDM_POSITION`` cannot do this: tqdm reads it once, when it is imported.) None: tqdm's
    own choice, the first free line."""
    global _bar_line
    _bar_line = line


def tqdm_bar(total: int, desc: str, enabled: bool = True, **kwargs: Any) -> tqdm:
    """A tqdm bar of ``total`` items on stderr; ``enabled=False`` gives a silent one. ``kwargs`` go to tqdm.

    A bar with a line (its ``position``, or else the one :func:`set_bar_line` set) runs beside bars of other processes:
    on a terminal it draws there and is cleared when it closes (``leave=False``: a bar left in place writes a newline,
    which moves every other process's lines down one); in a file, which keeps every redraw, the line is ignored."""
    position = kwargs.pop("position", _bar_line)
    stream = kwargs.get("file") or sys.stderr
    on_a_line = position is not None and getattr(stream, "isatty", lambda: False)()
    if on_a_line:
        kwargs.update(position=position, leave=False)
    return (_BarOnALine if on_a_line else tqdm)(total=total, desc=desc, disable=not enabled,
                                                mininterval=redraw_interval_s(), dynamic_ncols=True, **kwargs)


def counting(items: Iterable[T], bar: tqdm) -> Iterator[T]:
    """``items``, advancing ``bar`` by one as each is done (when the next is asked for): one bar can count the work
    of several loops that each take an iterable, such as :func:`~flash_envs.baselines.runner.evaluate_on_tasks`."""
    for item in items:
        yield item
        bar.update()
