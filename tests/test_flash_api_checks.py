"""The Python API refuses bad arguments, naming them, instead of converting them or failing deep inside SB3, numpy or
gymnasium; and a damaged saved agent (``agent.zip``, ``maml.pt``) is a ValueError naming the file."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import warnings
import zipfile

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

import flash_envs  # noqa: F401  (registers the envs)
from flash_rl.agent_settings import check_agent_kwargs
from flash_rl.flash import Flash, TransferLearning
from flash_rl.maml import MAML

ENV = "flash/Autoscaling-v0"
TINY_ENV = {"episode_steps": 10}
#: A FLASH agent that is built in milliseconds and fine-tunes one 10-step episode per update.
TINY = dict(context_len=4, embedding_dim=4, encoder_hidden=8, net_arch=[8], n_envs=1,
            agent_kwargs={"n_steps": 10, "batch_size": 10, "n_epochs": 1})
TINY_MAML = dict(hidden=[8], meta_batch=2, outer_episodes=1)


def family():
    return gym.make(ENV).unwrapped.family


@pytest.fixture(scope="module")
def saved_agent(tmp_path_factory):
    """A FLASH agent meta-trained for one 10-step rollout and saved (``agent.zip`` and ``flash.json``)."""
    path = tmp_path_factory.mktemp("agent") / "flash"
    Flash("PPO", ENV, TINY_ENV, **TINY).meta_train(family().train[:2], 10).save(path)
    return path


@pytest.fixture(scope="module")
def untrained():
    """A FLASH agent with an untrained model (nothing to train before adapt() is called)."""
    return Flash("PPO", ENV, TINY_ENV, **TINY).fresh()


# ------------------------------------------------------------------------------------------ damaged saved agents
def cut_to_half(path):
    os.truncate(path, path.stat().st_size // 2)


def cut_the_end(path):
    os.truncate(path, path.stat().st_size - 100)   # the zip's central directory


def data_not_json(path):
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, b"{not json" if name == "data" else content)


@pytest.mark.parametrize("damage, problem", [
    (cut_to_half, "(is not a saved agent that flash wrote, or is damaged|cannot be read as a saved agent|is damaged)"),
    (cut_the_end, "(is not a saved agent that flash wrote, or is damaged|cannot be read as a saved agent|is damaged)"),
    (data_not_json, re.escape("is not a saved agent that flash wrote, or is damaged (stable-baselines3 cannot load "
                              "it: JSONDecodeError")),
])
def test_a_damaged_agent_zip_is_a_value_error_naming_it(saved_agent, tmp_path, damage, problem):
    broken = tmp_path / "broken"
    shutil.copytree(saved_agent, broken)
    damage(broken / "agent.zip")
    with pytest.raises(ValueError, match=re.escape(str(broken / "agent.zip")) + " " + problem):
        Flash.load(broken)


def test_an_agent_zip_sb3_cannot_load_is_named_with_the_cause(saved_agent, tmp_path):
    """An agent zip whose observation space is not the one ``flash.json`` makes: SB3's error, wrapped."""
    broken = tmp_path / "broken"
    shutil.copytree(saved_agent, broken)
    settings = json.loads((broken / "flash.json").read_text())
    (broken / "flash.json").write_text(json.dumps({**settings, "context_len": settings["context_len"] + 1}))
    with pytest.raises(ValueError, match=re.escape(f"{broken / 'agent.zip'} is not a saved agent that flash wrote, "
                                                   "or is damaged (stable-baselines3 cannot load it: ")) as err:
        Flash.load(broken)
    assert err.value.__cause__ is not None


def maml_checkpoint(tmp_path, change):
    """A MAML checkpoint (``tmp_path/m/maml.pt``) whose saved state ``change`` edits."""
    MAML(ENV, TINY_ENV, **TINY_MAML).checkpoint(tmp_path / "m")
    path = tmp_path / "m" / "maml.pt"
    state = torch.load(path, weights_only=True)
    change(state)
    torch.save(state, path)
    return path


@pytest.mark.parametrize("change, problem", [
    (lambda s: s["hparams"].update(bogus=1), ": its settings hold ['bogus'], which this version of flash does not "
                                             "know"),
    (lambda s: s["hparams"].pop("gamma"), ": its settings lack ['gamma'], which this version of flash records; it "
                                          "was written by another version"),   # it adapted with today's default
    (lambda s: s["hparams"].update(hidden=[16]), " is not a MAML checkpoint that flash wrote, or is damaged: its "
                                                 "weights or state do not fit its settings (RuntimeError: "),
    (lambda s: s["hparams"].update(gamma=2.0), ": the saved settings are refused: maml.gamma must be in (0, 1]"),
    (lambda s: s.update(hparams=[1]), " is not a MAML checkpoint that flash wrote (its hparams are a list"),
])
def test_a_maml_checkpoint_whose_settings_or_weights_are_refused_is_named(tmp_path, change, problem):
    path = maml_checkpoint(tmp_path, change)
    with pytest.raises(ValueError, match=re.escape(f"{path}{problem}")):
        MAML.load(path.parent)


def test_a_maml_checkpoint_of_other_weights_is_named_when_resumed(tmp_path):
    path = maml_checkpoint(tmp_path, lambda s: s["policy"].update({"net.0.weight": torch.zeros(3, 3)}))
    with pytest.raises(ValueError, match=re.escape(f"{path} is not a MAML checkpoint that flash wrote, or is damaged")):
        MAML(ENV, TINY_ENV, **TINY_MAML).meta_train(family().train[:2], 1, checkpoint_dir=path.parent, resume=True)


def test_an_episode_is_the_shorter_of_the_envs_and_max_episode_steps_and_config_search_has_one():
    """gym.make's max_episode_steps=5 ended every 10-step episode at 5 steps, but an adaptation "episode" stayed 10
    steps (two episodes); flash/ConfigSearch-v0 was refused ("cannot tell the episode length of this env")."""
    from flash_envs.envs.config_search import ConfigSearchTaskFamily

    short = Flash("PPO", ENV, {"max_episode_steps": 5, **TINY_ENV}, **TINY)
    assert short.episode_steps == 5
    with pytest.raises(ValueError, match="fine-tuning learns one 5-step episode at a time, but PPO's n_steps=10"):
        short.fresh().adapt(family().test[0], 1)
    search = Flash("PPO", "flash/ConfigSearch-v0", {"max_measurements": 4},
                   **{**TINY, "agent_kwargs": {"n_steps": 4, "batch_size": 4, "n_epochs": 1}})
    assert search.episode_steps == 4   # its longest episode; it ends sooner when the agent commits
    curve = search.fresh().adapt(ConfigSearchTaskFamily.generate(n_train=2, n_test=1).test[0], 2)
    assert [episodes for episodes, _ in curve] == [0, 1, 2]


# ------------------------------------------------------------------------------------------ reserved agent kwargs
@pytest.mark.parametrize("name", ["_init_setup_model", "self"])
def test_agent_kwargs_flash_sets_or_that_break_the_agent_are_refused(name):
    with pytest.raises(ValueError, match=re.escape(f"agent_kwargs: PPO does not take ['{name}'] here")):
        check_agent_kwargs(PPO, {name: False})
    with pytest.raises(ValueError, match=re.escape(f"adapt_kwargs: PPO does not take ['{name}'] here")):
        Flash("PPO", ENV, TINY_ENV, **TINY, adapt_kwargs={name: False})


# ------------------------------------------------------------------------------------------ constructor arguments
@pytest.mark.parametrize("cls", [Flash, TransferLearning])
@pytest.mark.parametrize("kwargs, error, message", [
    ({"n_envs": "2"}, TypeError, "n_envs must be a whole number, got '2' (str)"),
    ({"n_envs": 2.7}, ValueError, "n_envs must be a whole number >= 1, got 2.7"),
    ({"episodes_per_task": 1.5}, ValueError, "episodes_per_task must be a whole number >= 1, got 1.5"),
    ({"context_len": 2.7}, ValueError, "context_len must be a whole number >= 1, got 2.7"),
    ({"encoder_hidden": "8"}, TypeError, "encoder_hidden must be a whole number, got '8' (str)"),
    ({"seed": -1}, ValueError, "seed must be a whole number >= 0, got -1"),
    ({"seed": 1.5}, ValueError, "seed must be a whole number >= 0, got 1.5"),
    ({"seed": "3"}, TypeError, "seed must be a whole number, got '3' (str)"),
    ({"seed": True}, TypeError, "seed must be a whole number, got True (bool)"),
    ({"seed": 2**32}, ValueError, "seed must be a whole number in [0, 2**32 - 1], got 4294967296"),
])
def test_bad_constructor_arguments_are_refused_not_converted(cls, kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        cls("PPO", ENV, TINY_ENV, **{**TINY, **kwargs})


@pytest.mark.parametrize("name", ["env_kwargs", "agent_kwargs", "adapt_kwargs"])
def test_keyword_arguments_that_are_not_a_dict_are_named(name):
    """env_kwargs=[1] was a raw TypeError from dict(); a list of pairs was taken as a mapping."""
    kwargs = {"env_kwargs": TINY_ENV, **TINY, name: [("n_steps", 60)]}
    message = f"{name} must be a dict of keyword arguments, got [('n_steps', 60)]"
    with pytest.raises(TypeError, match=re.escape(message)):
        Flash("PPO", ENV, **kwargs)


def test_an_agent_class_that_is_no_algorithm_is_a_type_error():
    with pytest.raises(TypeError, match="agent_cls must be a stable-baselines3 algorithm class or its name, got 3"):
        Flash(3, ENV, TINY_ENV, **TINY)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"first_order": "no"}, TypeError, "maml.first_order must be True or False, got 'no' (str)"),
    ({"first_order": 1}, TypeError, "maml.first_order must be True or False, got 1 (int)"),
    ({"outer_lr": math.inf}, ValueError, "maml.outer_lr must be a finite number > 0, got inf"),
    ({"inner_lr": "0.1"}, TypeError, "maml.inner_lr must be a number, got '0.1' (str)"),
    ({"gamma": "0.9"}, TypeError, "maml.gamma must be a number, got '0.9' (str)"),
    ({"inner_steps": 1.5}, ValueError, "maml.inner_steps must be a whole number >= 1, got 1.5"),
    ({"meta_batch": "2"}, TypeError, "maml.meta_batch must be a whole number, got '2' (str)"),
    ({"outer_episodes": 0}, ValueError, "maml.outer_episodes must be a whole number >= 1, got 0"),
    ({"seed": -1}, ValueError, "seed must be a whole number >= 0, got -1"),
    ({"seed": 2**32}, ValueError, "seed must be a whole number in [0, 2**32 - 1], got 4294967296"),
])
def test_bad_maml_hyper_parameters_are_refused_not_converted(kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        MAML(ENV, TINY_ENV, **{**TINY_MAML, **kwargs})


def test_maml_takes_numpy_numbers_as_the_same_settings():
    numpy_kwargs = {"seed": np.int64(3), "first_order": np.bool_(True), "inner_steps": np.int64(1),
                    "outer_lr": np.float64(1e-3)}
    a = MAML(ENV, TINY_ENV, **TINY_MAML, **numpy_kwargs)
    b = MAML(ENV, TINY_ENV, **TINY_MAML, seed=3, first_order=True, inner_steps=1, outer_lr=1e-3)
    assert a.config() == b.config()
    assert all(torch.equal(x, y) for x, y in zip(a.policy.state_dict().values(), b.policy.state_dict().values()))


# ------------------------------------------------------------------------------------------ method arguments
FLASH_CALLS = {
    "adapt episodes=1.5": (lambda f, t: f.adapt(t, 1.5), ValueError, "episodes must be a whole number >= 0, got 1.5"),
    "adapt episodes='2'": (lambda f, t: f.adapt(t, "2"), TypeError, "episodes must be a whole number, got '2' (str)"),
    "adapt eval_every=1.5": (lambda f, t: f.adapt(t, 2, eval_every=1.5), ValueError,
                             "eval_every must be a whole number >= 1, got 1.5"),
    "adapt seed=-1": (lambda f, t: f.adapt(t, 1, seed=-1), ValueError, "seed must be a whole number >= 0, got -1"),
    "adapt seed=2**32": (lambda f, t: f.adapt(t, 1, seed=2**32), ValueError,
                         "seed must be a whole number in [0, 2**32 - 1], got 4294967296"),
    "adapt eval_seed=-1": (lambda f, t: f.adapt(t, 1, eval_seed=-1), ValueError,
                           "eval_seed must be a whole number >= 0, got -1"),
    "adapt eval_seed=2**32": (lambda f, t: f.adapt(t, 1, eval_seed=2**32), ValueError,
                              "eval_seed must be a whole number in [0, 2**32 - 1], got 4294967296"),
    "adapt zero_embedding='no'": (lambda f, t: f.adapt(t, 1, zero_embedding="no"), TypeError,
                                  "zero_embedding must be True or False, got 'no' (str)"),
    "fresh seed=-1": (lambda f, t: f.fresh(seed=-1), ValueError, "seed must be a whole number >= 0, got -1"),
    "evaluate seed=-1": (lambda f, t: f.evaluate(None, t, -1), ValueError, "seed must be a whole number >= 0, got -1"),
    "embed episodes=1.5": (lambda f, t: f.embed(t, 1.5), ValueError, "episodes must be a whole number >= 1, got 1.5"),
    "meta_train no tasks": (lambda f, t: f.meta_train([], 10), ValueError, "meta_train needs at least one task"),
    "meta_train total_timesteps=10.5": (lambda f, t: f.meta_train([t], 10.5), ValueError,
                                        "total_timesteps must be a whole number >= 1, got 10.5"),
    "meta_train resume='no'": (lambda f, t: f.meta_train([t], 10, resume="no"), TypeError,
                               "resume must be True or False, got 'no' (str)"),
    "meta_train checkpoint_interval=0.5": (lambda f, t: f.meta_train([t], 10, checkpoint_interval=0.5), ValueError,
                                           "checkpoint_interval must be a whole number >= 0, got 0.5"),
}


@pytest.mark.parametrize("call", FLASH_CALLS)
def test_bad_flash_method_arguments_are_refused_naming_them(untrained, call):
    method, error, message = FLASH_CALLS[call]
    with pytest.raises(error, match=re.escape(message)):
        method(untrained, family().test[0])


def test_zero_embedding_is_refused_for_an_agent_without_one():
    """TransferLearning took adapt(..., zero_embedding=True) and ablated nothing, silently."""
    transfer = TransferLearning("PPO", ENV, TINY_ENV, net_arch=[8], n_envs=1,
                                agent_kwargs={"n_steps": 10, "batch_size": 10, "n_epochs": 1}).fresh()
    task = family().test[0]
    for call in (lambda: transfer.adapt(task, 1, zero_embedding=True),
                 lambda: transfer.evaluate(None, task, 0, zero_embedding=True)):
        with pytest.raises(ValueError, match=r"^zero_embedding=True zeroes the context embedding, and this "
                                             r"TransferLearning has none$"):
            call()
    assert len(transfer.adapt(task, 1, zero_embedding=False)) == 2


MAML_CALLS = {
    "adapt episodes=1.5": (lambda m, t: m.adapt(t, 1.5), ValueError, "episodes must be a whole number >= 0, got 1.5"),
    "adapt seed=-1": (lambda m, t: m.adapt(t, 1, seed=-1), ValueError, "seed must be a whole number >= 0, got -1"),
    "adapt eval_seed=-1": (lambda m, t: m.adapt(t, 1, eval_seed=-1), ValueError,
                           "eval_seed must be a whole number >= 0, got -1"),
    "adapt eval_seed=2**32": (lambda m, t: m.adapt(t, 1, eval_seed=2**32), ValueError,
                              "eval_seed must be a whole number in [0, 2**32 - 1], got 4294967296"),
    "evaluate seed=-1": (lambda m, t: m.evaluate(None, t, -1), ValueError, "seed must be a whole number >= 0, got -1"),
    "meta_train no tasks": (lambda m, t: m.meta_train([], 1), ValueError, "meta_train needs at least one task"),
    "meta_train iterations=1.5": (lambda m, t: m.meta_train([t], 1.5), ValueError,
                                  "iterations must be a whole number >= 1, got 1.5"),
    "meta_train progress_bar='yes'": (lambda m, t: m.meta_train([t], 1, progress_bar="yes"), TypeError,
                                      "progress_bar must be True or False, got 'yes' (str)"),
}


@pytest.mark.parametrize("call", MAML_CALLS)
def test_bad_maml_method_arguments_are_refused_naming_them(call):
    method, error, message = MAML_CALLS[call]
    maml = MAML(ENV, TINY_ENV, **TINY_MAML)
    with pytest.raises(error, match=re.escape(message)):
        method(maml, family().test[0])
    assert maml.iteration == 0


def test_adaptation_counts_are_whole_numbers_in_range(untrained):
    task = family().test[0]
    for episodes, eval_every, name in ((0.5, 1, "episodes"), (2, 1.5, "eval_every"), (math.nan, 1, "episodes"),
                                       (-1, 1, "episodes"), (2, 0, "eval_every"), (-1.5, 1, "episodes")):
        with pytest.raises(ValueError, match=f"{name} must be a whole number >= "):
            untrained.adapt(task, episodes, eval_every=eval_every)


def test_numpy_numbers_and_whole_floats_are_taken_as_ints(untrained):
    flash = Flash("PPO", ENV, TINY_ENV,
                  **{**TINY, "n_envs": np.int64(2), "context_len": 4.0, "seed": np.int64(2**32 - 1)})
    assert (flash.n_envs, flash.context_len, flash.seed) == (2, 4, 2**32 - 1)
    assert all(type(v) is int for v in (flash.n_envs, flash.context_len, flash.seed))
    assert flash.config() == Flash("PPO", ENV, TINY_ENV, **{**TINY, "n_envs": 2, "seed": 2**32 - 1}).config()
    task = family().test[0]   # SB3 and gymnasium refused NumPy seeds here
    assert (untrained.adapt(task, np.int64(1), eval_seed=np.int64(7), seed=np.int64(2))
            == untrained.adapt(task, 1, eval_seed=7, seed=2))


@pytest.mark.parametrize("name, value", [("n_epochs", True), ("gamma", False)])
def test_a_bool_is_no_number_for_an_agent_kwarg(name, value):
    """A hyper-parameter annotated int or float refuses a bool (True is no count of epochs), naming it."""
    with pytest.raises(ValueError, match=rf"agent_kwargs: {name} must be (int|float).* got {value}"):
        check_agent_kwargs(PPO, {name: value})


class OwnSettings(PPO):
    """Settings of its own, annotated as strings (this module has ``from __future__ import annotations``); ``later``
    names what the module cannot resolve at run time (as an import under TYPE_CHECKING would)."""

    def __init__(self, *args, pair: tuple[int, int] = (1, 2), sizes: list[int] | tuple[int, ...] = (1,), other=None,
                 later: NotImportedHere = None, **kwargs):  # noqa: F821
        super().__init__(*args, **kwargs)


def test_a_list_becomes_a_tuple_only_where_the_parameter_takes_a_tuple_and_not_a_list():
    """sb3_kwargs turns a list (how JSON gives a tuple) into a tuple for a parameter annotated as a tuple only; one
    that also takes a list keeps the list, and an unannotated one the value as given."""
    from flash_rl.agent_settings import sb3_kwargs

    kwargs = sb3_kwargs(OwnSettings, {"pair": [3, 4], "sizes": [5, 6], "other": [7]})
    assert kwargs == {"pair": (3, 4), "sizes": [5, 6], "other": [7]}
    assert isinstance(kwargs["sizes"], list) and isinstance(kwargs["other"], list)


def test_the_annotations_of_an_algorithm_written_with_postponed_annotations_are_checked():
    """A class in a module with ``from __future__ import annotations`` annotates with strings: they are read as the
    types they name, so a value of another type is refused. One that names what the module cannot resolve at run time
    takes any value, as before, instead of failing the check."""
    with pytest.raises(ValueError, match=r"agent_kwargs: pair must be tuple\[int, int\] .* got \['a', 4\]"):
        check_agent_kwargs(OwnSettings, {"pair": ["a", 4]})
    check_agent_kwargs(OwnSettings, {"pair": [3, 4], "later": "anything"})


class PassesKwargsOn(PPO):
    """A subclass as users write one: a setting of its own, the rest passed on to PPO."""

    def __init__(self, *args, extra: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        self.extra = extra


def test_a_subclass_that_passes_kwargs_on_takes_and_checks_its_parents_settings():
    """Its own signature names only ``extra``: PPO's settings were refused as settings it does not take, and
    fine-tuning's check of n_steps failed with a KeyError. They are now taken and checked as PPO's (its annotations,
    its defaults)."""
    check_agent_kwargs(PassesKwargsOn, {"extra": 2, "n_steps": 10})
    with pytest.raises(ValueError, match=r"n_epochs must be int .* got True"):
        check_agent_kwargs(PassesKwargsOn, {"n_epochs": True})
    with pytest.raises(ValueError, match=r"does not take \['nope'\] here \(valid: \[.*'extra'.*'n_steps'") as refused:
        check_agent_kwargs(PassesKwargsOn, {"nope": 1})
    assert "'kwargs'" not in str(refused.value) and "'args'" not in str(refused.value)
    untuned = Flash(PassesKwargsOn, ENV, TINY_ENV, **{**TINY, "agent_kwargs": {"batch_size": 10, "n_epochs": 1}})
    with pytest.raises(ValueError, match="n_steps=2048"), warnings.catch_warnings():   # PPO's, through the subclass
        warnings.simplefilter("ignore")   # SB3: a mini-batch of 10 does not divide its 2048-step rollout
        untuned.fresh().adapt(family().test[0], 1)
    flash = Flash(PassesKwargsOn, ENV, TINY_ENV, **{**TINY, "agent_kwargs": {**TINY["agent_kwargs"], "extra": 3}})
    flash.meta_train(family().train[:1], total_timesteps=10)
    assert isinstance(flash.agent, PassesKwargsOn) and flash.agent.extra == 3 and flash.agent.n_steps == 10


@pytest.mark.parametrize("starts, warns", [(9, False), (10, True)])
def test_learning_starts_of_a_whole_episode_is_warned_of(starts, warns):
    """Fine-tuning an off-policy agent whose learning_starts is not below the episode (10 steps here) warns: the
    first episode would make no update. One step fewer does not."""
    from stable_baselines3 import DQN

    from flash_rl.agent_settings import check_adaptation_kwargs

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_adaptation_kwargs(DQN, {"learning_starts": starts}, 10)
    messages = [str(w.message) for w in caught]
    assert any("learning_starts=10 is not below the 10-step episode" in m for m in messages) is warns
    assert len(messages) == int(warns)


def test_adapt_kwargs_are_checked_over_the_agent_kwargs_they_override():
    """Fine-tuning runs agent_kwargs overridden by adapt_kwargs on one env: settings that build on the meta-training's
    2 envs (n_steps=1: a rollout of 2) but not on fine-tuning's one (a rollout of 1) are refused when the agent is made,
    naming adapt_kwargs."""
    with pytest.raises(ValueError, match="adapt_kwargs: PPO cannot be built with"):
        Flash(PPO, "flash/Autoscaling-v0", {"episode_steps": 10}, agent_kwargs={"n_steps": 1, "batch_size": 2},
              n_envs=2)


@pytest.mark.parametrize("name", ["seed", "policy", "env", "policy_kwargs", "tensorboard_log", "verbose", "device"])
def test_agent_kwargs_that_flash_sets_itself_are_refused(name):
    """FLASH gives the agent its seed, policy, env, policy_kwargs, logging and device itself: the same key in
    agent_kwargs would be passed twice (a TypeError at training), so it is refused up front, naming it."""
    with pytest.raises(ValueError, match=re.escape(f"agent_kwargs: PPO does not take ['{name}'] here")):
        check_agent_kwargs(PPO, {name: None})


def test_meta_train_takes_a_familys_train_split():
    """Given a family, meta-training trains on its train split (never its held-out test tasks); a sequence of tasks
    is taken as it is."""
    from flash_envs.tasks import AutoscalingTaskFamily
    from flash_rl.agent_settings import training_tasks

    family = AutoscalingTaskFamily.generate(n_train=3, n_test=2, seed=0)
    assert [t.name for t in training_tasks(family)] == [t.name for t in family.train]
    assert training_tasks(family.test) == list(family.test)
