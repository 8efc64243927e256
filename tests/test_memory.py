"""Episodes leave no cyclic garbage behind, so memory stays flat over long runs without waiting for a full GC
(the 10^6-step RSS measurement is in results/bench.md, from `flash bench --memory-steps`)."""

from __future__ import annotations

import gc
import weakref

import gymnasium as gym
import numpy as np
import pytest

import flash_envs  # noqa: F401
from flash_envs.sim import AppProfile, make_simulation
from flash_envs.sim.workloads import ConstantWorkload


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


@pytest.mark.parametrize("fidelity", ["fast", "request"])
def test_close_frees_a_busy_simulation_without_the_garbage_collector(fidelity):
    """Closed with requests in service and a queue waiting (the per-request mode's give-up timer armed), a
    simulation is freed at once: nothing left refers back to it through a cycle."""
    app = AppProfile(service_time_ms=100, cpu_fraction=1.0, working_set_mb=256)   # 10 requests/s per replica
    curve = ConstantWorkload(rate=30).realise(np.random.default_rng(0), 60)
    gc.disable()
    try:
        sim = make_simulation(fidelity, app, curve, np.random.default_rng(0), replicas=2, cpu_millicores=1000,
                              memory_mb=1024)
        metrics = sim.run(30)
        assert metrics.arrivals - metrics.completed > 100   # a queue waits
        freed = weakref.ref(sim)
        sim.close()
        del sim
        assert freed() is None
    finally:
        gc.enable()
