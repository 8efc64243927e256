"""Loaders for real datasets, read by path and never copied into the repository.

The public datasets live in a folder named by the ``FLASH_DATA_DIR`` environment variable, by default
``../shared/data`` relative to the current working directory (the layout of the project's machines).
"""

from __future__ import annotations

import csv
import math
import os
from collections import Counter
from pathlib import Path
from typing import Iterator, Sequence

DATA_DIR_ENV = "FLASH_DATA_DIR"
DEFAULT_DATA_DIR = Path("../shared/data")


class DataFormatError(ValueError):
    """A data file that does not follow its schema; the message names the file and, where it can, the line, column
    and value. The ``flash`` command prints it as a one-line error (no traceback)."""


def data_dir() -> Path:
    """The folder holding the public datasets (``$FLASH_DATA_DIR``, or ``../shared/data`` when it is unset or
    empty)."""
    return Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR).expanduser()


def dataset_path(*parts: str) -> Path:
    """Path of a file inside :func:`data_dir`, raising a clear error when it is absent."""
    path = data_dir().joinpath(*parts)
    if not path.exists():
        where = "" if path.is_absolute() else f" (from {Path.cwd()}: {path.absolute()})"   # a relative default
        raise FileNotFoundError(
            f"dataset file {path}{where} not found; set {DATA_DIR_ENV} to the folder holding the public datasets"
        )
    return path


def csv_rows(path: str | Path, required: Sequence[str], error: type[DataFormatError] = DataFormatError,
             missing_error: type[DataFormatError] | None = None) -> Iterator[tuple[int, dict[str, str]]]:
    """The rows of a CSV file with a header, each with its 1-based line number, read lazily.

    The file is UTF-8 text (a leading byte-order mark, as spreadsheet programs write, is dropped); blank lines before
    the header are skipped. Raises ``FileNotFoundError`` for a missing file and ``error`` for text that is not UTF-8,
    an empty file, a header that repeats a column name (a row would hold only the last such column; repeated blank
    names, as a spreadsheet's unnamed columns, are no column a reader reads) or lacks one of the ``required`` columns,
    a row with more or fewer fields than the header (read across lines: naming the line it starts on, as an
    unclosed quote reads on to the next one), a row the ``csv`` module cannot read (a field over its size limit), or
    a header with no rows under it; ``missing_error`` (default ``error``) for a header without a required column.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {'a directory, not a CSV file' if path.is_dir() else 'no such file'}")
    try:
        yield from _checked_rows(path, required, error, missing_error or error)
    except UnicodeDecodeError as err:
        raise error(f"{path}: not UTF-8 text (byte {err.start} is {err.object[err.start:err.start + 1]!r}); "
                    "save it as UTF-8 CSV") from None


#: What a row read across several lines most often means.
_OPEN_QUOTE = 'is a \'"\' at the start of a field left unclosed?'


def _checked_rows(path: Path, required: Sequence[str], error: type[DataFormatError],
                  missing_error: type[DataFormatError]) -> Iterator[tuple[int, dict[str, str]]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = next(reader.reader, None)
        while header == []:   # blank lines before the header (DictReader took the first for an empty header)
            header = next(reader.reader, None)
        if not header:
            raise error(f"{path}: empty file (expected a header with columns {list(required)})")
        reader.fieldnames = header
        header_line = reader.reader.line_num
        repeated = sorted(name for name, count in Counter(header).items() if count > 1 and name.strip())
        if repeated:   # a dict row keeps one value per name: the last such column, silently
            raise error(f"{path}:{header_line}: the header repeats the column name(s) {repeated}; every column needs "
                        f"a name of its own")
        missing = [c for c in required if c not in header]
        if missing:
            raise missing_error(f"{path}:{header_line}: missing column(s) {missing}; the header has {header}")
        n_rows, last_line = 0, header_line
        try:
            for row in reader:
                extra = row.get(None)   # DictReader keeps a long row's surplus under None, fills a short one with None
                if extra is not None or None in row.values():
                    n_fields = (len(reader.fieldnames) + len(extra) if extra
                                else sum(v is not None for v in row.values()))
                    across = reader.line_num > last_line + 1 or any("\n" in v for v in row.values() if v)  # at EOF
                    spans = f" (a row from line {last_line + 1}: {_OPEN_QUOTE})" if across else ""
                    raise error(f"{path}:{reader.line_num}: {n_fields} field(s) where the header has "
                                f"{len(reader.fieldnames)}{spans}")
                n_rows += 1
                last_line = reader.line_num
                yield last_line, row
        except csv.Error as err:   # e.g. a quote left open, which read the rest of a large file into one field
            raise error(f"{path}:{last_line + 1}: the row from here on cannot be read ({err}); {_OPEN_QUOTE}") from None
    if not n_rows:
        raise error(f"{path}: no data rows after the header")


def csv_number(path: str | Path, line: int, column: str, text: str | None, *, positive: bool, integer: bool = False,
               error: type[DataFormatError] = DataFormatError) -> float:
    """The field ``text`` of a CSV row as a finite number: ``> 0`` if ``positive``, else ``>= 0``; a whole number if
    ``integer``. Anything else raises ``error`` naming the file, line, column and text."""
    where = f"{path}:{line}: column {column!r} holds {text!r}"
    try:
        value = float(text or "")
    except ValueError:
        raise error(f"{where}, not a number") from None
    if not math.isfinite(value):
        raise error(f"{where}, not a finite number")
    if value < 0 or (positive and value == 0):
        raise error(f"{where}; it must be {'> 0' if positive else '>= 0'}")
    if integer and not value.is_integer():
        raise error(f"{where}, not a whole number")
    return value
