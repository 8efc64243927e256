"""The simulators against queueing theory, and the fast mode against the per-request mode."""

from __future__ import annotations

import numpy as np
import pytest

from flash_envs.sim import AppProfile, make_simulation
from flash_envs.sim.queueing import (ResponseTimeModel, erlang_c, mm1_response_percentile, mmc_mean_wait,
                                     weighted_percentiles)
from flash_envs.sim.validation import (HIGH_LOAD, HIGH_LOAD_RUNS, SCENARIOS, erlang_c_mean_ms, high_load,
                                       percentile_sample_error, run_scenario)
from flash_envs.sim.workloads import ConstantWorkload, StepWorkload

MM_APP = AppProfile(service_time_ms=100, cpu_fraction=1.0, service_cv=1.0, working_set_mb=256)  # mu = 10/s


def test_erlang_c_known_values():
    assert erlang_c(1, 0.5) == pytest.approx(0.5)  # M/M/1: P(wait) = rho
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)  # textbook value for c=2, a=1
    assert erlang_c(4, 5.0) == 1.0
    assert erlang_c(0, 0.5) == 1.0   # no server: every request waits
    assert mmc_mean_wait(1, 5.0, 10.0) == pytest.approx(0.5 / (10 - 5))  # M/M/1: rho / (mu - lambda)


def test_mm1_response_percentiles_are_exponential():
    assert mm1_response_percentile(5.0, 10.0, 50) == pytest.approx(np.log(2) / 5)   # the median of Exp(mu - lambda)
    assert mm1_response_percentile(9.0, 10.0, 95) == pytest.approx(-np.log(0.05))
    assert mm1_response_percentile(10.0, 10.0, 99) == float("inf")


@pytest.mark.skipif(np.lib.NumpyVersion(np.__version__) < "2.0.0", reason="numpy < 2 has no weighted percentiles")
def test_weighted_percentiles_are_numpys_inverted_cdf_ones():
    """The fast mode's percentiles of weighted samples are numpy 2's ``np.percentile(..., weights=w,
    method="inverted_cdf")`` (kept for numpy 1.24), from the 0th to the 100th, zero weights included; with no weight
    at all they are NaN."""
    rng = np.random.default_rng(0)
    samples, weights = rng.exponential(size=50), rng.integers(0, 4, size=50).astype(float)
    qs = (0, 1, 25, 50, 95, 99, 100)
    expected = np.percentile(samples, qs, weights=weights, method="inverted_cdf")
    assert weighted_percentiles(samples, weights, qs) == list(expected)
    assert np.isnan(weighted_percentiles(samples, np.zeros(50), qs)).all()


def test_high_load_reference_is_erlang_c_plus_the_service_time():
    """M/M/1 at 0.9 with mu = 10/s: 1 / (mu - lambda) = 1 s; M/M/10 at 0.95: Erlang C's wait plus 100 ms."""
    assert [s.name for s in HIGH_LOAD] == ["M/M/1, rho 0.9", "M/M/10, rho 0.95"]
    assert erlang_c_mean_ms(HIGH_LOAD[0]) == pytest.approx(1000)
    assert erlang_c_mean_ms(HIGH_LOAD[1]) == pytest.approx(1000 * (mmc_mean_wait(10, 95.0, 10.0) + 0.1))
    with pytest.raises(TypeError, match="Erlang C needs a constant rate; 'step to overload, 4 replicas' has a Step"):
        erlang_c_mean_ms(SCENARIOS[6])


def test_fast_mode_is_slow_at_high_load_and_slower_with_shorter_sub_steps():
    """The report's high-load table on 600 s: each sub-step's Poisson count leaves a backlog whose delay the fast
    mode adds to Erlang C's wait, so its mean is high on every seed, and higher at 1 s than at 5 s sub-steps."""
    rows = high_load(horizon_s=600, seeds=[0, 1])
    assert [(run["fidelity"], run["substep_s"]) for run in rows[0]["runs"]] == list(HIGH_LOAD_RUNS)
    for scenario, row in zip(HIGH_LOAD, rows):
        assert row["scenario"] == scenario.name and row["erlang_c_ms"] == erlang_c_mean_ms(scenario)
        runs = {(run["fidelity"], run["substep_s"]): run for run in row["runs"]}
        for run in row["runs"]:
            assert run["relative_error"] == [m / row["erlang_c_ms"] - 1 for m in run["mean_ms"]]
        assert runs["request", 5.0]["mean_ms"] == [run_scenario(scenario, "request", 600, seed)["mean_ms"]
                                                   for seed in (0, 1)]
        assert min(runs["fast", 5.0]["relative_error"]) > 0 and min(runs["fast", 1.0]["relative_error"]) > 0
        assert np.mean(runs["fast", 1.0]["relative_error"]) > np.mean(runs["fast", 5.0]["relative_error"])


def test_fixed_sample_percentiles_against_the_exact_m_m_1_ones():
    """The fast mode's p95 and p99 at no backlog are its model's sample's (inverted-CDF) percentiles; M/M/1's are
    exponential. The sample puts the p95 high and the p99 low at every load of the report."""
    rows = percentile_sample_error()
    assert [row["load"] for row in rows] == [0.5, 0.6, 0.7, 0.8, 0.9]
    last = rows[-1]
    assert last["p95"]["exact_ms"] == pytest.approx(-1000 * np.log(0.05))   # rate mu - lambda = 1/s
    assert last["p99"]["exact_ms"] == pytest.approx(-1000 * np.log(0.01))
    samples = ResponseTimeModel(1.0).samples(1, 9.0, 10.0, 0.0)
    assert last["p99"]["model_ms"] == pytest.approx(1000 * np.percentile(samples, 99, method="inverted_cdf"))
    for row in rows:
        for q in ("p95", "p99"):
            assert row[q]["relative_error"] == pytest.approx(row[q]["model_ms"] / row[q]["exact_ms"] - 1)
        assert row["p95"]["relative_error"] > 0 > row["p99"]["relative_error"]


@pytest.mark.parametrize("cv", [0.5, 1.0, 2.0])
def test_the_models_service_times_have_the_apps_coefficient_of_variation(cv):
    """The model's 256 mean-1 service times are gamma draws of the app's ``service_cv``: within 7% of it here."""
    unit_service = ResponseTimeModel(cv).unit_service
    assert unit_service.mean() == pytest.approx(1.0)
    assert unit_service.std() == pytest.approx(cv, rel=0.07)


@pytest.mark.parametrize("servers, service_rate, arrival_rate", [(1, 10.0, 5.0), (4, 10.0, 12.0), (1, 0.5, 0.4)])
def test_the_models_mean_wait_is_erlang_cs(servers, service_rate, arrival_rate):
    """With exponential service (cv 1) the model's waits are M/M/c's: exact in the mean, which 100 000 points bring
    within 3%, also where few requests wait (M/M/4 at 0.3: P(wait) = 0.037) and for a service slower than a request
    a second (2 s)."""
    model = ResponseTimeModel(1.0, points=100_000)
    waits = model.samples(servers, arrival_rate, service_rate, 0.0) - model.unit_service / service_rate
    assert waits.min() == 0.0
    assert waits.mean() == pytest.approx(mmc_mean_wait(servers, arrival_rate, service_rate), rel=0.03)


def test_the_model_caps_the_load_at_98_percent_and_adds_the_backlog_delay():
    """Overload is the backlog's to show: any arrival rate from 98% of the capacity up gives the same waits; the
    backlog delay adds to every sample, and with no server up a request takes its service time plus that delay."""
    model = ResponseTimeModel(1.0)
    service = model.unit_service / 10.0
    at_98 = model.samples(2, 19.6, 10.0, 0.0)
    assert np.array_equal(model.samples(2, 100.0, 10.0, 0.0), at_98) and (at_98 >= service).all()
    assert np.allclose(model.samples(2, 19.6, 10.0, 3.0), at_98 + 3.0)
    assert np.allclose(model.samples(0, 5.0, 10.0, 3.0), service + 3.0)

def mm_simulation(fidelity: str, servers: int, rate: float, seed: int = 0, **kwargs):
    """An M/M/c queue: ``servers`` replicas of :data:`MM_APP` (mu = 10/s) fed ``rate`` req/s (``kwargs``: more
    arguments of the simulation, e.g. ``substep_s``)."""
    curve = ConstantWorkload(rate=rate).realise(np.random.default_rng(seed), 60)
    return make_simulation(fidelity, MM_APP, curve, np.random.default_rng(seed), replicas=servers,
                           cpu_millicores=1000, memory_mb=1024, **kwargs)


def mean_wait(fidelity: str, servers: int, rate: float, horizon_s: float, seed: int = 0) -> float:
    metrics = mm_simulation(fidelity, servers, rate, seed).run(horizon_s)
    assert metrics.dropped == 0
    return metrics.mean_ms / 1000 - 0.1  # response time minus the mean service time


def test_request_level_mmc_mean_wait_matches_erlang_c():
    """~840k requests through an M/M/4 queue at rho = 0.7: the mean wait is within 5% of Erlang C."""
    expected = mmc_mean_wait(4, 28.0, 10.0)
    assert mean_wait("request", 4, 28.0, horizon_s=30_000) == pytest.approx(expected, rel=0.05)


def test_request_level_m_m_1_percentiles_are_the_exponentials():
    """M/M/1 at rho = 0.5: the response time is Exp(mu - lambda), so p50, p95 and p99 are ln(2), ln(20) and ln(100)
    over 5/s. Four seeds of an hour (72k requests) put each within 4% (one seed scatters by up to 6% at p99); the
    96th percentile is 7.5% above the 95th, the 100th twice the 99th."""
    percentiles = []
    for seed in range(4):
        sim = mm_simulation("request", 1, 5.0, seed)
        sim.run(60)   # warm-up
        m = sim.run(3600)
        percentiles.append((m.p50_ms, m.p95_ms, m.p99_ms))
    for p, measured in zip((50, 95, 99), np.mean(percentiles, axis=0)):
        assert measured == pytest.approx(1000 * mm1_response_percentile(5.0, 10.0, p), rel=0.04), p


@pytest.mark.parametrize("servers, rate", [(1, 7.0), (4, 32.0), (10, 85.0)])
def test_fast_mmc_mean_wait_within_3_percent(servers, rate):
    """The fluid mode's M/G/c model is exact in the mean for M/M/c; its fixed 256-point sample costs < 3% at these
    loads (up to 0.85; above, the backlog built by each sub-step's Poisson noise adds to it: README)."""
    expected = mmc_mean_wait(servers, rate, 10.0)
    assert mean_wait("fast", servers, rate, horizon_s=3600) == pytest.approx(expected, rel=0.03)


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if "OOM" not in s.name], ids=lambda s: s.name)
def test_fast_mode_tracks_request_mode(scenario):
    """Stated tolerance (README): throughput and utilisation within 2%, mean and p95 latency within 12%."""
    fast = run_scenario(scenario, "fast", 1800, seed=1)
    exact = run_scenario(scenario, "request", 1800, seed=1)
    for metric in ("throughput", "cpu_utilisation", "memory_utilisation"):
        assert fast[metric] == pytest.approx(exact[metric], rel=0.02), metric
    for metric in ("mean_ms", "p95_ms"):
        assert fast[metric] == pytest.approx(exact[metric], rel=0.12), metric


def test_overload_builds_a_backlog_and_rejects_beyond_the_timeout():
    curve = ConstantWorkload(rate=30).realise(np.random.default_rng(0), 60)
    for fidelity in ("fast", "request"):
        sim = make_simulation(fidelity, MM_APP, curve, np.random.default_rng(0), replicas=1, cpu_millicores=1000,
                              memory_mb=1024)
        metrics = [sim.run(60) for _ in range(5)]
        assert metrics[-1].throughput == pytest.approx(10, rel=0.1)  # saturated at mu
        assert metrics[-1].dropped > 0 and metrics[-1].p95_ms > 20_000


def test_startup_delay_before_new_replicas_serve():
    app = AppProfile(service_time_ms=100, cpu_fraction=1.0, startup_delay_s=45)
    curve = ConstantWorkload(rate=5).realise(np.random.default_rng(0), 60)
    sim = make_simulation("fast", app, curve, np.random.default_rng(0), replicas=1, cpu_millicores=1000,
                          memory_mb=1024)
    sim.configure(3, 1000, 1024)
    assert sim.run(30).ready_replicas == 1
    assert sim.run(30).ready_replicas == pytest.approx(1 + 2 * 15 / 30)  # ready at t = 45 s
    sim.configure(1, 1000, 1024)  # scale-in retires ready replicas
    assert sim.ready == 1


def test_scale_in_cancels_pending_starts_first():
    curve = ConstantWorkload(rate=5).realise(np.random.default_rng(0), 60)
    sim = make_simulation("request", MM_APP, curve, np.random.default_rng(0), replicas=2, cpu_millicores=1000,
                          memory_mb=1024)
    sim.configure(4, 1000, 1024)
    sim.configure(3, 1000, 1024)
    sim.run(60)
    assert sim.ready == 3


@pytest.mark.parametrize("fidelity", ["fast", "request"])
def test_scaling_counts_from_the_moment_it_happens(fidelity):
    """Both fidelities serve with a new replica from the instant it is ready and stop using a retired one at once
    (a scale-in used to keep serving with the old replicas for a sub-step in the fast fidelity)."""
    app = AppProfile(service_time_ms=100, cpu_fraction=1.0, working_set_mb=256, startup_delay_s=5)   # mu = 10/s
    completed, ready = [], []
    for seed in range(4):
        curve = ConstantWorkload(rate=60).realise(np.random.default_rng(seed), 120)   # overloads 4 replicas
        sim = make_simulation(fidelity, app, curve, np.random.default_rng(seed), replicas=2, cpu_millicores=1000,
                              memory_mb=1024)
        sim.run(30)
        sim.configure(4, 1000, 1024)      # the 2 new replicas serve from t = 35 s
        out = sim.run(10)
        sim.configure(1, 1000, 1024)      # 3 retire at t = 40 s
        within = sim.run(5)
        completed.append((out.completed, within.completed))
        ready.append((out.ready_replicas, within.ready_replicas))
    assert ready == [(3.0, 1.0)] * 4
    out, within = np.mean(completed, axis=0)
    assert out == pytest.approx(2 * 10 * 10 + 2 * 10 * 5, rel=0.05)     # 300; 200 if the new ones started late
    assert within == pytest.approx(50, rel=0.2)                          # 1 replica x 5 s; 200 if 4 kept serving


@pytest.mark.parametrize("fidelity", ["fast", "request"])
def test_an_oom_crash_loop_ends_when_the_load_falls(fidelity):
    """Above 80 % offered load the replicas outgrow their 900 MiB limit and crash-loop; once the load falls to 10 %,
    restarted replicas must stay up (they used to be killed as if fully loaded, forever)."""
    app = AppProfile(service_time_ms=100, cpu_fraction=1.0, working_set_mb=1000, idle_memory_fraction=0.5,
                     startup_delay_s=10)
    curve = StepWorkload(base_rate=60, peak_rate=2, start_s=60).realise(np.random.default_rng(0), 600)
    sim = make_simulation(fidelity, app, curve, np.random.default_rng(0), replicas=2, cpu_millicores=1000,
                          memory_mb=900)
    minutes = [sim.run(60) for _ in range(5)]
    assert minutes[0].oom_kills > 0
    assert all(m.oom_kills == 0 and m.ready_replicas == 2 for m in minutes[2:])
    served = np.mean([m.completed for m in minutes[2:]])   # serving the 2 req/s again (Poisson: 360 +- 19 in all)
    assert served == pytest.approx(120, rel=0.15)


@pytest.mark.parametrize("fidelity", ["fast", "request"])
def test_a_crash_loop_does_not_hang_on_where_in_a_sub_step_restarts_come_up(fidelity):
    """A restart that came up at a sub-step's end was checked, and killed, before it served: a start-up delay of
    20 s (4 sub-steps) served nothing, 20.5 s most of a sub-step per restart. Now its chance of being killed follows
    the share of the sub-step it was up, so its expected life (and the service's throughput) varies smoothly."""
    app = {delay: AppProfile(service_time_ms=100, cpu_fraction=1.0, working_set_mb=1300, startup_delay_s=delay)
           for delay in (20.0, 20.5, 21.0)}
    ready = {}
    for delay, profile in app.items():
        runs = []
        for seed in range(3):
            curve = ConstantWorkload(rate=25).realise(np.random.default_rng(seed), 60)
            sim = make_simulation(fidelity, profile, curve, np.random.default_rng(seed), replicas=4,
                                  cpu_millicores=1000, memory_mb=1024)
            minutes = [sim.run(60) for _ in range(20)][5:]
            assert sum(m.oom_kills for m in minutes) > 0   # a crash loop
            runs.append(np.mean([m.ready_replicas for m in minutes]))
        ready[delay] = np.mean(runs)
    assert ready[20.0] > 0.5   # it was 0
    assert ready[20.0] == pytest.approx(ready[20.5], rel=0.1) and ready[20.5] == pytest.approx(ready[21.0], rel=0.1)


@pytest.mark.parametrize("fidelity", ["fast", "request"])
def test_requests_left_waiting_when_capacity_falls_give_up_after_the_timeout(fidelity):
    """The queue admits ``timeout_s`` of work at the capacity of the moment; when every replica is then retired, what
    waits gives up within ``timeout_s`` and counts as dropped, so that nothing is left in the system: arrivals equal
    completed plus dropped requests. The per-request mode kept those requests queued however long they waited, and
    served them when a replica came back."""
    curve = ConstantWorkload(rate=30).realise(np.random.default_rng(0), 60)   # 3x one replica's 10 req/s
    sim = make_simulation(fidelity, MM_APP, curve, np.random.default_rng(0), replicas=1, cpu_millicores=1000,
                          memory_mb=1024, timeout_s=2.0)
    before = [sim.run(30)]          # a queue of about 2 s of work (20 requests) builds up
    assert before[0].completed > 0 and before[0].dropped > 0
    sim.configure(0, 1000, 1024)    # no replica: new arrivals are rejected, the queue has nowhere to go
    after = [sim.run(5), sim.run(5)]
    assert after[1].completed == 0 and after[1].dropped == after[1].arrivals   # empty after 2 s: only new ones drop
    runs = before + after
    assert sum(m.arrivals for m in runs) == sum(m.completed + m.dropped for m in runs)
    assert after[0].dropped > after[0].arrivals + 10   # the queue gave up, at the timeout (the retired replica
    assert after[0].mean_ms == pytest.approx(2000, rel=1e-3)   # finishes the request it was serving)


def test_a_killed_replicas_request_fails_when_it_is_killed():
    """An OOM kill ends the request in service on the killed replica at once, and the replica's service with it; the
    per-request mode let the dead replica serve it to the end (30 s here) before counting it as failed."""
    app = AppProfile(service_time_ms=30_000, cpu_fraction=1.0, service_cv=0.05, working_set_mb=2000,
                     startup_delay_s=20)   # idle, it needs 1200 MiB of its 1024: killed at the first check (5 s)
    curve = ConstantWorkload(rate=2).realise(np.random.default_rng(0), 60)
    sim = make_simulation("request", app, curve, np.random.default_rng(0), replicas=1, cpu_millicores=1000,
                          memory_mb=1024, timeout_s=600.0)   # a long queue: no arrival is rejected
    first = sim.run(5)
    assert first.oom_kills == 1 and first.arrivals > 1
    assert first.dropped == 1 and first.completed == 0   # the one in service; the others still wait


def test_fast_fidelity_counts_fractional_service_once_per_interval():
    """Overloaded, 1 replica serves 3.2 requests per 5 s sub-step: 19.2 per 30 s interval, which rounds to 19, not
    6 x round(3.2) = 18."""
    app = AppProfile(service_time_ms=200, cpu_fraction=1.0, working_set_mb=256)
    curve = ConstantWorkload(rate=5).realise(np.random.default_rng(0), 600)
    sim = make_simulation("fast", app, curve, np.random.default_rng(0), replicas=1, cpu_millicores=128,
                          memory_mb=1024)
    sim.run(30)   # the backlog builds up
    completed = [sim.run(30).completed for _ in range(10)]
    assert completed == [19] * 10


@pytest.mark.parametrize("fidelity", ["fast", "request"])
def test_no_request_no_latency(fidelity):
    curve = ConstantWorkload(rate=0).realise(np.random.default_rng(0), 60)
    sim = make_simulation(fidelity, MM_APP, curve, np.random.default_rng(0), replicas=1, cpu_millicores=1000,
                          memory_mb=1024)
    metrics = sim.run(60)
    assert metrics.completed == metrics.dropped == 0 and np.isnan(metrics.p95_ms)
    assert metrics.cpu_utilisation == 0.0 and metrics.ready_replicas == 1   # up, and never busy


@pytest.mark.parametrize("fidelity, seed", [("fast", 0), ("request", 3)])   # seeds with one arrival in the minute
def test_one_request_has_a_latency(fidelity, seed):
    """An interval with a single request, completed, reports its latency: the request's own in the request mode,
    the model's at that load in the fast mode (mean 100 ms: light load, no wait)."""
    curve = ConstantWorkload(rate=1 / 60).realise(np.random.default_rng(seed), 60)
    sim = make_simulation(fidelity, MM_APP, curve, np.random.default_rng(seed), replicas=1, cpu_millicores=1000,
                          memory_mb=1024)
    metrics = sim.run(60)
    assert metrics.arrivals == metrics.completed == 1 and metrics.dropped == 0
    latencies = [metrics.mean_ms, metrics.p50_ms, metrics.p95_ms, metrics.p99_ms]
    assert np.isfinite(latencies).all() and min(latencies) > 0
    if fidelity == "request":
        assert latencies == [metrics.mean_ms] * 4
    else:
        assert metrics.mean_ms == pytest.approx(100.0)


def test_whole_float_replica_counts_are_accepted():
    curve = ConstantWorkload(rate=5).realise(np.random.default_rng(0), 60)
    sim = make_simulation("request", MM_APP, curve, np.random.default_rng(0), replicas=2.0, cpu_millicores=1000,
                          memory_mb=1024)
    sim.configure(3.0, 1000, 1024)
    assert sim.run(60).ready_replicas > 2


@pytest.mark.parametrize("kwargs, message", [
    ({"replicas": -1}, "replicas"),
    ({"replicas": 1.5}, "replicas"),
    ({"cpu_millicores": 0}, "cpu_millicores"),
    ({"memory_mb": -5}, "memory_mb"),
])
def test_impossible_configuration_raises(kwargs, message):
    curve = ConstantWorkload(rate=5).realise(np.random.default_rng(0), 60)
    config = {"replicas": 1, "cpu_millicores": 1000, "memory_mb": 1024, **kwargs}
    with pytest.raises(ValueError, match=message):
        make_simulation("fast", MM_APP, curve, np.random.default_rng(0), **config)


@pytest.mark.parametrize("field, value", [("service_time_ms", -1.0), ("service_time_ms", 0.0),
                                          ("cpu_fraction", 1.5), ("service_cv", 0.0), ("slo_ms", float("nan")),
                                          ("startup_delay_s", -3.0), ("working_set_mb", 0.0)])
def test_impossible_application_raises(field, value):
    with pytest.raises(ValueError, match=field):
        AppProfile(**{field: value})


def test_unknown_fidelity_raises():
    curve = ConstantWorkload(rate=5).realise(np.random.default_rng(0), 60)
    with pytest.raises(ValueError, match="fidelity"):
        make_simulation("exact", MM_APP, curve, np.random.default_rng(0), replicas=1, cpu_millicores=1000,
                        memory_mb=1024)


def test_the_cpu_part_of_service_scales_with_the_cpu_limit_and_the_rest_does_not():
    """100 ms at 1000 m, half of it CPU work: at 500 m the CPU part takes 100 ms and the I/O part still 50 ms, so a busy
    replica uses its CPU 2/3 of the time; at 2000 m, 25 + 50 ms, 1/3."""
    app = AppProfile(service_time_ms=100, cpu_fraction=0.5)
    assert app.mean_service_s(500) == pytest.approx(0.15, rel=1e-12) and app.cpu_share(500) == pytest.approx(2 / 3)
    assert app.mean_service_s(2000) == pytest.approx(0.075, rel=1e-12) and app.cpu_share(2000) == pytest.approx(1 / 3)
    assert app.cpu_share(1000) == pytest.approx(0.5, rel=1e-12)


@pytest.mark.parametrize("fidelity", ["fast", "request"])
@pytest.mark.parametrize("replicas", [1, 2])
def test_cpu_utilisation_counts_only_the_cpu_part_of_service(fidelity, replicas):
    """CPU utilisation is CPU-seconds used over CPU-seconds allocated: a replica busy on a request whose 100 ms are half
    CPU work (50 ms at 1000 m, so 100 ms at a 500 m limit) and half I/O uses its CPU for 2/3 of its busy time, so
    the utilisation is the completed requests times 0.1 CPU-s over the replica-seconds, not the busy fraction."""
    app = AppProfile(service_time_ms=100, cpu_fraction=0.5, working_set_mb=256)   # 150 ms at 500 m, 2/3 of it CPU
    curve = ConstantWorkload(rate=3 * replicas).realise(np.random.default_rng(0), 60)   # ~45 % busy
    sim = make_simulation(fidelity, app, curve, np.random.default_rng(0), replicas=replicas, cpu_millicores=500,
                          memory_mb=1024)
    m = sim.run(600)
    cpu_seconds = m.completed * 0.100
    assert m.cpu_utilisation == pytest.approx(cpu_seconds / (m.ready_replicas * m.duration_s), rel=0.05)
    assert m.cpu_utilisation == pytest.approx(0.3, rel=0.1)   # 3/s x 0.1 s per replica (1800 arrivals: +- 2.4 %)
    assert m.processing_rate == pytest.approx(replicas / 0.15)   # what the replicas can serve: 1 / 150 ms each


@pytest.mark.parametrize("fidelity", ["fast", "request"])
def test_a_replica_up_for_part_of_a_sub_step_carries_the_arrival_rate_of_a_whole_one(fidelity):
    """Memory follows the offered load per replica, the arrival rate over the ready replicas while some were up: a lone
    replica that comes up half-way through a 5 s sub-step at 2 req/s (mu 10/s) has load 0.2, not the sub-step's
    10 arrivals in its 2.5 s (0.4). It uses 1000 * (0.5 + 0.5 * 0.2) = 600 of its 1000 MiB for half the sub-step."""
    app = AppProfile(service_time_ms=100, cpu_fraction=1.0, working_set_mb=1000, idle_memory_fraction=0.5,
                     startup_delay_s=2.5)
    curve = ConstantWorkload(rate=2).realise(np.random.default_rng(0), 60)
    sim = make_simulation(fidelity, app, curve, np.random.default_rng(0), replicas=0, cpu_millicores=1000,
                          memory_mb=1000)
    sim.configure(1, 1000, 1000)                   # ready at t = 2.5 s
    first = sim.run(5)
    assert first.ready_replicas == pytest.approx(0.5)
    assert first.memory_utilisation == pytest.approx(0.6 * 0.5)
    assert sim.run(5).memory_utilisation == pytest.approx(0.6)   # up throughout: the same load, all the time
    assert sim.run(60).memory_utilisation == pytest.approx(0.6)  # the mean of an interval's 12 sub-steps
    sim.configure(2, 1000, 1000)   # a second one joins half-way through the next sub-step: 1.5 replicas on average,
    both = sim.run(5)              # and one or more up all the time: load 2 / (1.5 x 10), for the whole sub-step
    assert both.ready_replicas == pytest.approx(1.5)
    assert both.memory_utilisation == pytest.approx(0.5 + 0.5 * 2 / 15)


def test_fast_mode_an_oom_kill_fails_one_queued_request():
    """In the fast mode too an OOM kill fails the request in service on the killed replica: the one replica (30 s
    requests, idle it needs 1200 MiB of its 1024) is killed at the first check (5 s) with ~10 requests queued, so one
    request is dropped; the queue (600 s of work allowed) rejects none."""
    app = AppProfile(service_time_ms=30_000, cpu_fraction=1.0, service_cv=0.05, working_set_mb=2000,
                     startup_delay_s=20)
    curve = ConstantWorkload(rate=2).realise(np.random.default_rng(0), 60)
    sim = make_simulation("fast", app, curve, np.random.default_rng(0), replicas=1, cpu_millicores=1000,
                          memory_mb=1024, timeout_s=600.0)
    first = sim.run(5)
    assert first.oom_kills == 1 and first.arrivals > 1
    assert first.dropped == 1 and first.completed == 0


@pytest.mark.parametrize("fidelity", ["fast", "request"])
def test_latencies_count_at_most_the_timeout(fidelity):
    """A request's latency counts at most ``timeout_s``: one replica offered 3x its 10 requests/s with a 2 s timeout
    keeps a queue of ~2 s of work, so a request's wait plus service (the fast mode's samples: service, wait, backlog
    delay) passes 2 s, but no percentile and not the mean exceeds 2000 ms."""
    curve = ConstantWorkload(rate=30).realise(np.random.default_rng(0), 60)
    sim = make_simulation(fidelity, MM_APP, curve, np.random.default_rng(0), replicas=1, cpu_millicores=1000,
                          memory_mb=1024, timeout_s=2.0)
    sim.run(30)
    metrics = sim.run(30)
    assert metrics.dropped > 0 and metrics.p50_ms > 1000
    assert max(metrics.mean_ms, metrics.p50_ms, metrics.p95_ms, metrics.p99_ms) <= 2000 + 1e-6


def test_fast_mode_backlog_delay_is_the_mean_backlog_over_the_sub_step():
    """The fast mode adds the interval's mean backlog / capacity to the latency. 100 replicas of 10 requests/s
    (capacity 1000/s) offered 2000/s for one 5 s sub-step: ~10 000 arrive, 5000 are served, the backlog grows from 0
    to ~5000, a mean of ~2500, i.e. ~2.5 s of delay; with 0.1 s of service and Erlang C's small wait at load 0.98 on
    100 servers (under 0.05 s) the mean response time is ~2.6 s (the backlog at the end would make it ~5.1 s)."""
    curve = ConstantWorkload(rate=2000).realise(np.random.default_rng(0), 60)
    sim = make_simulation("fast", MM_APP, curve, np.random.default_rng(0), replicas=100, cpu_millicores=1000,
                          memory_mb=1024, substep_s=5.0)
    metrics = sim.run(5)
    assert metrics.dropped == 0
    assert 2400 < metrics.mean_ms < 2900


def test_fast_mode_latency_at_a_light_steady_load_is_its_models_at_that_operating_point():
    """Two replicas of 10 requests/s offered 1/s never keep a backlog, so the fast mode's mean and percentiles are
    exactly those of its model's samples at 2 servers and 1 request/s, with no backlog delay."""
    sim = mm_simulation("fast", 2, 1.0)
    metrics = sim.run(60)
    assert metrics.completed > 0 and metrics.dropped == 0
    samples = 1000 * ResponseTimeModel(MM_APP.service_cv).samples(2, 1.0, 10.0, 0.0)
    assert metrics.mean_ms == pytest.approx(samples.mean(), rel=1e-12)
    assert [metrics.p50_ms, metrics.p95_ms, metrics.p99_ms] == weighted_percentiles(samples, np.ones(len(samples)),
                                                                                    (50, 95, 99))


@pytest.mark.parametrize("seed", range(3))
def test_fast_mode_rejected_requests_count_at_the_timeout_beside_the_completed_ones(seed):
    """A 1 s burst of 50 requests/s on one replica of 10/s with a 1 s timeout: the backlog beyond 10 requests is
    rejected, 10-20% of the minute's requests. Each counts at the timeout, as much as a completed request counts at
    its latency: the p95 and p99 are the timeout, the median that of the completed ones, and the rejected alone
    put the mean above their share of 1000 ms."""
    curve = StepWorkload(base_rate=2.0, peak_rate=50.0, start_s=0.0, end_s=1.0).realise(np.random.default_rng(seed),
                                                                                       60)
    sim = make_simulation("fast", MM_APP, curve, np.random.default_rng(seed), replicas=1, cpu_millicores=1000,
                          memory_mb=1024, timeout_s=1.0, substep_s=1.0)
    metrics = sim.run(60)
    rejected = metrics.dropped / (metrics.dropped + metrics.completed)
    assert 0.1 < rejected < 0.2
    assert metrics.p95_ms == metrics.p99_ms == 1000.0 and metrics.p50_ms < 200
    assert metrics.mean_ms > 1000 * rejected


@pytest.mark.parametrize("fidelity, substep_s, bounds", [("fast", 1.0, (1.0, 1.2)), ("fast", 5.0, (1.0, 1.12)),
                                                        ("request", 1.0, (0.97, 1.03))])
def test_a_service_slower_than_a_sub_step_still_queues(fidelity, substep_s, bounds):
    """One replica of a 2 s service (0.5 requests/s: half a request per 1 s sub-step) offered 0.25/s for 10 hours is
    busy half the time. Its mean response time is M/M/1's 4 s within 3% in the request mode; the fast mode's is 18%
    above at 1 s sub-steps and 9% at 5 s (the README), as each sub-step's Poisson count leaves a backlog whose delay
    adds to the model's wait."""
    app = AppProfile(service_time_ms=2000, cpu_fraction=1.0, service_cv=1.0, working_set_mb=256)
    curve = ConstantWorkload(rate=0.25).realise(np.random.default_rng(0), 60)
    sim = make_simulation(fidelity, app, curve, np.random.default_rng(0), replicas=1, cpu_millicores=1000,
                          memory_mb=1024, timeout_s=600, substep_s=substep_s)
    metrics = sim.run(36_000)
    assert metrics.cpu_utilisation == pytest.approx(0.5, rel=0.03)
    low, high = bounds
    assert low < metrics.mean_ms / (1000 * (mmc_mean_wait(1, 0.25, 0.5) + 2.0)) < high


def test_mmc_mean_wait_is_infinite_at_and_above_full_load():
    """An M/M/c queue is stable only for lambda < c * mu: at lambda = c * mu (2 servers of 10/s offered 20/s) and
    above, the mean wait is infinite (not a division by zero)."""
    assert mmc_mean_wait(2, 20.0, 10.0) == float("inf")
    assert mmc_mean_wait(2, 25.0, 10.0) == float("inf")
    assert mmc_mean_wait(2, 10.0, 10.0) == pytest.approx(erlang_c(2, 1.0) / (20 - 10))   # 1/3 / 10 s


@pytest.mark.parametrize("fidelity", ["fast", "request"])
@pytest.mark.parametrize(("working_set_mb", "p_kill"), [(1025, 0.25), (1050, 0.5), (1200, 1.0)])
def test_oom_kill_probability_grows_with_the_excess_and_is_certain_from_ten_percent(fidelity, working_set_mb, p_kill):
    """A replica over its memory limit is killed with probability ``min(1, excess / 10%)`` per sub-step: of 400 idle
    replicas with a 1000 MiB limit, a footprint 2.5, 5 or 20 % over it kills about a quarter, half or all of them at
    the first check, and the same share of those left at the next. (Restarts take 600 s, so none comes back.)"""
    app = AppProfile(service_time_ms=100, working_set_mb=working_set_mb, idle_memory_fraction=1.0,
                     startup_delay_s=600)
    curve = ConstantWorkload(rate=1).realise(np.random.default_rng(0), 60)
    sim = make_simulation(fidelity, app, curve, np.random.default_rng(0), replicas=400, cpu_millicores=1000,
                          memory_mb=1000)
    ready = 400
    for _ in range(2):
        kills = sim.run(5).oom_kills   # binomial: within 4 standard deviations
        assert kills == pytest.approx(ready * p_kill, abs=4 * np.sqrt(ready * p_kill * (1 - p_kill)) + 1e-6)
        ready -= kills


def two_replicas_of_30_s_requests(rate: float, seed: int):
    """Per-request simulation of two replicas serving 30 s requests (cv 0.05) at ``rate`` req/s, with an hour's
    timeout: a long queue, so that no arrival is rejected."""
    app = AppProfile(service_time_ms=30_000, cpu_fraction=1.0, service_cv=0.05, working_set_mb=256)
    curve = ConstantWorkload(rate=rate).realise(np.random.default_rng(seed), 60)
    return make_simulation("request", app, curve, np.random.default_rng(seed), replicas=2, cpu_millicores=1000,
                           memory_mb=1024, timeout_s=3600.0)


def test_a_retired_replica_finishes_the_request_it_serves():
    """Scale-in retires a replica, but lets it finish its request first (an OOM kill ends it at once): both replicas
    take a 30 s request in the first seconds, one is retired at 5 s, and both requests still take about 30 s."""
    sim = two_replicas_of_30_s_requests(rate=2, seed=0)
    first = sim.run(5)
    assert first.completed == first.dropped == 0 and first.arrivals > 2   # both replicas busy, the rest wait
    sim.configure(1, 1000, 1024)   # no replica is idle: a busy one is retired
    second = sim.run(30)
    assert second.ready_replicas == 1 and second.dropped == 0
    assert second.completed == 2 and second.mean_ms == pytest.approx(30_000, rel=0.15)


def test_scale_in_retires_an_idle_replica_before_a_busy_one():
    """Of two replicas, one serving a 30 s request from the first seconds and one idle, scale-in to one at 5 s retires
    the idle one: the next request, which comes a little later, waits for the busy one (about 55 s in all), instead of
    being served at once (30 s)."""
    sim = two_replicas_of_30_s_requests(rate=0.1, seed=2)
    assert sim.run(5).arrivals == 1
    sim.configure(1, 1000, 1024)
    assert sim.run(30).completed == 1   # the first request
    second = sim.run(30)
    assert second.completed == 1 and second.mean_ms == pytest.approx(55_000, rel=0.1)


@pytest.mark.parametrize("fidelity", ["fast", "request"])
def test_a_run_must_last_a_whole_positive_number_of_sub_steps(fidelity):
    """``run`` advances whole sub-steps (5 s here; 0.1 s ones that binary floats do not hold exactly still add up):
    7.5, 2.5, 0 or -5 s is refused, and nothing has run."""
    sim = mm_simulation(fidelity, 1, 5.0)
    for duration_s in (7.5, 2.5, 0.0, -5.0):
        with pytest.raises(ValueError, match=f"duration_s={duration_s} must be a positive multiple of substep_s=5"):
            sim.run(duration_s)
    assert sim.env.now == 0 and sim.run(10).duration_s == 10 and sim.env.now == 10
    fine = mm_simulation(fidelity, 1, 5.0, substep_s=0.1)
    assert fine.run(0.3).duration_s == 0.3 and fine.substeps_done == 3
