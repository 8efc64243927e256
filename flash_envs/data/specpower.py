"""Readers for server power data: SPECpower_ssj2008 result curves and power-vs-frequency (DVFS) tables.

* :func:`read_specpower_csv` reads any CSV with the SPECpower schema of ``specpower_ssj2008/specpower_curves.csv``:
  required columns ``server_id``, ``cores`` and ``watts_idle``, ``watts_10pct`` .. ``watts_100pct``; optional
  ``vendor``, ``system``, ``date_submitted``, ``cpu``, ``cpu_mhz``, ``chips``, ``ssj_ops_at_100pct`` (may be empty).
  Server ids are unique (an empty one stands for the line number).
* :func:`read_dvfs_csv` reads ``dvfs_cloudsim_grid5000/dvfs_power_tables.csv``: columns ``host_model``,
  ``freq_pct_of_max``, ``power_idle_w``, ``power_full_w``.

Bad input raises :class:`PowerDataError` naming the file, line, column and value.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Sequence

from flash_envs.data import DataFormatError, csv_number, csv_rows, dataset_path
from flash_envs.sim.power import (DEFAULT_FREQ_LEVELS, MAX_CORES, FrequencyScaling, ServerType, check_dvfs_table,
                                   check_watts)

SPECPOWER_CURVES = ("specpower_ssj2008", "specpower_curves.csv")
DVFS_TABLES = ("dvfs_cloudsim_grid5000", "dvfs_power_tables.csv")
WATTS_COLUMNS = ("watts_idle",) + tuple(f"watts_{p}pct" for p in range(10, 101, 10))
REFERENCE_SSJ_OPS_PER_CORE = 100_000.0
"""ssj_ops at 100% load per core of the reference core (``core_speed`` 1.0, 1000 millicores in the service model)."""


class PowerDataError(DataFormatError):
    """A power-data file does not follow its schema; the message names file, line, column and value."""


_number = partial(csv_number, error=PowerDataError)


@dataclass(frozen=True)
class SpecPowerRecord:
    """One SPECpower_ssj2008 result: the server and its 11-point power curve (W at idle, 10%..100% load)."""

    server_id: str
    cores: int
    watts: tuple[float, ...]
    vendor: str = ""
    system: str = ""
    date_submitted: str = ""
    cpu: str = ""
    cpu_mhz: float | None = None
    chips: int | None = None
    ssj_ops_at_100pct: float | None = None

    @property
    def core_speed(self) -> float:
        """Per-core speed relative to the reference core: ssj_ops per core / 100,000, to 4 decimals (1.0 when the
        result does not give ssj_ops)."""
        if self.ssj_ops_at_100pct is None:
            return 1.0
        return round(self.ssj_ops_at_100pct / self.cores / REFERENCE_SSJ_OPS_PER_CORE, 4)

    def server_type(self, scaling: FrequencyScaling,
                    freq_levels: Sequence[float] = DEFAULT_FREQ_LEVELS) -> ServerType:
        """The server type: per-core speed from ssj_ops per core (:attr:`core_speed`), P-states ``freq_levels``."""
        described = ", ".join(v for v in (f"{self.vendor} {self.system}".strip(), self.cpu, self.date_submitted) if v)
        return ServerType(name=f"specpower-{self.server_id}", cores=self.cores, watts=self.watts, scaling=scaling,
                          core_speed=self.core_speed, freq_levels=tuple(freq_levels), max_mhz=self.cpu_mhz,
                          source=f"SPECpower_ssj2008 result {self.server_id}" + (f": {described}" if described else ""))


@dataclass(frozen=True)
class DVFSTable:
    """Idle and full-load watts of one host measured at several frequencies (fractions of f_max)."""

    host: str
    freq_fraction: tuple[float, ...]
    idle_w: tuple[float, ...]
    full_w: tuple[float, ...]

    def __post_init__(self) -> None:
        try:
            check_dvfs_table(self.freq_fraction, self.idle_w, self.full_w)
        except ValueError as err:
            raise ValueError(f"DVFS table {self.host!r}: {err}") from None

    def fit(self) -> FrequencyScaling:
        """The :class:`FrequencyScaling` fitted to this table (least relative error; needs the fraction 1.0 row)."""
        return FrequencyScaling.fit(self.freq_fraction, self.idle_w, self.full_w)


def read_specpower_csv(path: str | Path) -> list[SpecPowerRecord]:
    """Every result of a SPECpower-schema CSV (see the module docstring for the columns)."""
    path = Path(path)
    records = []
    id_lines: dict[str, int] = {}
    blank_lines: set[int] = set()   # whose id is their line number
    for line, row in csv_rows(path, ("server_id", "cores") + WATTS_COLUMNS, PowerDataError):
        server_id = row["server_id"].strip() or str(line)
        if server_id in id_lines:
            first = id_lines[server_id]
            holds = (f"is blank, which stands for its line number {line}" if not row["server_id"].strip()
                     else f"holds {server_id!r}")
            of = f"line {first}" + (" (whose blank id stands for its line number)" if first in blank_lines else "")
            raise PowerDataError(f"{path}:{line}: column 'server_id' {holds}, already the id of {of}; each result "
                                 f"needs its own id (it names the server type)")
        id_lines[server_id] = line
        if not row["server_id"].strip():
            blank_lines.add(line)

        def optional(column: str, integer: bool = False) -> float | None:
            text = (row.get(column) or "").strip()
            return None if not text else _number(path, line, column, text, positive=True, integer=integer)

        chips = optional("chips", integer=True)
        watts = tuple(_number(path, line, c, row[c], positive=True) for c in WATTS_COLUMNS)
        try:
            check_watts(watts)
        except ValueError as err:
            raise PowerDataError(f"{path}:{line}: {err}") from None
        cores = int(_number(path, line, "cores", row["cores"], positive=True, integer=True))
        if cores > MAX_CORES:
            raise PowerDataError(f"{path}:{line}: column 'cores' holds {row['cores']!r}; a server type has at most "
                                 f"{MAX_CORES} cores (the simulation follows each one)")
        record = SpecPowerRecord(
            server_id=server_id,
            cores=cores,
            watts=watts,
            vendor=(row.get("vendor") or "").strip(),
            system=(row.get("system") or "").strip(),
            date_submitted=(row.get("date_submitted") or "").strip(),
            cpu=(row.get("cpu") or "").strip(),
            cpu_mhz=optional("cpu_mhz"),
            chips=None if chips is None else int(chips),
            ssj_ops_at_100pct=optional("ssj_ops_at_100pct"),
        )
        if record.core_speed == 0:
            raise PowerDataError(f"{path}:{line}: column 'ssj_ops_at_100pct' holds {row['ssj_ops_at_100pct']!r}: per "
                                 f"core, under 0.00005 of the reference core's {REFERENCE_SSJ_OPS_PER_CORE:,.0f} "
                                 f"ssj_ops, a per-core speed of 0")
        records.append(record)
    return records


def load_server_types(path: str | Path, scaling: FrequencyScaling | None = None,
                      freq_levels: Sequence[float] = DEFAULT_FREQ_LEVELS) -> list[ServerType]:
    """Server types built from a SPECpower-schema CSV; ``scaling`` defaults to the catalogue's fitted DVFS shape and
    ``freq_levels`` (the P-states, increasing fractions of f_max ending at 1.0) to the catalogue's five. To take both
    from a DVFS table of your own: ``scaling=table.fit(), freq_levels=table.freq_fraction``."""
    from flash_envs.sim.server_catalogue import default_scaling

    scaling = default_scaling() if scaling is None else scaling
    return [record.server_type(scaling, freq_levels) for record in read_specpower_csv(path)]


def read_dvfs_csv(path: str | Path) -> list[DVFSTable]:
    """One :class:`DVFSTable` per ``host_model`` of a power-vs-frequency CSV (rows in any order)."""
    path = Path(path)
    columns = ("host_model", "freq_pct_of_max", "power_idle_w", "power_full_w")
    by_host: dict[str, list[tuple[float, float, float]]] = {}
    for line, row in csv_rows(path, columns, PowerDataError):
        pct = _number(path, line, "freq_pct_of_max", row["freq_pct_of_max"], positive=True)
        if pct > 100:
            raise PowerDataError(f"{path}:{line}: column 'freq_pct_of_max' holds {pct}; it must be <= 100")
        idle = _number(path, line, "power_idle_w", row["power_idle_w"], positive=True)
        full = _number(path, line, "power_full_w", row["power_full_w"], positive=True)
        if full < idle:
            raise PowerDataError(f"{path}:{line}: power_full_w {full:g} W is below power_idle_w {idle:g} W")
        by_host.setdefault(row["host_model"].strip(), []).append((pct / 100, idle, full))
    tables = []
    for host, points in by_host.items():
        r, idles, fulls = zip(*sorted(points))
        if len(set(r)) < len(r):
            raise PowerDataError(f"{path}: host_model {host!r} has two rows at the same freq_pct_of_max "
                                 f"({sorted(x * 100 for x in r)})")
        if len(r) < 2:
            raise PowerDataError(f"{path}: host_model {host!r} has one row; a frequency-scaling fit needs >= 2")
        if r[-1] != 1.0:
            raise PowerDataError(f"{path}: host_model {host!r} has no row at freq_pct_of_max 100; the fit scales "
                                 f"power relative to full speed")
        tables.append(DVFSTable(host, r, idles, fulls))
    return tables


def specpower_curves_path() -> Path:
    """The shared SPECpower_ssj2008 curves (``$FLASH_DATA_DIR/specpower_ssj2008/specpower_curves.csv``)."""
    return dataset_path(*SPECPOWER_CURVES)
