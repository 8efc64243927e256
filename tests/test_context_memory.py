"""A long FLASH context is warned of before torch runs out of memory: at context_len 10^4, meta-training died inside
the GRU with ``std::bad_alloc`` and no word of why (about 7 GB for each training batch's encoder pass)."""

from __future__ import annotations

import warnings
from pathlib import Path

import gymnasium as gym
import pytest

import flash_envs  # noqa: F401
from flash_envs.flash_warnings import FlashWarning
from flash_rl import Flash, flash
from flash_rl.config import load_config
from flash_rl.context import row_dim
from flash_rl.encoder import encoder_pass_gb

ENV = {"episode_steps": 10}
CONFIGS = Path(flash.__file__).parent / "configs"


def _stop(_locals, _globals) -> bool:
    """A callback that stops learn() at its first step, before any gradient is taken."""
    return False


@pytest.fixture(scope="module")
def tasks():
    return gym.make("flash/Autoscaling-v0", **ENV).unwrapped.family.train[:1]


def test_the_estimate_grows_with_batch_length_and_hidden_units():
    one = encoder_pass_gb("gru", 240, 2000, 15, 64)
    assert 1.4 < one < 1.6   # torch 2.13 kept 1.42 GB for this pass (peak RSS of forward and backward)
    assert encoder_pass_gb("gru", 480, 2000, 15, 64) == pytest.approx(2 * one)
    assert encoder_pass_gb("gru", 240, 4000, 15, 64) == pytest.approx(2 * one)
    assert encoder_pass_gb("mean", 240, 2000, 15, 64) < one


def test_a_long_context_is_warned_of_at_meta_train(tasks):
    agent = Flash("PPO", "flash/Autoscaling-v0", ENV, context_len=3000, n_envs=1,
                  agent_kwargs={"n_steps": 240, "batch_size": 240, "n_epochs": 1})
    with pytest.warns(FlashWarning, match=r"^Flash.meta_train: context_len 3,000 makes each pass of the gru encoder "
                                          r"over a training batch \(240 windows of 3,000 rows, 64 hidden units\) keep "
                                          r"about 2.\d GB for its gradient, .* give a shorter context_len"):
        agent.meta_train(tasks, 240, callback=_stop)


@pytest.mark.parametrize("config", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_the_committed_configs_are_far_from_the_warning(config):
    cfg = load_config(config)
    env = gym.make(cfg.env.id, **cfg.env.kwargs)
    f = cfg.flash
    for kwargs in (f.agent_kwargs, {**f.agent_kwargs, **f.adapt_kwargs}):
        assert encoder_pass_gb(f.encoder, kwargs["batch_size"], f.context_len, row_dim(env.observation_space,
                               env.action_space), f.encoder_hidden) < flash.LARGE_ENCODER_PASS_GB / 50


def test_the_default_context_is_not_warned_of(tasks):
    agent = Flash("PPO", "flash/Autoscaling-v0", ENV, n_envs=1, agent_kwargs={"n_steps": 20, "batch_size": 20},
                  adapt_kwargs={"n_steps": 10, "batch_size": 10})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        agent.meta_train(tasks, 20).adapt(tasks[0], 1)


def test_adapt_warns_of_its_own_batch(tasks, monkeypatch):
    """adapt() trains with adapt_kwargs' batch, which may differ from meta-training's."""
    agent = Flash("PPO", "flash/Autoscaling-v0", ENV, context_len=4, n_envs=1, embedding_dim=4, encoder_hidden=8,
                  agent_kwargs={"n_steps": 20, "batch_size": 20}, adapt_kwargs={"n_steps": 10, "batch_size": 5})
    agent.meta_train(tasks, 20)
    monkeypatch.setattr(flash, "LARGE_ENCODER_PASS_GB", 1e-9)
    with pytest.warns(FlashWarning, match=r"^Flash.adapt: context_len 4 makes each pass of the gru encoder over a "
                                          r"training batch \(5 windows of 4 rows, 8 hidden units\)"):
        agent.adapt(tasks[0], 1)
