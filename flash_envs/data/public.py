"""Readers for the public workload datasets in :func:`flash_envs.data.data_dir` (see its README for sources)."""

from __future__ import annotations

import numbers
import reprlib
from pathlib import Path

import numpy as np

from flash_envs.data import csv_number, csv_rows, dataset_path
from flash_envs.data.trace_csv import RateTrace, TraceFormatError, read_rate_trace

NASA_TRACE = ("nasa_http_1995", "nasa_http_requests_per_minute.csv")
AZURE_INVOCATIONS = ("azure_functions_2019", "day01_10func", "invocations.csv")


def nasa_http_trace(path: str | Path | None = None) -> RateTrace:
    """NASA Kennedy Space Center HTTP requests per minute (July and August 1995).

    The July log ends on 07-28 at 13:32 and the August log starts on 08-01; the 3.4 days between have no rows and are
    spliced out (``gaps="join"``), not replayed as a dead service. The zero rows of the August 1-3 outage are data and
    stay.
    """
    path = dataset_path(*NASA_TRACE) if path is None else Path(path)
    return read_rate_trace(path, time_column="minute_start_local_utc-4", value_column="requests", value_kind="count",
                           gaps="join")


def azure_function_trace(function: int | str = 0, path: str | Path | None = None) -> RateTrace:
    """Per-minute invocations of one function of the Azure Functions 2019 trace (wide schema, one row a function).

    Args:
        function: the row index among the functions (an int, NumPy's too; not a bool), or a ``HashFunction`` value
            (a str) that one row holds (several rows with it are a ValueError naming their lines).
        path: an ``invocations.csv`` in the Azure 2019 schema; by default the shared 10-function day.
    """
    if isinstance(function, bool) or not isinstance(function, (numbers.Integral, str)):
        raise TypeError(f"function must be a row index (an int) or a HashFunction (a str), got {function!r} "
                        f"({type(function).__name__})")   # True was row 1, np.int64(1) a HashFunction
    path = dataset_path(*AZURE_INVOCATIONS) if path is None else Path(path)
    rows = list(csv_rows(path, ("HashFunction",), TraceFormatError))
    minutes = _minute_columns(path, list(rows[0][1]))
    if isinstance(function, numbers.Integral):
        function = int(function)
        if not 0 <= function < len(rows):
            raise IndexError(f"{path}: function index {function} out of range (0..{len(rows) - 1})")
        line, row = rows[function]
    else:
        matches = [index for index, (_, row) in enumerate(rows) if row["HashFunction"] == function]
        if not matches:
            raise KeyError(f"{path}: no function with HashFunction {function!r}")
        if len(matches) > 1:   # the first was taken, silently: rows that share a hash may hold different counts
            raise ValueError(f"{path}: {len(matches)} rows have HashFunction {function!r} (lines "
                             f"{', '.join(str(rows[i][0]) for i in matches)}); give the row index of the one to "
                             f"replay instead ({', '.join(map(str, matches))})")
        line, row = rows[matches[0]]
    counts = [csv_number(path, line, column, row[column], positive=False, integer=True, error=TraceFormatError)
              for column in minutes]
    return RateTrace(np.asarray(counts) / 60.0, 60.0, f"{path}#{row['HashFunction']}")


def _minute_columns(path: Path, header: list[str]) -> list[str]:
    """The per-minute count columns of an Azure 2019 header, in time order: ``"1"``, ``"2"``, ... ``"N"``, every minute
    once (other columns, such as ``HashOwner`` or ``Trigger``, are not minutes). A ``TraceFormatError`` naming the
    file otherwise: counts read by position from a header without them, or with minutes missing, were another trace."""
    numbered = [c for c in header if c.isascii() and c.isdigit()]
    if not numbered:
        raise TraceFormatError(f"{path}: no minute columns ('1', '2', ...) in the header {reprlib.repr(header)}; "
                               f"is this an Azure Functions 2019 invocations file?")
    minutes = [str(i) for i in range(1, len(numbered) + 1)]
    if sorted(numbered, key=int) != minutes:
        missing = sorted(set(minutes) - set(numbered), key=int)
        raise TraceFormatError(f"{path}: the minute columns must be '1' .. '{len(numbered)}', each once; the header "
                               f"has {len(numbered)} numbered column(s) {reprlib.repr(numbered)}, without "
                               f"{reprlib.repr(missing)}")
    return minutes
