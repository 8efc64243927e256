"""Defects found by an audit of the Python API (scripts, not the CLI): each test failed before its fix."""

from __future__ import annotations

import json
import re
import shutil

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback

import flash_envs  # noqa: F401  (registers the envs)
from flash_envs.baselines.autoscalers import HPA, ThresholdAutoscaler
from flash_envs.baselines.governors import Conservative, Ondemand
from flash_envs.baselines.runner import evaluate_on_tasks
from flash_envs.envs.config_search import ConfigSearchTaskFamily
from flash_rl.agent_settings import check_adaptation_kwargs
from flash_rl.flash import Flash, TransferLearning
from flash_rl.maml import MAML, PolicyNet, reinforce_loss, rollout
from test_flash_api_checks import ENV, TINY, TINY_ENV, family   # the tests' folder is on sys.path

CONFIG_SEARCH = "flash/ConfigSearch-v0"


# ------------------------------------------------------------------ 1. MAML on episodes of different lengths
def test_a_rollout_runs_every_episode_to_its_own_end():
    """All episodes of a batch stopped when the first one ended: ConfigSearch's, which end when the agent commits,
    were cut short."""
    task = ConfigSearchTaskFamily.generate().test[0]
    envs = [gym.make(CONFIG_SEARCH) for _ in range(6)]
    torch.manual_seed(3)
    policy = PolicyNet(envs[0].observation_space.shape[0], envs[0].action_space.n, (8,))
    seeds = list(range(6))
    batch = rollout(policy, envs, task, seeds, torch.Generator().manual_seed(0))
    lengths = batch["mask"].sum(1).int().tolist()
    assert len(set(lengths)) > 1 and batch["rewards"].shape[1] == max(lengths)
    assert torch.all(batch["rewards"][batch["mask"] == 0] == 0)
    together = rollout(policy, envs, task, seeds, torch.Generator(), deterministic=True)
    mask = together.get("mask", torch.ones_like(together["rewards"]))
    for row, (env, seed) in enumerate(zip(envs, seeds)):   # each row is its own whole episode (deterministic acts)
        alone = rollout(policy, [env], task, [seed], torch.Generator(), deterministic=True)
        n = int(mask[row].sum())
        assert alone["rewards"].shape[1] == n
        torch.testing.assert_close(alone["rewards"][0], together["rewards"][row, :n])


def test_maml_meta_trains_and_adapts_on_config_search_without_nan():
    """A one-step episode made the advantage's std NaN, then the weights, then torch.multinomial failed."""
    family = ConfigSearchTaskFamily.generate()
    maml = MAML(CONFIG_SEARCH, hidden=[8], meta_batch=2, inner_episodes=2, outer_episodes=2, seed=0)
    maml.meta_train(family.train, 3)
    assert all(torch.isfinite(p).all() for p in maml.policy.parameters())
    curve = maml.adapt(family.test[0], 2)
    assert len(curve) == 3 and all(np.isfinite(r) for _, r in curve)
    one_step = {"obs": torch.zeros(1, 1, 3), "actions": torch.zeros(1, 1, dtype=torch.long),
                "rewards": torch.ones(1, 1)}
    assert torch.isfinite(reinforce_loss(PolicyNet(3, 2, (4,)), one_step, 0.99))


# ------------------------------------------------------------------ 2.-4. Flash's saved agents and init_from
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    path = tmp_path_factory.mktemp("agent") / "flash"
    agent = Flash("PPO", ENV, TINY_ENV, **TINY).meta_train(family().train[:2], 10)
    agent.save(path)
    return agent, path


@pytest.mark.parametrize("key, value, shown", [("embedding_dim", 8, "'embedding_dim': (4, 8)"),
                                               ("net_arch", [16], "'net_arch': ([8], [16])"),
                                               ("encoder", "mean", "'encoder': ('gru', 'mean')")])
def test_a_flash_json_that_does_not_describe_its_agent_zip_is_refused(trained, tmp_path, key, value, shown):
    """It loaded (SB3 rebuilds the network from the zip), reported the wrong settings, and adapt() failed in torch."""
    path = tmp_path / "flash"
    shutil.copytree(trained[1], path)
    settings = json.loads((path / "flash.json").read_text())
    (path / "flash.json").write_text(json.dumps({**settings, key: value}))
    with pytest.raises(ValueError, match=re.escape(f"flash.json does not describe {path / 'agent.zip'}: (agent.zip, "
                                                   f"flash.json) differ in {{{shown}}}")):
        Flash.load(path)


def test_a_wrong_init_from_is_refused_and_leaves_the_trained_model_be(trained):
    agent = trained[0]
    before = agent.agent
    wider = Flash("PPO", ENV, TINY_ENV, **{**TINY, "net_arch": [16]}).fresh()
    with pytest.raises(ValueError, match=r"init_from: its policy does not fit this agent's \(RuntimeError"):
        agent.meta_train(family().train[:2], 10, init_from=wider)
    other = TransferLearning("PPO", ENV, TINY_ENV, **TINY).fresh()   # no context encoder: named, not a layer dump
    with pytest.raises(ValueError, match=r"init_from is an agent without FLASH's context encoder \(TransferLearning\), "
                                         r"and this agent is a FLASH agent \(with the context encoder\)"):
        agent.meta_train(family().train[:2], 10, init_from=other)
    with pytest.raises(ValueError, match=r"init_from is a FLASH agent \(with the context encoder\) \(Flash\)"):
        other.meta_train(family().train[:2], 10, init_from=agent)
    with pytest.raises(TypeError, match="init_from must be a Flash or TransferLearning agent with a model .* got str"):
        agent.meta_train(family().train[:2], 10, init_from="runs/flash")
    assert agent.agent is before   # it was replaced by a fresh agent before init_from was looked at


def test_a_checkpoint_without_sampler_state_is_refused_by_name(trained, tmp_path):
    """checkpoint() of a loaded agent writes no sampler state; resuming from it failed in zip(strict=True)."""
    loaded = Flash.load(trained[1])
    loaded.checkpoint(tmp_path, 10)
    with pytest.raises(ValueError, match=r"state.json holds no task-sampler state for the 1 training env\(s\)"):
        loaded.meta_train(family().train[:2], 20, checkpoint_dir=tmp_path, resume=True)


# ------------------------------------------------------------------ 5.-7. arguments
def test_the_n_steps_advice_offers_batch_size_only_to_algorithms_that_take_it():
    from stable_baselines3 import A2C, PPO

    with pytest.raises(ValueError, match=r"set n_steps=60 \(or an n_steps"):
        check_adaptation_kwargs(A2C, {"n_steps": 7}, 60)
    with pytest.raises(ValueError, match=r"set n_steps=60, batch_size=60 \(or"):
        check_adaptation_kwargs(PPO, {"n_steps": 7}, 60)


def test_a_numpy_number_in_saved_kwargs_is_named_and_whole_float_layer_sizes_are_counts():
    shown = re.escape(repr(np.int64(10)))   # np.int64(10), or 10 under NumPy 1 (pyproject.toml admits numpy>=1.24)
    with pytest.raises(ValueError, match=shown + r" cannot be saved with the agent: give a number \(a "
                                         r"NumPy number is not one: give value.item\(\)\)"):
        Flash("PPO", ENV, TINY_ENV, **{**TINY, "agent_kwargs": {"n_steps": np.int64(10)}})
    assert Flash("PPO", ENV, TINY_ENV, **{**TINY, "net_arch": [8.0]}).net_arch == [8]


@pytest.mark.parametrize("kwargs, error, message", [
    ({"verbose": "loud"}, TypeError, "verbose must be a whole number, got 'loud'"),
    ({"tensorboard_log": 5}, TypeError, "tensorboard_log must be a folder path or None, got 5"),
])
def test_logging_arguments_are_checked_when_the_agent_is_made(kwargs, error, message):
    """They failed inside SB3 or posixpath, at meta_train."""
    with pytest.raises(error, match=message):
        Flash("PPO", ENV, TINY_ENV, **TINY, **kwargs)


def test_meta_train_takes_sb3s_forms_of_callback_and_refuses_one_task_or_a_file_up_front(tmp_path):
    agent = Flash("PPO", ENV, TINY_ENV, **TINY)
    calls: list[str] = []

    class Count(BaseCallback):
        def _on_step(self) -> bool:
            calls.append("list")
            return True

    agent.meta_train(family().train[:2], 10, callback=[Count()])
    agent.meta_train(family().train[:2], 10, callback=lambda local, glob: calls.append("function") is None)
    assert calls.count("list") == 10 and calls.count("function") == 10
    with pytest.raises(TypeError, match=r"got AutoscalingTask \(for one task, pass \[task\]\)"):
        agent.meta_train(family().train[0], 10)
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="checkpoint_dir .*file is a file; give a folder"):
        agent.meta_train(family().train[:2], 10, checkpoint_dir=tmp_path / "file")


# ------------------------------------------------------------------ 8. the baselines' arguments
def test_baseline_thresholds_of_another_type_are_named():
    """They failed comparing a str with an int."""
    env = gym.make(ENV)
    for make, name in [(lambda: HPA(env, target="0.6"), "target"),
                       (lambda: HPA(env, cpu_millicores="1024"), "cpu_millicores"),
                       (lambda: ThresholdAutoscaler(env, lower="0.1"), "lower"),
                       (lambda: Conservative([0.5, 1.0], down_threshold="0.1"), "down_threshold")]:
        with pytest.raises(TypeError, match=rf"^{name} must be a (whole )?number"):
            make()
    with pytest.raises(TypeError, match="Ondemand.for_env drives flash/PowerManagement-v0, got AutoscalingEnv"):
        Ondemand.for_env(env)
    with pytest.raises(ValueError, match="episodes must be a whole number"):
        evaluate_on_tasks(env, HPA(env), family().test[:1], episodes=1.5)


# ------------------------------------------------------------------ 10. small items
def test_small_arguments_and_files_are_checked(tmp_path):
    from flash_rl.adaptation import ReferenceCache
    from flash_rl.context import ContextBuffer

    space = gym.spaces.Box(-1.0, 1.0, (2,))
    with pytest.raises(ValueError, match="context length must be a whole number"):
        ContextBuffer(2.5, space, gym.spaces.Discrete(2))   # it became 2
    with pytest.raises(TypeError, match="context length must be a whole number, got '4'"):
        ContextBuffer("4", space, gym.spaces.Discrete(2))
    (tmp_path / "references.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"references.json cannot be read \(.*\); delete it to compute"):
        ReferenceCache(tmp_path / "references.json", {})
    (tmp_path / "references.json").write_text("[]")
    with pytest.raises(ValueError, match="references.json is damaged"):
        ReferenceCache(tmp_path / "references.json", {})


def test_saving_an_agent_whose_class_only_this_program_can_import_warns(tmp_path):
    """A class defined in a notebook was saved as "__main__:MyPPO"; Flash.load elsewhere refused it, unwarned."""
    from stable_baselines3 import PPO

    class LocalPPO(PPO):
        pass

    agent = Flash(LocalPPO, ENV, TINY_ENV, **TINY).fresh()
    with pytest.warns(UserWarning, match=r"saved as '.*<locals>.LocalPPO', which Flash.load can import only in this "
                                         r"same program"):
        agent.save(tmp_path / "local")


def test_evaluating_an_agent_of_another_env_is_named():
    """An agent trained on the plain env failed inside SB3's observation check (an AssertionError about a dict)."""
    from stable_baselines3 import PPO

    from flash_rl.adaptation import run_policy

    agent = Flash("PPO", ENV, TINY_ENV, **TINY).fresh()
    env = gym.make(ENV, **TINY_ENV)
    plain, task = PPO("MlpPolicy", env, n_steps=10, batch_size=10, seed=0), family().test[0]
    with pytest.raises(ValueError, match=r"policy_agent observes Box\(.*\(9,\), float32\) and acts in Discrete\(7\); "
                                         r"this Flash's env \(context_len 4\) gives Dict\('context'.*flash_rl."
                                         r"adaptation.run_policy"):
        agent.evaluate(plain, task, 0)
    assert np.isfinite(run_policy(env, plain, task, 0))
    assert agent.evaluate(agent.agent, task, 0) == agent.evaluate(None, task, 0)
