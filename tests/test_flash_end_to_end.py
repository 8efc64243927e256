"""A tiny meta-train + adapt for FLASH (PPO), a second algorithm (A2C and DQN), transfer/scratch and MAML."""

from __future__ import annotations

import tempfile
import threading

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.callbacks import BaseCallback
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import flash_envs  # noqa: F401
from flash_rl import MAML, Flash, TransferLearning
from flash_rl.agent_settings import check_adaptation_kwargs
from flash_rl.encoder import FlashFeaturesExtractor
from flash_rl.flash import embedding_extractors

ENV = {"episode_steps": 10}


@pytest.fixture(scope="module")
def family():
    return gym.make("flash/Autoscaling-v0", **ENV).unwrapped.family   # the default family for ENV's episode length


EVAL_SEED = 10_000   # adapt()'s default eval_seed


def check_curve(curve, episodes):
    assert [e for e, _ in curve] == list(range(episodes + 1))
    assert all(np.isfinite(v) for _, v in curve)


def weights(net):
    return [p.detach().clone() for p in net.parameters()]


def same(a, b) -> bool:
    return len(a) == len(b) > 0 and all(torch.equal(x, y) for x, y in zip(a, b))


def adapt_watched(monkeypatch, learner, *args, **kwargs):
    """``learner.adapt(*args, **kwargs)`` and the weights of the policy each of its evaluations ran (adapt evaluates
    through ``evaluate``: an SB3 agent for Flash / TransferLearning, a torch module for MAML)."""
    seen = []
    evaluate = type(learner).evaluate

    def spy(self, policy, *a, **kw):
        seen.append(weights(policy if isinstance(policy, torch.nn.Module) else policy.policy))
        return evaluate(self, policy, *a, **kw)

    with monkeypatch.context() as m:
        m.setattr(type(learner), "evaluate", spy)
        curve = learner.adapt(*args, **kwargs)
    return curve, seen


def check_adaptation(curve, seen, episodes, start, start_return):
    """The curve starts from the given weights and their return, and every episode fine-tunes them further."""
    check_curve(curve, episodes)
    assert len(seen) == episodes + 1                        # one evaluation before fine-tuning, one per episode
    assert same(seen[0], start), "adaptation starts from the (meta-)trained weights"
    assert curve[0][1] == start_return
    assert all(not same(a, b) for a, b in zip(seen, seen[1:])), "every episode changes the weights"


def test_flash_ppo_meta_train_and_adapt(family, monkeypatch):
    flash = Flash(PPO, "flash/Autoscaling-v0", ENV, context_len=8, embedding_dim=8, encoder_hidden=16,
                  net_arch=[32], agent_kwargs={"n_steps": 20, "batch_size": 40, "n_epochs": 2},
                  adapt_kwargs={"n_steps": 10, "batch_size": 10}, n_envs=2, episodes_per_task=2)
    flash.meta_train(family, 400)
    assert flash.model.num_timesteps == 400 and flash.model._n_updates == 10 * 2   # 10 rollouts of 2 envs x 20 steps
    assert isinstance(flash.policy.features_extractor, FlashFeaturesExtractor)
    before, task = weights(flash.policy), family.test[0]
    start = flash.evaluate(None, task, seed=EVAL_SEED)
    start_zero = flash.evaluate(None, task, seed=EVAL_SEED, zero_embedding=True)
    curve, seen = adapt_watched(monkeypatch, flash, task, episodes=3)
    check_adaptation(curve, seen, 3, before, start)
    assert same(before, weights(flash.policy)), "adapt leaves the model alone"
    assert flash.embed(family.test[1]).shape == (8,)
    zero, seen = adapt_watched(monkeypatch, flash, task, episodes=1, zero_embedding=True)
    check_adaptation(zero, seen, 1, before, start_zero)


@pytest.mark.parametrize("algo, kwargs, adapt_kwargs", [
    (A2C, {"n_steps": 5}, {}),
    (DQN, {"learning_starts": 20, "buffer_size": 1000, "train_freq": 4, "batch_size": 16}, {"learning_starts": 0}),
])
def test_second_algorithm(family, algo, kwargs, adapt_kwargs, monkeypatch):
    flash = Flash(algo, "flash/Autoscaling-v0", ENV, context_len=8, embedding_dim=8, encoder_hidden=16,
                  net_arch=[32], agent_kwargs=kwargs, adapt_kwargs=adapt_kwargs, n_envs=2)
    flash.meta_train(family.train[:3], 200)
    assert isinstance(flash.model, algo) and flash.model.num_timesteps == 200
    # A2C: one update a rollout of 2 envs x 5 steps; DQN: one every 4 of its 100 vector steps, from 20 timesteps on
    assert flash.model._n_updates == (20 if algo is A2C else 23)
    extractor = flash.policy.q_net.features_extractor if algo is DQN else flash.policy.features_extractor
    assert isinstance(extractor, FlashFeaturesExtractor)
    meta_trained, task = weights(flash.policy), family.test[0]
    start = flash.evaluate(None, task, seed=EVAL_SEED)
    check_adaptation(*adapt_watched(monkeypatch, flash, task, episodes=2), 2, meta_trained, start)
    # the embedding ablation and embed() reach the extractor the agent acts through (DQN: its Q-network's)
    extractors = embedding_extractors(flash.policy)
    assert extractor in extractors and len(extractors) == (2 if algo is DQN else 1)   # DQN: + the target network
    seen = []
    hooks = [e.register_forward_pre_hook(lambda module, args: seen.append(module.zero_embedding)) for e in extractors]
    flash.evaluate(None, family.test[0], seed=3, zero_embedding=True)
    for hook in hooks:
        hook.remove()
    assert seen and all(seen) and not any(e.zero_embedding for e in extractors)
    start_zero = flash.evaluate(None, task, seed=EVAL_SEED, zero_embedding=True)
    check_adaptation(*adapt_watched(monkeypatch, flash, task, episodes=1, zero_embedding=True), 1, meta_trained,
                     start_zero)
    assert flash.embed(family.test[1]).shape == (8,)


@pytest.mark.parametrize("train_freq", [[1, "episode"], (1, "episode")])
def test_dqn_trains_once_an_episode_with_train_freq_counted_in_episodes(family, train_freq, tmp_path, monkeypatch):
    """SB3 reads train_freq=(1, "episode") only as a tuple; JSON and YAML give a list, and a saved agent's
    settings are JSON: either form trains once an episode, after a save and load too, and when fine-tuning."""
    flash = Flash(DQN, "flash/Autoscaling-v0", ENV, context_len=8, embedding_dim=8, encoder_hidden=16, net_arch=[32],
                  agent_kwargs={"learning_starts": 20, "buffer_size": 1000, "batch_size": 16, "train_freq": train_freq},
                  adapt_kwargs={"learning_starts": 0}, n_envs=1)
    flash.meta_train(family.train[:3], 200)
    assert flash.model._n_updates == 18       # after each 10-step episode that ends past learning_starts (30..200)
    flash.save(tmp_path)
    loaded = Flash.load(tmp_path)
    assert loaded.agent_kwargs["train_freq"] == [1, "episode"] and loaded.model.train_freq == flash.model.train_freq
    assert loaded.config() == flash.config()   # the tuple is kept as saved, a list
    meta_trained, task = weights(loaded.policy), family.test[0]
    start = loaded.evaluate(None, task, seed=EVAL_SEED)
    check_adaptation(*adapt_watched(monkeypatch, loaded, task, episodes=2), 2, meta_trained, start)


ANNOTATION = "agent_kwargs: train_freq must be int | tuple[int, str] (the annotation of DQN), got "


@pytest.mark.parametrize("train_freq, message", [
    ([1, "episode"], "agent_kwargs: DQN counts train_freq in episodes ([1, 'episode']), which stable-baselines3 "
                     "allows on one env only, but meta-training runs n_envs=2"),
    ([1, 2], ANNOTATION + "[1, 2]"),
    ([1, "episode", 3], ANNOTATION + "[1, 'episode', 3]"),
    ([0, "episode"], "agent_kwargs: DQN's train_freq must count at least 1 step or episode, got [0, 'episode']"),
    (0, "agent_kwargs: DQN's train_freq must count at least 1 step or episode, got 0"),
])
def test_a_train_freq_dqn_would_fail_on_is_refused_when_built(train_freq, message):
    with pytest.raises(ValueError) as err:
        Flash(DQN, "flash/Autoscaling-v0", ENV, agent_kwargs={"train_freq": train_freq}, n_envs=2)
    assert message in str(err.value)


def test_transfer_scratch_and_maml(family, monkeypatch):
    tl = TransferLearning("PPO", "flash/Autoscaling-v0", ENV, net_arch=[32],
                          agent_kwargs={"n_steps": 20, "batch_size": 40, "n_epochs": 1},
                          adapt_kwargs={"n_steps": 10, "batch_size": 10}, n_envs=2)
    tl.meta_train(family, 200)
    assert "features_extractor_class" not in tl.model.policy_kwargs
    task = family.test[0]
    pretrained, start = weights(tl.policy), tl.evaluate(None, task, seed=EVAL_SEED)
    check_adaptation(*adapt_watched(monkeypatch, tl, task, 2), 2, pretrained, start)
    scratch = tl.fresh(seed=5)
    untrained, start = weights(scratch.policy), scratch.evaluate(None, task, seed=EVAL_SEED)
    assert not same(untrained, pretrained)                      # from scratch: not the pretrained weights
    check_adaptation(*adapt_watched(monkeypatch, scratch, task, 2), 2, untrained, start)
    maml = MAML("flash/Autoscaling-v0", ENV, hidden=[16], meta_batch=2, outer_episodes=1).meta_train(family, 2)
    meta_learned, start = weights(maml.policy), maml.evaluate(maml.policy, task, EVAL_SEED)
    check_adaptation(*adapt_watched(monkeypatch, maml, task, 2), 2, meta_learned, start)
    assert same(meta_learned, weights(maml.policy)), "MAML adapts a copy"


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown env id"):
        Flash("PPO", "flash/Nope-v0")
    with pytest.raises(ValueError, match="does not take"):
        Flash("PPO", "flash/Autoscaling-v0", agent_kwargs={"n_stepz": 3})
    with pytest.raises(ValueError, match="unknown stable-baselines3 algorithm"):
        Flash("PPOO", "flash/Autoscaling-v0")
    with pytest.raises(ValueError, match="context_len must be a whole number >= 1, got 0"):
        Flash("PPO", "flash/Autoscaling-v0", context_len=0)
    with pytest.raises(ValueError, match="unknown encoder 'lstm'"):
        Flash("PPO", "flash/Autoscaling-v0", encoder="lstm")
    with pytest.raises(TypeError, match=r"context supports Discrete and Box actions, got MultiDiscrete\(\[5 5\]\)"):
        Flash("PPO", "flash/PowerManagement-v0", {"n_servers": 2})
    with pytest.raises(RuntimeError, match="nothing to embed with"):
        Flash("PPO", "flash/Autoscaling-v0").embed(None)


def test_settings_that_cannot_be_saved_or_trained_with_are_refused_when_the_agent_is_made():
    """Refused before any training: a schedule (a valid SB3 learning rate that flash.json cannot hold), a value SB3
    refuses only when it builds the agent, and layer sizes the config refuses too."""
    with pytest.raises(ValueError, match=r"agent_kwargs: learning_rate=<function .*> cannot be saved with the agent: "
                                         r"give a number, .*; SB3 has no such form of a schedule: give a constant"):
        Flash("PPO", "flash/Autoscaling-v0", ENV, agent_kwargs={"learning_rate": lambda p: 3e-4 * p})
    with pytest.raises(ValueError, match=r"adapt_kwargs: PPO cannot be built with \{.*'clip_range_vf': 0"):
        Flash("PPO", "flash/Autoscaling-v0", ENV, adapt_kwargs={"clip_range_vf": 0})
    with pytest.raises(ValueError, match=r"net_arch must be a list of positive ints .*, got \[0\]"):
        TransferLearning("PPO", "flash/Autoscaling-v0", ENV, net_arch=[0])
    with pytest.raises(ValueError, match="cannot be built with .* only supports .*Discrete"):
        TransferLearning("DQN", "flash/PowerManagement-v0", {"n_servers": 2})


def test_adapt_refuses_a_rollout_longer_than_an_episode(family):
    """PPO's default n_steps (2048) would fine-tune on ~205 ten-step episodes per point of the curve."""
    flash = Flash("PPO", "flash/Autoscaling-v0", ENV, net_arch=[8], n_envs=1).fresh()
    with pytest.raises(ValueError, match="one 10-step episode at a time, but PPO's n_steps=2048 would collect 2048"):
        flash.adapt(family.test[0], episodes=1)
    with pytest.warns(UserWarning, match="no update in the first 10 episode"):
        check_adaptation_kwargs(DQN, {}, 10)   # learning_starts=100


class MyA2C(A2C):
    """A user's own algorithm: a subclass of an SB3 one, defined outside stable_baselines3."""


def test_an_agent_of_a_custom_algorithm_class_saves_and_loads(tmp_path):
    flash = Flash(MyA2C, "flash/Autoscaling-v0", ENV, context_len=4, embedding_dim=4, encoder_hidden=8, net_arch=[8],
                  agent_kwargs={"n_steps": 5}, n_envs=1).fresh()
    assert flash.config()["agent_cls"] == f"{__name__}:MyA2C" and Flash("A2C", "flash/Autoscaling-v0").config()[
        "agent_cls"] == "A2C"
    flash.save(tmp_path / "mine")
    loaded = Flash.load(tmp_path / "mine")
    assert loaded.agent_cls is MyA2C and isinstance(loaded.model, MyA2C)
    with pytest.raises(ValueError, match="cannot import the algorithm 'no_such_module:X'"):
        Flash("no_such_module:X", "flash/Autoscaling-v0")


def test_training_leaves_no_logger_folders_in_tmp(family, tmp_path, monkeypatch, capsys):
    """SB3 alone would make an empty SB3-<date> folder in the temp dir per learn() call; TensorBoard and verbose
    output still work."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.delenv("SB3_LOGDIR", raising=False)
    tiny = {"net_arch": [8], "agent_kwargs": {"n_steps": 20, "batch_size": 20, "n_epochs": 1},
            "adapt_kwargs": {"n_steps": 10, "batch_size": 10}, "n_envs": 1}
    flash = Flash(PPO, "flash/Autoscaling-v0", ENV, context_len=4, embedding_dim=4, encoder_hidden=8, **tiny)
    flash.meta_train(family, 40)
    flash.adapt(family.test[0], episodes=2)
    flash.save(tmp_path / "saved")
    Flash.load(tmp_path / "saved").model.learn(10)
    TransferLearning(PPO, "flash/Autoscaling-v0", ENV, verbose=1, **tiny).meta_train(family, 20)
    assert "total_timesteps" in capsys.readouterr().out
    TransferLearning(PPO, "flash/Autoscaling-v0", ENV, tensorboard_log=str(tmp_path / "tb"), **tiny).meta_train(
        family, 20, tb_log_name="tl")
    assert list((tmp_path / "tb" / "tl_1").glob("events.out.tfevents.*"))
    assert not list(tmp_path.glob("SB3-*"))


def untrained(algo=PPO, net_arch=(32,)) -> Flash:
    """A newly initialised (untrained) FLASH agent of ``algo`` with this file's small encoder, fine-tuning with
    PPO's rollouts of one episode."""
    adapt = {"n_steps": 10, "batch_size": 10, "n_epochs": 1} if algo is PPO else {}
    return Flash(algo, "flash/Autoscaling-v0", ENV, context_len=8, embedding_dim=8, encoder_hidden=16,
                 net_arch=list(net_arch), adapt_kwargs=adapt).fresh(seed=0)


@pytest.mark.parametrize("algo", [PPO, DQN])
def test_the_agent_acts_on_the_context(family, algo):
    """Two observations that differ in their context only give the policy other action values, unless the embedding
    is zeroed (the ablation): the context reaches the network the agent acts through."""
    flash = untrained(algo)
    env = flash.make_env(family.test[0])
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    other = {**obs, "context": rng.random(obs["context"].shape).astype(np.float32)}
    policy = flash.model.policy

    def values(o):
        tensor, _ = policy.obs_to_tensor(o)
        with torch.no_grad():
            return policy.q_net(tensor) if algo is DQN else policy.get_distribution(tensor).distribution.logits

    assert not torch.allclose(values(obs), values(other))
    for extractor in embedding_extractors(policy):
        extractor.zero_embedding = True
    torch.testing.assert_close(values(obs), values(other))


def test_adaptation_keeps_its_context_across_episodes_and_evaluation_reads_a_copy(family, monkeypatch):
    """adapt's fine-tuning episodes all feed one context buffer (kept across episodes of the task), and each
    evaluation starts from a copy of it: before fine-tuning it is empty, after e episodes it has seen e episodes'
    transitions, and evaluating never adds its own."""
    flash = untrained(net_arch=(8,))
    seen, evaluate = [], Flash.evaluate

    def spy(self, policy, task, seed, buffer=None, *args, **kwargs):
        before = buffer.transitions_seen
        value = evaluate(self, policy, task, seed, buffer, *args, **kwargs)
        seen.append((before, buffer.transitions_seen))
        return value

    monkeypatch.setattr(Flash, "evaluate", spy)
    flash.adapt(family.test[0], episodes=3)
    assert seen == [(0, 0), (10, 10), (20, 20), (30, 30)]   # ENV: 10-step episodes


@pytest.mark.parametrize("zero", [True, False])
def test_zero_embedding_holds_while_adaptation_fine_tunes_too(family, monkeypatch, zero):
    """adapt(zero_embedding=True) ablates the embedding in every pass of fine-tuning (rollouts and gradient steps),
    not only in its evaluations; without it, no pass is ablated."""
    flash = untrained(net_arch=(8,))
    flags, forward = [], FlashFeaturesExtractor.forward

    def spy(self, *args, **kwargs):
        flags.append((torch.is_grad_enabled(), self.zero_embedding))
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(FlashFeaturesExtractor, "forward", spy)
    flash.adapt(family.test[0], episodes=1, zero_embedding=zero)
    assert any(grad for grad, _ in flags), "the gradient step ran through the extractor"
    assert {flag for _, flag in flags} == {zero}


def test_embed_runs_each_episode_on_its_own_seed(family, monkeypatch):
    """embed(task, episodes, seed) runs ``episodes`` episodes seeded seed, seed + 1, ... (other draws of the task's
    workload, not one episode repeated), all on ``task``."""
    from flash_rl.context import ContextWrapper

    flash = untrained(net_arch=(8,))
    resets, reset = [], ContextWrapper.reset

    def spy(self, *, seed=None, options=None):
        resets.append((seed, (options or {}).get("task")))
        return reset(self, seed=seed, options=options)

    monkeypatch.setattr(ContextWrapper, "reset", spy)
    assert flash.embed(family.test[1], episodes=3, seed=5).shape == (8,)
    assert resets == [(5, family.test[1]), (6, family.test[1]), (7, family.test[1])]


def tensorboard_writer_threads() -> list:
    """The TensorBoard writers' threads alive in this process (one per open SummaryWriter)."""
    return [t for t in threading.enumerate() if type(t).__name__ == "_AsyncWriterThread"]


class StopAtFirstStep(BaseCallback):
    def _on_step(self) -> bool:
        raise RuntimeError("stopped by the test")


def test_meta_train_closes_the_tensorboard_writer_it_logged_to(family, tmp_path):
    """SB3 opens a TensorBoard writer (a thread and an open events file) at every learn() and never closes it: each
    meta_train with a tensorboard_log would leave one behind. It is closed, with its records in the file, also when
    training stops on an exception."""
    tiny = {"net_arch": [8], "agent_kwargs": {"n_steps": 20, "batch_size": 20, "n_epochs": 1}, "n_envs": 1}
    before = tensorboard_writer_threads()
    learner = TransferLearning(PPO, "flash/Autoscaling-v0", ENV, tensorboard_log=str(tmp_path / "tb"), **tiny)
    learner.meta_train(family, 40, tb_log_name="tl")
    assert tensorboard_writer_threads() == before
    with pytest.raises(RuntimeError, match="stopped by the test"):
        learner.meta_train(family, 20, tb_log_name="stopped", callback=StopAtFirstStep())
    assert tensorboard_writer_threads() == before
    events = EventAccumulator(str(tmp_path / "tb" / "tl_1")).Reload()
    assert events.Scalars("time/fps")[-1].step == 40
