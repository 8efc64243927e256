"""Inputs a fuzzing review found to hang, or to fail deep inside NumPy, SimPy or PyYAML's silence, instead of an error
naming the argument: sub-steps and replicas without a bound, integers past a float, time values so small that the
times divided by them overflowed, subnormal service times and CVs; and rates near zero, which are valid and now run
without NumPy's overflow warnings."""

from __future__ import annotations

import dataclasses
import warnings

import gymnasium as gym
import numpy as np
import pytest

import flash_envs  # noqa: F401
from flash_envs.data.trace_csv import RateTrace, TraceBinError, read_rate_trace
from flash_envs.envs.autoscaling import MAX_RATIO, MAX_REPLICAS
from flash_envs.envs.task_env import MAX_SUBSTEPS
from flash_envs.sim.service import MIN_SERVICE_CV, AppProfile
from flash_envs.sim.workloads import ConstantWorkload, DiurnalWorkload, StepWorkload, TraceWorkload
from flash_envs.tasks import AutoscalingTaskFamily
from flash_rl.config import ConfigError, load_config
from flash_rl.cases import CONFIG_DIR


@pytest.mark.parametrize("env_id, kwargs", [("flash/Autoscaling-v0", {}), ("flash/PowerManagement-v0", {})])
def test_a_substep_that_would_take_years_to_simulate_is_refused_naming_its_least_value(env_id, kwargs):
    """``substep_s=1e-12`` made ``reset()`` run for years (1.8e15 sub-steps of a 30-minute episode)."""
    with pytest.raises(ValueError, match=r"substep_s=1e-12 divides an episode of \d+ s into [\d.e+]+ sub-steps.*"
                                         r"at most 31,536,000.*substep_s must be at least"):
        gym.make(env_id, substep_s=1e-12, **kwargs)
    env = gym.make(env_id, substep_s=0.01)   # 180 000 sub-steps: slow, and allowed
    assert env.unwrapped.substep_s == 0.01 and MAX_SUBSTEPS == 365 * 86400


def test_more_replicas_than_the_env_simulates_are_refused():
    """A million replicas did not end an episode."""
    with pytest.raises(ValueError, match=rf"replica_bounds high must be at most {MAX_REPLICAS} .*got 1000000"):
        gym.make("flash/Autoscaling-v0", replica_bounds=(1, 10**6), initial_replicas=2)
    env = gym.make("flash/Autoscaling-v0", replica_bounds=(1, MAX_REPLICAS), initial_replicas=MAX_REPLICAS)
    env.reset(seed=0)
    assert env.step(0)[4]["replicas"] == MAX_REPLICAS


@pytest.mark.parametrize("env_id, name", [("flash/Autoscaling-v0", "episode_steps"),
                                          ("flash/PowerManagement-v0", "n_servers"),
                                          ("flash/PowerManagement-v0", "transition_latency_s")])
def test_an_integer_past_a_float_is_refused_naming_its_argument(env_id, name):
    """YAML reads 401 digits as ``10**400``: ``OverflowError: int too large to convert to float`` named nothing."""
    with pytest.raises(ValueError, match=rf"^{name} must be .*got 10000000.*0000\Z"):
        gym.make(env_id, **{name: 10**400})


@pytest.mark.parametrize("make, message", [
    (lambda: RateTrace(np.ones(3), 5e-324), r"RateTrace.bin_s must be a finite number >= 1e-06 and <= 1e\+09"),
    (lambda: RateTrace(np.ones(3), 1e308), r"RateTrace.bin_s must be a finite number >= 1e-06 and <= 1e\+09"),
    (lambda: TraceWorkload.from_trace(RateTrace(np.ones(3), 60.0), time_scale=1e-310),
     r"TraceWorkload.time_scale must be a finite number >= 1e-06, got 1e-310"),
    (lambda: DiurnalWorkload(period_s=1e-310), r"DiurnalWorkload.period_s must be a finite number >= 1e-06"),
    (lambda: AppProfile(service_time_ms=5e-324), r"AppProfile.service_time_ms must be a finite number >= 0.001"),
    (lambda: AppProfile(service_cv=1e-200), r"AppProfile.service_cv must be a finite number >= 0.001 and <= 5"),
])
def test_times_so_small_that_dividing_by_them_overflowed_are_refused_where_made(make, message):
    """Each was taken, and ``reset()`` then ended in an IndexError, an OverflowError, a ZeroDivisionError or NaN
    rates that named no field."""
    with pytest.raises(ValueError, match=message):
        make()


def test_a_trace_time_scale_below_the_least_is_a_config_key_error():
    with pytest.raises(ConfigError, match=r"config key tasks.trace_time_scale must be a finite number >= 1e-06"):
        load_config(CONFIG_DIR / "autoscaling_quick.yaml", ["tasks.trace_time_scale=1e-7"])


@pytest.mark.parametrize("fidelity", ["fast", "request"])
def test_the_least_service_cv_simulates_finite_latencies(fidelity):
    base = AutoscalingTaskFamily.generate(n_train=1, n_test=1, seed=0).train[0]
    app = dataclasses.replace(base.app, service_cv=MIN_SERVICE_CV)
    env = gym.make("flash/Autoscaling-v0", episode_steps=4, fidelity=fidelity)
    env.reset(seed=0, options={"task": dataclasses.replace(base, app=app)})
    info = env.step(0)[4]
    assert info["throughput"] > 0 and np.isfinite(info["latency_p95_ms"])


def test_rows_too_close_for_a_bin_name_the_file_and_what_to_check(tmp_path):
    """Rows 500 ns apart (time_unit_s=1e-9) made bins RateTrace refused as 'RateTrace.bin_s ...', naming no file."""
    path = tmp_path / "ns.csv"
    path.write_text("t,requests\n0,1\n500,2\n1000,3\n")
    with pytest.raises(TraceBinError, match=rf"^{path}: lines 2 and 3 are 5e-07 s apart, which makes bins of 5e-07 s, "
                                            r"outside the 1e-06 to 1e\+09 s .*check time_unit_s"):
        read_rate_trace(path, "t", value_column="requests", time_unit_s=1e-9)


@pytest.mark.parametrize("make, message", [
    (lambda: gym.make("flash/Autoscaling-v0", rate_norm=5e-324), r"rate_norm must be a finite number >= 1e-06"),
    (lambda: AppProfile(slo_ms=1e-300), r"AppProfile.slo_ms must be a finite number >= 0.001"),
    (lambda: StepWorkload(ramp_s=5e-324), r"StepWorkload.ramp_s must be 0 \(a step\) or at least 1e-06 s"),
])
def test_values_that_only_overflowed_into_numpy_warnings_are_refused(make, message):
    """Each ran, clipped to finite results, with NumPy's overflow RuntimeWarnings on every step."""
    with pytest.raises(ValueError, match=message):
        make()


def test_the_least_rate_norm_and_ramp_step_without_numpy_warnings():
    base = AutoscalingTaskFamily.generate(n_train=1, n_test=1, seed=0).train[0]
    task = dataclasses.replace(base, workload=StepWorkload(start_s=0.0, ramp_s=1e-6),
                               app=dataclasses.replace(base.app, slo_ms=1e-3))
    env = gym.make("flash/Autoscaling-v0", rate_norm=1e-6, episode_steps=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        env.reset(seed=0, options={"task": task})
        obs, reward = env.step(0)[:2]
    assert env.observation_space.contains(obs) and np.isfinite(reward)


@pytest.mark.parametrize("fidelity", ["fast", "request"])
@pytest.mark.parametrize("rate", [5e-324, 1e-320, 1e-300, 1e-40])
def test_a_rate_near_zero_runs_as_no_requests_without_numpy_warnings(fidelity, rate):
    """A tiny rate is a valid rate (a trace's quietest hour, scaled): the capacity ratio overflowed float32 (1e-40)
    and the per-request fidelity's next arrival overflowed a division (1e-320), each with NumPy's warning."""
    base = AutoscalingTaskFamily.generate(n_train=1, n_test=1, seed=0).train[0]
    task = dataclasses.replace(base, workload=ConstantWorkload(rate=rate))
    env = gym.make("flash/Autoscaling-v0", fidelity=fidelity, episode_steps=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        obs = env.reset(seed=0, options={"task": task})[0]
        infos = [env.step(0)[4] for _ in range(3)]
    assert obs[8] == MAX_RATIO   # the ready replicas' capacity, over a rate near zero
    assert all(info["throughput"] == 0 and info["arrival_rate"] < 1e-39 for info in infos)
