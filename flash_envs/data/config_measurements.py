"""Runtime and cost of applications measured under many resource configurations, in one common structure.

Three sources load into :class:`ConfigMeasurements`:

* :func:`load_ibm_multicloud` — the IBM multi-cloud configuration dataset (Lazuka et al., IEEE CLOUD 2022): Dask
  workloads on 3 anonymised cloud providers x instance family / vCPUs / node count. Rows whose ``status`` is not
  ``ok`` are failed runs and are dropped.
* :func:`load_chunkfunc` — exhaustive FaaS profiles of the chunk-func project: 3 functions x input sizes on AWS Lambda
  (159 memory sizes) and Google Cloud Functions (7-8 tiers). An application is a (platform, function, input size).
  The AWS rows' ``execution_cost_usd`` is not read and may be blank (the shared file rounds it to whole micro-dollars,
  0 in 51 rows): their cost is AWS's price of the runtime (:func:`flash_envs.sim.serverless.invocation_cost`). Rows
  whose deployment failed or whose HTTP status is not 200 are dropped.
* :func:`simulated_measurements` — one noisy measurement of each built-in simulated serverless function at each
  memory size (:mod:`flash_envs.sim.serverless`).

Every loader validates the schema and raises :class:`~flash_envs.data.DataFormatError` (a ``ValueError``) naming
file, line, column and value; runtimes and costs must lie in [:data:`MIN_MEASURED`, :data:`MAX_MEASURED`]. A failed
run is dropped before its other fields are read, whatever they hold (its runtime and cost are often blank). What was
dropped or merged is counted in ``ConfigMeasurements.counts`` and logged. Repeated measurements of the same
(application, configuration) are merged by their geometric mean. Application names (IBM ``workload``, chunk-func
``function``) are read without surrounding whitespace, so that ``"w "`` and ``"w"`` are one application (their rows
at one configuration are repeated measurements), in every file.

Where the data's cost is a price list applied to the runtime, ``ConfigMeasurements.pricing`` says so, so that a
predicted runtime can be priced the way the data's own costs were:

==============================  ==================================================================================
data                            ``pricing``
==============================  ==================================================================================
IBM multi-cloud                 :class:`PerSecondPricing`: runtime x hourly node price x nodes (the dataset's
                                README), the rate of each configuration read off its rows (``None`` if a file's
                                costs are not runtime x a per-configuration rate)
chunk-func on AWS Lambda        :class:`LambdaPricing`: billed GB-seconds plus the request fee
simulated functions             :class:`LambdaPricing`
chunk-func with GCP             ``None``: its costs come from the file, with no price list here
==============================  ==================================================================================
"""

from __future__ import annotations

import logging
import reprlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

from flash_envs.data import DataFormatError, csv_number, csv_rows
from flash_envs.fields import check_whole
from flash_envs.sim.serverless import (MEMORY_SIZES_MIB, check_memory_sizes, generate_functions, invocation_cost,
                                       memory_config_name, vcpus)

log = logging.getLogger(__name__)

#: The IBM dataset's design space (README of the dataset): allowed label-encoded values per column.
IBM_CATEGORIES: dict[str, tuple[str, ...]] = {
    "provider": ("A", "B", "C"), "A_family": ("0", "1", "2"), "A_vcpu": ("0", "1"), "B_family": ("0", "1"),
    "B_vcpu": ("0", "1"), "C_family": ("0", "1"), "C_type": ("0", "1", "2"), "C_vcpu": ("0", "1"),
}
IBM_NODES = (2, 3, 4, 5)
IBM_COLUMNS = (*IBM_CATEGORIES, "nodes", "workload", "target_cost", "target_runtime", "status")
CHUNKFUNC_COLUMNS = ("platform", "function", "memory_mib", "milli_cpu", "deployment_status", "input_size_bytes",
                     "execution_time_ms", "execution_cost_usd", "status_code")
CHUNKFUNC_PLATFORMS = ("aws_lambda", "gcp_cloud_functions")
#: Memory features are log2(memory / 128 MiB) / 7, which maps 128 MiB..16 GiB onto [0, 1].
_LOG2_MEMORY_SPAN = 7.0
#: The most CPU a chunk-func configuration may have (millicores): its feature is ``milli_cpu / 6000``.
CHUNKFUNC_MAX_MILLI_CPU = 6000.0
#: Largest relative spread of cost / runtime among one configuration's rows for IBM costs to count as a rate. Rounding
#: a cost and a runtime to 6 significant digits moves their ratio by up to 1e-5, so two rows' ratios by up to 2e-5;
#: the shared file's spread is below 1e-12, and its distinct rates differ by 6.4e-4 or more (relative). A price list
#: accepted at this tolerance reproduces every cost of its file to 1e-4 (relative).
RATE_TOLERANCE = 1e-4
#: The range of the runtimes and costs a file may hold, in its own units: the learned predictors compute in float32,
#: whose exp overflows past 3.4e38 (a runtime of 1e40 made every MAPE infinite); no real measurement comes near.
MIN_MEASURED, MAX_MEASURED = 1e-30, 1e30


class Pricing(Protocol):
    """A price list: what a run of ``runtime_s`` seconds on configuration index ``configs`` costs (USD)."""

    def cost(self, configs: np.ndarray, runtime_s: np.ndarray) -> np.ndarray:
        """USD for runs of ``runtime_s`` seconds on configuration indices ``configs`` (elementwise)."""
        ...


def _numbers(name: str, values: Any) -> np.ndarray:
    """``values`` as a 1-D float array, else a TypeError naming ``name``."""
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        array = np.asarray(None)
    if array.ndim != 1:
        raise TypeError(f"{name} must be a list of numbers, one per configuration, got {reprlib.repr(values)}")
    return array


@dataclass(frozen=True)
class PerSecondPricing:
    """Cost = runtime x a rate per configuration (``usd_per_s[config]``), as the IBM dataset computes it."""

    usd_per_s: np.ndarray

    def __post_init__(self) -> None:   # (a list, indexed by an array of configurations, failed)
        object.__setattr__(self, "usd_per_s", _numbers("PerSecondPricing.usd_per_s", self.usd_per_s))

    def cost(self, configs: np.ndarray, runtime_s: np.ndarray) -> np.ndarray:
        """USD: ``usd_per_s[configs] * runtime_s``."""
        return self.usd_per_s[configs] * runtime_s


@dataclass(frozen=True)
class LambdaPricing:
    """AWS Lambda's price (:func:`~flash_envs.sim.serverless.invocation_cost`) at ``memory_mib[config]``."""

    memory_mib: np.ndarray

    def __post_init__(self) -> None:   # (a list, indexed by an array of configurations, failed)
        object.__setattr__(self, "memory_mib", _numbers("LambdaPricing.memory_mib", self.memory_mib))

    def cost(self, configs: np.ndarray, runtime_s: np.ndarray) -> np.ndarray:
        """USD per invocation: Lambda's GB-second price (duration rounded up to 1 ms) plus the request price."""
        return invocation_cost(self.memory_mib[configs], runtime_s)


def check_pricing(pricing: Any, configs: Sequence[str], owner: str) -> None:
    """A TypeError or ValueError (``owner``: who holds it) unless ``pricing`` prices a run at each of ``configs`` at a
    finite cost >= 0, naming those it does not: a price list of another length failed at ``predict`` with an
    IndexError, and a NaN price made the predictor choose the configuration it could not price."""
    n = len(configs)
    try:
        trial = np.asarray(pricing.cost(np.arange(n), np.ones(n)), dtype=float)
    except (AttributeError, LookupError, TypeError, ValueError) as err:
        raise TypeError(f"{owner}: pricing must price each of the {n} configurations (a PerSecondPricing or "
                        f"LambdaPricing of one entry per configuration, or an object with such a cost(configs, "
                        f"runtime_s) method), got {reprlib.repr(pricing)} ({type(err).__name__}: {err})") from None
    if trial.shape != (n,):
        raise ValueError(f"{owner}: pricing must give one cost per configuration, {n}; it gave shape {trial.shape}")
    if bad := [(c, float(u)) for c, u in zip(configs, trial) if not (np.isfinite(u) and u >= 0)]:
        raise ValueError(f"{owner}: pricing must cost a run at each configuration a finite number of USD >= 0; a 1 s "
                         f"run costs {', '.join(f'{u!r} at {c}' for c, u in bad[:3])}"
                         f"{f' (and {len(bad) - 3} more)' if len(bad) > 3 else ''}")


@dataclass(frozen=True)
class ConfigMeasurements:
    """Measurements of ``apps`` x ``configs``: a dense matrix, NaN where a pair was not (successfully) measured.

    ``features[j]`` describes configuration ``configs[j]`` with values in [0, 1] (one-hot categories, scaled
    numbers), named by ``feature_names``; features depend on the configuration alone, so two files of one schema
    give the same features to the same configuration. ``runtime_s`` and ``cost_usd`` have shape
    ``(len(apps), len(configs))``. ``counts`` tallies rows read, dropped and merged. ``pricing``, where the data
    has one, turns a runtime into the cost the data would record for it (see the module docstring).
    """

    source: str
    apps: tuple[str, ...]
    configs: tuple[str, ...]
    feature_names: tuple[str, ...]
    features: np.ndarray
    runtime_s: np.ndarray
    cost_usd: np.ndarray
    counts: dict[str, int] = field(default_factory=dict)
    pricing: Pricing | None = None

    def __post_init__(self) -> None:
        for name in ("apps", "configs"):
            names = getattr(self, name)
            if (isinstance(names, str) or not isinstance(names, (Sequence, np.ndarray))   # "abc" was 3 names
                    or not all(isinstance(n, str) for n in names)):
                raise TypeError(f"ConfigMeasurements.{name} must be a sequence of names (strings), got "
                                f"{reprlib.repr(names)}")
            object.__setattr__(self, name, tuple(names))
        for name in ("features", "runtime_s", "cost_usd"):   # lists from Python are taken as the arrays they spell
            value = getattr(self, name)
            try:
                given = np.asarray(value)
            except ValueError:   # ragged rows
                given = np.asarray(None)
            if given.dtype.kind not in "iuf":   # (strings, bools, complex, ints too large for a float: object)
                raise TypeError(f"ConfigMeasurements.{name} must be an array of numbers (rows of equal length), "
                                f"got {reprlib.repr(value)}")
            object.__setattr__(self, name, given.astype(float))
        for what, names in (("application", self.apps), ("configuration", self.configs)):
            if repeated := sorted(name for name, n in Counter(names).items() if n > 1):
                raise ValueError(f"{self.source}: each {what} must be named once; repeated: {repeated[:5]}")
        shape = (len(self.apps), len(self.configs))
        if self.runtime_s.shape != shape or self.cost_usd.shape != shape:
            raise ValueError(f"runtime {self.runtime_s.shape} and cost {self.cost_usd.shape} must be {shape}")
        if self.features.shape != (len(self.configs), len(self.feature_names)):
            raise ValueError(f"features {self.features.shape} must be {(len(self.configs), len(self.feature_names))}")
        if len(outside := np.argwhere(~((self.features >= 0) & (self.features <= 1)))):   # NaN too
            config, feature = outside[0]
            raise ValueError(f"{self.source}: features must be numbers in [0, 1] (one-hot categories, numbers scaled "
                             f"by their maximum); {len(outside)} are not, e.g. {self.feature_names[feature]} of "
                             f"{self.configs[config]}: {float(self.features[config, feature])!r}")
        for name, values in (("runtime_s", self.runtime_s), ("cost_usd", self.cost_usd)):
            bad = np.argwhere(self.measured & ~((values >= MIN_MEASURED) & (values <= MAX_MEASURED)))
            if len(bad):   # the predictors work on log values, in float32 (as the loaders refuse, see MIN_MEASURED)
                app, config = bad[0]
                raise ValueError(f"{self.source}: {name} must lie in [{MIN_MEASURED:g}, {MAX_MEASURED:g}] where "
                                 f"measured; {self.apps[app]} at {self.configs[config]} has "
                                 f"{float(values[app, config])!r}")

        if self.pricing is not None:
            check_pricing(self.pricing, self.configs, self.source)

    @property
    def measured(self) -> np.ndarray:
        """Boolean ``(apps, configs)`` mask of the pairs with a runtime and a cost."""
        return np.isfinite(self.runtime_s) & np.isfinite(self.cost_usd)

    def select_apps(self, apps: Sequence[str]) -> "ConfigMeasurements":
        """The same measurements restricted to ``apps`` (in that order)."""
        index = {a: i for i, a in enumerate(self.apps)}
        missing = [a for a in apps if a not in index]
        if missing:
            raise KeyError(f"unknown application(s) {missing} in {self.source}")
        rows = [index[a] for a in apps]
        return ConfigMeasurements(self.source, tuple(apps), self.configs, self.feature_names, self.features,
                                  self.runtime_s[rows], self.cost_usd[rows], dict(self.counts), self.pricing)


class _Table:
    """Collects validated rows and builds the dense matrices (geometric mean of repeated measurements)."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
        self.features: dict[str, np.ndarray] = {}
        self.counts: Counter[str] = Counter()

    def add(self, app: str, config: str, features: np.ndarray, runtime_s: float, cost_usd: float) -> None:
        self.values[(app, config)].append((runtime_s, cost_usd))
        self.features[config] = features

    def build(self, source: str, feature_names: Sequence[str]) -> ConfigMeasurements:
        apps = sorted({a for a, _ in self.values})
        configs = sorted(self.features)
        if not apps:
            raise DataFormatError(f"{source}: no successful measurement left after dropping failed runs "
                                  f"({dict(self.counts)})")
        a_idx, c_idx = {a: i for i, a in enumerate(apps)}, {c: j for j, c in enumerate(configs)}
        runtime = np.full((len(apps), len(configs)), np.nan)
        cost = np.full_like(runtime, np.nan)
        for (app, config), vals in self.values.items():
            logs = np.log(np.asarray(vals))
            runtime[a_idx[app], c_idx[config]], cost[a_idx[app], c_idx[config]] = np.exp(logs.mean(axis=0))
            self.counts["merged duplicates"] += len(vals) - 1
        counts = dict(self.counts)
        log.info("%s: %s", source, ", ".join(f"{n} {what}" for what, n in counts.items()))
        return ConfigMeasurements(source, tuple(apps), tuple(configs), tuple(feature_names),
                                  np.stack([self.features[c] for c in configs]), runtime, cost, counts)


def ibm_features(row: dict[str, str]) -> np.ndarray:
    """One-hot provider and label-encoded parameters (blank for other providers) plus ``nodes / 5``."""
    parts = [np.array([row[col] == v for v in values], dtype=float) for col, values in IBM_CATEGORIES.items()]
    return np.concatenate([*parts, [float(row["nodes"]) / max(IBM_NODES)]])


IBM_FEATURE_NAMES = tuple(f"{c}={v}" for c, vs in IBM_CATEGORIES.items() for v in vs) + ("nodes/5",)


def per_second_pricing(data: ConfigMeasurements) -> PerSecondPricing | None:
    """Each configuration's cost / runtime, if that ratio is the same (to :data:`RATE_TOLERANCE`) in all its rows;
    ``None`` (logged) if some configuration's costs are not its runtime times one rate, or if no app of ``data``
    measured some configuration (a subset of apps, say), which would have no price."""
    with np.errstate(invalid="ignore"):
        rate = data.cost_usd / data.runtime_s
    if unpriced := [c for c, seen in zip(data.configs, np.isfinite(rate).any(axis=0)) if not seen]:
        log.info("%s: no cost / runtime at %d configuration(s), e.g. %s; no price list", data.source, len(unpriced),
                 unpriced[:3])
        return None
    low, high = np.nanmin(rate, axis=0), np.nanmax(rate, axis=0)
    spread = high / low - 1.0
    if np.any(spread > RATE_TOLERANCE):
        worst = int(np.argmax(spread))
        apps = [data.apps[i] for i in (np.nanargmin(rate[:, worst]), np.nanargmax(rate[:, worst]))]
        log.info("%s: costs are not runtime x a rate per configuration (%s: cost / runtime from %.6g (%s) to %.6g "
                 "(%s), %.6g times as high, more than the %g times the rates may differ by); no price list",
                 data.source, data.configs[worst], low[worst], apps[0], high[worst], apps[1], high[worst] / low[worst],
                 1 + RATE_TOLERANCE)
        return None
    return PerSecondPricing(np.exp(np.nanmean(np.log(rate), axis=0)))


def _http_ok(text: str) -> bool:
    """Whether an HTTP status field says 200, as written or as a spreadsheet or pandas writes it (``200.0``)."""
    try:
        return float(text) == 200
    except ValueError:
        return False


def _measured(path: Path, line: int, column: str, text: str, *, positive: bool = True) -> float:
    """A runtime or cost field as a number (see :func:`~flash_envs.data.csv_number`) in [:data:`MIN_MEASURED`,
    :data:`MAX_MEASURED`] (a cost that may be 0 may also be 0)."""
    value = csv_number(path, line, column, text, positive=positive)
    if value > MAX_MEASURED or 0 < value < MIN_MEASURED:
        raise DataFormatError(f"{path}:{line}: column {column!r} holds {text!r}, outside [{MIN_MEASURED:g}, "
                              f"{MAX_MEASURED:g}]; a runtime or cost in another unit?")
    return value


def _label(text: str) -> str:
    """A label-encoded IBM field as the dataset writes it: a whole number written ``1.0`` (as pandas writes a column
    with blanks) is ``1``."""
    try:
        value = float(text)
    except ValueError:
        return text
    return str(int(value)) if value.is_integer() else text


def load_ibm_multicloud(path: str | Path) -> ConfigMeasurements:
    """Load a CSV of the IBM multi-cloud schema (an unnamed index column is allowed). Failed runs (``status`` other
    than ``ok``, in any case) are dropped; label-encoded fields may be written as floats (``1.0``)."""
    path = Path(path)
    table = _Table()
    provider_columns = {p: [c for c in IBM_CATEGORIES if c.startswith(f"{p}_")] for p in IBM_CATEGORIES["provider"]}
    for line, row in csv_rows(path, IBM_COLUMNS):
        table.counts["rows read"] += 1
        if row["status"].strip().lower() != "ok":
            table.counts["dropped: failed run (status != ok)"] += 1
            continue
        provider = row["provider"]
        if provider not in IBM_CATEGORIES["provider"]:
            raise DataFormatError(f"{path}:{line}: column 'provider': unknown provider {provider!r}; "
                                  f"expected one of {IBM_CATEGORIES['provider']}")
        for col in (c for c in IBM_CATEGORIES if c != "provider"):
            own = col in provider_columns[provider]
            if own:
                row[col] = _label(row[col])   # as ibm_features and the configuration's name read it
            if own and row[col] not in IBM_CATEGORIES[col]:
                raise DataFormatError(f"{path}:{line}: column {col!r}: value {row[col]!r} not in the design "
                                      f"space {IBM_CATEGORIES[col]} of provider {provider}")
            if not own and row[col].strip():
                raise DataFormatError(f"{path}:{line}: column {col!r}: must be blank for provider {provider}, "
                                      f"got {row[col]!r}")
        nodes = int(csv_number(path, line, "nodes", row["nodes"], positive=True, integer=True))
        if nodes not in IBM_NODES:
            raise DataFormatError(f"{path}:{line}: column 'nodes': {row['nodes']!r} not in {IBM_NODES}")
        workload = row["workload"].strip()   # "w " is "w": one app, also across files (a held-out app never trains)
        if not workload:
            raise DataFormatError(f"{path}:{line}: column 'workload': empty workload id")
        runtime = _measured(path, line, "target_runtime", row["target_runtime"])
        cost = _measured(path, line, "target_cost", row["target_cost"])
        config = "/".join([provider, *(f"{c}={row[c]}" for c in provider_columns[provider]), f"nodes={nodes}"])
        table.add(workload, config, ibm_features(row), runtime, cost)
    data = table.build(f"ibm:{path.name}", IBM_FEATURE_NAMES)
    return replace(data, pricing=per_second_pricing(data))


CHUNKFUNC_FEATURE_NAMES = ("log2(memory/128MiB)/7", "vcpus/6", *(f"platform={p}" for p in CHUNKFUNC_PLATFORMS))


def load_chunkfunc(path: str | Path, platforms: Sequence[str] | None = None) -> ConfigMeasurements:
    """Load the chunk-func profiles CSV, optionally only some ``platforms``. Failed runs are dropped; a run of another
    platform is skipped with only its platform read (so a column it leaves malformed does not stop the load).

    An application is ``platform/function/input_size_bytes``; a configuration ``platform/<memory>MiB/<milli_cpu>m``.
    """
    if isinstance(platforms, str) or (platforms is not None and not platforms):
        raise ValueError(f"platforms must be a sequence of some of {CHUNKFUNC_PLATFORMS}, or None for all, "
                         f"got {platforms!r}")
    unknown = sorted(set(platforms or ()) - set(CHUNKFUNC_PLATFORMS))
    if unknown:
        raise ValueError(f"unknown platform(s) {unknown}; expected some of {CHUNKFUNC_PLATFORMS}")
    path = Path(path)
    table = _Table()
    memory_of: dict[str, float] = {}
    other_platforms: set[str] = set()   # of successful runs skipped for their platform
    for line, row in csv_rows(path, CHUNKFUNC_COLUMNS):
        table.counts["rows read"] += 1
        if row["deployment_status"].strip() != "DeploymentSuccess" or not _http_ok(row["status_code"]):
            table.counts["dropped: failed run (deployment or HTTP status)"] += 1
            continue
        platform = row["platform"]
        if platform not in CHUNKFUNC_PLATFORMS:
            raise DataFormatError(f"{path}:{line}: column 'platform': unknown platform {platform!r}; "
                                  f"expected one of {CHUNKFUNC_PLATFORMS}")
        if platforms is not None and platform not in platforms:   # its other columns are not read
            table.counts[f"skipped: platform {platform}"] += 1
            other_platforms.add(platform)
            continue
        function = row["function"].strip()   # "f " is "f": one app, also across files (a held-out app never trains)
        if not function or "/" in function:   # apps are platform/function/input_size_bytes
            raise DataFormatError(f"{path}:{line}: column 'function': {row['function']!r} is not a function name "
                                  f"(non-blank, without '/')")
        memory = csv_number(path, line, "memory_mib", row["memory_mib"], positive=True)
        milli_cpu = csv_number(path, line, "milli_cpu", row["milli_cpu"], positive=True)
        size = int(csv_number(path, line, "input_size_bytes", row["input_size_bytes"], positive=True, integer=True))
        runtime = _measured(path, line, "execution_time_ms", row["execution_time_ms"]) / 1000.0
        if platform == "aws_lambda":   # its file's cost is not read, whatever it holds (blank too)
            cost = float(invocation_cost(memory, runtime))
        else:
            cost = _measured(path, line, "execution_cost_usd", row["execution_cost_usd"])
        for column, value, low, high in (("memory_mib", memory, 128.0, 128.0 * 2 ** _LOG2_MEMORY_SPAN),
                                         ("milli_cpu", milli_cpu, 0.0, CHUNKFUNC_MAX_MILLI_CPU)):
            if not low <= value <= high:   # the features scale them to [0, 1] over these ranges
                raise DataFormatError(f"{path}:{line}: column {column!r} holds {row[column]!r}; the features "
                                      f"support {low:g} to {high:g}")
        feats = np.array([np.log2(memory / 128.0) / _LOG2_MEMORY_SPAN, milli_cpu / CHUNKFUNC_MAX_MILLI_CPU,
                          *(platform == p for p in CHUNKFUNC_PLATFORMS)], dtype=float)
        config = f"{platform}/{memory:g}MiB/{milli_cpu:g}m"
        table.add(f"{platform}/{function}/{size}", config, feats, runtime, cost)
        if platform == "aws_lambda":
            memory_of[config] = memory
    if not table.values and other_platforms:
        raise DataFormatError(f"chunkfunc:{path.name}: no successful run is on platform {', '.join(platforms or ())}; "
                              f"the file's are on {', '.join(sorted(other_platforms))} (choose the platform with "
                              f"--platform)")
    data = table.build(f"chunkfunc:{path.name}", CHUNKFUNC_FEATURE_NAMES)
    if all(c in memory_of for c in data.configs):   # AWS Lambda only: its price list
        data = replace(data, pricing=LambdaPricing(np.array([memory_of[c] for c in data.configs])))
    return data


SIMULATED_FEATURE_NAMES = ("log2(memory/128MiB)/7", "vcpus/6")


def simulated_measurements(n_functions: int = 300, seed: int = 2024,
                           memory_sizes: Sequence[int] = MEMORY_SIZES_MIB) -> ConfigMeasurements:
    """One noisy measurement of each of ``n_functions`` simulated functions at each memory size (seeded; >= 2
    distinct sizes in [128, 10240] MiB)."""
    n_functions, seed = check_whole("n_functions", n_functions, 1), check_whole("seed", seed, 0)
    memory = np.asarray(check_memory_sizes(memory_sizes), dtype=float)
    functions = generate_functions(n_functions, seed)
    rng = np.random.default_rng(seed + 1)
    runtime, cost = map(np.stack, zip(*(f.measure(memory, rng) for f in functions)))
    features = np.stack([np.log2(memory / 128.0) / _LOG2_MEMORY_SPAN, vcpus(memory) / 6.0], axis=1)
    return ConfigMeasurements(f"simulated:{n_functions}fn-seed{seed}", tuple(f.name for f in functions),
                              tuple(memory_config_name(m) for m in memory), SIMULATED_FEATURE_NAMES, features,
                              runtime, cost, {"functions": n_functions}, LambdaPricing(memory))
