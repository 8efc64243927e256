"""``flash validate-fidelity``: how far the fast (fluid) simulator is from the per-request one.

Each scenario runs both fidelities on the same application, workload and configuration for ``horizon_s`` seconds in
60-second intervals and compares interval-averaged metrics, once per seed: a relative error measured on one seed mixes
the fast mode's model error with the per-request run's sampling noise, so the report gives its spread over seeds. The
per-request simulator is itself checked against Erlang C in the tests; this report is what the README quotes for the
fast mode.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from flash_envs.cli_args import UsageError, emit, float_at_least, int_at_least, json_text, output_file, seed_arg
from flash_envs.envs.task_env import check_episode_length
from flash_envs.fields import MAX_SEED, check_seed
from flash_envs.progress import tqdm_bar
from flash_envs.markdown import md_table
from flash_envs.sim import FIDELITIES, AppProfile, make_simulation
from flash_envs.sim.workloads import ConstantWorkload, DiurnalWorkload, MMPPWorkload, StepWorkload, Workload

#: Seeds the report runs by default: five give the spread of an error over seeds in about 80 s.
DEFAULT_SEEDS = 5

METRICS = ("mean_ms", "p95_ms", "p99_ms", "throughput", "cpu_utilisation", "memory_utilisation")


@dataclass(frozen=True)
class Scenario:
    """One comparison: an application under a workload at a fixed configuration (``replicas`` replicas, each with
    ``cpu_millicores`` of CPU and ``memory_mb`` MiB of memory), labelled ``name`` in the report."""

    name: str
    app: AppProfile
    workload: Workload
    replicas: int
    cpu_millicores: int = 1000
    memory_mb: int = 2048


def _app(cv: float = 1.0, **kwargs) -> AppProfile:
    return AppProfile(service_time_ms=100, cpu_fraction=1.0, service_cv=cv, working_set_mb=512, **kwargs)


SCENARIOS = (
    Scenario("M/M/4, rho 0.7", _app(), ConstantWorkload(rate=28), 4),
    Scenario("M/M/10, rho 0.85", _app(), ConstantWorkload(rate=85), 10),
    Scenario("M/G/4, cv 0.5, rho 0.8", _app(0.5), ConstantWorkload(rate=32), 4),
    Scenario("M/G/4, cv 2, rho 0.8", _app(2.0), ConstantWorkload(rate=32), 4),
    Scenario("diurnal, 6 replicas", _app(1.5), DiurnalWorkload(mean_rate=35, amplitude=0.6, period_s=1800, phase=0), 6),
    Scenario("MMPP bursts, 6 replicas", _app(1.0), MMPPWorkload(rates=(25, 55), mean_sojourn_s=(300, 120)), 6),
    Scenario("step to overload, 4 replicas", _app(1.0), StepWorkload(base_rate=20, peak_rate=45, start_s=1200,
                                                                     end_s=2400), 4),
    Scenario("I/O-bound at 500 m", AppProfile(service_time_ms=80, cpu_fraction=0.3, service_cv=1.2,
                                             working_set_mb=512), ConstantWorkload(rate=40), 5, cpu_millicores=500),
    Scenario("crash loop (OOM kills)", AppProfile(service_time_ms=100, cpu_fraction=1.0, working_set_mb=1300,
                                                       startup_delay_s=20), ConstantWorkload(rate=25), 4,
             memory_mb=1024),
    Scenario("OOM kills in bursts only", AppProfile(service_time_ms=100, cpu_fraction=1.0, working_set_mb=1100,
                                                   startup_delay_s=20), MMPPWorkload(rates=(20, 34),
                                                                                     mean_sojourn_s=(300, 120)), 4,
             memory_mb=1024),
)


def run_scenario(scenario: Scenario, fidelity: str, horizon_s: float, seed: int) -> dict[str, float]:
    """Interval-averaged metrics of one scenario under one fidelity."""
    rng = np.random.default_rng(seed)
    curve = scenario.workload.realise(rng, horizon_s)
    sim = make_simulation(fidelity, scenario.app, curve, rng, replicas=scenario.replicas,
                          cpu_millicores=scenario.cpu_millicores, memory_mb=scenario.memory_mb)
    intervals = [sim.run(60.0) for _ in range(int(horizon_s // 60))]
    return {m: float(np.nanmean([getattr(i, m) for i in intervals])) for m in METRICS}


def exact(value: float) -> str:
    """``value`` as ``:g`` writes it (``3600``, ``6e+09``) when that reads back as ``value``, else Python's shortest
    exact form: ``:g`` alone printed 120.0000000001 as ``120``, a valid horizon."""
    short = f"{value:g}"
    return short if float(short) == value else repr(float(value))


def compare(horizon_s: float = 3600.0, seeds: Sequence[int] = (0,), progress: bool = False) -> list[dict]:
    """Per scenario and seed (both fidelities run on the same seed): both fidelities' metrics and the fast one's
    relative error ``fast / request - 1`` per metric (see :func:`_relative_error` where the per-request value is 0),
    each a list in the order of ``seeds``. ``horizon_s`` is a whole number of 60 s intervals, at most an env
    episode's limit (a year: each workload is realised up front)."""
    if horizon_s < 60 or horizon_s % 60:
        raise ValueError(f"the horizon is run in 60 s intervals, so it must be a multiple of 60 s, got "
                         f"{exact(horizon_s)}")
    check_episode_length(f"horizon_s={exact(horizon_s)}", horizon_s)
    seeds = [check_seed("seed", seed) for seed in seeds]
    if not seeds:
        raise ValueError("compare needs at least one seed")
    rows = []
    with tqdm_bar(len(SCENARIOS) * len(seeds), "validate-fidelity", progress, unit="run") as bar:
        for scenario in SCENARIOS:
            row: dict[str, Any] = {"scenario": scenario.name, "seeds": seeds, **{f: {m: [] for m in METRICS}
                                                                                  for f in FIDELITIES},
                                   "relative_error": {m: [] for m in METRICS}}
            for seed in seeds:
                results = {f: run_scenario(scenario, f, horizon_s, seed) for f in FIDELITIES}
                for m in METRICS:
                    for f in FIDELITIES:
                        row[f][m].append(results[f][m])
                    row["relative_error"][m].append(_relative_error(results["fast"][m], results["request"][m]))
                bar.update(1)
            rows.append(row)
    return rows


def _relative_error(fast: float, request: float) -> float:
    """``fast / request - 1``; where the per-request value is 0, 0 if the fast one is too, else infinite."""
    if request:
        return fast / request - 1
    return 0.0 if fast == 0 else math.inf


def _error_cell(request: list[float], errors: list[float]) -> str:
    """The per-request mean over seeds, then the fast mode's relative error: its mean and, over several seeds, its
    range."""
    mean_error = float(np.mean(errors))
    spread = f" [{min(errors):+.1%}, {max(errors):+.1%}]" if len(errors) > 1 else ""
    return f"{float(np.nanmean(request)):.3g} ({mean_error:+.1%}{spread})"


def markdown(rows: list[dict], horizon_s: float) -> str:
    """The Markdown report of :func:`compare`'s rows: per-request values with the fast mode's error, then the worst."""
    seeds = rows[0]["seeds"]
    which = (f"seeds {seeds[0]}..{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 1
             else f"seed{'s' * (len(seeds) > 1)} {', '.join(map(str, seeds))}")
    lines = ["# Fast vs per-request fidelity", "",
             f"Each scenario: {horizon_s:.0f} s in 60 s intervals, both fidelities on the same seed, {which}. Cells "
             "are the per-request value (mean over seeds) and the fast mode's relative error"
             + (": its mean over seeds [lowest, highest]. An error on one seed mixes the fast mode's model error "
                "with the per-request run's sampling noise, hence the spread." if len(seeds) > 1 else "."), "",
             *md_table(("scenario", *METRICS),
                       [(row["scenario"], *(_error_cell(row["request"][m], row["relative_error"][m]) for m in METRICS))
                        for row in rows])]
    worst = {m: max(abs(e) for r in rows for e in r["relative_error"][m]) for m in METRICS}
    lines += ["", "Worst absolute relative error on any seed: " + ", ".join(f"{m} {v:.1%}" for m, v in worst.items())
              + ".", "", "Regenerate: `flash validate-fidelity --out results/fidelity.md`", ""]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--horizon", type=float_at_least(60), default=3600.0,
                        help="simulated seconds per scenario, a multiple of 60 (default 3600)")
    parser.add_argument("--seed", type=seed_arg, default=0,
                        help="first seed of both fidelities' runs (default 0)")
    parser.add_argument("--seeds", type=int_at_least(1), default=DEFAULT_SEEDS,
                        help=f"how many seeds, --seed and those after it (default {DEFAULT_SEEDS})")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print (and write to --out) JSON instead of markdown")
    parser.add_argument("--out", type=output_file, default=None,
                        help="also write the report (markdown, or JSON with --json) to this file")


def run(args: argparse.Namespace) -> int:
    if args.horizon % 60:
        raise UsageError(f"--horizon {exact(args.horizon)}: the scenarios run in 60 s intervals, so give a multiple "
                         f"of 60")
    try:
        check_episode_length(f"--horizon {exact(args.horizon)}", args.horizon)
    except ValueError as err:
        raise UsageError(str(err)) from None
    if args.seed + args.seeds - 1 > MAX_SEED:
        raise UsageError(f"--seed {args.seed} --seeds {args.seeds}: the last seed, {args.seed + args.seeds - 1}, is "
                         f"above {MAX_SEED}")
    rows = compare(args.horizon, range(args.seed, args.seed + args.seeds), progress=not args.no_progress)
    text = json_text(rows, indent=2) if args.json else markdown(rows, args.horizon)
    emit(text, args.out)
    return 0
