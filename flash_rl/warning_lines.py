"""flash's own warnings as one line, ``flash COMMAND: warning: ...``, each written once per command, in the command's
process and its workers."""

from __future__ import annotations

import warnings
from typing import Any, Callable, TextIO

from flash_envs.flash_warnings import FlashWarning


class OneLineWarnings:
    """A ``warnings.formatwarning`` that writes flash's own warnings (:class:`~flash_envs.flash_warnings.FlashWarning`,
    whatever line they are attributed to) as one ``flash COMMAND: warning: ...`` line (not Python's two, with a source
    path and a line of code), and leaves the others, such as numpy's RuntimeWarnings, to ``fallback``.

    Its :meth:`show`, installed as ``warnings.showwarning`` beside it, writes each of flash's own warnings once: one
    already written (``shown``) is skipped, though raised from another place in the code (Python's filters skip repeats
    from the same place only, and forget them whenever the filters change). A worker's warning lines, which the command
    prints (:func:`flash_rl.workers.worker_pool`), count too: :meth:`written_before` skips those written already and
    records the others.

    It pickles as its command and the warnings it has written, so that ``worker_pool`` can install it in spawned
    workers, which then skip what the command wrote before it started them; there ``fallback`` and the show it
    delegates to are the worker's own.
    """

    def __init__(self, command: str, fallback: Callable[..., str], fallback_show: Callable[..., None],
                 shown: frozenset[str] = frozenset()) -> None:
        self.command = command
        self.fallback = fallback
        self.fallback_show = fallback_show
        self.shown = set(shown)

    def __call__(self, message: Warning | str, category: type[Warning], filename: str, lineno: int,
                 line: str | None = None) -> str:
        if issubclass(category, FlashWarning):
            return f"flash {self.command}: warning: {message}\n"
        return self.fallback(message, category, filename, lineno, line)

    def show(self, message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: TextIO | None = None, line: str | None = None) -> None:
        """``warnings.showwarning``: write the warning as ``fallback_show`` does, unless it is one of flash's own that
        was written already."""
        if issubclass(category, FlashWarning) and self.written_before(self(message, category, filename, lineno, line)):
            return
        self.fallback_show(message, category, filename, lineno, file, line)

    def written_before(self, line: str) -> bool:
        """Whether ``line`` is one of this command's warning lines that was written already; one that was not is
        recorded as written now (the caller writes it)."""
        line = line.rstrip("\n") + "\n"
        if not line.startswith(f"flash {self.command}: warning: "):
            return False
        if line in self.shown:
            return True
        self.shown.add(line)
        return False

    def __reduce__(self) -> tuple[Any, tuple[str, frozenset[str]]]:
        return _in_this_process, (self.command, frozenset(self.shown))


def _in_this_process(command: str, shown: frozenset[str] = frozenset()) -> OneLineWarnings:
    """:class:`OneLineWarnings` for ``command`` over this process's ``warnings.formatwarning`` and ``showwarning``
    (unpickling), having written ``shown``."""
    return OneLineWarnings(command, warnings.formatwarning, warnings.showwarning, shown)
