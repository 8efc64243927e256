"""Loaders for real datasets, read by path and never copied into the repository.

The public datasets live in a folder named by the ``FLASH_DATA_DIR`` environment variable, by default
``../shared/data`` relative to the current working directory (the layout of the project's machines).
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "FLASH_DATA_DIR"
DEFAULT_DATA_DIR = Path("../shared/data")


class DataFormatError(ValueError):
    """A data file that does not follow its schema; the message names the file and, where it can, the line, column
    and value. The ``flash`` command prints it as a one-line error (no traceback)."""


def data_dir() -> Path:
    """The folder holding the public datasets (``$FLASH_DATA_DIR`` or ``../shared/data``)."""
    return Path(os.environ.get(DATA_DIR_ENV, DEFAULT_DATA_DIR)).expanduser()


def dataset_path(*parts: str) -> Path:
    """Path of a file inside :func:`data_dir`, raising a clear error when it is absent."""
    path = data_dir().joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(
            f"dataset file {path} not found; set {DATA_DIR_ENV} to the folder holding the public datasets"
        )
    return path
