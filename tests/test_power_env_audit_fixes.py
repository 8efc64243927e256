"""Defects found by an audit of the power-management env, its governors and its power model: each test failed before
its fix."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from flash_envs.baselines.governors import GOVERNORS, Schedutil
from flash_envs.data.specpower import DVFSTable
from flash_envs.envs.autoscaling import AutoscalingEnv
from flash_envs.envs.power_management import PowerManagementEnv
from flash_envs.power_tasks import PowerTask, PowerTaskFamily
from flash_envs.sim import server_catalogue   # not its test_servers by name: pytest would collect it
from flash_envs.sim.power import FrequencyScaling
from flash_envs.sim.service import AppProfile
from flash_envs.sim.workloads import ConstantWorkload, DiurnalWorkload
from flash_envs.tasks import AutoscalingTask, AutoscalingTaskFamily
from flash_rl.cli import main

SERVER = server_catalogue.train_servers()[0]


def power_task(slo_ms: float, name: str = "late") -> PowerTask:
    return PowerTask(SERVER, AppProfile(service_time_ms=20.0, slo_ms=slo_ms), ConstantWorkload(rate=50.0), name)


# ------------------------------------------------------------------ 1. an SLO at or above the latency cap
def test_a_power_task_whose_slo_no_latency_can_reach_is_refused_wherever_it_is_given():
    """Latencies count at most timeout_s (5 s): a 6 s SLO was never missed, so the SLO penalty silently vanished,
    however slow the server ran."""
    late = power_task(6000.0)
    with pytest.raises(ValueError, match=r"task 'late': its SLO \(6000 ms\) must be below the latency cap \(5 s\).*"
                                         r"give the env a larger timeout_s"):
        PowerManagementEnv(task=late)
    env = PowerManagementEnv()
    with pytest.raises(ValueError, match="its SLO"):
        env.set_task(late)
    with pytest.raises(ValueError, match="its SLO"):
        env.reset(seed=0, options={"task": late})
    with pytest.raises(ValueError, match=r"its SLO \(5000 ms\)"):
        PowerManagementEnv(task=power_task(5000.0))
    default = PowerTaskFamily.generate()
    with pytest.raises(ValueError, match="task 'late': its SLO"):   # a held-out task: refused when the env is made
        PowerManagementEnv(family=PowerTaskFamily(default.train, (*default.test, late)))
    env = PowerManagementEnv(task=late, timeout_s=10.0)   # a cap above the SLO: the task runs, and misses it
    env.reset(seed=0)
    info = env.step(0)[4]
    assert info["p95_ms"][0] < late.app.slo_ms and info["slo_violation"] == 0.0
    capacity = SERVER.cores / late.app.mean_service_s(SERVER.millicores(0))
    overload = dataclasses.replace(late, workload=ConstantWorkload(rate=10 * capacity))
    env.reset(seed=0, options={"task": overload})
    assert [env.step(0)[4]["slo_violation"] for _ in range(3)][-1] == 1.0


def test_an_autoscaling_task_whose_slo_no_latency_can_reach_is_refused():
    """The service model counts latencies up to 30 s: a 30 s SLO could never be missed."""
    late = AutoscalingTask(AppProfile(slo_ms=30000.0), ConstantWorkload(), "late")
    with pytest.raises(ValueError, match=r"task 'late': its SLO \(30000 ms\) must be below the latency cap \(30 s\)"):
        AutoscalingEnv(task=late)
    with pytest.raises(ValueError, match="its SLO"):
        AutoscalingEnv().set_task(late)
    default = AutoscalingTaskFamily.generate(episode_s=1800.0)
    with pytest.raises(ValueError, match="its SLO"):
        AutoscalingEnv(family=AutoscalingTaskFamily(default.train, (*default.test, late)))
    AutoscalingEnv(task=dataclasses.replace(late, app=AppProfile(slo_ms=29999.0)))


def test_power_governors_take_the_timeout_a_slow_servers_family_needs(tmp_path, capsys):
    """A family drawn on a slow server (SLOs of seconds) was run with the env's 5 s cap: the governors' SLO columns
    read 0 whatever they did. Now the family is refused with the remedy, and --timeout-s runs it."""
    family = PowerTaskFamily((power_task(2000.0, "train"),), (power_task(6000.0, "test"),), episode_s=30.0)
    family.save_yaml(tmp_path / "slow.yaml")
    assert main(["power-governors", "--family-file", str(tmp_path / "slow.yaml"), "--seeds", "1"]) == 2
    assert "its SLO (6000 ms) must be below the latency cap (5 s)" in capsys.readouterr().err
    assert main(["power-governors", "--family-file", str(tmp_path / "slow.yaml"), "--seeds", "1", "--timeout-s", "10",
                 "--out", str(tmp_path / "out")]) == 0
    assert "30 s episodes, timeout_s 10, tasks of" in (tmp_path / "out" / "governors.md").read_text()


# ------------------------------------------------------------------ 2. P-states that are not numbers
@pytest.mark.parametrize("levels", [(0.5, float("nan"), 1.0), (float("nan"), 1.0), (0.5, float("inf"), 1.0)])
def test_non_finite_p_states_are_refused(levels):
    """NaN compares false both ways, so np.diff(levels) <= 0 let (0.5, nan, 1.0) through: the env failed later with
    a SimPy traceback (power-governors --family-file too)."""
    with pytest.raises(ValueError, match="freq_levels must be >= 2 increasing fractions"):
        dataclasses.replace(SERVER, freq_levels=levels)
    with pytest.raises(ValueError, match="freq_levels must be >= 2 increasing fractions of f_max"):
        Schedutil(levels)


# ------------------------------------------------------------------ 3. observations outside the space
@pytest.mark.parametrize("governor", sorted(GOVERNORS))
@pytest.mark.parametrize("index, value", [(2, 1.2), (2, -0.3), (0, 1.5), (0, -0.1)])
def test_governors_refuse_a_share_outside_zero_to_one(governor, index, value):
    """Schedutil read a P-state share of 1.2 as level 5 of 0..4 (an IndexError) and -0.3 as level -1 (the top one,
    by NumPy's wrap-around)."""
    obs = np.array([0.5, 1.0, 1.0, 0.5, 0.5])
    GOVERNORS[governor](SERVER.freq_levels).predict(obs)   # in range: fine
    obs[index] = value
    with pytest.raises(ValueError, match=rf"predict: each server's utilisation .* must be in \[0, 1\].*got {value:g}"):
        GOVERNORS[governor](SERVER.freq_levels).predict(obs)


# ------------------------------------------------------------------ 4. DVFS tables no server has
FRACTIONS = r"frequency fractions must be distinct numbers in \(0, 1\]"


@pytest.mark.parametrize("fractions, idle, full, message", [
    ((0.5, 1.0), (10.0, -5.0), (20.0, 30.0), "watts must be finite and > 0"),
    ((0.5, 1.0), (0.0, 10.0), (20.0, 30.0), "watts must be finite and > 0"),
    ((0.5, 1.0), (10.0, 10.0), (20.0, float("nan")), "watts must be finite and > 0"),
    ((0.5, 1.2, 1.0), (10.0, 10.0, 10.0), (20.0, 20.0, 30.0), FRACTIONS),
    ((0.5, 0.5, 1.0), (10.0, 10.0, 10.0), (20.0, 20.0, 30.0), FRACTIONS),
    ((0.0, 1.0), (10.0, 10.0), (20.0, 30.0), FRACTIONS),
    ((0.5, 1.0), (10.0, 10.0), (5.0, 30.0), r"full-load watts are below its idle watts at fraction 0.5 \(5 W < 10 W\)"),
])
def test_impossible_dvfs_tables_are_refused(fractions, idle, full, message):
    """Only the CSV reader checked a table: FrequencyScaling.fit fitted negative watts and fractions above 1, and a
    zero idle power failed inside SciPy."""
    with pytest.raises(ValueError, match=message):
        FrequencyScaling.fit(fractions, idle, full)
    with pytest.raises(ValueError, match=f"DVFS table 'mine': a DVFS table's {message}"):
        DVFSTable("mine", fractions, idle, full)


def test_the_catalogues_dvfs_tables_pass_the_checks():
    for table in (server_catalogue.REIMS_DVFS, server_catalogue.BAZAR_DVFS):
        assert table.fit() == FrequencyScaling.fit(table.freq_fraction, table.idle_w, table.full_w)


# ------------------------------------------------------------------ 5. the workload after truncation
def test_after_truncation_the_workload_repeats_with_the_period_the_docstring_gives():
    """The docstring said the workload repeats "from its start"; it repeats every episode_s + interval_s."""
    task = PowerTask(SERVER, AppProfile(service_time_ms=20.0), DiurnalWorkload(mean_rate=50.0, period_s=40.0), "wave")
    env = PowerManagementEnv(task=task, episode_s=30.0)
    env.reset(seed=3)
    rates = [env.step(4)[4]["arrival_rate"][0] for _ in range(20)]
    period = round((30.0 + env.interval_s) / env.interval_s)
    assert rates[period:] == pytest.approx(rates[:-period], rel=1e-12) and rates[6:] != pytest.approx(rates[:-6])
