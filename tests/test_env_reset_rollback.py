"""A ``reset()`` that raises changes nothing (flash_envs/envs/task_env.py), ``np_random`` included: a failed
``reset(seed=...)`` does not reseed it, and the draws a reset made before it failed are undone. An env that tried is
indistinguishable from its twin that never did: in the episode it goes on with, at its next ``reset()`` and in the
tasks it samples."""

from __future__ import annotations

import dataclasses
import sys

import gymnasium as gym
import numpy as np
import pytest

import flash_envs  # noqa: F401  (registers the envs)
from flash_envs.data.trace_csv import TraceFormatError
from flash_envs.sim.workloads import TraceWorkload


def steps(env: gym.Env, n: int, first: int = 0) -> list[tuple[list[float], float, bool, bool]]:
    """``n`` steps taking actions ``first``, ``first + 1``, ... (modulo 5: a measurement in ConfigSearch, a P-state
    for every server in PowerManagement)."""
    out = []
    for i in range(first, first + n):
        action = np.full(env.action_space.shape, i % 5) if env.action_space.shape else i % 5
        obs, reward, terminated, truncated, _ = env.step(action)
        out.append((obs.tolist(), reward, terminated, truncated))
    return out


def twins(env_id: str, **kwargs) -> tuple[gym.Env, gym.Env]:
    """Two envs three steps into the same seeded episode."""
    envs = gym.make(env_id, **kwargs).unwrapped, gym.make(env_id, **kwargs).unwrapped
    for env in envs:
        env.reset(seed=0)
    assert steps(envs[0], 3) == steps(envs[1], 3)
    return envs


def assert_indistinguishable(tried: gym.Env, twin: gym.Env) -> None:
    assert tried.np_random_seed == twin.np_random_seed == 0
    assert tried.np_random.bit_generator.state == twin.np_random.bit_generator.state
    assert steps(tried, 3, first=3) == steps(twin, 3, first=3)   # the running episode goes on
    (obs, info), (twin_obs, twin_info) = tried.reset(), twin.reset()   # no seed: np_random's next draws
    np.testing.assert_array_equal(obs, twin_obs)
    assert info["task"] is twin_info["task"] is twin.family.train[0]
    assert steps(tried, 3) == steps(twin, 3)
    assert [t.name for t in tried.sample_tasks(4)] == [t.name for t in twin.sample_tasks(4)]


def unrealisable(env: gym.Env, tmp_path) -> object:
    """A task of the env's type whose workload replays a trace file without rows."""
    (tmp_path / "empty.csv").write_text("timestamp,requests\n")
    return dataclasses.replace(env.family.test[0], workload=TraceWorkload(path=str(tmp_path / "empty.csv")))


@pytest.mark.parametrize("env_id, bad_task, error", [
    ("flash/Autoscaling-v0", lambda env, tmp_path: "not a task", TypeError),
    ("flash/PowerManagement-v0", lambda env, tmp_path: "not a task", TypeError),
    ("flash/ConfigSearch-v0", lambda env, tmp_path: "not a task", TypeError),
    ("flash/Autoscaling-v0", unrealisable, TraceFormatError),
    ("flash/PowerManagement-v0", unrealisable, TraceFormatError),
])
def test_a_seeded_reset_with_a_bad_task_does_not_reseed(env_id, bad_task, error, tmp_path):
    tried, twin = twins(env_id)
    with pytest.raises(error):
        tried.reset(seed=123, options={"task": bad_task(tried, tmp_path)})
    assert_indistinguishable(tried, twin)


@pytest.mark.parametrize("env_id, kwargs, builder, failing_call", [
    ("flash/Autoscaling-v0", {}, "make_simulation", 1),       # after the workload is drawn
    ("flash/PowerManagement-v0", {"n_servers": 2}, "DVFSServer", 2),   # after the workload and the 1st server
])
@pytest.mark.parametrize("seed", [None, 123])
def test_a_reset_that_fails_building_the_episode_undoes_its_draws(env_id, kwargs, builder, failing_call, seed,
                                                                   monkeypatch):
    tried, twin = twins(env_id, **kwargs)
    module = sys.modules[type(tried).__module__]
    build, calls = getattr(module, builder), []

    def fail_at_the_failing_call(*args, **kwargs):
        calls.append(args)
        if len(calls) == failing_call:
            raise MemoryError("no room for the simulation")
        return build(*args, **kwargs)

    with monkeypatch.context() as patch, pytest.raises(MemoryError):
        patch.setattr(module, builder, fail_at_the_failing_call)
        tried.reset(seed=seed)
    assert len(calls) == failing_call
    assert_indistinguishable(tried, twin)
