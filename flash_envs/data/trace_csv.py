"""Read request-rate traces from any CSV a user has.

Two layouts are understood:

* **aggregated**: one row per time bin with a timestamp column and a value column holding either a request count for
  the bin (``value_kind="count"``) or a rate in requests per second (``value_kind="rate"``);
* **per request**: one row per request with a timestamp column (``value_column=None``); requests are counted in bins
  of ``bin_s`` seconds.

Timestamps may be numbers (seconds, or another unit via ``time_unit_s``) or ISO-8601 date-times
(``1995-07-01 00:00``), which carry their own unit (a ``time_unit_s`` given with them warns that it is ignored), one or
the other throughout a file. Every problem names the file, the line and the column.

An aggregated file's bins are, unless ``bin_s`` says otherwise, the smallest spacing between its rows, so a bin without
a row is a gap: missing data, not a quiet period. By default that is an error naming the gap; ``gaps="zero"`` reads
missing bins as no requests and ``gaps="join"`` splices them out. An aggregated file whose timestamps drift around
their grid (a per-minute export stamped 60.2 s, 119.9 s, ...) is read with ``time_round_s``, which first puts each
timestamp on the nearest point of a grid of that step.
"""

from __future__ import annotations

import reprlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from flash_envs.data import DataFormatError, csv_number, csv_rows
from flash_envs.fields import check_fields, check_number, is_real_number
from flash_envs.flash_warnings import FlashWarning, warn


class TraceFormatError(DataFormatError):
    """A trace file that cannot be read as asked; the message names file, line, column and value."""


class TraceColumnError(TraceFormatError):
    """A trace file whose header lacks the time column or the value column it is read with."""


class TraceGapError(TraceFormatError):
    """An aggregated trace with bins that have no row, read with ``gaps="error"``; the message names the first gap."""


class TraceBinError(TraceFormatError):
    """An aggregated trace read without ``bin_s`` whose timestamps give no bin width: one timestamp only, or rows that
    are not on one grid; the message names the rows."""


class TraceAliasWarning(FlashWarning):
    """An aggregated trace of counts read with a ``bin_s`` that is not a whole multiple of the spacing of most of its
    rows: the bins hold unequal numbers of rows, so a steady load reads as rates that alternate."""


class TraceTimeUnitWarning(FlashWarning):
    """A trace read with a ``time_unit_s`` other than 1 whose timestamps are date-times, which carry their own unit:
    ``time_unit_s`` scales numeric timestamps only, so it is ignored."""


class TraceRoundError(TraceBinError):
    """An aggregated trace two of whose rows, at different times, ``time_round_s`` puts on one time; the message names
    them."""


#: The widths a trace's bins (``bin_s``) may have: from a microsecond (a replay's bin index, ``t / bin_s``, of
#: 5e-324 s was inf) to 1e9 s, about 32 years (a trace's duration, bins x ``bin_s``, of 1e308 s was).
BIN_S_RANGE = (1e-6, 1e9)


@dataclass(frozen=True)
class RateTrace:
    """A request-rate series on a uniform grid: ``rates[i]`` requests per second during ``[i*bin_s, (i+1)*bin_s)``,
    ``bin_s`` within :data:`BIN_S_RANGE` (1e-6 to 1e9 s).

    ``source`` says where the series came from (a file, ``file#function``, ...); it is provenance only, never re-read.
    The rates are kept as a read-only float64 copy, so a trace cannot change after it is made. Two traces are equal when
    their bin widths, sources and every bit of their rates are. ``to_dict`` / :meth:`from_dict` give a plain,
    JSON/YAML-ready form that comes back bit-identical (a float64 written with ``repr`` reads back exactly).
    """

    rates: np.ndarray
    bin_s: float
    source: str = ""

    def __post_init__(self) -> None:
        numeric = isinstance(self.rates, np.ndarray) and self.rates.dtype.kind in "iuf"   # (no Python loop for those)
        if not numeric and (isinstance(self.rates, (str, bytes, dict))
                            or not all(is_real_number(r) for r in np.ravel(np.asarray(self.rates, dtype=object)))):
            raise TypeError(f"rate trace rates must be numbers (requests/s per bin), got {reprlib.repr(self.rates)}")
        if not isinstance(self.source, str):   # (str() made a list of one: "[1, 2]")
            raise TypeError(f"rate trace source must be a str (where the rates came from), got {self.source!r}")
        try:
            rates = np.array(self.rates, dtype=np.float64) + 0.0   # a private copy; + 0.0 makes -0.0 the 0.0 it equals
        except OverflowError:   # an int too large for a float
            raise ValueError(f"rate trace rates must be finite and >= 0; got {reprlib.repr(self.rates)}, too large "
                             "for a float") from None
        if rates.ndim != 1 or len(rates) == 0:
            raise ValueError(f"a rate trace needs a non-empty 1-D series of rates, got shape {rates.shape}")
        if not np.all(np.isfinite(rates) & (rates >= 0)):
            first = int(np.argmin(np.isfinite(rates) & (rates >= 0)))
            raise ValueError(f"rate trace rates must be finite and >= 0; rates[{first}] = {float(rates[first])!r}")
        rates.setflags(write=False)
        object.__setattr__(self, "rates", rates)
        object.__setattr__(self, "bin_s", check_number("RateTrace.bin_s", self.bin_s, *BIN_S_RANGE))

    @property
    def duration_s(self) -> float:
        """Seconds covered by the series: number of bins x ``bin_s``."""
        return float(len(self.rates) * self.bin_s)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RateTrace):
            return NotImplemented
        return (self.bin_s == other.bin_s and self.source == other.source
                and self.rates.shape == other.rates.shape and self.rates.tobytes() == other.rates.tobytes())

    def __hash__(self) -> int:
        return hash((self.bin_s, self.source, self.rates.tobytes()))

    def __repr__(self) -> str:
        return f"RateTrace(<{len(self.rates)} bins of {self.bin_s:g} s>, source={self.source!r})"

    def to_dict(self) -> dict[str, Any]:
        """``{"rates": [...], "bin_s": ..., "source": ...}`` with plain Python floats; inverse of :meth:`from_dict`."""
        return {"rates": self.rates.tolist(), "bin_s": self.bin_s, "source": self.source}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RateTrace":
        """Rebuild a trace from :meth:`to_dict` output, naming any unknown or missing field."""
        check_fields(d, ("rates", "bin_s", "source"), "rate trace", required=("rates", "bin_s"))
        return cls(d["rates"], d["bin_s"], d.get("source", ""))


GAP_POLICIES = ("error", "zero", "join")
VALUE_KINDS = ("count", "rate")
MAX_BINS = 10**8
MAX_ROUNDED_STEPS = 2**52   # steps of time_round_s up to which a float timestamp still resolves one step
BIN_TOLERANCE = 1e-6   # share of a bin by which a timestamp may fall short of its bin's start (float rounding)
NUMBER, DATE_TIME = "a number", "an ISO-8601 date-time"   # the two time formats, as _parse_time names them


def check_reader_options(time_column: Any, value_column: Any, value_kind: Any, time_unit_s: Any, bin_s: Any,
                         gaps: Any, owner: str = "", time_round_s: Any = None) -> None:
    """Raise a ``TypeError`` or ``ValueError`` naming the first of :func:`read_rate_trace`'s options (after
    ``owner``, e.g. ``"TraceWorkload."``) that is not of its type and range."""
    if not isinstance(time_column, str) or not time_column:
        raise TypeError(f"{owner}time_column must be a column name (a non-empty string), got {time_column!r}")
    if value_column is not None and (not isinstance(value_column, str) or not value_column):
        raise TypeError(f"{owner}value_column must be a column name (a non-empty string) or None, "
                        f"got {value_column!r}")
    if value_kind not in VALUE_KINDS:
        raise ValueError(f"{owner}value_kind must be one of {VALUE_KINDS}, got {value_kind!r}")
    if gaps not in GAP_POLICIES:
        raise ValueError(f"{owner}gaps must be one of {GAP_POLICIES}, got {gaps!r}")
    check_number(f"{owner}time_unit_s", time_unit_s, 0.0, strict=True)
    if bin_s is not None:
        check_number(f"{owner}bin_s", bin_s, *BIN_S_RANGE)
    if value_column is None and (gaps != "error" or value_kind != "count"):   # they were ignored, without a word
        given = ", ".join(f"{name}={value!r}" for name, value, default in (("gaps", gaps, "error"),
                                                                          ("value_kind", value_kind, "count"))
                          if value != default)
        raise ValueError(f"{owner}{given} reads an aggregated file's values; a file of one row per request (no value "
                         "column) is counted in bins of bin_s, an empty bin as no requests")
    if time_round_s is not None:
        check_number(f"{owner}time_round_s", time_round_s, 0.0, strict=True)
        if value_column is None:
            raise ValueError(f"{owner}time_round_s={time_round_s} puts an aggregated file's timestamps on a grid; a "
                             f"file of one row per request (no value column) is counted in bins of bin_s as it is")


def _parse_time(text: str, path: Path, line: int, column: str, time_unit_s: float) -> tuple[float, str]:
    """The time in seconds and its format (:data:`NUMBER` or :data:`DATE_TIME`)."""
    try:
        value = float(text) * time_unit_s
    except ValueError:
        pass
    else:
        if not np.isfinite(value):
            raise TraceFormatError(f"{path}:{line}: column {column!r} holds {text!r}, which is not a finite time")
        return value, NUMBER
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise TraceFormatError(
            f"{path}:{line}: column {column!r} holds {text!r}, which is neither a number nor an ISO-8601 date-time"
        ) from None
    if moment.tzinfo is None:  # naive times are read as UTC so that daylight-saving shifts of this machine never apply
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp(), DATE_TIME


def read_rate_trace(
    path: str | Path,
    time_column: str,
    value_column: str | None = None,
    value_kind: str = "count",
    time_unit_s: float = 1.0,
    bin_s: float | None = None,
    gaps: str = "error",
    time_round_s: float | None = None,
) -> RateTrace:
    """Read a CSV file into a :class:`RateTrace` (requests per trace second on a uniform grid).

    Rows may come in any order (a per-request log written as requests complete often is out of order): they are
    taken in time order, and a gap error names the two rows on either side of the gap in time.

    Args:
        path: the CSV file, with a header row.
        time_column: column holding the timestamps.
        value_column: column holding counts or rates; ``None`` for one row per request.
        value_kind: ``"count"`` (requests in the row's bin) or ``"rate"`` (requests per second).
        time_unit_s: seconds per unit of a numeric timestamp (60 for minutes, 1e-3 for milliseconds). Date-times
            carry their own unit: a value other than 1 with them is ignored, with a :class:`TraceTimeUnitWarning`.
        bin_s: bin width in seconds; by default 1 s for per-request files and, for aggregated files, the smallest
            spacing between timestamps, which every other spacing must be a whole multiple of (a larger multiple
            is a gap). Several rows in one bin (a ``bin_s`` coarser than the rows) add up their counts, or average
            their rates, whatever rows the bin holds: a row missing from a bin that has others is not a gap (its
            count reads as none, its rate as the others' mean), nor is a last bin the trace ends in part-way. Read the
            file without ``bin_s`` first to find such rows. For counts, a ``bin_s`` coarser than the spacing of
            most rows but not a whole multiple of it warns (:class:`TraceAliasWarning`).
        gaps: for aggregated files, what bins without a row are: ``"error"`` (the default), ``"zero"`` (no requests)
            or ``"join"`` (spliced out, so the trace continues with the next row).
        time_round_s: for aggregated files whose timestamps drift around a grid (a per-minute export stamped
            60.2 s, 119.9 s, ...), the grid's step in seconds: before anything else, each timestamp is put on the
            nearest point of a grid of this step, placed at the rows' mean offset from its multiples (so a grid
            stamped mid-minute, or by a scraper started at any second, is read as well as one on whole minutes). Two
            rows at different times put on one point are an error naming them (a drift of half the step or more).
            ``None`` (the default) takes the timestamps as written.
    """
    path = Path(path)
    check_reader_options(time_column, value_column, value_kind, time_unit_s, bin_s, gaps, time_round_s=time_round_s)
    times: list[float] = []
    values: list[float] = []
    lines: list[int] = []
    texts: list[str] = []   # the timestamps as written, for messages
    first_format: tuple[str, int] | None = None   # the time format of the first row, and its line
    columns = [c for c in (time_column, value_column) if c is not None]
    for line, row in csv_rows(path, columns, TraceFormatError, TraceColumnError):
        time, time_format = _parse_time(row[time_column], path, line, time_column, time_unit_s)
        first_format = first_format or (time_format, line)
        if time_format != first_format[0]:   # mixed, the times' differences would be meaningless
            raise TraceFormatError(f"{path}:{line}: column {time_column!r} holds {row[time_column]!r}, {time_format}, "
                                   f"where line {first_format[1]} holds {first_format[0]}; use one time format "
                                   f"throughout")
        times.append(time)
        lines.append(line)
        texts.append(row[time_column])
        if value_column is not None:
            values.append(csv_number(path, line, value_column, row[value_column], positive=False,
                                     error=TraceFormatError))
    if first_format is not None and first_format[0] == DATE_TIME and time_unit_s != 1.0:
        warn(f"{path}: time_unit_s={time_unit_s:g} is ignored: the timestamps are date-times (line {first_format[1]} "
             f"holds {texts[0]!r}), which carry their own unit; time_unit_s scales numeric timestamps only",
             TraceTimeUnitWarning)
    t = np.asarray(times)
    if time_round_s is not None:
        t = _rounded(t, time_round_s, np.asarray(lines), texts, path)
    slack_s = 16 * np.finfo(float).eps * float(np.abs(t).max())   # float rounding of the timestamps as parsed
    order = np.argsort(t, kind="stable")                            # (epoch seconds: about 6e-6 s)
    t = t[order] - t[order][0]
    if value_column is None:
        width = 1.0 if bin_s is None else bin_s
        index = _bin_index(t, width, path, slack_s)
        counts = np.bincount(index).astype(float)
        with np.errstate(over="ignore"):   # _finite names an overflow
            rates = counts / width
        return RateTrace(_finite(rates, index, np.asarray(lines)[order], width, path), width, str(path))
    v = np.asarray(values)[order]
    inferred = bin_s is None
    if bin_s is None:
        bin_s = _inferred_bin_s(t, np.asarray(lines)[order], path, slack_s, time_round_s)
    elif value_kind == "count":
        _warn_of_aliasing(t, bin_s, path, slack_s)
    index = _bin_index(t, bin_s, path, slack_s)
    rows = np.bincount(index)
    present = rows > 0
    with np.errstate(over="ignore"):   # _finite names an overflow
        if value_kind == "count":   # a bin's rows add up its requests
            rates = np.bincount(index, weights=v) / bin_s
        else:                       # rows at a finer spacing than bin_s each give the rate of an equal share of the bin
            rates = np.bincount(index, weights=v) / np.maximum(rows, 1)
    rates = _finite(rates, index, np.asarray(lines)[order], bin_s, path)
    if not present.all():
        if gaps == "error":
            first = int(np.argmin(present))                       # the first missing bin, and the rows around it
            after = int(np.searchsorted(index, first))
            spacing = float(np.median(np.diff(np.unique(t))))   # (>= 2 rows: a gap lies between two)
            finer = not inferred and spacing > bin_s + slack_s
            raise TraceGapError(
                f"{path}: {int((~present).sum())} bin(s) of {bin_s:g} s have no row (the first gap is between "
                f"lines {np.asarray(lines)[order][after - 1]} and {np.asarray(lines)[order][after]}); missing rows "
                f"are missing data, not zero load: pass gaps='zero' to read them as no requests or gaps='join' to "
                f"splice them out"
                + (f"; the bin width, {bin_s:g} s, is the smallest spacing between rows: if one stray row set it, "
                   f"pass bin_s" if inferred else "")
                + (f"; but bin_s={bin_s:g} s is finer than the rows' usual spacing, {spacing:g} s: if that is how "
                   f"often they were written, give a bin_s of {spacing:g} s or more (gaps='zero' would count each "
                   f"row's requests in one {bin_s:g} s bin, and gaps='join' would squeeze the trace)" if finer else ""))
        if gaps == "join":
            rates = rates[present]
    return RateTrace(rates, bin_s, str(path))


def _finite(rates: np.ndarray, index: np.ndarray, lines: np.ndarray, bin_s: float, path: Path) -> np.ndarray:
    """``rates`` if all are finite; else a ``TraceFormatError`` naming the file and the first row of the first bin whose
    rate overflows (counts near 1e308 that add up in a bin, or a count over a tiny ``bin_s``). ``index`` is each row's
    bin and ``lines`` its line, both in time order."""
    finite = np.isfinite(rates)
    if finite.all():
        return rates
    first = int(np.argmin(finite))
    line = lines[int(np.searchsorted(index, first))]
    raise TraceFormatError(f"{path}:{line}: the rate of the {bin_s:g} s bin this row is in overflows (over "
                           f"{np.finfo(float).max:.3g} req/s, the largest float); are the values, time_unit_s and "
                           f"bin_s right?")


def _inferred_bin_s(t: np.ndarray, lines: np.ndarray, path: Path, slack_s: float,
                    time_round_s: float | None = None) -> float:
    """The bin width of an aggregated trace with times ``t`` (sorted, from 0) on ``lines``: the smallest spacing
    between rows, so that a row missing from the grid is a gap (the median spacing read a trace missing most odd
    minutes as 2-minute bins, summing rows). A :class:`TraceBinError` if there is one timestamp only, or a spacing
    that is not a whole number of bins (within :data:`BIN_TOLERANCE` of one, plus twice ``slack_s``, the float
    rounding of the timestamps; the message says what to pass, in the light of the ``time_round_s`` they were read
    with). The width returned is the span over the number of bins, so that float rounding of one spacing does not add
    up over the trace."""
    steps = np.diff(t)
    rows = np.flatnonzero(steps > 0)   # row i is followed by a later one (rows at one time share a bin)
    if len(rows) == 0:
        raise TraceBinError(f"{path}: a single timestamp; pass bin_s to give the bin width")
    smallest = rows[np.argmin(steps[rows])]
    ratio = steps[rows] / steps[smallest]
    bins = np.round(ratio)
    off = np.abs(ratio - bins) > BIN_TOLERANCE + 2 * slack_s / steps[smallest]
    if off.any():
        i = rows[np.argmax(off)]
        raise TraceBinError(f"{path}: lines {lines[i]} and {lines[i + 1]} are {steps[i]:g} s apart, not a whole number "
                            f"of the smallest spacing between rows, {steps[smallest]:g} s (lines {lines[smallest]} and "
                            f"{lines[smallest + 1]}): the rows are not on one grid of bins; pass bin_s to give the "
                            + ("bin width, or time_round_s if the timestamps drift around a grid (e.g. 60 for rows a "
                               "minute apart give or take a few seconds)" if time_round_s is None else
                               f"bin width (time_round_s={time_round_s:g} left them off one grid: give it the rows' "
                               f"spacing)"))
    width = float(t[-1] / bins.sum())
    if not BIN_S_RANGE[0] <= width <= BIN_S_RANGE[1]:   # (RateTrace would refuse it naming no file)
        raise TraceBinError(f"{path}: lines {lines[smallest]} and {lines[smallest + 1]} are {steps[smallest]:g} s "
                            f"apart, which makes bins of {width:g} s, outside the {BIN_S_RANGE[0]:g} to "
                            f"{BIN_S_RANGE[1]:g} s a trace's bins may have; check time_unit_s (seconds per unit of the "
                            "time column), or pass bin_s")
    return width


def _warn_of_aliasing(t: np.ndarray, bin_s: float, path: Path, slack_s: float) -> None:
    """Warn (:class:`TraceAliasWarning`) if the given ``bin_s`` is coarser than the spacing of most rows at times ``t``
    (sorted, from 0) but not a whole multiple of it (within :data:`BIN_TOLERANCE`): 90 s bins over per-minute counts
    hold two rows, then one, so a constant count reads as rates alternating between two and one."""
    steps = np.diff(t)
    steps = steps[steps > slack_s]
    if not len(steps):
        return
    spacings, n_rows = np.unique(np.round(steps, 6), return_counts=True)   # to the microsecond: float rounding aside
    if 2 * n_rows.max() <= len(steps):   # rows on no one grid: no bin width holds as many rows each
        return
    common = float(spacings[np.argmax(n_rows)])
    ratio = bin_s / common
    if ratio > 1 and abs(ratio - round(ratio)) > BIN_TOLERANCE + 2 * slack_s / common:
        warn(f"{path}: bin_s={bin_s:g} is not a whole multiple of the spacing of most rows, {common:g} s: its bins "
             f"add up the counts of {int(np.floor(ratio))} or {int(np.ceil(ratio))} rows, so a steady load reads as "
             f"alternating rates; give a multiple of {common:g}", TraceAliasWarning)


def _rounded(t: np.ndarray, time_round_s: float, lines: np.ndarray, texts: list[str], path: Path) -> np.ndarray:
    """The times ``t`` (of the rows on ``lines``, written ``texts``, in file order), each put on the nearest point of a
    grid of step ``time_round_s`` placed at the rows' mean (circular) offset from the multiples of the step, so that a
    grid stamped mid-bin, in a half-hour time zone or by a scraper started at any second rounds as well as one on
    whole multiples. A :class:`TraceRoundError` names the first two rows of different times put on one point."""
    if np.abs(t).max() > MAX_ROUNDED_STEPS * time_round_s:
        raise TraceFormatError(f"{path}: time_round_s={time_round_s:g} is finer than timestamps of up to "
                               f"{np.abs(t).max():.3g} s can be told apart by (over {MAX_ROUNDED_STEPS:.0e} steps of "
                               f"it); is it in seconds?")
    angle = 2 * np.pi * np.mod(t, time_round_s) / time_round_s
    phase = time_round_s * float(np.angle(np.exp(1j * angle).mean())) / (2 * np.pi)
    rounded = phase + np.round((t - phase) / time_round_s) * time_round_s
    order = np.lexsort((t, rounded))
    merged = np.flatnonzero((np.diff(rounded[order]) == 0) & (np.diff(t[order]) > 0))
    if len(merged):
        first, second = order[merged[0]], order[merged[0] + 1]
        raise TraceRoundError(f"{path}: lines {lines[first]} and {lines[second]} ({texts[first]!r} and "
                              f"{texts[second]!r}, {t[second] - t[first]:g} s apart) round to one time with "
                              f"time_round_s={time_round_s:g}, which cannot tell their bins apart: give it the rows' "
                              f"spacing (their timestamps must drift by less than half of it)")
    return rounded


def _bin_index(t: np.ndarray, bin_s: float, path: Path, slack_s: float) -> np.ndarray:
    """The bin of each time ``t`` (from 0): a time short of a bin's start by less than :data:`BIN_TOLERANCE` of a bin
    plus ``slack_s`` (the float rounding of the timestamps as parsed) is in that bin, so that rows on a decimal grid
    (0.1, 0.2, ...) are not split by float rounding."""
    if len(t) and t[-1] / bin_s > MAX_BINS:
        raise TraceFormatError(f"{path}: the timestamps span {t[-1]:.3g} s, over {MAX_BINS:.0e} bins of {bin_s:g} s; "
                               f"is time_unit_s right?")
    return np.floor(t / bin_s + BIN_TOLERANCE + slack_s / bin_s).astype(np.int64)
