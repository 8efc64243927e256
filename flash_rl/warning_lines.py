"""flash's own warnings as one line, ``flash COMMAND: warning: ...``, each written once per command, in the command's
process and its workers."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable

_OURS = (str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent / "flash_envs"))


class OneLineWarnings:
    """A ``warnings.formatwarning`` that writes flash's own warnings (UserWarnings raised in its files) as one ``flash
    COMMAND: warning: ...`` line (not Python's two, with a source path and a line of code), and leaves the others,
    such as numpy's RuntimeWarnings, to ``fallback``.

    Each of flash's own warnings is written once: a repeat of one already written (``shown``), raised from another
    place in the code (Python's filters already skip repeats from the same place), is formatted as nothing. For
    example, a task family made for another episode length is warned of where the command loads it and again where it
    trains on it.

    It pickles as its command and the warnings it has written, so that :func:`flash_rl.workers.worker_pool` can install
    it in spawned workers, which then skip what the command wrote before it started them (two workers may each write
    a warning the command had not); there ``fallback`` is the worker's own ``warnings.formatwarning``.
    """

    def __init__(self, command: str, fallback: Callable[..., str], shown: frozenset[str] = frozenset()) -> None:
        self.command = command
        self.fallback = fallback
        self.shown = set(shown)

    def __call__(self, message: Warning | str, category: type[Warning], filename: str, lineno: int,
                 line: str | None = None) -> str:
        if category is UserWarning and str(Path(filename).resolve()).startswith(_OURS):
            text = f"flash {self.command}: warning: {message}\n"
            if text in self.shown:
                return ""
            self.shown.add(text)
            return text
        return self.fallback(message, category, filename, lineno, line)

    def __reduce__(self) -> tuple[Any, tuple[str, frozenset[str]]]:
        return _in_this_process, (self.command, frozenset(self.shown))


def _in_this_process(command: str, shown: frozenset[str] = frozenset()) -> OneLineWarnings:
    """:class:`OneLineWarnings` for ``command`` over this process's ``warnings.formatwarning`` (unpickling), having
    written ``shown``."""
    return OneLineWarnings(command, warnings.formatwarning, shown)
