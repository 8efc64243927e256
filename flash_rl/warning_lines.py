"""flash's own warnings as one line, ``flash COMMAND: warning: ...``, in the command's process and its workers."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable

_OURS = (str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent / "flash_envs"))


class OneLineWarnings:
    """A ``warnings.formatwarning`` that writes flash's own warnings (UserWarnings raised in its files) as one ``flash
    COMMAND: warning: ...`` line (not Python's two, with a source path and a line of code), and leaves the others,
    such as numpy's RuntimeWarnings, to ``fallback``.

    It pickles as its command alone, so that :func:`flash_rl.workers.worker_pool` can install it in spawned workers;
    there ``fallback`` is the worker's own ``warnings.formatwarning``.
    """

    def __init__(self, command: str, fallback: Callable[..., str]) -> None:
        self.command = command
        self.fallback = fallback

    def __call__(self, message: Warning | str, category: type[Warning], filename: str, lineno: int,
                 line: str | None = None) -> str:
        if category is UserWarning and str(Path(filename).resolve()).startswith(_OURS):
            return f"flash {self.command}: warning: {message}\n"
        return self.fallback(message, category, filename, lineno, line)

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return _in_this_process, (self.command,)


def _in_this_process(command: str) -> OneLineWarnings:
    """:class:`OneLineWarnings` for ``command`` over this process's ``warnings.formatwarning`` (unpickling)."""
    return OneLineWarnings(command, warnings.formatwarning)
