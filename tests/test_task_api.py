"""The task API every FLASH env shares (flash_envs/envs/task_env.py): an episode runs the task it was reset with."""

from __future__ import annotations

import copy
import dataclasses
import pickle
import sys

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.env_util import make_vec_env

import flash_envs  # noqa: F401
from flash_envs.data.trace_csv import TraceFormatError
from flash_envs.envs.task_env import ReplayMismatch
from flash_envs.sim.workloads import TraceWorkload

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


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_sb3_make_vec_env_makes_every_env_and_a_render_mode_the_env_lacks_is_refused(env_id):
    """make_vec_env asks for render_mode="rgb_array" and retries without it only on a TypeError."""
    with pytest.warns(UserWarning, match="not in the possible render_modes"):   # gym.make's, before the retry
        vec_env = make_vec_env(env_id, n_envs=2)
    obs = vec_env.reset()
    obs, *_ = vec_env.step(np.array([0, 1]))
    assert obs.shape == (2, *vec_env.observation_space.shape)
    vec_env.close()
    with pytest.raises(ValueError, match=r"render_mode must be one of \[None.*\], got 'rgb_array'"):
        type(gym.make(env_id).unwrapped)(render_mode="rgb_array")


SIM_ENV_IDS = ["flash/Autoscaling-v0", "flash/PowerManagement-v0"]   # ConfigSearch builds nothing that can fail


def interrupted(env, task, interruption):
    """The rollout of ``task`` (as :func:`rollout`), with ``interruption()`` called after the first step."""
    trace = rollout(env, task, steps=1)
    interruption()
    for step in range(1, 4):
        obs, reward, *_, info = env.step(step)
        trace.append((obs, reward, info["task"]))
    return trace


def assert_same_rollout(trace, expected):
    for (obs, reward, task), (obs0, reward0, task0) in zip(trace, expected, strict=True):
        np.testing.assert_array_equal(obs, obs0)
        assert reward == reward0 and task is task0


@pytest.mark.parametrize("env_id", SIM_ENV_IDS)
def test_a_task_whose_workload_cannot_be_realised_is_refused_and_changes_nothing(env_id, tmp_path):
    (tmp_path / "empty.csv").write_text("timestamp,requests\n")
    env = gym.make(env_id).unwrapped
    first = env.family.train[0]
    bad = dataclasses.replace(env.family.test[0], workload=TraceWorkload(path=str(tmp_path / "empty.csv")))

    def reset_to_bad():
        with pytest.raises(TraceFormatError, match="no data rows"):
            env.reset(options={"task": bad})

    assert_same_rollout(interrupted(env, first, reset_to_bad), rollout(env, first))   # as if never tried
    with pytest.raises(TraceFormatError, match="no data rows"):
        env.set_task(bad)
    assert env.get_task() is env.episode_task is first
    assert env.reset(seed=3)[1]["task"] is first
    with pytest.raises(TraceFormatError, match="no data rows"):
        gym.make(env_id, task=bad)


@pytest.mark.parametrize("env_id, builder", list(zip(SIM_ENV_IDS, ["make_simulation", "DVFSServer"])))
def test_a_reset_that_fails_building_the_episode_changes_nothing(env_id, builder, monkeypatch):
    env = gym.make(env_id).unwrapped
    first, second = env.family.train[0], env.family.test[0]

    def fail_to_build(*args, **kwargs):
        raise MemoryError("no room for the simulation")

    def reset_to_second():
        with monkeypatch.context() as patch, pytest.raises(MemoryError):
            patch.setattr(sys.modules[type(env).__module__], builder, fail_to_build)
            env.reset(options={"task": second})

    assert_same_rollout(interrupted(env, first, reset_to_second), rollout(env, first))
    assert env.get_task() is env.episode_task is first


def test_a_copy_replays_the_actions_taken_not_a_reused_list_as_it_is_now():
    """The episode kept the caller's list, which a loop reusing it changed after the step: the copy replayed other
    actions."""
    env = gym.make("flash/PowerManagement-v0", n_servers=2)
    env.reset(seed=1)
    action = [0, 0]
    for level in (4, 0, 4):
        action[:] = [level, 4 - level]
        env.step(action)
    action[:] = [2, 2]
    twin = copy.deepcopy(env)
    mine, theirs = env.step([1, 3]), twin.step([1, 3])
    assert np.array_equal(mine[0], theirs[0]) and mine[1] == theirs[1]
    assert mine[4]["episode_energy_j"] == theirs[4]["episode_energy_j"]


def test_a_step_that_raised_is_not_replayed_in_a_copy(monkeypatch):
    """The action was recorded before the simulation ran: a copy made after a step interrupted there replayed it.
    Such a step has applied its action but not run the simulation, a state no replay of whole steps reaches: a copy
    is refused as not one (it was made silently, with the configuration before the action)."""
    env = gym.make("flash/Autoscaling-v0").unwrapped
    env.reset(seed=2)
    env.step(0)
    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(env._sim, "run", lambda seconds: (_ for _ in ()).throw(KeyboardInterrupt))
        env.step(1)
    assert env._episode_log.actions == [0]
    with pytest.raises(ReplayMismatch, match=r"\(1 step of task .* or a step was interrupted part-way"):
        copy.deepcopy(env)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_a_made_env_whose_first_reset_was_refused_runs(env_id):
    """Gymnasium's passive env checker (on by default in gym.make) took a first reset that raised as done, and the
    next step() failed inside it: "cannot unpack non-iterable NoneType object"."""
    env = gym.make(env_id)
    with pytest.raises(TypeError, match="tasks, got str"):
        env.reset(seed=0, options={"task": "task-24"})
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs) and np.isfinite(env.step(0)[1])


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


@pytest.mark.parametrize("env_id, kwargs", [("flash/Autoscaling-v0", {}),
                                            ("flash/Autoscaling-v0", {"fidelity": "request"}),
                                            ("flash/PowerManagement-v0", {"n_servers": 2}),
                                            ("flash/ConfigSearch-v0", {})])
@pytest.mark.parametrize("duplicate", [copy.deepcopy, lambda env: pickle.loads(pickle.dumps(env))])
def test_an_env_copied_mid_episode_goes_on_as_the_original(env_id, kwargs, duplicate):
    """A SimPy simulation's processes are generators, which cannot be pickled: copying an env mid-episode failed."""
    env = gym.make(env_id, **kwargs)
    family = env.unwrapped.family
    env.reset(seed=5, options={"task": family.test[1]})
    for action in range(3):   # ConfigSearch: measure configurations 0, 1, 2
        env.step(action if env_id.endswith("ConfigSearch-v0") else env.action_space.sample())
    env.unwrapped.sample_tasks(2)              # np_random moves on during the episode
    env.unwrapped.set_task(family.train[2])    # and the next episode's task is another
    twin = duplicate(env)
    for action in range(3, 8):
        action = action if env_id.endswith("ConfigSearch-v0") else env.action_space.sample()
        mine, theirs = env.step(action), twin.step(action)
        assert np.array_equal(mine[0], theirs[0]) and mine[1:4] == theirs[1:4]
        assert mine[4]["task"] == theirs[4]["task"] == family.test[1]
    assert twin.unwrapped.get_task() == family.train[2]
    assert np.array_equal(env.reset()[0], twin.reset()[0])   # np_random was copied as it was, not as replayed
    assert env.unwrapped.episode_task == twin.unwrapped.episode_task == family.train[2]


@pytest.mark.parametrize("env_id", ["flash/Autoscaling-v0", "flash/PowerManagement-v0"])
def test_a_copy_whose_trace_file_was_rewritten_since_is_refused(env_id, tmp_path):
    """A copy replays the episode in progress, reading the task's trace file again: once the file is rewritten, the
    replay comes to other observations, and the copy is refused rather than made another env silently."""
    trace = tmp_path / "trace.csv"
    trace.write_text("timestamp,requests\n" + "".join(f"{t},{100 + 7 * t % 900}\n" for t in range(0, 3600, 60)))
    env = gym.make(env_id)
    task = dataclasses.replace(env.unwrapped.family.test[0], workload=TraceWorkload(path=str(trace), mean_rate=12.0))
    env.reset(seed=5, options={"task": task})
    for _ in range(3):
        env.step(env.action_space.sample())
    assert np.array_equal(copy.deepcopy(env).unwrapped._get_obs(), env.unwrapped._get_obs())
    trace.write_text("timestamp,requests\n" + "".join(f"{t},{100 + 13 * t % 900}\n" for t in range(0, 3600, 60)))
    with pytest.raises(ReplayMismatch, match=r"replaying the episode in progress \(3 steps of task .*\) came to "
                                             "another observation than the env had"):
        copy.deepcopy(env)
