"""Defects found by an audit of the design's contracts (bad input gets a clear error naming the problem): each test
failed before its fix."""

from __future__ import annotations

import numpy as np
import pytest

from flash_envs.data.config_measurements import ConfigMeasurements
from flash_envs.envs.config_search import ConfigSearchTask, ConfigSearchTaskFamily


def test_a_config_search_number_too_large_for_a_float_is_named():
    """float(10**400) raised a bare OverflowError, naming neither the field nor the task."""
    with pytest.raises(ValueError, match=r"ConfigSearchTask.runtime_s\[0\] must be a finite number"):
        ConfigSearchTask("t", ["x", "y"], [10**400, 1], [1, 1], 1.5)
    family = ConfigSearchTaskFamily.generate(3, 2).to_dict()
    family["test"][1]["cost_usd"][4] = 10**400
    with pytest.raises(ValueError, match=r"test\[1\]: ConfigSearchTask.cost_usd\[4\] must be a finite number"):
        ConfigSearchTaskFamily.from_dict(family)


def test_measurements_built_from_lists_are_taken_and_bad_ones_named():
    """Lists ended in "AttributeError: 'list' object has no attribute 'shape'"."""
    runtime = [[1.0, 2.0], [2.0, 3.0]]
    data = ConfigMeasurements("mine", ("a", "b"), ("x", "y"), ("f",), [[0.0], [1.0]], runtime,
                              (np.array(runtime) * 0.1).tolist())
    assert data.runtime_s.dtype == np.float64 and data.features.shape == (2, 1)
    assert data.cost_usd[1, 1] == pytest.approx(0.3)
    for bad in ([["a", "b"], [1, 2]], [[1.0], [1.0, 2.0]], [[True, False], [True, True]]):
        with pytest.raises(TypeError, match=r"ConfigMeasurements.runtime_s must be an array of numbers"):
            ConfigMeasurements("mine", ("a", "b"), ("x", "y"), ("f",), [[0.0], [1.0]], bad, runtime)


def test_checkpointing_a_large_replay_buffer_is_warned_of(tmp_path, monkeypatch):
    """Flash("DQN", ...).meta_train(..., checkpoint_dir=...) wrote SB3's default buffer, 4.7 GB with FLASH's context
    on autoscaling, at every checkpoint without a word (only a config kept at the default buffer_size was warned of)."""
    import warnings

    import gymnasium as gym

    from flash_envs.flash_warnings import FlashWarning
    from flash_rl import checkpoints
    from flash_rl.flash import Flash

    monkeypatch.setattr(checkpoints, "LARGE_REPLAY_BUFFER_GB", 0.001)   # a buffer a test may write
    tasks = gym.make("flash/Autoscaling-v0").unwrapped.family.train[:1]
    agent = Flash("DQN", "flash/Autoscaling-v0", {"episode_steps": 8}, n_envs=1, net_arch=[8], context_len=6,
                  agent_kwargs={"buffer_size": 2000, "learning_starts": 8})
    with pytest.warns(FlashWarning, match=r"Flash.meta_train: every checkpoint writes DQN's replay buffer whole, "
                                          r"about 0.0 GB of observations \(2,000 transitions\)"):
        agent.meta_train(tasks, 16, checkpoint_dir=tmp_path / "ckpt")
    written, = (tmp_path / "ckpt").glob("replay-*.pkl")
    assert written.stat().st_size >= checkpoints.replay_buffer_gb(agent.agent) * 1e9 > 0.001e9
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        agent.meta_train(tasks, 16)   # no checkpoint: nothing written, nothing to say


@pytest.mark.parametrize("env_id, kwargs, action", [
    ("flash/Autoscaling-v0", {}, True), ("flash/ConfigSearch-v0", {}, np.bool_(False)),
    ("flash/PowerManagement-v0", {}, True), ("flash/PowerManagement-v0", {"n_servers": 2}, np.array([True, False]))])
def test_a_bool_action_is_refused(env_id, kwargs, action):
    """step(True) was taken as action 1 (gymnasium's Discrete.contains takes a bool): a policy returning a flag by
    mistake acted without a word."""
    import gymnasium as gym

    env = gym.make(env_id, **kwargs).unwrapped
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"is a bool, which the action space .* takes for 1 and 0"):
        env.step(action)
    env.step(np.zeros(2, dtype=np.int64) if kwargs else 0)   # the episode goes on
