"""Server power model: P-states, a SPECpower-fitted utilisation curve and DVFS scaling of idle and dynamic power.

Model
-----
A :class:`ServerType` runs at one of its P-states, the frequency fractions ``r = f / f_max`` in ``freq_levels``. Its
power at frequency fraction ``r`` and utilisation ``u`` (busy fraction of its cores, 0..1) is::

    P(r, u) = I * (1 - a_i + a_i * phi(r))  +  (C(u) - I) * (1 - a_d + a_d * phi(r))
    phi(r)  = r * v(r)**2,   v(r) = 1 - k * (1 - r)            (dynamic CMOS power ~ f V^2, V linear in f)

* ``C(u)`` is the :class:`UtilisationCurve` fitted to the server's 11 SPECpower_ssj2008 points (watts at active idle
  and 10%..100% load) and ``I = C(0)``. The model takes them as the power at f_max, an assumption: the results do not
  say whether the OS's power management lowered the frequency at low load (then ``C`` holds some of the DVFS saving
  already), nor whether turbo raised it at full load.
* ``a_i`` and ``a_d`` (:class:`FrequencyScaling`) are the shares of idle and of load-dependent power that scale with
  ``f V^2``; the rest (fans, memory, disks, uncore) does not. ``k`` is the relative voltage drop per unit of frequency
  drop. They are fitted to a measured power-vs-frequency table (:meth:`FrequencyScaling.fit`); such a table may not
  pin down how the drop splits between ``k`` and the shares (``flash power-fit --dvfs`` reports the fit's error
  with ``k`` held at several values).

``P`` increases in ``u`` (the curve is a non-negative mix of increasing functions) and in ``r`` (``phi`` increases for
``0 <= k <= 1``). Power is piecewise constant over a simulation sub-step, so energy is the exact sum of
``P * dt`` over sub-steps.

Fitting needs :mod:`scipy` (``scipy.optimize.nnls`` and ``least_squares``); evaluating the model needs numpy only.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any, Sequence, cast

import numpy as np

from flash_envs.fields import check_fields, check_number, check_whole, is_real_number

LOAD_POINTS = np.linspace(0.0, 1.0, 11)
"""The SPECpower_ssj2008 measurement points: active idle, then 10% .. 100% of the calibrated maximum throughput."""

CSTATE_EXIT_UTIL = 0.03
"""Utilisation scale of the idle-to-active step (leaving deep C-states) in the :class:`UtilisationCurve` basis."""


def _basis(u: np.ndarray) -> np.ndarray:
    """Increasing basis functions (0 at u=0, except the constant): constant, C-state exit, linear, convex, concave."""
    u = np.asarray(u, dtype=float)[..., None]
    return np.concatenate([np.ones_like(u), 1 - np.exp(-u / CSTATE_EXIT_UTIL), u, u**3, 1 - (1 - u) ** 3], axis=-1)


@dataclass(frozen=True)
class UtilisationCurve:
    """Server power (W) against utilisation at full speed: a non-negative mix of increasing basis functions.

    ``weights`` are the watts of the constant, C-state exit, linear, convex (u^3) and concave (1-(1-u)^3) terms.
    """

    weights: tuple[float, float, float, float, float]

    def __post_init__(self) -> None:
        w = np.asarray(self.weights, dtype=float)
        if w.shape != (5,) or not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError(f"UtilisationCurve needs 5 finite weights >= 0, got {self.weights!r}")

    @classmethod
    def fit(cls, watts: Sequence[float]) -> "UtilisationCurve":
        """Least relative-error fit to the 11 SPECpower points (non-negative least squares, so it is unique)."""
        from scipy.optimize import nnls

        y = check_watts(watts)
        design = _basis(LOAD_POINTS) / y[:, None]
        weights, _ = nnls(design, np.ones(len(y)))
        return cls(cast("tuple[float, float, float, float, float]", tuple(float(w) for w in weights)))   # one per term

    def __call__(self, u: float | np.ndarray) -> float | np.ndarray:
        u = np.asarray(u, dtype=float)
        if np.any((u < 0) | (u > 1)) or np.any(~np.isfinite(u)):
            raise ValueError(f"utilisation must be in [0, 1], got {u!r}")
        watts = _basis(u) @ np.asarray(self.weights)
        return float(watts) if watts.ndim == 0 else watts

    def at(self, u: float) -> float:
        """Watts at one utilisation ``u`` in [0, 1]: the scalar fast path of ``__call__`` for the simulator."""
        w = self.weights
        return (w[0] + w[1] * (1 - math.exp(-u / CSTATE_EXIT_UTIL)) + w[2] * u + w[3] * u**3
                + w[4] * (1 - (1 - u) ** 3))

    def mape(self, watts: Sequence[float]) -> float:
        """Mean absolute percentage error (%) of the curve at the 11 load points against measured ``watts``."""
        return float(percent_errors(self(LOAD_POINTS), check_watts(watts)).mean())


def percent_errors(predicted: np.ndarray, measured: Sequence[float] | np.ndarray) -> np.ndarray:
    """Per point, ``|predicted - measured| / measured`` in percent."""
    measured = np.asarray(measured, dtype=float)
    return np.abs(predicted - measured) / measured * 100


def are_freq_levels(levels: np.ndarray) -> bool:
    """Whether ``levels`` are P-states: >= 2 finite, increasing fractions of f_max in (0, 1], the last 1.0 (NaN fails
    every comparison, so it is no P-state)."""
    return bool(levels.ndim == 1 and len(levels) >= 2 and np.all(np.isfinite(levels)) and np.all(np.diff(levels) > 0)
                and levels[0] > 0 and levels[-1] == 1.0)


def check_watts(watts: Sequence[float]) -> np.ndarray:
    """``watts`` as an array, if it is a SPECpower curve: 11 finite points > 0 (idle, 10%..100% load), full load not
    below idle (real curves may dip between: one of the 400 shared ones does); a ValueError otherwise."""
    if isinstance(watts, (str, bytes)) or not all(is_real_number(w) for w in np.ravel(np.asarray(watts, dtype=object))):
        raise TypeError(f"a SPECpower curve is {len(LOAD_POINTS)} numbers (W at idle, 10%..100% load), got "
                        f"{watts!r}")
    y = np.asarray(watts, dtype=float)
    if y.shape != (len(LOAD_POINTS),):
        raise ValueError(f"a SPECpower curve has {len(LOAD_POINTS)} points (idle, 10%..100%), got {len(y)}")
    if not np.all(np.isfinite(y)) or np.any(y <= 0):
        raise ValueError(f"SPECpower watts must be finite and > 0, got {y.tolist()}")
    if y[-1] < y[0]:
        raise ValueError(f"SPECpower watts at 100% load ({y[-1]:g}) are below those at active idle ({y[0]:g}); "
                         "power grows with load")
    return y


def check_dvfs_table(freq_fraction: Sequence[float], idle_w: Sequence[float],
                     full_w: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A DVFS table's columns as float arrays; a ValueError unless they are >= 2 rows at distinct frequency fractions
    in (0, 1], one of them 1.0, with finite watts > 0 and full load not below idle in each row."""
    r, idle, full = (np.asarray(v, dtype=float) for v in (freq_fraction, idle_w, full_w))
    if not (r.shape == idle.shape == full.shape) or r.ndim != 1 or len(r) < 2:
        raise ValueError("a DVFS table needs >= 2 rows of (frequency fraction, idle W, full-load W)")
    if not (np.all(np.isfinite(r)) and np.all((r > 0) & (r <= 1)) and len(np.unique(r)) == len(r)):
        raise ValueError(f"a DVFS table's frequency fractions must be distinct numbers in (0, 1], got {r.tolist()}")
    if not np.any(np.isclose(r, 1.0)):
        raise ValueError(f"a DVFS table must include the full-speed row (fraction 1.0), got fractions {list(r)}")
    if not (np.all(np.isfinite(idle)) and np.all(np.isfinite(full)) and np.all(idle > 0) and np.all(full > 0)):
        raise ValueError(f"a DVFS table's watts must be finite and > 0, got idle {idle.tolist()}, full load "
                         f"{full.tolist()}")
    if np.any(full < idle):
        row = int(np.argmax(full < idle))
        raise ValueError(f"a DVFS table's full-load watts are below its idle watts at fraction {r[row]:g} "
                         f"({full[row]:g} W < {idle[row]:g} W); power grows with load")
    return r, idle, full


@dataclass(frozen=True)
class FrequencyScaling:
    """How idle and load-dependent power follow frequency: shares ``idle_share`` / ``dynamic_share`` scale as
    ``phi(r) = r * (1 - voltage_slope * (1 - r))**2``, the rest stays constant."""

    idle_share: float
    dynamic_share: float
    voltage_slope: float

    def __post_init__(self) -> None:
        for name in ("idle_share", "dynamic_share", "voltage_slope"):
            check_number(f"FrequencyScaling.{name}", getattr(self, name), 0.0, 1.0)

    def phi(self, r: float | np.ndarray) -> float | np.ndarray:
        """Relative switching power ``f V^2`` at frequency fraction ``r`` (1 at full speed)."""
        return r * (1 - self.voltage_slope * (1 - r)) ** 2

    def factors(self, r: float | np.ndarray) -> tuple[Any, Any]:
        """Multipliers of idle power and of load-dependent power at frequency fraction ``r``."""
        phi = self.phi(r)
        return 1 - self.idle_share + self.idle_share * phi, 1 - self.dynamic_share + self.dynamic_share * phi

    def table_errors(self, freq_fraction: Sequence[float], idle_w: Sequence[float],
                     full_w: Sequence[float]) -> np.ndarray:
        """Relative errors (predicted - measured) / measured of this scaling on a table of idle and full-load watts
        measured at each frequency fraction, anchored at its full-speed row (fraction 1.0, which must be there): the
        idle rows' errors, then the full-load rows'."""
        r, idle, full = check_dvfs_table(freq_fraction, idle_w, full_w)
        top = int(np.argmin(np.abs(r - 1.0)))
        fi, fd = self.factors(r)
        predicted = np.concatenate([idle[top] * fi, idle[top] * fi + (full[top] - idle[top]) * fd])
        measured = np.concatenate([idle, full])
        return (predicted - measured) / measured

    @classmethod
    def fit(cls, freq_fraction: Sequence[float], idle_w: Sequence[float], full_w: Sequence[float],
            voltage_slope: float | None = None) -> "FrequencyScaling":
        """Least relative-error fit (:meth:`table_errors`) to a table of idle and full-load watts measured at each
        frequency fraction, the fraction 1.0 among them: the model is anchored at full-speed power.

        With ``voltage_slope`` given, only the two shares are fitted, the slope held at it: a profile of the fit's
        error over the slope shows how well the table pins it down (``flash power-fit --dvfs`` reports one).
        """
        from scipy.optimize import least_squares

        table = check_dvfs_table(freq_fraction, idle_w, full_w)
        if voltage_slope is None:
            result = least_squares(lambda p: cls(*p).table_errors(*table), x0=[0.5, 0.5, 0.5],
                                   bounds=([0, 0, 0], [1, 1, 1]))
            return cls(*(float(np.clip(v, 0, 1)) for v in result.x))
        slope = check_number("voltage_slope", voltage_slope, 0.0, 1.0)
        result = least_squares(lambda p: cls(p[0], p[1], slope).table_errors(*table), x0=[0.5, 0.5],
                               bounds=([0, 0], [1, 1]))
        idle_share, dynamic_share = (float(np.clip(v, 0, 1)) for v in result.x)
        return cls(idle_share, dynamic_share, slope)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


#: The most cores a server type may have: the simulation follows each core (the largest of the 400 shared SPECpower
#: results has 80; 10**8 cores took 8 s per step).
MAX_CORES = 1024

DEFAULT_FREQ_LEVELS = (0.59925, 0.6993, 0.7989, 0.8989, 1.0)
"""The five P-states (fractions of f_max) of the CloudSim-DVFS experiments (Guerout et al., SIMPAT 39, 2013)."""


@dataclass(frozen=True)
class ServerType:
    """A server model: cores, per-core speed, P-states and its power curve.

    Args:
        name: a unique name (shown in task names and reports).
        cores: physical cores; each serves one request at a time.
        watts: the 11 SPECpower_ssj2008 points (W at active idle, 10%..100% load), taken as the power at f_max.
        scaling: how power follows frequency (:class:`FrequencyScaling`).
        core_speed: per-core speed at f_max relative to the reference core (100,000 ssj_ops per core); an application's
            ``service_time_ms`` is its time on the reference core.
        freq_levels: P-states as increasing fractions of f_max, the last one 1.0.
        max_mhz: f_max in MHz (informational).
        source: where the figures come from.
    """

    name: str
    cores: int
    watts: tuple[float, ...]
    scaling: FrequencyScaling
    core_speed: float = 1.0
    freq_levels: tuple[float, ...] = DEFAULT_FREQ_LEVELS
    max_mhz: float | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise TypeError(f"ServerType.name must be a str, got {self.name!r} ({type(self.name).__name__})")
        if not isinstance(self.scaling, FrequencyScaling):
            raise TypeError(f"server {self.name!r}: scaling must be a FrequencyScaling, got {self.scaling!r}")
        if not isinstance(self.source, str):
            raise TypeError(f"server {self.name!r}: source must be a str, got {self.source!r}")
        where = f"server {self.name!r}:"
        if check_whole(f"{where} cores", self.cores, 1) > MAX_CORES:
            raise ValueError(f"{where} cores must be at most {MAX_CORES}, got {self.cores!r}")
        check_number(f"{where} core_speed", self.core_speed, 0.0, strict=True)
        if self.max_mhz is not None:
            check_number(f"{where} max_mhz", self.max_mhz, 0.0, strict=True)
        try:
            check_watts(self.watts)
        except (TypeError, ValueError) as err:
            raise type(err)(f"{where} {err}") from None
        if isinstance(self.freq_levels, (str, bytes)) or not all(is_real_number(f) for f in self.freq_levels):
            raise TypeError(f"{where} freq_levels must be numbers (fractions of f_max), got {self.freq_levels!r}")
        object.__setattr__(self, "watts", tuple(float(w) for w in self.watts))
        object.__setattr__(self, "freq_levels", tuple(float(f) for f in self.freq_levels))
        levels = np.asarray(self.freq_levels)
        if not are_freq_levels(levels):
            raise ValueError(f"server {self.name!r}: freq_levels must be >= 2 increasing fractions in (0, 1] ending "
                             f"at 1.0, got {self.freq_levels!r}")

    @cached_property
    def curve(self) -> UtilisationCurve:
        """The utilisation curve fitted to :attr:`watts`."""
        return UtilisationCurve.fit(self.watts)

    @property
    def n_levels(self) -> int:
        """Number of P-states."""
        return len(self.freq_levels)

    def level_fraction(self, level: int) -> float:
        """Frequency fraction ``f / f_max`` of P-state ``level`` (0 = slowest)."""
        if int(level) != level or not 0 <= level < self.n_levels:
            raise ValueError(f"server {self.name!r} has P-states 0..{self.n_levels - 1}, got {level!r}")
        return self.freq_levels[int(level)]

    def power(self, freq_fraction: float | np.ndarray, utilisation: float | np.ndarray) -> float | np.ndarray:
        """Watts at frequency fraction ``f / f_max`` (0 < r <= 1) and utilisation ``u`` (0..1)."""
        r = np.asarray(freq_fraction, dtype=float)
        if np.any((r <= 0) | (r > 1)) or np.any(~np.isfinite(r)):
            raise ValueError(f"frequency fraction must be in (0, 1], got {freq_fraction!r}")
        idle = self.curve(0.0)
        idle_factor, dynamic_factor = self.scaling.factors(r)
        watts = idle * idle_factor + (self.curve(utilisation) - idle) * dynamic_factor
        return float(watts) if np.ndim(watts) == 0 else watts

    def power_at(self, freq_fraction: float, utilisation: float) -> float:
        """:meth:`power` for one operating point, without array handling (called every simulated sub-step)."""
        if not (0 < freq_fraction <= 1 and 0 <= utilisation <= 1):
            raise ValueError(f"need 0 < frequency fraction <= 1 and 0 <= utilisation <= 1, got {freq_fraction!r}, "
                             f"{utilisation!r}")
        idle = self.curve.weights[0]
        idle_factor, dynamic_factor = self.scaling.factors(freq_fraction)
        return idle * idle_factor + (self.curve.at(utilisation) - idle) * dynamic_factor

    @cached_property
    def peak_w(self) -> float:
        """The model's power at full speed and full load (the normaliser of the env's power observation and reward):
        the fitted curve at 100% load, within the fit's error of the measured SPECpower point."""
        return float(self.power(1.0, 1.0))

    def millicores(self, level: int) -> float:
        """Per-core speed at P-state ``level`` in the service model's millicores (1000 = reference core at f_max)."""
        return 1000.0 * self.core_speed * self.level_fraction(level)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["watts"] = list(self.watts)
        d["freq_levels"] = list(self.freq_levels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ServerType":
        check_fields(d, cls.__dataclass_fields__, "server type")
        d = dict(d)
        scaling = d.get("scaling")
        if not isinstance(scaling, dict):
            raise ValueError(f"server type {d.get('name')!r} needs a 'scaling' mapping, got {scaling!r}")
        fields = FrequencyScaling.__dataclass_fields__
        check_fields(scaling, fields, "FrequencyScaling", required=fields)
        d["scaling"] = FrequencyScaling(**scaling)
        return cls(**d)


@dataclass
class EnergyMeter:
    """Integrates piecewise-constant power over time: ``energy_j = sum(power_w * dt)``, exactly."""

    energy_j: float = 0.0
    time_s: float = 0.0

    def add(self, dt: float, power_w: float) -> None:
        """Account ``dt`` seconds at ``power_w`` watts."""
        if dt < 0 or not np.isfinite(power_w) or power_w < 0:
            raise ValueError(f"energy meter needs dt >= 0 and finite power >= 0, got dt={dt!r}, power={power_w!r}")
        self.energy_j += power_w * dt
        self.time_s += dt

    @property
    def mean_power_w(self) -> float:
        """Average watts over the metered time (0 before any time is metered)."""
        return self.energy_j / self.time_s if self.time_s > 0 else 0.0
