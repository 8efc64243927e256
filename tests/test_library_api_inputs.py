"""Inputs to flash_rl's Python API that a fuzzing review found to fail late, silently or destructively: a refused
``meta_train`` callback that had already replaced the trained agent, a ``resume`` without a checkpoint folder, an
``on_eval`` that is not a function, NaN predictions that ``choose`` picked, price lists and measurement arrays that
were not checked, an edited predictor file, and an unchecked ``progress`` flag."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

import flash_envs  # noqa: F401
from flash_envs.data.config_measurements import (ConfigMeasurements, PerSecondPricing, per_second_pricing,
                                                 simulated_measurements)
from flash_rl import MAML, Flash
from flash_rl.fewshot.predictor import FewShotPredictor
from flash_rl.fewshot.splits import n_validation_apps
from flash_rl.fewshot.train_config import TrainConfig

ENV = {"episode_steps": 10}
TINY = {"n_steps": 20, "batch_size": 20, "n_epochs": 1}


@pytest.fixture(scope="module")
def trained():
    family = gym.make("flash/Autoscaling-v0", **ENV).unwrapped.family
    flash = Flash(PPO, "flash/Autoscaling-v0", ENV, context_len=4, embedding_dim=4, encoder_hidden=8, net_arch=[8],
                  agent_kwargs=TINY, n_envs=1)
    return flash.meta_train(family.train[:2], 40), family


@pytest.mark.parametrize("callback, error", [(5, TypeError), ([5], TypeError), ("print", TypeError)])
def test_a_refused_callback_keeps_the_trained_agent(trained, callback, error):
    """SB3 refused it inside learn(), after meta_train had replaced the trained agent with an untrained one."""
    flash, family = trained
    digest, trained_on = flash.weights_digest(), list(flash.trained_on)
    with pytest.raises(error, match=r"^callback must be an SB3 BaseCallback, a list of them, or a function"):
        flash.meta_train(family.train[2:3], 20, callback=callback)
    assert flash.weights_digest() == digest and flash.trained_on == trained_on


def test_resume_without_a_checkpoint_folder_is_refused(trained):
    """It trained from scratch, as if resume were False."""
    flash, family = trained
    digest = flash.weights_digest()
    with pytest.raises(ValueError, match="resume=True continues from a checkpoint in checkpoint_dir"):
        flash.meta_train(family.train[:2], 40, resume=True)
    assert flash.weights_digest() == digest
    maml = MAML("flash/Autoscaling-v0", ENV)
    with pytest.raises(ValueError, match="resume=True continues from a checkpoint in checkpoint_dir"):
        maml.meta_train(family.train[:2], 2, resume=True)
    assert maml.iteration == 0 and not maml.trained_on


def test_a_refused_maml_resume_keeps_the_record_of_what_it_trained_on(trained, tmp_path):
    """A checkpoint already past the total is refused, and the weights stay; trained_on named the new tasks, which
    the next checkpoint wrote to disk."""
    family = trained[1]
    maml = MAML("flash/Autoscaling-v0", ENV, hidden=(8,), meta_batch=1, inner_episodes=1, outer_episodes=1)
    maml.meta_train(family.train[:1], 2, checkpoint_dir=tmp_path)
    record = list(maml.trained_on)
    with pytest.raises(ValueError, match="past"):
        maml.meta_train(family.train[1:2], 1, checkpoint_dir=tmp_path, resume=True)
    assert maml.trained_on == record


def test_an_on_eval_that_is_not_a_function_is_refused_before_any_evaluation(trained):
    flash, family = trained
    with pytest.raises(TypeError, match=r"on_eval must be a function of \(episodes, evaluation return\), or None"):
        flash.adapt(family.test[0], 1, on_eval=5)
    with pytest.raises(TypeError, match="on_eval must be a function"):
        MAML("flash/Autoscaling-v0", ENV).adapt(family.test[0], 1, on_eval=5)


def _measurements(**changes):
    rng = np.random.default_rng(0)
    runtime = rng.uniform(1, 4, (5, 3))
    fields = {"source": "hand", "apps": tuple(f"a{i}" for i in range(5)), "configs": ("x", "y", "z"),
              "feature_names": ("f",), "features": np.array([[0.0], [0.5], [1.0]]), "runtime_s": runtime,
              "cost_usd": runtime * 1e-5, **changes}
    return ConfigMeasurements(**fields)


def test_diverged_fine_tuning_is_an_error_not_a_nan_choice():
    """A finite but huge finetune_lr made the predictions NaN, and choose() picked the first NaN configuration."""
    predictor = FewShotPredictor.fit(_measurements(), k=1, progress=False,
                                     cfg=TrainConfig(steps=30, finetune_lr=1e6))
    with pytest.raises(ValueError, match=r"no finite runtime and cost at \d configuration\(s\).*fine-tuning on the "
                                         r"shots diverged: lower TrainConfig.finetune_lr \(1e\+06\)"):
        predictor.choose({"y": (3.0, 3e-5)}, 2.5, fine_tune=True)
    runtime, cost = predictor.predict({"y": (3.0, 3e-5)})   # without fine-tuning: finite
    assert np.isfinite(runtime).all() and np.isfinite(cost).all()


class DictPricing:
    """A user's price list by configuration index, as the Pricing protocol allows."""

    def __init__(self, usd_per_s: dict[int, float]) -> None:
        self.usd_per_s = usd_per_s

    def cost(self, configs: np.ndarray, runtime_s: np.ndarray) -> np.ndarray:
        return np.array([self.usd_per_s[int(c)] for c in configs]) * runtime_s


@pytest.mark.parametrize("pricing, error, message", [
    (PerSecondPricing(np.array([1.0])), TypeError, r"pricing must price each of the 3 configurations.*IndexError"),
    (PerSecondPricing(np.array([1.0, np.nan, 1.0])), ValueError,
     r"pricing must cost a run at each configuration a finite number of USD >= 0; a 1 s run costs nan at y$"),
    ("lambda", TypeError, r"pricing must price each .*'lambda' \(AttributeError"),
    (DictPricing({0: 1.0, 1: 1.0}), TypeError, r"pricing must price each .*\(KeyError"),
])
def test_a_price_list_that_cannot_price_every_configuration_is_refused_when_the_data_is_made(pricing, error, message):
    """A short list failed at predict() with an IndexError; a NaN price made choose() pick that configuration."""
    with pytest.raises(error, match=rf"^hand: {message}"):
        _measurements(pricing=pricing)


def test_a_price_list_of_a_list_or_a_users_own_kind_is_taken():
    """A list, indexed by an array of configurations, failed; a PerSecondPricing of one was refused."""
    data = _measurements(pricing=PerSecondPricing([1e-5, 2e-5, 3e-5]))
    assert data.pricing.cost(np.arange(3), np.ones(3)).tolist() == [1e-5, 2e-5, 3e-5]
    assert _measurements(pricing=DictPricing({0: 1.0, 1: 2.0, 2: 3.0})).pricing.usd_per_s[2] == 3.0
    with pytest.raises(TypeError, match=r"PerSecondPricing.usd_per_s must be a list of numbers, one per configuration"):
        PerSecondPricing(["a"])


def test_no_per_second_price_list_for_configurations_that_no_app_measured():
    """A subset of apps that measured no run at a configuration gave it a NaN rate, which the data then refused."""
    runtime = np.ones((5, 3))
    runtime[:, 2] = np.nan
    data = _measurements(runtime_s=runtime, cost_usd=runtime * 1e-5)
    assert per_second_pricing(data) is None
    assert per_second_pricing(_measurements()) is not None


def test_a_price_list_that_cannot_price_a_predicted_runtime_is_named_as_the_cause():
    class OneSecondOnly(DictPricing):   # prices the check's 1 s runs, and nothing else
        def cost(self, configs: np.ndarray, runtime_s: np.ndarray) -> np.ndarray:
            return np.where(runtime_s == 1.0, 1e-5, np.nan)

    predictor = FewShotPredictor.fit(_measurements(pricing=OneSecondOnly({})), k=1, progress=False,
                                     cfg=TrainConfig(steps=5))
    with pytest.raises(ValueError, match=r"no finite runtime and cost at 2 configuration\(s\), e.g. \['x', 'z'\]: "
                                         r"the price list gives no finite cost for the predicted runtimes there"):
        predictor.predict({"y": (3.0, 3e-5)})   # (the measured configuration keeps its measured cost)


@pytest.mark.parametrize("changes, message", [
    ({"runtime_s": np.ones((5, 3)).astype(str)}, "ConfigMeasurements.runtime_s must be an array of numbers"),
    ({"runtime_s": np.ones((5, 3), dtype=complex)}, "ConfigMeasurements.runtime_s must be an array of numbers"),
    ({"cost_usd": np.ones((5, 3), dtype=bool)}, "ConfigMeasurements.cost_usd must be an array of numbers"),
    ({"configs": "xyz"}, "ConfigMeasurements.configs must be a sequence of names"),
    ({"apps": (1, 2, 3, 4, 5)}, "ConfigMeasurements.apps must be a sequence of names"),
])
def test_arrays_and_names_are_checked_whatever_their_type(changes, message):
    """Lists were checked, NumPy arrays not: strings failed in np.isfinite, complex and bool values were trained on;
    "xyz" was three configurations."""
    with pytest.raises(TypeError, match=message):
        _measurements(**changes)


@pytest.mark.parametrize("edit", [
    lambda saved: saved.update(n_features=saved["n_features"] + 1),
    lambda saved: saved["pricing"].update({"class": "Foo"}),
    lambda saved: saved["state_dict"].pop("y_mean"),
])
def test_an_edited_predictor_file_is_named(tmp_path, edit):
    """Each was a raw RuntimeError or KeyError from torch or the dict."""
    data = simulated_measurements(12)
    path = tmp_path / "p.pt"
    FewShotPredictor.fit(data, k=1, cfg=TrainConfig(steps=20), progress=False).save(path)
    saved = torch.load(path, weights_only=True)
    edit(saved)
    torch.save(saved, path)
    with pytest.raises(ValueError, match=rf"^{path}: not a few-shot predictor that flash wrote, or damaged"):
        FewShotPredictor.load(path)


def test_progress_must_be_a_flag():
    with pytest.raises(TypeError, match="progress must be True or False, got 'no'"):
        FewShotPredictor.fit(_measurements(), k=1, cfg=TrainConfig(steps=5), progress="no")


def test_too_few_apps_for_validation_are_counted_as_they_are():
    """One app 'kept 2 for validation and left -1 to train on'."""
    with pytest.raises(ValueError, match=r"^validation fraction 0.5 of 1 training app\(s\): early stopping needs at "
                                         r"least 2 apps to validate on and 2 to train on$"):
        n_validation_apps(1, 0.5)
    with pytest.raises(ValueError, match=r"^validation fraction 0.9 of 10 training apps keeps 9 for validation and "
                                         r"leaves 1 to train on"):
        n_validation_apps(10, 0.9)
