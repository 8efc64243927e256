"""Meta-training and adaptation run on one torch thread, and give the caller back its own thread setting."""

from __future__ import annotations

import gymnasium as gym
import torch

import flash_envs  # noqa: F401
from flash_rl.flash import Flash
from flash_rl.maml import MAML

TINY_ENV = {"episode_steps": 10}


def test_flash_and_maml_restore_the_callers_torch_threads():
    tasks = gym.make("flash/Autoscaling-v0").unwrapped.family.train[:2]
    caller = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        inside: list[int] = []
        flash = Flash("PPO", "flash/Autoscaling-v0", TINY_ENV, context_len=4, embedding_dim=4, encoder_hidden=8,
                      net_arch=[8], agent_kwargs={"n_steps": 10, "batch_size": 10, "n_epochs": 1}, n_envs=1)
        flash.meta_train(tasks, 20)
        assert torch.get_num_threads() == 2
        flash.adapt(tasks[0], 1, on_eval=lambda *_: inside.append(torch.get_num_threads()))
        maml = MAML("flash/Autoscaling-v0", TINY_ENV, hidden=[8], meta_batch=1)
        maml.meta_train(tasks, 1)
        assert torch.get_num_threads() == 2
        maml.adapt(tasks[0], 1, on_eval=lambda *_: inside.append(torch.get_num_threads()))
        assert torch.get_num_threads() == 2 and inside == [1, 1, 1, 1]  # two evaluations per adapt() call
    finally:
        torch.set_num_threads(caller)
