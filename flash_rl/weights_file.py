"""Reading the torch files flash writes (MAML checkpoints, few-shot predictors) without unpickling code."""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch


def load_weights_file(path: Path, what: str, keys: Sequence[str]) -> dict[str, Any]:
    """The dict in ``path``, read with torch's weights-only unpickler: a file holding anything but tensors and plain
    values (code that would run on unpickling, say) is refused, not executed. A missing file (or a directory) raises a
    FileNotFoundError; a file that torch.save did not write, that torch cannot read, or whose dict lacks one of
    ``keys``, a ValueError saying that ``path`` is not ``what`` (e.g. "a MAML checkpoint") that flash wrote."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: {'a directory, not' if Path(path).is_dir() else 'no such file: expected'} "
                                f"{what}")
    not_ours = f"{path} is not {what} that flash wrote"
    if not zipfile.is_zipfile(path):   # torch.save writes a zip archive; the unpickler's error would blame objects
        raise ValueError(f"{not_ours}: it is not a whole zip archive, as torch.save writes (another format, or a "
                         "file cut short)")
    try:
        state = torch.load(path, weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(f"{not_ours}: it holds objects other than tensors and plain values, which flash does not "
                         "unpickle (they could run code)") from err
    except Exception as err:   # torch raises EOFError, KeyError, RuntimeError... for a file it cannot read
        detail = str(err).splitlines()[0][:200] if str(err) else ""
        raise ValueError(f"{not_ours} (torch cannot read it: {type(err).__name__}"
                         f"{': ' + detail if detail else ''})") from err
    missing = [key for key in keys if key not in state] if isinstance(state, dict) else list(keys)
    if missing:
        raise ValueError(f"{not_ours} (it lacks {', '.join(missing)})")
    return state
