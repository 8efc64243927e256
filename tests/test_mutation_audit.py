"""Tests written after a mutation audit of the suite: 56 small semantic changes to the code (a comparison flipped, a
term dropped, an argument ignored), of which 14 left every test passing. Each test here fails with the change it is
named after (the audit's id in brackets) and passes without it."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

import flash_envs  # noqa: F401  (registers the envs)
from flash_envs.envs.config_search import ConfigSearchEnv, ConfigSearchTask, ConfigSearchTaskFamily
from flash_envs.sim.power import FrequencyScaling
from flash_envs.sim.server_catalogue import REIMS_DVFS, default_scaling
from flash_rl import adaptation
from flash_rl.adaptation import episodes_to_adapt, random_return
from flash_rl.context import ContextBuffer
from flash_rl.fewshot.episodes import Episodes
from flash_rl.fewshot.models import nearest_config_predict
from flash_rl.maml import reinforce_loss
from flash_rl.stats import mean, ratio_ci

# [A1] the reward's memory utilisation term dropped (the only check ran where both utilisations are 0)
def test_reward_weighs_mean_of_cpu_and_memory_utilisation():
    env = gym.make("flash/Autoscaling-v0", alpha=1.0)          # reward = utilisation alone
    env.reset(seed=0, options={"task": env.unwrapped.family.train[1]})
    for _ in range(3):
        _, reward, _, _, info = env.step(0)
        assert 0 < info["cpu_utilisation"] != info["memory_utilisation"] > 0   # a non-degenerate state
        assert reward == pytest.approx((info["cpu_utilisation"] + info["memory_utilisation"]) / 2, rel=1e-6)


# [A4] the hidden-SLO observation's index 7 computed from completed instead of dropped requests
def test_hidden_slo_observation_index_7_is_the_rejected_share():
    for kwargs, expect_drops in (({}, False), ({"initial_replicas": 1, "initial_cpu": 128}, True)):
        env = gym.make("flash/Autoscaling-v0", slo_in_observation=False, **kwargs)
        env.reset(seed=0, options={"task": env.unwrapped.family.train[1]})
        obs, *_, info = env.step(0)
        m = env.unwrapped._metrics
        assert (info["dropped"] > 0) == expect_drops
        assert obs[7] == pytest.approx(min(1.0, m.dropped / m.arrivals), abs=1e-6)


# [P1] slo_weight left out of the power reward (no test stepped into an SLO violation)
def test_slo_weight_scales_the_violation_term():
    env = gym.make("flash/PowerManagement-v0", slo_weight=3.0, episode_s=20.0).unwrapped
    task = env.family.train[0]
    slo = 1.05 * 1000 * task.app.mean_service_s(task.server.millicores(task.server.n_levels - 1))
    strict = dataclasses.replace(task, app=dataclasses.replace(task.app, slo_ms=slo))   # missed at the lowest P-state
    env.reset(seed=0, options={"task": strict})
    env.step(0)
    _, reward, _, _, info = env.step(0)
    assert info["slo_violation"] == 1.0
    assert reward == pytest.approx(-info["power_share"] - 3.0)


# [P3] the V^2 of phi = r * V(r)^2 dropped (the 3-parameter fit absorbs it on one table)
def test_phi_is_f_times_v_squared():
    s = FrequencyScaling(idle_share=0.0, dynamic_share=1.0, voltage_slope=0.5)
    assert s.phi(0.5) == pytest.approx(0.5 * (1 - 0.5 * 0.5) ** 2)
    assert s.factors(0.5) == pytest.approx((1.0, 0.5 * 0.75 ** 2))


def test_default_scaling_reproduces_every_row_of_the_reims_table():
    s = default_scaling()
    for r, idle, full in zip(REIMS_DVFS.freq_fraction, REIMS_DVFS.idle_w, REIMS_DVFS.full_w):
        fi, fd = s.factors(r)
        assert 167 * fi == pytest.approx(idle, rel=0.01)
        assert 167 * fi + 105 * fd == pytest.approx(full, rel=0.01)


# [C1] ConfigSearch's regret inverted (best / chosen - 1): no test committed to a feasible, costlier configuration;
# [C4] a runtime equal to the deadline counted as missing it
def _task(deadline):
    return ConfigSearchTask("t", ("a", "b", "c"), (1.0, 2.0, 4.0), (3.0, 2.0, 1.0), deadline)


def test_a_feasible_but_costlier_commit_earns_the_cost_ratio():
    fam = ConfigSearchTaskFamily((_task(2.5),), (dataclasses.replace(_task(2.5), name="u", deadline_s=3.0),))
    env = ConfigSearchEnv(family=fam, noise_cv=0.0)
    env.reset(seed=0)
    _, reward, _, _, info = env.step(3 + 0)     # config a: meets the deadline, cost 3 where the best (b) costs 2
    assert info["best"] == 1 and info["meets_deadline"]
    assert reward == pytest.approx(2 / 3) and info["regret"] == pytest.approx(0.5)


def test_a_runtime_equal_to_the_deadline_meets_it():
    fam = ConfigSearchTaskFamily((_task(2.0),), (dataclasses.replace(_task(2.0), name="u", deadline_s=3.0),))
    env = ConfigSearchEnv(family=fam, noise_cv=0.0)
    env.reset(seed=0)
    _, reward, _, _, info = env.step(3 + 1)     # config b: runtime 2.0 == deadline, and the best
    assert info["meets_deadline"] and reward == 1.0


# [R2] the context's one-hot of a Discrete(start=1) action written one column off
def test_context_one_hot_respects_a_discrete_start():
    buf = ContextBuffer(2, spaces.Box(0, 1, (1,)), spaces.Discrete(3, start=1))
    buf.add(np.array([0.5]), 1, 0.25)
    np.testing.assert_array_equal(buf.array()[-1], [0.5, 1, 0, 0, 0.25, 1])


# [M1] MAML's masked baseline averaged over the padded steps too; [M2] its gamma ignored in the returns
def _logits_policy(logits):
    return lambda obs: logits


def test_reinforce_loss_masked_baseline_is_over_live_episodes():
    logits = torch.tensor([[[0.0, 1.0], [0.5, 0.0]], [[2.0, 0.0], [0.0, 0.0]]])
    actions = torch.tensor([[1, 0], [0, 1]])
    batch = {"obs": torch.zeros(2, 2, 1), "actions": actions, "rewards": torch.tensor([[1.0, 2.0], [5.0, 0.0]]),
             "mask": torch.tensor([[1.0, 1.0], [1.0, 0.0]])}
    # gamma 1: returns [[3, 2], [5, 0]]; baselines (live only) [4, 2]: advantages [[-1, 0], [1, -]], std 1
    logp = torch.log_softmax(logits, -1).gather(-1, actions[..., None])[..., 0]
    expected = -(logp[0, 0] * -1 + logp[1, 0] * 1) / 3
    assert reinforce_loss(_logits_policy(logits), batch, 1.0) == pytest.approx(float(expected), rel=1e-5)


def test_reinforce_loss_discounts_returns():
    logits = torch.tensor([[[0.0, 1.0], [0.5, 0.0]], [[2.0, 0.0], [0.0, 0.0]]])
    actions = torch.tensor([[1, 0], [0, 1]])
    batch = {"obs": torch.zeros(2, 2, 1), "actions": actions, "rewards": torch.tensor([[0.0, 1.0], [0.0, 0.0]])}
    returns = torch.tensor([[0.5, 1.0], [0.0, 0.0]])          # gamma 0.5, by hand
    adv = returns - returns.mean(0, keepdim=True)
    adv = adv / adv.std()
    logp = torch.log_softmax(logits, -1).gather(-1, actions[..., None])[..., 0]
    expected = -(logp * adv).mean()
    assert reinforce_loss(_logits_policy(logits), batch, 0.5) == pytest.approx(float(expected), rel=1e-4)


# [F4] the nearest-config baseline copying the farthest shot
def test_nearest_config_copies_the_nearest_shot():
    shot_x = torch.tensor([[[0.0], [10.0]]])
    shot_y = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    target_x = torch.tensor([[[1.0], [9.0], [4.0]]])
    ep = Episodes(shot_x, shot_y, torch.tensor([[0, 1]]), target_x, torch.zeros(1, 3, 2), torch.tensor([[2, 3, 4]]))
    np.testing.assert_array_equal(nearest_config_predict(ep)[0].numpy(), [[1, 2], [3, 4], [1, 2]])


# [B1] the speedup's ratio CI resampling numerator and denominator unpaired
def test_ratio_ci_is_paired():
    den = np.linspace(1, 100, 40)
    num = 2 * den + np.random.default_rng(0).normal(0, 0.5, 40)   # every pair ~2:1, the runs spread widely
    r, lo, hi = ratio_ci(num, den, mean)
    assert r == pytest.approx(2, rel=0.01) and hi - lo < 0.05     # unpaired resampling gives a CI ~20x wider


# [G3] TaskFamily.sample drawing with replacement when it can draw without
def test_sample_draws_without_replacement_while_it_can():
    fam = ConfigSearchTaskFamily.generate(n_train=6, n_test=3, seed=7)
    for seed in range(5):
        names = [t.name for t in fam.sample(6, "train", np.random.default_rng(seed))]
        assert sorted(names) == sorted(t.name for t in fam.train)


# [G5] an unsorted adaptation curve read in its given order
def test_episodes_to_adapt_reads_an_unsorted_curve_in_episode_order():
    assert episodes_to_adapt([(4, 1.0), (0, 0.0), (2, 1.0)], 0.5, 10) == (3, False)


# [G6] references.random_episodes ignored (one random episode)
def test_random_return_averages_the_requested_episodes(monkeypatch):
    values = iter(range(1, 100))
    monkeypatch.setattr(adaptation, "run_policy", lambda *a: float(next(values)))
    env = gym.make("flash/ConfigSearch-v0")
    assert random_return(env, None, 0, episodes=5) == pytest.approx(3.0)
