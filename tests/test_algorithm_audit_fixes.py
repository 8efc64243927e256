"""Defects found by an audit of the meta-learning algorithms, each pinned by a test that fails without its fix."""

from __future__ import annotations

import pytest

from flash_envs.tasks import AutoscalingTaskFamily
from flash_rl.flash import Flash, TransferLearning


def test_dqn_fine_tuning_anneals_its_exploration_over_the_whole_budget(monkeypatch):
    """adapt() learns one episode per call, and SB3 measured DQN's exploration schedule over each call: the rate went
    from 1 to its final value within the first episode, whatever the budget. It must follow one schedule over all
    ``episodes * episode_steps`` steps, as a single ``learn`` of the budget would."""
    steps, episodes = 8, 3
    agent = TransferLearning("DQN", "flash/Autoscaling-v0", {"episode_steps": steps}, n_envs=1, net_arch=[8], seed=0,
                             agent_kwargs={"buffer_size": 100, "batch_size": 8},
                             adapt_kwargs={"learning_starts": 0, "exploration_fraction": 1.0,
                                           "exploration_final_eps": 0.05}).fresh()
    made = []
    new_agent = Flash._new_agent

    def keep(self, *args, **kwargs):
        made.append(new_agent(self, *args, **kwargs))
        return made[-1]

    monkeypatch.setattr(Flash, "_new_agent", keep)
    rates = []
    agent.adapt(AutoscalingTaskFamily.generate().test[0], episodes,
                on_eval=lambda e, _: rates.append((e, made[-1].exploration_rate)))
    budget = episodes * steps
    expected = [(e, 1.0 - 0.95 * e * steps / budget) for e in range(1, episodes + 1)]
    assert rates[1:] == [(e, pytest.approx(rate)) for e, rate in expected]
