"""Episodes leave no cyclic garbage behind, so memory stays flat over long runs without waiting for a full GC
(the 10^6-step RSS measurement is in results/bench.md, from `flash bench --memory-steps`)."""

from __future__ import annotations

import gc

import gymnasium as gym
import pytest

import flash_envs  # noqa: F401


@pytest.mark.parametrize("env_id, kwargs, steps", [
    ("flash/Autoscaling-v0", {"fidelity": "fast"}, 200),
    ("flash/Autoscaling-v0", {"fidelity": "request"}, 130),
    ("flash/PowerManagement-v0", {"episode_s": 100.0}, 50),
    ("flash/PowerManagement-v0", {"episode_s": 100.0, "n_servers": 2}, 50),
])
def test_resets_leave_no_cyclic_garbage(env_id, kwargs, steps):
    env = gym.make(env_id, **kwargs)
    env.action_space.seed(0)
    env.reset(seed=0)
    while gc.collect():  # earlier tests' garbage (finalizers can free more on a second pass)
        pass
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in range(steps):
            if env.step(env.action_space.sample())[3]:
                env.reset()
        gc.collect()
        leaked = [type(o).__qualname__ for o in gc.garbage
                  if type(o).__module__.startswith(("flash_envs", "simpy", "gymnasium"))]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert leaked == []
