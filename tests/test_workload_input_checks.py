"""Workload inputs refused or warned of where they are given: a rate too large to draw arrivals for (it failed at
``step()`` with NumPy's "lam value too large"), and a ``time_unit_s`` that a date-time trace ignores."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

from flash_envs.data.public import nasa_http_trace
from flash_envs.data.trace_csv import RateTrace, read_rate_trace
from flash_envs.envs.autoscaling import AutoscalingEnv
from flash_envs.envs.power_management import PowerManagementEnv
from flash_envs.flash_warnings import FlashWarning
from flash_envs.power_tasks import PowerTaskFamily
from flash_envs.sim.workloads import (ConstantWorkload, DiurnalWorkload, MMPPWorkload, SpikeWorkload, StepWorkload,
                                      TraceWorkload, workload_from_dict)
from flash_envs.tasks import AutoscalingTaskFamily
from flash_rl.config import TasksConfig

LIMIT = r"req/s, is over 1e\+11 req/s, the most the simulators draw arrivals for"


# ------------------------------------------------------------------ 1. rates too large to draw arrivals for
@pytest.mark.parametrize("make, named", [
    (lambda: ConstantWorkload(rate=1e300), r"ConstantWorkload.rate must be <= 1e\+11 here, got 1e\+300"),
    (lambda: ConstantWorkload(rate=10.0, scale=1e299),
     r"ConstantWorkload.rate must be <= 1e-288 here, got 10.0: .* scale \* rate = 1e\+299 \* 10 = 1e\+300 "),
    (lambda: DiurnalWorkload(mean_rate=1e11, amplitude=0.5),   # its peak is 1.5 x its mean
     r"DiurnalWorkload.mean_rate must be <= 6.667e\+10 here, got 100000000000.0: .* = 1.5e\+11 "),
    (lambda: StepWorkload(base_rate=5.0, peak_rate=1e300), r"StepWorkload.peak_rate must be <= 1e\+11 here"),
    (lambda: StepWorkload(base_rate=1e300, peak_rate=5.0), r"StepWorkload.base_rate must be <= 1e\+11 here"),
    (lambda: MMPPWorkload(rates=(1e300, 5.0)), r"MMPPWorkload.rates\[0\] must be <= 1e\+11 here, got 1e\+300"),
    (lambda: SpikeWorkload(base_rate=1e10, multiplier=20.0),
     r"SpikeWorkload.base_rate must be <= 5e\+09 here, .* max\(1, multiplier\) \* base_rate = 1 \* 20 \* 1e\+10 "),
    (lambda: workload_from_dict({"kind": "constant", "rate": 1e300}), r"ConstantWorkload.rate must be <= 1e\+11"),
    (lambda: TraceWorkload.from_trace(RateTrace([1.0, 3e11], 60.0, "x.csv")),
     r"TraceWorkload.scale must be <= 0.3333 here, got 1.0: .* the peak of the trace x.csv \* scale = 3e\+11 \* 1 "),
    (lambda: TraceWorkload.from_trace(RateTrace([1.0, 3.0], 60.0, "x.csv"), mean_rate=1e300),
     r"TraceWorkload.mean_rate must be <= 6.667e\+10 here, got 1e\+300: .* peak / mean of the trace x.csv \* "),
], ids=["constant", "scale", "diurnal", "step peak", "step base", "mmpp", "spikes", "from dict", "trace",
        "trace mean_rate"])
def test_a_rate_too_large_to_draw_is_refused_where_the_workload_is_made(make, named):
    """1e300 req/s was accepted, and step() failed deep in the simulator with NumPy's "lam value too large"."""
    with pytest.raises(ValueError, match=f"{named}.*{LIMIT}"):
        make()


def write(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize("options, named", [
    ({}, r"TraceWorkload.scale must be <= 1e-05 here, got 1.0: .* the peak of the trace .*huge.csv \* scale = 1e\+16 "),
    ({"mean_rate": 1e300}, r"TraceWorkload.mean_rate must be <= 9.091e\+09 here, got 1e\+300"),
])
def test_a_csv_trace_too_large_to_draw_is_refused_where_the_task_is_given(tmp_path, options, named):
    """A CSV trace is read when first realised: the env realises a task it is given, so the error comes there."""
    path = write(tmp_path / "huge.csv", "t,requests\n0,1e8\n60,1e8\n120,1e8\n180,1e8\n240,1e8\n300,1e8\n360,1e8\n"
                                        "420,1e8\n480,1e8\n540,1e8\n600,6e17\n")   # 1e16 req/s in the last minute
    workload = TraceWorkload(path=str(path), time_column="t", **options)   # (not read yet)
    task = dataclasses.replace(AutoscalingTaskFamily.generate(2, 1).test[0], workload=workload)
    with pytest.raises(ValueError, match=f"{named}.*{LIMIT}"):
        AutoscalingEnv(task=task)


def test_rates_up_to_the_limit_run_in_the_longest_sub_steps():
    """The limit holds for every sub-step an env takes (at most an episode, at most MAX_EPISODE_S), with room left."""
    from flash_envs.envs.task_env import MAX_EPISODE_S
    from flash_envs.sim.workloads import LONGEST_SUBSTEP_S, MAX_RATE, POISSON_LAM_MAX
    assert POISSON_LAM_MAX == np.random.default_rng(0)._poisson_lam_max   # NumPy's own bound
    assert LONGEST_SUBSTEP_S == MAX_EPISODE_S and MAX_RATE * LONGEST_SUBSTEP_S < POISSON_LAM_MAX / 2
    task = dataclasses.replace(PowerTaskFamily.generate(2, 1).train[0], workload=ConstantWorkload(rate=MAX_RATE))
    env = PowerManagementEnv(task=task, substep_s=86400.0, interval_s=86400.0, transition_latency_s=0.0,
                             episode_s=2 * 86400.0)
    env.reset(seed=0)
    for _ in range(2):
        obs, reward, *_ = env.step(env.action_space.sample())
        assert np.all(np.isfinite(obs)) and np.isfinite(reward)


def test_the_committed_workloads_are_far_below_the_limit():
    from flash_envs.sim.workloads import MAX_RATE
    workloads = [t.workload for family in (AutoscalingTaskFamily.generate(), PowerTaskFamily.generate())
                 for t in (*family.train, *family.test)]
    peak = max(w.realise(np.random.default_rng(0), 7200.0).rates.max() for w in workloads)
    assert peak < MAX_RATE / 1e6 and nasa_http_trace().rates.max() < MAX_RATE / 1e6


# ------------------------------------------------------------------ 2. time_unit_s with date-time stamps
DATE_TIMES = "minute,requests\n1995-07-01 00:00,42\n1995-07-01 00:01,62\n1995-07-01 00:02,50\n"


def test_time_unit_s_with_date_times_warns_that_it_is_ignored(tmp_path):
    """time_unit_s=60 with date-time stamps was ignored without a word."""
    path = write(tmp_path / "dates.csv", DATE_TIMES)
    with pytest.warns(FlashWarning, match=r"dates.csv: time_unit_s=60 is ignored: the timestamps are "
                                          r"date-times \(line 2 holds '1995-07-01 00:00'\), which carry their own "
                                          r"unit; time_unit_s scales numeric timestamps only") as record:
        trace = read_rate_trace(path, "minute", "requests", time_unit_s=60)
    assert [w.category.__name__ for w in record] == ["TraceTimeUnitWarning"]   # a category of its own, to filter
    assert trace == read_rate_trace(path, "minute", "requests")   # ignored indeed: 60 s bins either way
    assert trace.bin_s == 60.0


def test_a_trace_workload_warns_of_it_as_it_reads_the_file(tmp_path):
    path = write(tmp_path / "dates.csv", DATE_TIMES)
    workload = TraceWorkload(path=str(path), time_column="minute", time_unit_s=0.001)
    with pytest.warns(FlashWarning, match="time_unit_s=0.001 is ignored"):
        workload.realise(np.random.default_rng(0), 60.0)


def test_the_default_time_unit_and_numeric_stamps_do_not_warn(tmp_path):
    """The default 1.0 (what flash_rl's tasks.trace_time_unit_s passes unless set) never warns, nor does any
    time_unit_s with numeric stamps, which it scales."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_rate_trace(write(tmp_path / "dates.csv", DATE_TIMES), "minute", "requests")
        read_rate_trace(write(tmp_path / "dates1.csv", DATE_TIMES), "minute", "requests", time_unit_s=1)
        trace = read_rate_trace(write(tmp_path / "minutes.csv", "minute,requests\n0,42\n1,62\n"), "minute",
                                "requests", time_unit_s=60)
        nasa_http_trace()   # the shared date-time trace
        TraceWorkload(path=str(tmp_path / "dates.csv"), time_column="minute",
                      time_unit_s=TasksConfig().trace_time_unit_s).load()   # as flash_rl's cases pass it
    assert trace.bin_s == 60.0


def test_spikes_per_hour_beyond_one_a_second_are_refused():
    """1e300 an hour failed in NumPy's Poisson draw of the bursts' number; 1e12 looped over that many bursts."""
    from flash_envs.sim.workloads import MAX_SPIKES_PER_HOUR

    with pytest.raises(ValueError, match=r"SpikeWorkload.spikes_per_hour must be a finite number >= 0 and <= 3600, "
                                         r"got 1e\+300"):
        SpikeWorkload(spikes_per_hour=1e300)
    rates = SpikeWorkload(spikes_per_hour=MAX_SPIKES_PER_HOUR, duration_s=1.0).realise(np.random.default_rng(0), 3600.0)
    assert 0.5 < np.mean(rates.rates > 10.0) < 0.75   # bursts a second long, about one a second: 1 - 1/e covered
