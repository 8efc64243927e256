"""flash/Autoscaling-v0: API contracts, dynamics of the action space, determinism."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import flash_envs  # noqa: F401
from flash_envs.envs.autoscaling import (CPU_DOWN, CPU_UP, MEMORY_UP, NOOP, REPLICA_DOWN, REPLICA_UP,
                                         AutoscalingEnv)
from flash_envs.power_tasks import PowerTaskFamily
from flash_envs.sim.service import AppProfile
from flash_envs.sim.workloads import ConstantWorkload
from flash_envs.tasks import AutoscalingTask, AutoscalingTaskFamily

ENV_ID = "flash/Autoscaling-v0"


@pytest.mark.filterwarnings("error")   # a checker's warning is a failure, not a pass
@pytest.mark.parametrize("fidelity", ["fast", "request"])
def test_gymnasium_check_env(fidelity):
    check_env(gym.make(ENV_ID, fidelity=fidelity, episode_steps=5).unwrapped, skip_render_check=True)


@pytest.mark.filterwarnings("error")   # a checker's warning is a failure, not a pass
def test_sb3_check_env():
    sb3_check_env(gym.make(ENV_ID).unwrapped, warn=True)


def rollout(env: gym.Env, seed: int, actions: list[int], task=None):
    obs, info = env.reset(seed=seed, options={"task": task} if task else None)
    trajectory = [obs]
    rewards = []
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        trajectory.append(obs)
        rewards.append(reward)
    return np.array(trajectory), np.array(rewards)


@pytest.mark.parametrize("fidelity", ["fast", "request"])
def test_same_seed_and_task_identical_different_seeds_differ(fidelity):
    kwargs = {"fidelity": fidelity, "initial_replicas": 8, "initial_memory": 3072}
    env = gym.make(ENV_ID, **kwargs)
    task = env.unwrapped.family.train[1]
    actions = [REPLICA_UP, NOOP, CPU_UP, NOOP, REPLICA_DOWN, MEMORY_UP] * 3
    obs_a, rew_a = rollout(env, 7, actions, task)
    obs_b, rew_b = rollout(gym.make(ENV_ID, **kwargs), 7, actions, task)
    obs_c, rew_c = rollout(env, 8, actions, task)
    np.testing.assert_array_equal(obs_a, obs_b)
    np.testing.assert_array_equal(rew_a, rew_b)
    assert not np.array_equal(obs_a, obs_c)


def test_sampling_tasks_mid_episode_leaves_the_episode_be():
    env = gym.make(ENV_ID).unwrapped
    task = env.family.train[1]
    rewards = []
    for sample_midway in (False, True):
        env.reset(seed=3, options={"task": task})
        episode = []
        for t in range(6):
            if sample_midway and t == 2:
                env.sample_tasks(2)
            episode.append(env.step(REPLICA_UP if t % 2 else NOOP)[1])
        rewards.append(episode)
    assert rewards[0] == rewards[1]


def test_info_dicts_are_fresh_objects():
    env = gym.make(ENV_ID)
    _, info0 = env.reset(seed=0)
    _, _, _, _, info1 = env.step(NOOP)
    _, _, _, _, info2 = env.step(NOOP)
    assert info0 is not info1 and info1 is not info2
    info1["replicas"] = -99
    assert info2["replicas"] != -99


def test_task_api():
    env = gym.make(ENV_ID)
    raw = env.unwrapped
    env.reset(seed=3)
    train = raw.sample_tasks(5, "train")
    test = raw.sample_tasks(3, split="test")
    assert len(train) == 5 and all(t in raw.family.train for t in train)
    assert all(t in raw.family.test for t in test) and not set(test) & set(raw.family.train)
    env.reset(seed=3)
    assert raw.sample_tasks(5, "train") == train  # drawn from the env's np_random
    raw.set_task(test[0])
    assert raw.get_task() == test[0]
    _, info = env.reset(seed=0)
    assert info["task"] == test[0]  # persists across resets
    _, info = env.reset(seed=0, options={"task": train[1]})
    assert info["task"] == train[1] and raw.get_task() == train[1]
    with pytest.raises(TypeError, match="AutoscalingTask"):
        raw.set_task({"not": "a task"})
    with pytest.raises(ValueError, match="split"):
        raw.sample_tasks(2, "validation")


def test_default_family_split_sizes():
    family = gym.make(ENV_ID).unwrapped.family
    assert len(family.train) >= 20 and len(family.test) >= 8
    assert not {t.name for t in family.train} & {t.name for t in family.test}


def test_default_family_is_the_one_committed_results_used():
    """30 s x 60 steps: the family generated for 1800 s episodes, as before the family followed the episode length."""
    assert gym.make(ENV_ID).unwrapped.family == AutoscalingTaskFamily.generate(24, 8, 2024, episode_s=1800.0)
    assert gym.make(ENV_ID, control_interval_s=60.0, substep_s=5.0, episode_steps=30).unwrapped.family == \
        AutoscalingTaskFamily.generate()


@pytest.mark.parametrize("kwargs, episode_s", [({"episode_steps": 10}, 300.0),
                                               ({"control_interval_s": 60.0, "episode_steps": 1440}, 86400.0),
                                               ({"control_interval_s": 0.5, "substep_s": 0.5, "episode_steps": 1},
                                                0.5)])
def test_default_family_follows_the_episode_length(kwargs, episode_s):
    family = gym.make(ENV_ID, **kwargs).unwrapped.family
    assert family == AutoscalingTaskFamily.generate(episode_s=episode_s) and family.episode_s == episode_s
    default = AutoscalingTaskFamily.generate()
    assert (family.train, family.test) != (default.train, default.test)   # the tasks differ, not only episode_s
    assert family is gym.make(ENV_ID, **kwargs).unwrapped.family   # generated once per episode length
    starts = [t.workload.start_s for t in family.train + family.test if t.workload.kind == "step"]
    assert starts and all(0.2 * episode_s - 0.5 <= s <= 0.5 * episode_s + 0.5 for s in starts)   # within the episode


def test_default_families_kept_are_bounded():
    """A family per episode length: a sweep over many lengths keeps the last DEFAULT_FAMILIES_KEPT, not every one."""
    from flash_envs.tasks import DEFAULT_FAMILIES_KEPT, _generated

    for steps in range(1, DEFAULT_FAMILIES_KEPT + 10):
        gym.make(ENV_ID, episode_steps=steps)
    assert _generated.cache_info().currsize == DEFAULT_FAMILIES_KEPT
    assert gym.make(ENV_ID).unwrapped.family is gym.make(ENV_ID).unwrapped.family


def test_an_episode_longer_than_a_year_is_refused_when_the_env_is_made():
    """Its workload, realised up front at 1 s resolution, would need 9.6 GB: a clear error, not a MemoryError later."""
    with pytest.raises(ValueError, match=r"control_interval_s \* episode_steps = 30.0 \* 10000000 makes an episode of "
                                         r"3e\+08 s \(3472 days\), .* would need about 9.6 GB; an episode may last at "
                                         r"most 31536000 s \(365 days"):
        gym.make(ENV_ID, episode_steps=10**7)
    assert gym.make(ENV_ID, episode_steps=365 * 2880).unwrapped.episode_steps == 1051200   # a year is taken


def test_actions_change_configuration_within_bounds():
    env = gym.make(ENV_ID, initial_replicas=1, initial_cpu=128, illegal_action_penalty=0.5, reversal_penalty=0.2)
    env.reset(seed=0)
    _, _, _, _, info = env.step(REPLICA_DOWN)  # below the minimum: not applied, penalised
    assert info["replicas"] == 1 and info["penalty"] == 0.5
    _, _, _, _, info = env.step(CPU_DOWN)
    assert info["cpu_millicores"] == 128 and info["penalty"] == 0.5
    _, _, _, _, info = env.step(REPLICA_UP)
    assert info["replicas"] == 2 and info["penalty"] == 0.0
    _, _, _, _, info = env.step(REPLICA_DOWN)  # reverses the last replica move
    assert info["replicas"] == 1 and info["penalty"] == 0.2
    _, _, _, _, info = env.step(CPU_UP)
    assert info["cpu_millicores"] == 256 and info["penalty"] == 0.0


def test_observation_reflects_configuration_and_reward_formula():
    env = gym.make(ENV_ID, alpha=0.3)
    obs, _ = env.reset(seed=0)
    obs, reward, _, _, info = env.step(REPLICA_UP)
    raw = env.unwrapped
    assert obs[2] == pytest.approx(info["replicas"] / 20)
    assert obs[3] == pytest.approx(info["cpu_millicores"] / 2048)
    assert obs[4] == pytest.approx(info["memory_mb"] / 3072)
    utilisation = (info["cpu_utilisation"] + info["memory_utilisation"]) / 2
    assert reward == pytest.approx(0.3 * utilisation + 0.7 * info["slo_preservation"] - info["penalty"], rel=1e-6)
    assert raw.observation_space.contains(obs)


def test_slo_preservation_is_the_slo_over_the_p95_and_at_most_1():
    """An overloaded service's p95 is above its SLO, and the reward's SLO term is SLO / p95; once scaled out the p95 is
    below the SLO, and the term is 1, not more."""
    env = gym.make(ENV_ID, initial_memory=3072)
    task = env.unwrapped.family.train[0]   # p95 809 ms at the start, SLO 386 ms
    _, info = env.reset(seed=0, options={"task": task})
    assert info["slo_violation"]
    assert info["slo_preservation"] == pytest.approx(task.app.slo_ms / info["latency_p95_ms"], rel=1e-12)
    for action in [REPLICA_UP] * 15 + [NOOP] * 10:
        _, reward, _, _, info = env.step(action)
    assert info["latency_p95_ms"] < task.app.slo_ms and info["slo_preservation"] == 1.0
    assert reward == pytest.approx(0.3 * (info["cpu_utilisation"] + info["memory_utilisation"]) / 2 + 0.7)


def test_scaling_out_relieves_an_overloaded_service():
    env = gym.make(ENV_ID, initial_memory=3072)
    task = env.unwrapped.family.train[1]
    obs, info = env.reset(seed=0, options={"task": task})
    first_p95 = info["latency_p95_ms"]
    for _ in range(15):
        obs, _, _, _, info = env.step(REPLICA_UP)
    for _ in range(10):
        obs, _, _, _, info = env.step(NOOP)
    assert info["ready_replicas"] == 17
    assert info["latency_p95_ms"] < first_p95 and not info["slo_violation"]


def test_memory_below_working_set_causes_oom_kills():
    env = gym.make(ENV_ID, initial_memory=256)
    task = next(t for t in env.unwrapped.family.train if t.app.working_set_mb * t.app.idle_memory_fraction > 256)
    env.reset(seed=0, options={"task": task})
    kills = sum(env.step(NOOP)[4]["oom_kills"] for _ in range(5))
    assert kills > 0


def test_episode_truncates_and_never_terminates():
    env = gym.make(ENV_ID, episode_steps=4)
    env.reset(seed=0)
    flags = [env.step(NOOP)[2:4] for _ in range(4)]
    assert flags == [(False, False)] * 3 + [(False, True)]


def test_ansi_render_shows_the_step_the_info_reports():
    env = gym.make(ENV_ID, render_mode="ansi")
    env.reset(seed=0)
    *_, info = env.step(NOOP)
    assert env.render().endswith(
        f"s replicas={info['replicas']:2d} cpu={info['cpu_millicores']:4d}m mem={info['memory_mb']:4d}MiB "
        f"rate={info['arrival_rate']:7.1f}/s p95={info['latency_p95_ms']:8.1f}ms cpu={info['cpu_utilisation']:.2f} "
        f"mem={info['memory_utilisation']:.2f}")


def test_ansi_render_after_close_shows_nothing():
    """close() ends the episode's simulation; its last metrics stay, but there is no time to show them at."""
    env = gym.make(ENV_ID, render_mode="ansi")
    env.reset(seed=0)
    env.step(NOOP)
    env.close()
    assert env.render() is None


def test_ansi_render_shows_a_sub_second_time():
    """The time was rounded to whole seconds: 0.5 s intervals rendered as t=0s, 1s, 2s, 2s."""
    env = gym.make(ENV_ID, render_mode="ansi", control_interval_s=0.5, substep_s=0.5)
    env.reset(seed=0)   # (the first observation is measured over one interval)
    times = [env.render().split("s replicas=")[0]]
    for _ in range(3):
        env.step(NOOP)
        times.append(env.render().split("s replicas=")[0])
    assert times == ["t=       0.5", "t=         1", "t=       1.5", "t=         2"]


def test_action_outside_space_raises():
    env = gym.make(ENV_ID).unwrapped
    env.reset(seed=0)
    for bad in (7, -1, 2.5, "up"):
        with pytest.raises(ValueError, match="not in the action space"):
            env.step(bad)


def test_step_before_reset_raises():
    with pytest.raises(RuntimeError, match="reset"):
        AutoscalingEnv().step(NOOP)


@pytest.mark.parametrize("kwargs, message", [
    ({"fidelity": "exact"}, "fidelity"),
    ({"alpha": 1.5}, "alpha"),
    ({"episode_steps": 0}, "episode_steps"),
    ({"control_interval_s": 7.0}, "multiple of substep_s"),
    ({"initial_replicas": 50}, "initial_replicas"),
    ({"cpu_bounds": (128, 2000, 128)}, "multiple of step"),
    ({"episode_steps": 2.5}, "episode_steps must be a whole number >= 1, got 2.5"),
    ({"initial_cpu": 1024.5}, "initial_cpu must be a whole number"),
    ({"rate_norm": 0}, "rate_norm must be a finite number >= 1e-06"),
    ({"rate_norm": -1}, "rate_norm must be a finite number >= 1e-06"),
    ({"replica_bounds": (5,)}, r"replica_bounds must be \(low, high\), got \(5,\)"),
    ({"cpu_bounds": (128, 2048)}, r"cpu_bounds must be \(low, high, step\), got \(128, 2048\)"),
    ({"cpu_bounds": (128, 2048, 128.5)}, "cpu_bounds step must be a whole number >= 1, got 128.5"),
    ({"replica_bounds": (1, 20.5)}, "replica_bounds high must be a whole number >= 1, got 20.5"),
    ({"reversal_penalty": -0.1}, "reversal_penalty must be a finite number >= 0"),
])
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        gym.make(ENV_ID, **kwargs)


@pytest.mark.parametrize("kwargs, message", [
    ({"alpha": "0.3"}, "alpha must be a number, got '0.3'"),
    ({"illegal_action_penalty": "0.1"}, "illegal_action_penalty must be a number, got '0.1'"),
    ({"slo_in_observation": "false"}, r"slo_in_observation must be True or False, got 'false' \(str\)"),
    ({"slo_in_observation": 0}, r"slo_in_observation must be True or False, got 0 \(int\)"),
    ({"family": [1, 2]}, "family must be of type AutoscalingTaskFamily, got list"),
    ({"family": PowerTaskFamily.generate(n_train=1, n_test=1)},
     "family must be of type AutoscalingTaskFamily, got PowerTaskFamily"),
])
def test_arguments_of_the_wrong_type_raise(kwargs, message):
    with pytest.raises(TypeError, match=message):
        AutoscalingEnv(**kwargs)


def test_whole_float_bounds_are_taken_as_whole_numbers():
    """YAML gives 1e3 as a float: the configuration stays in ints, as the info and the ansi render need."""
    env = gym.make(ENV_ID, replica_bounds=(1.0, 20.0), cpu_bounds=(128.0, 2048.0, 128.0),
                   memory_bounds=(256, 3.072e3, np.float64(128)), render_mode="ansi")
    env.reset(seed=0)
    *_, info = env.step(CPU_UP)
    assert [info[key] for key in ("replicas", "cpu_millicores", "memory_mb")] == [2, 1152, 1024]
    assert all(type(info[key]) is int for key in ("replicas", "cpu_millicores", "memory_mb"))
    assert "replicas= 2 cpu=1152m mem=1024MiB" in env.render()
    assert env.unwrapped.bounds[2].high == 3072 and type(env.unwrapped.bounds[2].step) is int


def test_slo_in_observation_takes_numpy_bools():
    assert gym.make(ENV_ID, slo_in_observation=np.False_).unwrapped.slo_in_observation is False


def test_family_argument_sets_the_tasks():
    family = AutoscalingTaskFamily.generate(n_train=2, n_test=1, seed=5)
    env = gym.make(ENV_ID, family=family).unwrapped
    assert env.family is family and env.get_task() is family.train[0]


def test_capacity_ratio_is_10_when_nothing_arrives():
    base = gym.make(ENV_ID).unwrapped.family.train[0]
    idle = dataclasses.replace(base, workload=ConstantWorkload(rate=0.0))
    env = gym.make(ENV_ID)
    obs, _ = env.reset(seed=0, options={"task": idle})
    obs, _, _, _, info = env.step(NOOP)
    assert info["arrival_rate"] == 0.0 and obs[8] == 10.0
    assert np.isnan(info["latency_p95_ms"]) and obs[6] == 0.0 and obs[7] == 1.0   # no latency, no violation


def test_task_is_a_frozen_serialisable_dataclass():
    task = gym.make(ENV_ID).unwrapped.family.test[0]
    assert AutoscalingTask.from_dict(task.to_dict()) == task
    with pytest.raises(AttributeError):
        task.name = "x"


def test_hidden_slo_observation_does_not_reveal_the_slo():
    base = gym.make(ENV_ID).unwrapped.family.train[1]
    strict = dataclasses.replace(base, app=dataclasses.replace(base.app, slo_ms=base.app.slo_ms / 4))
    actions = [REPLICA_UP, NOOP, CPU_UP, NOOP]
    hidden = [rollout(gym.make(ENV_ID, slo_in_observation=False), 3, actions, task) for task in (base, strict)]
    np.testing.assert_array_equal(hidden[0][0], hidden[1][0])  # same observations...
    assert not np.array_equal(hidden[0][1], hidden[1][1])  # ...different rewards: only the reward tells
    shown = [rollout(gym.make(ENV_ID), 3, actions, task)[0] for task in (base, strict)]
    assert not np.array_equal(shown[0], shown[1])
    env = gym.make(ENV_ID, slo_in_observation=False)
    obs, _ = env.reset(seed=0)
    obs, _, _, _, info = env.step(NOOP)
    assert obs[6] == pytest.approx(min(10.0, info["latency_p95_ms"] / 1000), rel=1e-6)


#: 33 requests/s of ~46 ms each: a light load on the default 2 replicas.
LIGHT_TASK = AutoscalingTask(AppProfile(service_time_ms=45.8, cpu_fraction=0.67, service_cv=0.75, working_set_mb=576.0,
                                        slo_ms=250.0), ConstantWorkload(rate=33.0), "light")


def test_slo_violation_is_the_p95_latency_above_the_slo():
    """``slo_violation`` is the p95 latency above the SLO (the docstring's info key), not the p99: with the SLO between
    an interval's p95 and p99 it is False, and with the SLO just below the p95 it is True. The SLO does not change the
    simulation, so the same seed gives the same latencies under both SLOs."""
    env = gym.make(ENV_ID, episode_steps=5)
    env.reset(seed=0, options={"task": LIGHT_TASK})
    info = env.step(NOOP)[4]
    p95, p99 = info["latency_p95_ms"], info["latency_p99_ms"]
    assert p95 * 1.1 < p99                                  # a real gap between them
    for slo, violated in (((p95 + p99) / 2, False), (0.95 * p95, True)):
        strict = dataclasses.replace(LIGHT_TASK, app=dataclasses.replace(LIGHT_TASK.app, slo_ms=slo))
        env.reset(seed=0, options={"task": strict})
        info = env.step(NOOP)[4]
        assert (info["latency_p95_ms"], info["latency_p99_ms"]) == (p95, p99)
        assert info["slo_violation"] is violated


def test_each_action_moves_its_one_resource_by_one_step():
    """Each action moves only its own resource, by exactly one step of its bounds (defaults: 1 replica, 128 m, 128
    MiB), from the initial 2 replicas x 1024 m x 1024 MiB; a move down after a move up of the same resource
    reverses it."""
    from flash_envs.envs.autoscaling import MEMORY_DOWN
    env = gym.make(ENV_ID)
    env.reset(seed=0)
    expected = {"replicas": 2, "cpu_millicores": 1024, "memory_mb": 1024}
    for action, key, delta in ((MEMORY_DOWN, "memory_mb", -128), (MEMORY_UP, "memory_mb", 128),
                               (CPU_DOWN, "cpu_millicores", -128), (CPU_UP, "cpu_millicores", 128),
                               (REPLICA_UP, "replicas", 1), (REPLICA_DOWN, "replicas", -1), (NOOP, "replicas", 0)):
        _, _, _, _, info = env.step(action)
        expected[key] += delta
        assert {k: info[k] for k in expected} == expected, action


def test_hidden_slo_observation_gives_the_p95_in_seconds():
    """With slo_in_observation=False, index 6 is the p95 latency in seconds (saturating at 10 s) and index 7 the
    requests rejected per request arrived. A lightly loaded service (33 requests/s on 2 replicas of ~46 ms) has a p95
    well under 10 s, so the value is not the saturation cap."""
    env = gym.make(ENV_ID, episode_steps=5, slo_in_observation=False)
    env.reset(seed=0, options={"task": LIGHT_TASK})
    obs, _, _, _, info = env.step(NOOP)
    assert 0 < info["latency_p95_ms"] < 5_000
    assert obs[6] == pytest.approx(info["latency_p95_ms"] / 1000, rel=1e-6)
    assert obs[7] == pytest.approx(info["dropped"] / (info["arrival_rate"] * 30), abs=0.01)


def test_the_observation_gives_the_p95_over_the_slo_and_the_capacity_over_the_load():
    """Index 6 is the p95 over the SLO, 7 the reward's SLO term and 8 the ready replicas' service rate over the arrival
    rate: 2 replicas serving ~45 ms requests at 1024 m, offered 33/s, have 1.35 times the capacity the load needs."""
    env = gym.make(ENV_ID, episode_steps=5)
    env.reset(seed=0, options={"task": LIGHT_TASK})
    obs, _, _, _, info = env.step(NOOP)
    assert obs[6] == pytest.approx(info["latency_p95_ms"] / LIGHT_TASK.app.slo_ms, rel=1e-6)
    assert obs[7] == pytest.approx(info["slo_preservation"], rel=1e-6)
    capacity = info["ready_replicas"] / LIGHT_TASK.app.mean_service_s(info["cpu_millicores"])
    assert info["ready_replicas"] == 2 and obs[8] == pytest.approx(capacity / info["arrival_rate"], rel=1e-6)


@pytest.mark.parametrize("rate_norm", [1000.0, 50.0])
def test_arrival_rate_observation_is_log1p_scaled_by_rate_norm(rate_norm):
    """Index 5 is log1p(arrival rate) / log1p(rate_norm), the rate the workload offered over the interval: 33/s gives
    ln(34) / ln(1001) = 0.5105 at the default rate_norm and ln(34) / ln(51) = 0.8969 at 50."""
    env = gym.make(ENV_ID, episode_steps=5, rate_norm=rate_norm)
    env.reset(seed=0, options={"task": LIGHT_TASK})
    obs, _, _, _, info = env.step(NOOP)
    assert info["arrival_rate"] == pytest.approx(33.0)
    assert obs[5] == pytest.approx(np.log(34.0) / np.log(rate_norm + 1), rel=1e-6)
