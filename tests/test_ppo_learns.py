"""A short stable-baselines3 PPO run on one task beats the random policy (a learning signal exists)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO

import flash_envs  # noqa: F401
from flash_envs.baselines.autoscalers import RandomPolicy
from flash_envs.baselines.runner import evaluate_on_tasks
from flash_rl.flash import keep_logs_out_of_tmp


def test_short_ppo_run_beats_random():
    torch.set_num_threads(1)
    env = gym.make("flash/Autoscaling-v0")
    task = env.unwrapped.family.train[1]
    env.unwrapped.set_task(task)
    model = keep_logs_out_of_tmp(PPO("MlpPolicy", env, n_steps=512, batch_size=128, n_epochs=5, learning_rate=1e-3,
                                     seed=0, device="cpu"))
    model.learn(15_000)
    ppo = np.mean([r["return"] for r in evaluate_on_tasks(env, model, [task], episodes=3, seed=100)])
    rand = np.mean([r["return"] for r in evaluate_on_tasks(env, RandomPolicy(env, 0), [task], episodes=3, seed=100)])
    assert ppo > rand * 1.3
