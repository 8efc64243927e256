"""Arrival-rate workloads: synthetic profiles and replay of a user's trace.

A workload is a frozen, serialisable description (``to_dict`` / :func:`workload_from_dict`). Calling
:meth:`Workload.realise` with a numpy ``Generator`` draws one realisation as a :class:`RateCurve`, a piecewise-constant
rate on a uniform grid that the simulators query. All randomness comes from the generator passed in.

=============  =====================================================================================
kind           parameters
=============  =====================================================================================
``constant``   ``rate``
``diurnal``    ``mean_rate``, ``amplitude`` (0..1), ``period_s``, ``phase`` (0..1 of a period; random if None)
``step``       ``base_rate``, ``peak_rate``, ``start_s``, ``ramp_s`` (0 = a step), ``end_s`` (None = stays up)
``mmpp``       ``rates`` (low, high), ``mean_sojourn_s`` (low, high; >= 1 s): two-state Markov-modulated Poisson
``spikes``     ``base_rate``, ``spikes_per_hour``, ``multiplier``, ``duration_s``: Poisson-timed bursts
``trace``      a CSV file, or a :class:`~flash_envs.data.trace_csv.RateTrace` held inline, replayed (see
               :class:`TraceWorkload`)
=============  =====================================================================================

Every workload has a ``scale`` that multiplies its rates. Every field is checked when the workload is made (type,
finiteness and range), with an error that names it, so a bad task file fails as it is loaded. So is the peak rate, scale
included: at most :data:`MAX_RATE` req/s (a trace read from a CSV file: when it is first realised, which an env does
for a task it is given).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np

from flash_envs.data.trace_csv import RateTrace, check_reader_options, read_rate_trace
from flash_envs.fields import check_mapping, check_number


#: The largest mean NumPy's ``Generator.poisson`` draws a count for, as NumPy sets it (above: "lam value too large").
POISSON_LAM_MAX = float(np.iinfo(np.int64).max) - 10 * math.sqrt(float(np.iinfo(np.int64).max))   # 9.22e18
#: The longest sub-step a rate must be drawn for (s): an env's sub-step is at most its episode, which is at most
#: ``flash_envs.envs.task_env.MAX_EPISODE_S`` (365 days; not imported: that module imports this one).
LONGEST_SUBSTEP_S = 365 * 86400.0
#: The largest rate a workload may reach (req/s, ``scale`` included). The fast fidelity draws each sub-step's arrivals
#: as one Poisson count, which NumPy takes for up to :data:`POISSON_LAM_MAX` (9.22e18) arrivals expected: 2.92e11 req/s
#: over :data:`LONGEST_SUBSTEP_S`. This round bound below it leaves room for the float rounding of the rate curve's
#: running sum that the count is taken from, and is a million times the busiest shared trace.
MAX_RATE = 1e11
#: A time (s) no simulation reaches: :meth:`RateCurve.inverse_integral` gives an arrival later than it as never
#: (``inf``), as for a curve of zero rates (a run lasts at most a year, :data:`LONGEST_SUBSTEP_S`).
NEVER_S = 1e300


class RateCurve:
    """A piecewise-constant arrival rate ``rates[i]`` (req/s) on ``[i*resolution_s, (i+1)*resolution_s)``.

    Beyond its end the curve repeats from the start, so a simulation may run past the horizon it was drawn for.
    """

    def __init__(self, rates: np.ndarray, resolution_s: float) -> None:
        rates = np.asarray(rates, dtype=float)
        if rates.ndim != 1 or len(rates) == 0:
            raise ValueError("a rate curve needs a non-empty 1-D array of rates")
        if np.any(~np.isfinite(rates)) or np.any(rates < 0):
            raise ValueError("arrival rates must be finite and >= 0")
        self.rates = rates
        self.resolution_s = float(resolution_s)
        self.period_s = len(rates) * self.resolution_s
        self._cumulative = np.concatenate(([0.0], np.cumsum(rates) * self.resolution_s))

    def rate_at(self, t: float) -> float:
        """Instantaneous rate (req/s) at time ``t``."""
        return float(self.rates[int((t % self.period_s) // self.resolution_s)])

    def integral(self, t: float) -> float:
        """Expected number of arrivals in ``[0, t)``."""
        cycles, rest = divmod(t, self.period_s)
        i = int(rest // self.resolution_s)
        partial = self._cumulative[i] + self.rates[min(i, len(self.rates) - 1)] * (rest - i * self.resolution_s)
        return float(cycles * self._cumulative[-1] + partial)

    def mean_rate(self, t0: float, t1: float) -> float:
        """Average rate over ``[t0, t1)``."""
        return (self.integral(t1) - self.integral(t0)) / (t1 - t0)

    def inverse_integral(self, target: float) -> float:
        """The time ``t`` at which :meth:`integral` reaches ``target`` (for time-rescaled Poisson arrivals)."""
        total = self._cumulative[-1]
        if total <= 0 or target * self.period_s / NEVER_S > total:   # (a tiny total overflowed target / total)
            return float("inf")
        cycles, rest = divmod(target, total)
        i = int(np.searchsorted(self._cumulative, rest, side="right")) - 1
        i = min(i, len(self.rates) - 1)
        while self.rates[i] <= 0:  # skip zero-rate cells (their cumulative is flat)
            i += 1
        offset = (rest - self._cumulative[i]) / self.rates[i]
        return float(cycles * self.period_s + i * self.resolution_s + offset)


@dataclass(frozen=True)
class Workload:
    """Base class: a serialisable arrival-rate profile. Subclasses implement :meth:`_rates`."""

    kind: ClassVar[str] = ""
    scale: float = 1.0

    def __post_init__(self) -> None:
        _check_nonnegative(self, "scale")

    def realise(self, rng: np.random.Generator, duration_s: float, resolution_s: float = 1.0) -> RateCurve:
        """Draw one realisation covering ``[0, duration_s)`` on a grid of ``resolution_s`` seconds."""
        n = max(1, int(np.ceil(duration_s / resolution_s)))
        times = np.arange(n) * resolution_s
        return RateCurve(self.scale * self._rates(rng, times), resolution_s)

    def _rates(self, rng: np.random.Generator, times: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form, with ``kind`` naming the profile; inverse of :func:`workload_from_dict`."""
        return {"kind": self.kind, **_plain(asdict(self))}


def _plain(value: Any) -> Any:
    """``value`` with tuples as lists and numpy scalars as Python numbers, so that YAML's safe dumper takes it."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


#: The least a diurnal period (s) or a trace's ``time_scale`` (simulated s per trace s) may be, a millionth:
#: realised times are divided by them, and 1e-310 made them inf (NaN rates, an out-of-range trace bin).
SHORTEST_TIME_S = 1e-6


def _check_nonnegative(obj: object, *names: str) -> None:
    for name in names:
        check_number(f"{type(obj).__name__}.{name}", getattr(obj, name), 0.0)


def _check_positive(obj: object, *names: str) -> None:
    for name in names:
        check_number(f"{type(obj).__name__}.{name}", getattr(obj, name), 0.0, strict=True)


def _check_peak(obj: object, name: str, value: float, factors: dict[str, float]) -> None:
    """Refuse ``obj`` if its peak rate, its field ``name`` (of ``value``) times ``factors`` (by what they are named), is
    over :data:`MAX_RATE`, with an error that names the field, its value and the largest value it may take."""
    factor = math.prod(float(f) for f in factors.values())   # (Python floats: an overflow is inf, not a numpy warning)
    peak = factor * float(value)
    if peak > MAX_RATE:
        formula = " * ".join((*factors, name)) + " = " + " * ".join(f"{float(v):g}" for v in (*factors.values(), value))
        raise ValueError(f"{type(obj).__name__}.{name} must be <= {MAX_RATE / factor:.4g} here, got {value!r}: the "
                         f"workload's peak rate, {formula} = {peak:.4g} req/s, is over {MAX_RATE:g} req/s, the most "
                         f"the simulators draw arrivals for (the fast fidelity draws a sub-step's arrivals as one "
                         f"Poisson count, of a mean NumPy takes up to {POISSON_LAM_MAX:.3g}, and a sub-step may last "
                         f"a whole episode, up to {LONGEST_SUBSTEP_S / 86400:g} days)")


def _check_pair(obj: object, name: str, *, strict: bool) -> None:
    """Check that field ``name`` of ``obj`` is a pair of finite numbers >= 0 (> 0 if ``strict``); store it as a tuple
    of floats."""
    label, value = f"{type(obj).__name__}.{name}", getattr(obj, name)
    if not isinstance(value, (list, tuple, np.ndarray)) or len(value) != 2:
        raise ValueError(f"{label} must be a pair (low, high) of numbers, got {value!r}")
    pair = tuple(check_number(f"{label}[{i}]", v, 0.0, strict=strict) for i, v in enumerate(value))
    object.__setattr__(obj, name, pair)


@dataclass(frozen=True)
class ConstantWorkload(Workload):
    """A constant rate of ``rate`` req/s."""

    kind: ClassVar[str] = "constant"
    rate: float = 10.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_nonnegative(self, "rate")
        _check_peak(self, "rate", self.rate, {"scale": self.scale})

    def _rates(self, rng: np.random.Generator, times: np.ndarray) -> np.ndarray:
        return np.full(len(times), self.rate)


@dataclass(frozen=True)
class DiurnalWorkload(Workload):
    """A sinusoid: ``mean_rate * (1 + amplitude * sin(2 pi (t / period_s + phase)))`` req/s.

    ``mean_rate`` in req/s, ``amplitude`` in [0, 1] (relative swing), ``period_s`` in seconds (at least
    :data:`SHORTEST_TIME_S`), ``phase`` a fraction of a period in [0, 1] (``None``: drawn uniformly in [0, 1) for
    each realisation).
    """

    kind: ClassVar[str] = "diurnal"
    mean_rate: float = 10.0
    amplitude: float = 0.5
    period_s: float = 86400.0
    phase: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_nonnegative(self, "mean_rate")
        check_number("DiurnalWorkload.period_s", self.period_s, SHORTEST_TIME_S)
        check_number("DiurnalWorkload.amplitude", self.amplitude, 0.0, 1.0)
        if self.phase is not None:
            check_number("DiurnalWorkload.phase", self.phase, 0.0, 1.0)
        _check_peak(self, "mean_rate", self.mean_rate, {"scale": self.scale, "(1 + amplitude)": 1 + self.amplitude})

    def _rates(self, rng: np.random.Generator, times: np.ndarray) -> np.ndarray:
        phase = rng.random() if self.phase is None else self.phase
        return self.mean_rate * (1 + self.amplitude * np.sin(2 * np.pi * (times / self.period_s + phase)))


@dataclass(frozen=True)
class StepWorkload(Workload):
    """``base_rate`` req/s, rising to ``peak_rate`` req/s at ``start_s`` seconds and back to ``base_rate`` at ``end_s``.

    The rise is a linear ramp over ``ramp_s`` seconds (0: an instant step); the fall at ``end_s`` is instant, and
    ``end_s=None`` keeps the peak to the end.
    """

    kind: ClassVar[str] = "step"
    base_rate: float = 5.0
    peak_rate: float = 20.0
    start_s: float = 600.0
    ramp_s: float = 0.0
    end_s: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_nonnegative(self, "base_rate", "peak_rate", "start_s", "ramp_s")
        if 0 < self.ramp_s < SHORTEST_TIME_S:   # (5e-324 overflowed the ramp's (t - start) / ramp_s)
            raise ValueError(f"StepWorkload.ramp_s must be 0 (a step) or at least {SHORTEST_TIME_S:g} s, got "
                             f"{self.ramp_s!r}")
        if self.end_s is not None:
            check_number("StepWorkload.end_s", self.end_s, self.start_s + self.ramp_s)   # after the ramp is done
        higher = "peak_rate" if self.peak_rate >= self.base_rate else "base_rate"
        _check_peak(self, higher, getattr(self, higher), {"scale": self.scale})

    def _rates(self, rng: np.random.Generator, times: np.ndarray) -> np.ndarray:
        if self.ramp_s > 0:
            level = np.clip((times - self.start_s) / self.ramp_s, 0.0, 1.0)
        else:
            level = (times >= self.start_s).astype(float)
        if self.end_s is not None:
            level = np.where(times >= self.end_s, 0.0, level)
        return self.base_rate + (self.peak_rate - self.base_rate) * level


#: The shortest mean stay of an MMPP state (s): the default grid of :meth:`Workload.realise`.
MIN_SOJOURN_S = 1.0


@dataclass(frozen=True)
class MMPPWorkload(Workload):
    """A two-state Markov-modulated rate: ``rates`` (low, high) req/s, alternating with exponentially distributed
    stays of mean ``mean_sojourn_s`` (low, high) seconds, each at least :data:`MIN_SOJOURN_S`, starting in a state
    drawn from the stationary distribution.
    """

    kind: ClassVar[str] = "mmpp"
    rates: tuple[float, float] = (5.0, 20.0)
    mean_sojourn_s: tuple[float, float] = (300.0, 60.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_pair(self, "rates", strict=False)
        _check_pair(self, "mean_sojourn_s", strict=True)
        for i, stay in enumerate(self.mean_sojourn_s):
            if stay < MIN_SOJOURN_S:
                raise ValueError(f"MMPPWorkload.mean_sojourn_s[{i}] must be >= {MIN_SOJOURN_S:g} s, the grid a "
                                 f"workload is realised on (shorter stays average out within a step of it, and "
                                 f"realising loops over every stay), got {stay!r}")
        higher = int(self.rates[1] >= self.rates[0])
        _check_peak(self, f"rates[{higher}]", self.rates[higher], {"scale": self.scale})

    def _rates(self, rng: np.random.Generator, times: np.ndarray) -> np.ndarray:
        out = np.empty(len(times))
        state = int(rng.random() < self.mean_sojourn_s[1] / sum(self.mean_sojourn_s))  # stationary start
        t, end = 0.0, times[-1] + 1e-9
        while t <= end:
            stay = rng.exponential(self.mean_sojourn_s[state])
            out[_span(times, t, t + stay)] = self.rates[state]
            t += stay
            state = 1 - state
        return out


#: The most bursts a :class:`SpikeWorkload` starts per hour: one a second of the default grid, as an MMPP changes
#: state at most once a second (:data:`MIN_SOJOURN_S`) on average. Realising loops over the bursts, and 1e300 an hour
#: failed in NumPy's Poisson draw of their number.
MAX_SPIKES_PER_HOUR = 3600.0 / MIN_SOJOURN_S


@dataclass(frozen=True)
class SpikeWorkload(Workload):
    """``base_rate`` req/s with bursts of ``multiplier`` x ``base_rate`` lasting ``duration_s`` seconds each.

    Burst starts are uniform over the horizon, their number Poisson with mean ``spikes_per_hour`` per hour (at most
    :data:`MAX_SPIKES_PER_HOUR`); overlapping bursts do not add up.
    """

    kind: ClassVar[str] = "spikes"
    base_rate: float = 10.0
    spikes_per_hour: float = 4.0
    multiplier: float = 3.0
    duration_s: float = 60.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_nonnegative(self, "base_rate", "multiplier")
        check_number("SpikeWorkload.spikes_per_hour", self.spikes_per_hour, 0.0, MAX_SPIKES_PER_HOUR)
        _check_positive(self, "duration_s")
        _check_peak(self, "base_rate", self.base_rate,
                    {"scale": self.scale, "max(1, multiplier)": max(1.0, self.multiplier)})

    def _rates(self, rng: np.random.Generator, times: np.ndarray) -> np.ndarray:
        horizon = times[-1] + (times[1] - times[0] if len(times) > 1 else 1.0)   # the grid's end
        n = rng.poisson(self.spikes_per_hour * horizon / 3600.0)
        out = np.full(len(times), self.base_rate)
        for start in rng.uniform(0, horizon, size=n):
            out[_span(times, start, start + self.duration_s)] = self.base_rate * self.multiplier
        return out


def _span(times: np.ndarray, start: float, end: float) -> slice:
    """The grid ``times`` (ascending) within ``[start, end)``, as a slice: a mask over the whole grid for each stay or
    burst made realising an episode quadratic in its length (30 days took 15 s)."""
    return slice(*np.searchsorted(times, (start, end), side="left"))


def _file_version(path: str) -> tuple[str, int, int] | None:
    """What tells one state of the file ``path`` from another: its absolute path, modification time and size (None
    if it cannot be read; reading it then raises the error that names it)."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return os.path.realpath(path), stat.st_mtime_ns, stat.st_size


@lru_cache(maxsize=32)
def _cached_trace(path: str, version: tuple[str, int, int] | None, time_column: str, value_column: str | None,
                  value_kind: str, time_unit_s: float, bin_s: float | None, gaps: str,
                  time_round_s: float | None) -> RateTrace:
    """``read_rate_trace`` of ``path``, cached per ``version`` of the file (:func:`_file_version`)."""
    return read_rate_trace(path, time_column, value_column, value_kind, time_unit_s, bin_s, gaps, time_round_s)


@dataclass(frozen=True)
class TraceWorkload(Workload):
    """Replay of a request trace: a CSV file (see :func:`flash_envs.data.trace_csv.read_rate_trace`) or a
    :class:`RateTrace` already in memory (:meth:`from_trace`, e.g. one of :mod:`flash_envs.data.public`).

    The simulated rate is ``scale * trace_rate(t / time_scale + start)``: ``time_scale`` simulated seconds per trace
    second, at least :data:`SHORTEST_TIME_S` (``time_scale=0.5`` plays one trace minute in 30 simulated seconds, e.g.
    one control interval), rates kept in requests per trace second then multiplied by ``scale``. With ``mean_rate`` set,
    the rates are instead scaled so that the whole trace averages ``mean_rate`` req/s (``scale`` must then stay 1).
    ``start_s`` is the trace offset (seconds) where replay begins; ``None`` draws it uniformly from the trace for each
    realisation. Replay wraps around at the end of the trace. ``gaps`` says what bins without a row in the file are, and
    ``time_round_s`` the step of the grid that drifting timestamps are put on (see ``read_rate_trace``).

    A CSV workload is described by its ``path`` and reader options (``time_column`` .. ``gaps``, ``time_round_s``),
    and its dict form names the file, which is read when a realisation is first drawn and again only once the file has
    changed (its modification time or size; a relative path resolves against the working directory at each read). An
    in-memory workload has no path and takes no reader options: the trace itself is the description, so its dict form
    holds the trace inline (``"trace": {"rates": [...], "bin_s": ..., "source": ...}``, ``source`` for provenance
    only) and rebuilds, from a dict or YAML on any machine, to an equal workload that replays bit-identical rates.
    """

    kind: ClassVar[str] = "trace"
    path: str = ""
    time_column: str = "timestamp"
    value_column: str | None = "requests"
    value_kind: str = "count"
    time_unit_s: float = 1.0
    bin_s: float | None = None
    gaps: str = "error"
    time_scale: float = 1.0
    mean_rate: float | None = None
    start_s: float | None = None
    trace: RateTrace | None = None
    time_round_s: float | None = None

    CSV_OPTIONS: ClassVar[tuple[str, ...]] = ("path", "time_column", "value_column", "value_kind", "time_unit_s",
                                              "bin_s", "gaps", "time_round_s")

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.path, os.PathLike):
            object.__setattr__(self, "path", os.fspath(self.path))
        if not isinstance(self.path, str):
            raise TypeError(f"TraceWorkload.path must be a file path (a string), got {type(self.path).__name__}")
        check_reader_options(self.time_column, self.value_column, self.value_kind, self.time_unit_s, self.bin_s,
                             self.gaps, owner="TraceWorkload.", time_round_s=self.time_round_s)
        check_number("TraceWorkload.time_scale", self.time_scale, SHORTEST_TIME_S)
        if self.mean_rate is not None:
            _check_nonnegative(self, "mean_rate")
            if self.scale != 1.0:
                raise ValueError(f"TraceWorkload: mean_rate={self.mean_rate} sets the scale; leave scale at 1, "
                                 f"not {self.scale}")
        if self.start_s is not None:
            _check_nonnegative(self, "start_s")
        if self.trace is None:
            if not self.path:
                raise ValueError("TraceWorkload needs a CSV path (or an in-memory RateTrace)")
            return
        if not isinstance(self.trace, RateTrace):
            raise ValueError(f"TraceWorkload.trace must be a RateTrace, got {type(self.trace).__name__}")
        self._scaled_rates(self.trace)   # an all-zero trace cannot be scaled to a mean_rate > 0
        defaults = {f.name: f.default for f in fields(self)}
        given = sorted(name for name in self.CSV_OPTIONS if getattr(self, name) != defaults[name])
        if given:
            raise ValueError(f"TraceWorkload: an in-memory trace ({self.trace.source or 'no source'}) is replayed as "
                             f"it is; the CSV option(s) {given} do not apply (the source is in trace.source)")

    @classmethod
    def from_trace(cls, trace: RateTrace, **options: Any) -> "TraceWorkload":
        """A replay of an already-loaded :class:`RateTrace` (e.g. from :mod:`flash_envs.data.public`).

        ``options`` are the replay options (``time_scale``, ``mean_rate``, ``start_s``, ``scale``); the CSV reader
        options do not apply. The workload serialises with the trace inline (see the class docstring).
        """
        return cls(trace=trace, **options)

    def load(self) -> RateTrace:
        """The trace replayed: the in-memory one, or the CSV file read (and cached) with this workload's options."""
        if self.trace is not None:
            return self.trace
        return _cached_trace(self.path, _file_version(self.path), self.time_column, self.value_column,
                             self.value_kind, self.time_unit_s, self.bin_s, self.gaps, self.time_round_s)

    def _scaled_rates(self, trace: RateTrace) -> np.ndarray:
        """The trace's rates, scaled to average ``mean_rate`` when it is set; a ValueError if they, times ``scale``,
        peak over :data:`MAX_RATE`."""
        rates, source = trace.rates, trace.source or "(in memory)"
        if self.mean_rate is None:
            _check_peak(self, "scale", self.scale, {f"the peak of the trace {source}": rates.max()})
            return rates
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):   # refused below
            mean = rates.mean()
            if mean <= 0 < self.mean_rate:
                raise ValueError(f"TraceWorkload: the trace {source} has no requests, so it cannot be scaled to "
                                 f"mean_rate={self.mean_rate}")
            factor = self.mean_rate / mean if mean > 0 else 0.0
            scaled = rates * factor
        if not (np.isfinite(mean) and np.isfinite(factor) and np.all(np.isfinite(scaled))):   # a sum past 1e308 was
            raise ValueError(f"TraceWorkload: the trace {source} (peak {rates.max():.3g} req/s) is too close to the "
                             f"float limits to scale to mean_rate={self.mean_rate}")   # an all-zero workload
        _check_peak(self, "mean_rate", self.mean_rate,   # (scale is 1)
                    {f"peak / mean of the trace {source}": rates.max() / mean if mean > 0 else 0.0})
        return scaled

    def _rates(self, rng: np.random.Generator, times: np.ndarray) -> np.ndarray:
        trace = self.load()
        rates = self._scaled_rates(trace)
        start = rng.uniform(0, trace.duration_s) if self.start_s is None else self.start_s
        trace_times = start % trace.duration_s + times / self.time_scale   # (start as given: 1e19 s left no bins)
        return rates[(trace_times // trace.bin_s % len(rates)).astype(np.int64)]   # wrapped before the int64 cast

    def to_dict(self) -> dict[str, Any]:
        """A CSV workload: ``kind``, ``scale``, ``path``, the reader and the replay options (``time_round_s`` only
        when set, so that a workload without it keeps the dict form, and with it the checkpoints' task records and the
        reference caches' keys, that it had before the option existed). An in-memory one: ``kind``, ``scale``, the
        replay options and ``trace`` (:meth:`RateTrace.to_dict`), plain lists and floats."""
        if self.trace is None:
            d = super().to_dict()
            d.pop("trace")
            if self.time_round_s is None:
                d.pop("time_round_s")
            return d
        skip = {*self.CSV_OPTIONS, "trace"}
        replay = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}
        return {"kind": self.kind, **_plain(replay), "trace": self.trace.to_dict()}


WORKLOADS: dict[str, type[Workload]] = {
    cls.kind: cls
    for cls in (ConstantWorkload, DiurnalWorkload, StepWorkload, MMPPWorkload, SpikeWorkload, TraceWorkload)
}


def workload_from_dict(d: dict[str, Any]) -> Workload:
    """Rebuild a workload from :meth:`Workload.to_dict` output, naming any unknown kind or field (a trace workload's
    inline ``trace`` dict becomes a :class:`RateTrace` again)."""
    d = dict(check_mapping(d, "workload"))
    kind = d.pop("kind", None)
    if not isinstance(kind, str) or kind not in WORKLOADS:   # (a list is unhashable: "in" raised a TypeError)
        raise ValueError(f"unknown workload kind {kind!r}; expected one of {sorted(WORKLOADS)}")
    cls = WORKLOADS[kind]
    known = set(cls.__dataclass_fields__)
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"unknown field(s) {sorted(unknown)} for workload kind {kind!r}; expected {sorted(known)}")
    if isinstance(d.get("trace"), dict):
        d["trace"] = RateTrace.from_dict(d["trace"])
    return cls(**d)
