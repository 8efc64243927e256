"""``flash validate-fidelity``: how far the fast (fluid) simulator is from the per-request one, and both from
queueing theory where the fast mode departs from it.

* :func:`compare`: each scenario runs both fidelities on the same application, workload and configuration for
  ``horizon_s`` seconds in 60-second intervals and compares interval-averaged metrics, once per seed: a relative error
  measured on one seed mixes the fast mode's model error with the per-request run's sampling noise, so the report
  gives its spread over seeds.
* :func:`high_load`: the mean response time of M/M/c queues above load 0.85 against Erlang C, per fidelity and
  sub-step, over the same horizon and seeds: there the backlog that each of the fast mode's Poisson counts per
  sub-step leaves adds its delay to the model's.
* :func:`percentile_sample_error`: the fast mode's p95 and p99 from its response-time model's fixed sample against
  M/M/1's exact percentiles (computed, no simulation).

The per-request simulator is also checked against Erlang C in the tests; this report is what the README quotes.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from flash_envs.cli_args import (UsageError, command_of, emit, float_at_least, int_at_least, json_text, output_file,
                                 seed_arg)
from flash_envs.envs.task_env import check_episode_length
from flash_envs.fields import MAX_SEED, check_seed
from flash_envs.progress import tqdm_bar
from flash_envs.markdown import md_table
from flash_envs.sim import FIDELITIES, AppProfile, make_simulation
from flash_envs.sim.queueing import ResponseTimeModel, mm1_response_percentile, mmc_mean_wait, weighted_percentiles
from flash_envs.sim.service import DEFAULT_SUBSTEP_S
from flash_envs.sim.workloads import ConstantWorkload, DiurnalWorkload, MMPPWorkload, StepWorkload, Workload

#: Seeds the report runs by default: five give the spread of an error over seeds in about 2 min (2026-12-01).
DEFAULT_SEEDS = 5

METRICS = ("mean_ms", "p95_ms", "p99_ms", "throughput", "cpu_utilisation", "memory_utilisation", "ready_replicas")

#: The high-load runs: a fidelity at a sub-step (s). The per-request mode's requests do not see the sub-step (it only
#: accounts utilisation and memory), so it runs at the default one only.
HIGH_LOAD_RUNS = (("request", DEFAULT_SUBSTEP_S), ("fast", DEFAULT_SUBSTEP_S), ("fast", 1.0))

#: M/M/1 loads at which the fixed sample's percentiles are compared with the exact ones, and those percentiles.
PERCENTILE_LOADS = (0.5, 0.6, 0.7, 0.8, 0.9)
TAIL_PERCENTILES = (95, 99)


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

#: M/M/c queues above load 0.85 (exponential service, 10 requests/s per server), for :func:`high_load`.
HIGH_LOAD = (
    Scenario("M/M/1, rho 0.9", _app(), ConstantWorkload(rate=9), 1),
    Scenario("M/M/10, rho 0.95", _app(), ConstantWorkload(rate=95), 10),
)


def run_scenario(scenario: Scenario, fidelity: str, horizon_s: float, seed: int,
                 substep_s: float = DEFAULT_SUBSTEP_S) -> dict[str, float]:
    """Interval-averaged metrics of one scenario under one fidelity, advanced in sub-steps of ``substep_s``."""
    rng = np.random.default_rng(seed)
    curve = scenario.workload.realise(rng, horizon_s)
    sim = make_simulation(fidelity, scenario.app, curve, rng, replicas=scenario.replicas,
                          cpu_millicores=scenario.cpu_millicores, memory_mb=scenario.memory_mb, substep_s=substep_s)
    intervals = [sim.run(60.0) for _ in range(int(horizon_s // 60))]
    return {m: float(np.nanmean([getattr(i, m) for i in intervals])) for m in METRICS}


def exact(value: float) -> str:
    """``value`` as ``:g`` writes it (``3600``, ``6e+09``) when that reads back as ``value``, else Python's shortest
    exact form: ``:g`` alone printed 120.0000000001 as ``120``, a valid horizon."""
    short = f"{value:g}"
    return short if float(short) == value else repr(float(value))


def _check_runs(horizon_s: float, seeds: Sequence[int]) -> list[int]:
    """``seeds`` as a list, once ``horizon_s`` is known to be a whole number of 60 s intervals, at most an env
    episode's limit (a year: each workload is realised up front), and ``seeds`` to be valid and not empty."""
    if horizon_s < 60 or horizon_s % 60:
        raise ValueError(f"the horizon is run in 60 s intervals, so it must be a multiple of 60 s, got "
                         f"{exact(horizon_s)}")
    check_episode_length(f"horizon_s={exact(horizon_s)}", horizon_s)
    checked = [check_seed("seed", seed) for seed in seeds]
    if not checked:
        raise ValueError("the report needs at least one seed")
    return checked


def compare(horizon_s: float = 3600.0, seeds: Sequence[int] = (0,), progress: bool = False) -> list[dict]:
    """Per scenario and seed (both fidelities run on the same seed): both fidelities' metrics and the fast one's
    relative error ``fast / request - 1`` per metric (see :func:`_relative_error` where the per-request value is 0),
    each a list in the order of ``seeds``. See :func:`_check_runs` for ``horizon_s``."""
    seeds = _check_runs(horizon_s, seeds)
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


def erlang_c_mean_ms(scenario: Scenario) -> float:
    """The mean response time (ms) of ``scenario``, a constant rate into its replicas, as an M/M/c queue: Erlang C's
    mean wait plus the mean service time (exact for exponential service)."""
    workload = scenario.workload
    if not isinstance(workload, ConstantWorkload):
        raise TypeError(f"Erlang C needs a constant rate; {scenario.name!r} has a {type(workload).__name__}")
    service_s = scenario.app.mean_service_s(scenario.cpu_millicores)
    return 1000 * (mmc_mean_wait(scenario.replicas, workload.rate, 1 / service_s) + service_s)


def high_load(horizon_s: float = 3600.0, seeds: Sequence[int] = (0,), progress: bool = False) -> list[dict]:
    """Per queue of :data:`HIGH_LOAD`: its Erlang C mean response time and, per run of :data:`HIGH_LOAD_RUNS` (a
    fidelity at a sub-step), the interval-averaged mean response time on each seed with its relative error against
    Erlang C's, each a list in the order of ``seeds``. ``horizon_s`` and ``seeds`` as for :func:`compare`."""
    seeds = _check_runs(horizon_s, seeds)
    with tqdm_bar(len(HIGH_LOAD) * len(HIGH_LOAD_RUNS) * len(seeds), "validate-fidelity, high load", progress,
                  unit="run") as bar:
        return [{"scenario": scenario.name, "seeds": seeds, "erlang_c_ms": erlang_c_mean_ms(scenario),
                 "runs": [_high_load_run(scenario, fidelity, substep_s, horizon_s, seeds, bar)
                          for fidelity, substep_s in HIGH_LOAD_RUNS]}
                for scenario in HIGH_LOAD]


def _high_load_run(scenario: Scenario, fidelity: str, substep_s: float, horizon_s: float, seeds: list[int],
                   bar: Any) -> dict[str, Any]:
    """One run of :func:`high_load`: the mean response time per seed and its relative error against Erlang C."""
    means = []
    for seed in seeds:
        means.append(run_scenario(scenario, fidelity, horizon_s, seed, substep_s)["mean_ms"])
        bar.update(1)
    analytic = erlang_c_mean_ms(scenario)
    return {"fidelity": fidelity, "substep_s": substep_s, "mean_ms": means,
            "relative_error": [_relative_error(mean, analytic) for mean in means]}


def percentile_sample_error() -> list[dict]:
    """Per M/M/1 load of :data:`PERCENTILE_LOADS` (the report's exponential 100 ms service): for each of
    :data:`TAIL_PERCENTILES`, the exact response-time percentile (ms), the fast mode's from its response-time model's
    fixed sample with no backlog, and the model's relative error. Computed, not simulated."""
    app = _app()
    model = ResponseTimeModel(app.service_cv)
    service_rate = 1 / app.mean_service_s(1000)
    rows = []
    for load in PERCENTILE_LOADS:
        arrival_rate = load * service_rate
        samples = model.samples(1, arrival_rate, service_rate, backlog_delay_s=0.0)
        modelled = weighted_percentiles(samples, np.ones_like(samples), TAIL_PERCENTILES)
        row: dict[str, Any] = {"load": load}
        for q, model_s in zip(TAIL_PERCENTILES, modelled):
            exact_ms = 1000 * mm1_response_percentile(arrival_rate, service_rate, q)
            row[f"p{q}"] = {"exact_ms": exact_ms, "model_ms": 1000 * model_s,
                            "relative_error": _relative_error(1000 * model_s, exact_ms)}
        rows.append(row)
    return rows


def report(horizon_s: float = 3600.0, seeds: Sequence[int] = (0,), progress: bool = False) -> dict[str, list[dict]]:
    """The whole report: :func:`compare`'s scenarios, :func:`high_load`'s queues and
    :func:`percentile_sample_error`'s loads."""
    return {"scenarios": compare(horizon_s, seeds, progress), "high_load": high_load(horizon_s, seeds, progress),
            "percentile_sample": percentile_sample_error()}


def _relative_error(value: float, reference: float) -> float:
    """``value / reference - 1``; where the reference is 0, 0 if the value is too, else infinite."""
    if reference:
        return value / reference - 1
    return 0.0 if value == 0 else math.inf


def _error_cell(values: list[float], errors: list[float], value_format: str = ".3g") -> str:
    """The mean of ``values`` over seeds (the per-request one's in :func:`compare`), then the relative error: its
    mean and, over several seeds, its range."""
    mean_error = float(np.mean(errors))
    spread = f" [{min(errors):+.1%}, {max(errors):+.1%}]" if len(errors) > 1 else ""
    return f"{float(np.nanmean(values)):{value_format}} ({mean_error:+.1%}{spread})"


def markdown(full_report: dict[str, list[dict]], horizon_s: float, command: str) -> str:
    """The Markdown text of :func:`report`: per-request values with the fast mode's error and the worst error, then
    the high-load queues against Erlang C, then the fixed sample's percentiles, then ``command``, which regenerates
    it."""
    rows = full_report["scenarios"]
    seeds = rows[0]["seeds"]
    which = (f"seeds {seeds[0]}..{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 1
             else f"seed{'s' * (len(seeds) > 1)} {', '.join(map(str, seeds))}")
    lines = ["# Fast vs per-request fidelity", "",
             f"Each scenario: {horizon_s:.0f} s in 60 s intervals, both fidelities on the same seed, {which}. Cells "
             f"are the per-request value{' (mean over seeds)' * (len(seeds) > 1)} and the fast mode's relative error"
             + (": its mean over seeds [lowest, highest]. An error on one seed mixes the fast mode's model error "
                "with the per-request run's sampling noise, hence the spread." if len(seeds) > 1 else "."), "",
             *md_table(("scenario", *METRICS),
                       [(row["scenario"], *(_error_cell(row["request"][m], row["relative_error"][m]) for m in METRICS))
                        for row in rows])]
    worst = {m: max(abs(e) for r in rows for e in r["relative_error"][m]) for m in METRICS}
    lines += ["", "Worst absolute relative error on any seed: " + ", ".join(f"{m} {v:.1%}" for m, v in worst.items())
              + ".", *_high_load_markdown(full_report["high_load"], len(seeds) > 1),
              *_percentile_markdown(full_report["percentile_sample"]),
              "", f"Regenerate: `{command}`", ""]
    return "\n".join(lines)


def _run_label(fidelity: str, substep_s: float) -> str:
    """The column heading of a run of :data:`HIGH_LOAD_RUNS`."""
    return "per-request" if fidelity == "request" else f"fast, {substep_s:g} s sub-step"


def _high_load_markdown(rows: list[dict], several_seeds: bool) -> list[str]:
    """The lines of :func:`high_load`'s section; with ``several_seeds``, each cell's error is a mean and range."""
    mean, spread = (" (mean over seeds)", ": its mean over seeds [lowest, highest]") if several_seeds else ("", "")
    return ["", "## Mean response time against Erlang C at high load", "",
            "M/M/c queues (exponential service, 10 requests/s per server) over the same horizon and seeds. Cells are "
            f"the mean response time in ms{mean} and its relative error against Erlang C's (mean wait plus service "
            f"time){spread}. The per-request mode's requests do not see "
            "the sub-step. The fast mode's Poisson count per sub-step leaves a backlog whose delay adds to Erlang "
            "C's wait in its model.", "",
            *md_table(("queue", "Erlang C", *(_run_label(*run) for run in HIGH_LOAD_RUNS)),
                      [(row["scenario"], f"{row['erlang_c_ms']:.4g}",
                        *(_error_cell(run["mean_ms"], run["relative_error"], ".4g") for run in row["runs"]))
                       for row in rows])]


def _percentile_markdown(rows: list[dict]) -> list[str]:
    """The lines of :func:`percentile_sample_error`'s section, with the range of the model's error per percentile."""
    header = [part for q in TAIL_PERCENTILES for part in (f"p{q} exact", f"p{q} fast")]
    table = [(f"{row['load']:g}", *(cell for q in TAIL_PERCENTILES for cell in (
        f"{row[f'p{q}']['exact_ms']:.4g}", f"{row[f'p{q}']['model_ms']:.4g} ({row[f'p{q}']['relative_error']:+.1%})")))
             for row in rows]
    errors = {q: [row[f"p{q}"]["relative_error"] for row in rows] for q in TAIL_PERCENTILES}
    ranges = [f"p{q} {min(e):+.1%} to {max(e):+.1%}" for q, e in errors.items()]
    return ["", "## Latency percentiles from the fast mode's fixed sample", "",
            "M/M/1 (exponential service, 10 requests/s) with no backlog, computed rather than simulated: the exact "
            "response-time percentile in ms (exponential with rate mu - lambda) and the fast mode's, from its "
            f"response-time model's fixed random sample of {ResponseTimeModel.POINTS} points, with its relative error.",
            "", *md_table(("load", *header), table), "",
            "The fixed sample's error over these loads: " + ", ".join(ranges) + "."]


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
    full_report = report(args.horizon, range(args.seed, args.seed + args.seeds), progress=not args.no_progress)
    text = (json_text(full_report, indent=2) if args.json
            else markdown(full_report, args.horizon, command_of("validate-fidelity", args, add_arguments,
                                                                 leave_out=("no_progress",))))
    emit(text, args.out)
    return 0
