"""flash's own warnings (about the user's settings, tasks, traces and checkpoints), and :func:`warn`, which raises one
at the line of the user's code that led to it, however deep in flash (or gymnasium) it was found."""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from pathlib import Path

import gymnasium

#: The folders whose frames are not the user's: flash's two packages, gymnasium (``gym.make`` and its wrappers) and
#: contextlib (the frame of a function decorated with a context manager, e.g. ``one_torch_thread``).
_NOT_THE_CALLER = tuple(str(Path(folder).resolve()) + os.sep for folder in (
    Path(__file__).parent, Path(__file__).parent.parent / "flash_rl", Path(gymnasium.__file__).parent)) + (
    str(Path(contextlib.__file__).resolve()),)


class FlashWarning(UserWarning):
    """A warning of flash's own: settings, tasks or files that work, but likely not as meant. The ``flash`` commands
    write these as one ``flash COMMAND: warning: ...`` line (:mod:`flash_rl.warning_lines`)."""


def warn(message: str, category: type[FlashWarning] = FlashWarning) -> None:
    """Raise ``message`` as ``category``, attributed to the first frame out of flash, gymnasium and contextlib: the
    user's line that called flash (Python's filters, and its one-warning-per-line default, key on that line)."""
    frame, level = sys._getframe(1), 2   # stacklevel 2: warn's caller
    while frame.f_back is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(_NOT_THE_CALLER):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
