"""Defects found by an audit of the power-management env, its governors and its power model: each test failed before
its fix."""

from __future__ import annotations

import dataclasses

import pytest

from flash_envs.envs.autoscaling import AutoscalingEnv
from flash_envs.envs.power_management import PowerManagementEnv
from flash_envs.power_tasks import PowerTask, PowerTaskFamily
from flash_envs.sim import server_catalogue   # not its test_servers by name: pytest would collect it
from flash_envs.sim.service import AppProfile
from flash_envs.sim.workloads import ConstantWorkload
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
