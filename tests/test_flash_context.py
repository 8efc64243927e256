"""FLASH's context: kept across episodes of one task, cleared on a task change; the encoder and extractor shapes."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

import flash_envs  # noqa: F401
from flash_rl.context import ContextBuffer, ContextWrapper, TaskSamplingWrapper, row_dim
from flash_rl.encoder import ContextEncoder, FlashFeaturesExtractor


def make(length=8, steps=5):
    env = gym.make("flash/Autoscaling-v0", episode_steps=steps)
    return ContextWrapper(env, length), env.unwrapped.family


def run_episode(env, task=None, seed=0):
    obs, info = env.reset(seed=seed, options={"task": task} if task is not None else None)
    done = False
    while not done:
        obs, _, term, trunc, info = env.step(0)
        done = term or trunc
    return obs


def test_context_rows_and_padding():
    env, family = make(length=8, steps=5)
    obs, _ = env.reset(seed=0, options={"task": family.train[0]})
    assert env.observation_space.contains(obs) and obs["context"].shape == (8, row_dim(
        env.env.observation_space, env.env.action_space))
    assert not obs["context"].any(), "a new task starts with an empty context"
    first = obs["obs"]
    obs2, reward, *_ = env.step(3)
    row = obs2["context"][-1]
    n_obs = first.shape[0]
    np.testing.assert_allclose(row[:n_obs], first)          # the observation the action was taken on
    assert row[n_obs + 3] == 1 and row[n_obs:n_obs + 7].sum() == 1  # one-hot action
    assert np.isclose(row[-2], reward) and row[-1] == 1       # reward, valid flag
    assert not obs2["context"][:-1].any(), "left-padded with zero rows"


def test_context_kept_across_episodes_of_a_task_and_cleared_on_change():
    env, family = make(length=8, steps=5)
    task_a, task_b = family.train[0], family.train[1]
    run_episode(env, task_a)
    assert len(env.buffer) == 5
    obs, _ = env.reset(seed=1, options={"task": task_a})   # same task: kept
    assert len(env.buffer) == 5 and obs["context"][-1, -1] == 1
    run_episode(env, task_a, seed=2)
    assert len(env.buffer) == 8 and env.buffer.transitions_seen == 10  # window keeps the newest 8
    obs, _ = env.reset(seed=3, options={"task": task_b})   # new task: cleared
    assert len(env.buffer) == 0 and not obs["context"].any()
    env.unwrapped.set_task(task_b)
    obs, _ = env.reset(seed=4)                              # set_task path, same task b: kept (empty so far)
    run_episode(env, None, seed=5)
    assert len(env.buffer) == 5


def test_task_sampling_wrapper_switches_tasks_and_clears_context():
    base = gym.make("flash/Autoscaling-v0", episode_steps=3)
    family = base.unwrapped.family
    env = ContextWrapper(TaskSamplingWrapper(base, family.train, episodes_per_task=2, seed=0), 16)
    seen = []
    for ep in range(8):
        obs, info = env.reset(seed=ep)
        seen.append((info["task"].name, len(env.buffer)))
        for _ in range(3):
            env.step(0)
    for i in range(0, 8, 2):  # each task runs exactly 2 episodes; the second one starts with the first's context
        assert seen[i][0] == seen[i + 1][0]
        assert seen[i + 1][1] == 3
    assert len({name for name, _ in seen}) > 1


def test_shared_buffer_between_wrappers():
    base_space = gym.make("flash/Autoscaling-v0")
    buffer = ContextBuffer(8, base_space.observation_space, base_space.action_space)
    a = ContextWrapper(gym.make("flash/Autoscaling-v0", episode_steps=4), buffer=buffer)
    b = ContextWrapper(gym.make("flash/Autoscaling-v0", episode_steps=4), buffer=buffer)
    task = a.unwrapped.family.test[0]
    run_episode(a, task)
    obs, _ = b.reset(seed=9, options={"task": task})
    assert obs["context"][-4:, -1].sum() == 4


def test_encoder_and_extractor():
    torch.manual_seed(0)
    env, _ = make(length=8, steps=5)
    space = env.observation_space
    for kind in ("gru", "mean"):
        extractor = FlashFeaturesExtractor(space, embedding_dim=16, hidden=32, encoder=kind)
        batch = {"obs": torch.rand(3, 9), "context": torch.rand(3, 8, space["context"].shape[1])}
        feats = extractor(batch)
        assert feats.shape == (3, 9 + 16) and extractor.features_dim == 25
        torch.testing.assert_close(feats[:, :9], batch["obs"])
        torch.testing.assert_close(feats[:, 9:], extractor.embed(batch))   # the context's embedding, as embed() says
        other = {**batch, "context": torch.rand(3, 8, space["context"].shape[1])}
        assert not torch.allclose(extractor(other)[:, 9:], feats[:, 9:]), "another context, another embedding"
        extractor.zero_embedding = True
        assert not extractor(batch)[:, 9:].any()
    enc = ContextEncoder(width=4, embedding_dim=5, hidden=8, kind="gru")
    ctx = torch.randn(2, 6, 4)
    assert enc(ctx).shape == (2, 5)
    assert not torch.allclose(enc(ctx)[0], enc(ctx.flip(1))[0]), "the GRU reads the order of transitions"


def test_the_mean_encoder_averages_the_valid_rows_only():
    """Padding rows (valid flag 0) do not count: three transitions left-padded to eight rows embed as the three alone,
    and an empty context as zero rows of any length."""
    torch.manual_seed(0)
    enc = ContextEncoder(width=4, embedding_dim=5, hidden=8, kind="mean")
    rows = torch.cat([torch.randn(1, 3, 3), torch.ones(1, 3, 1)], dim=2)   # the last column: valid
    padded = torch.cat([torch.zeros(1, 5, 4), rows], dim=1)
    torch.testing.assert_close(enc(padded), enc(rows))
    torch.testing.assert_close(enc(torch.zeros(1, 8, 4)), enc(torch.zeros(1, 2, 4)))
