"""The task API every FLASH env shares (flash_envs/envs/task_env.py): an episode runs the task it was reset with."""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest

import flash_envs  # noqa: F401

ENV_IDS = ["flash/Autoscaling-v0", "flash/PowerManagement-v0", "flash/ConfigSearch-v0"]


def rollout(env, task, switch_to=None, steps=4):
    """Observations, rewards and info tasks of ``steps`` steps on ``task`` (measure configurations 0, 1, ... in
    ConfigSearch; the first action elsewhere), calling ``set_task(switch_to)`` after the first step if given."""
    obs, info = env.reset(seed=3, options={"task": task})
    trace = [(obs, 0.0, info["task"])]
    for step in range(steps):
        if step == 1 and switch_to is not None:
            env.unwrapped.set_task(switch_to)
        obs, reward, *_, info = env.step(step)
        trace.append((obs, reward, info["task"]))
    return trace


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_set_task_during_an_episode_waits_for_the_next_reset(env_id):
    env = gym.make(env_id)
    family = env.unwrapped.family
    first, second = family.train[0], family.test[0]
    undisturbed = rollout(env, first)
    seen = lambda trace: [(obs.tobytes(), reward) for obs, reward, _ in trace[2:]]  # after the switch point
    assert seen(rollout(env, second)) != seen(undisturbed)  # the two tasks tell apart, so a mix-up would show
    switched = rollout(env, first, switch_to=second)
    for (obs, reward, task), (obs0, reward0, task0) in zip(switched, undisturbed):
        np.testing.assert_array_equal(obs, obs0)
        assert reward == reward0 and task is task0 is first
    raw = env.unwrapped
    assert raw.get_task() is second and raw.episode_task is first
    _, info = env.reset(seed=3)
    assert info["task"] is raw.episode_task is second
    env.close()


@pytest.mark.parametrize("env_id", ["flash/PowerManagement-v0", "flash/ConfigSearch-v0"])
def test_render_without_a_render_mode_warns_and_returns_none(env_id):
    env = gym.make(env_id)
    env.reset(seed=0)
    with pytest.warns(UserWarning, match="render\\(\\) called without a render mode"):
        assert env.unwrapped.render() is None


def test_autoscaling_render_after_close_returns_none():
    env = gym.make("flash/Autoscaling-v0", render_mode="ansi")
    env.reset(seed=0)
    assert env.render().startswith("t=")
    env.close()
    assert env.render() is None


def test_a_task_is_its_own_copy():
    """SB3 deep-copies every step's info, which names the task: a frozen task need not be copied."""
    for env_id in ("flash/Autoscaling-v0", "flash/PowerManagement-v0", "flash/ConfigSearch-v0"):
        task = gym.make(env_id).unwrapped.family.test[0]
        assert copy.deepcopy({"task": task})["task"] is task and copy.copy(task) is task


def test_envs_without_a_family_share_the_generated_one():
    for env_id in ("flash/Autoscaling-v0", "flash/PowerManagement-v0", "flash/ConfigSearch-v0"):
        assert gym.make(env_id).unwrapped.family is gym.make(env_id).unwrapped.family
    short = gym.make("flash/PowerManagement-v0", episode_s=300.0).unwrapped.family   # other arguments, other family
    assert short is not gym.make("flash/PowerManagement-v0").unwrapped.family
    assert short == type(short).generate(episode_s=300.0)
