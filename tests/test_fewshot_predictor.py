"""FewShotPredictor: fit, predict from named shots, choose, save/load; it answers as ``flash config-eval`` scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flash_envs.data.config_measurements import ConfigMeasurements, LambdaPricing, simulated_measurements
from flash_rl.fewshot.episodes import EpisodeSampler
from flash_rl.fewshot.models import fine_tune_predict
from flash_rl.fewshot.train_config import TrainConfig
from flash_rl.fewshot.predictor import FewShotPredictor

CFG = TrainConfig(steps=150, finetune_steps=5)


@pytest.fixture(scope="module")
def data():
    return simulated_measurements(40)


@pytest.fixture(scope="module")
def predictor(data):
    return FewShotPredictor.fit(data.select_apps(data.apps[:30]), k=2, cfg=CFG)


def shots_of(data, app, configs):
    return {data.configs[j]: (data.runtime_s[app, j], data.cost_usd[app, j]) for j in configs}


def test_predictions_are_what_config_eval_scores(data, predictor):
    """The same shots through the evaluation's episode path give the same runtimes and costs."""
    held_out = data.select_apps(data.apps[30:])
    episodes, shot_index, targets = EpisodeSampler(held_out, 2).evaluation(0, 1, np.random.default_rng(1))
    assert list(targets) == list(range(len(data.configs)))
    shots = shots_of(held_out, 0, shot_index[0])
    for fine_tune in (False, True):
        log = (fine_tune_predict(predictor.model, episodes, CFG) if fine_tune else predictor.model.predict(episodes))
        expected = np.exp(log[0].numpy().astype(np.float64))
        expected[:, 1] = held_out.pricing.cost(targets, expected[:, 0])
        expected[shot_index[0]] = np.stack([held_out.runtime_s[0], held_out.cost_usd[0]], axis=1)[shot_index[0]]
        runtime, cost = predictor.predict(shots, fine_tune=fine_tune)
        assert np.allclose(runtime, expected[:, 0], rtol=1e-6) and np.allclose(cost, expected[:, 1], rtol=1e-6)
    # the choice: the cheapest configuration predicted to meet the deadline, or the fastest if none is
    runtime, cost = predictor.predict(shots)
    deadline = float(np.sort(runtime)[3])
    feasible = runtime <= deadline
    assert predictor.choose(shots, deadline) == data.configs[int(np.argmin(np.where(feasible, cost, np.inf)))]
    assert predictor.choose(shots, 0.5 * runtime.min()) == data.configs[int(np.argmin(runtime))]


def test_save_and_load_give_the_same_predictions(data, predictor, tmp_path):
    shots = shots_of(data, 35, [3, 9])
    predictor.save(tmp_path / "p.pt")
    loaded = FewShotPredictor.load(tmp_path / "p.pt")
    assert loaded.configs == predictor.configs and loaded.model.inputs == "flash"
    assert all(np.array_equal(a, b) for a, b in zip(loaded.predict(shots), predictor.predict(shots)))
    assert isinstance(loaded.pricing, LambdaPricing)   # the price list comes back (it prices the cost above)
    assert np.array_equal(loaded.pricing.memory_mib, predictor.pricing.memory_mib)


def test_save_makes_missing_folders_and_names_a_folder_path(predictor, tmp_path):
    """Both were raw torch RuntimeErrors ("Parent directory ... does not exist", "[enforce fail ...] Is a
    directory")."""
    predictor.save(tmp_path / "new" / "folder" / "p.pt")
    assert FewShotPredictor.load(tmp_path / "new" / "folder" / "p.pt").configs == predictor.configs
    with pytest.raises(IsADirectoryError, match=r"new is a folder; give the predictor a file path"):
        predictor.save(tmp_path / "new")
    assert sorted(p.name for p in (tmp_path / "new" / "folder").iterdir()) == ["p.pt"]   # no temporary file left


def test_a_saved_predictor_holds_only_tensors_and_plain_values(data, predictor, tmp_path):
    """:meth:`load` reads with torch's weights-only unpickler, so a file carrying code is refused; a price list it
    cannot write that way is refused at :meth:`save`."""
    torch.save({"cfg": {}, "pricing": LambdaPricing}, tmp_path / "code.pt")   # a class: a global to unpickle
    with pytest.raises(ValueError, match=r"code.pt is not a few-shot predictor that flash wrote: it holds objects"):
        FewShotPredictor.load(tmp_path / "code.pt")
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"other.pt is not a few-shot predictor that flash wrote \(it lacks inputs"):
        FewShotPredictor.load(tmp_path / "other.pt")

    class FlatFee:
        def cost(self, configs, runtime_s):
            return np.full(len(configs), 1e-6)

    custom = FewShotPredictor(predictor.model, predictor.configs, predictor.features, predictor.k, FlatFee())
    with pytest.raises(TypeError, match=r"priced by FlatFee; the price lists it saves are \['LambdaPricing', "):
        custom.save(tmp_path / "custom.pt")
    assert not (tmp_path / "custom.pt").exists()


def test_bad_shots_are_named(data, predictor):
    with pytest.raises(ValueError, match=r"unknown configuration\(s\) \['99MiB'\]"):
        predictor.predict({"99MiB": (1.0, 1.0)})
    with pytest.raises(ValueError, match="both finite and > 0"):
        predictor.predict({data.configs[0]: (0.0, 1.0)})
    with pytest.raises(ValueError, match=r"needs at least 1 shot\(s\), got 0"):
        predictor.predict({})
    with pytest.raises(TypeError, match="fine_tune must be True or False, got 'yes'"):   # it counted as true
        predictor.predict(shots_of(data, 35, [3]), fine_tune="yes")
    k_shot = FewShotPredictor.fit(data.select_apps(data.apps[:10]), k=2, method="k-shot",
                                  cfg=TrainConfig(steps=5))
    with pytest.raises(ValueError, match=r"the k-shot predictor needs exactly 2 shot\(s\), got 1"):
        k_shot.predict(shots_of(data, 35, [3]))


@pytest.mark.parametrize("runtime, cost, message", [
    (0.0, 2.0, r"runtime_s must lie in \[1e-30, 1e\+30\] where measured; a at c2 has 0.0"),
    (1e40, 2.0, r"runtime_s must lie in \[1e-30, 1e\+30\] where measured; a at c2 has 1e\+40"),
    (1.0, 1e-40, r"cost_usd must lie in \[1e-30, 1e\+30\] where measured; a at c2 has 1e-40"),
])
def test_measurements_that_are_not_positive_or_out_of_range_are_refused(runtime, cost, message):
    """The predictors learn log runtime and cost: a zero would train a model of NaNs. A hand-built set of runtimes
    near 1e40, which the loaders refuse, made every MAPE infinite (float32 exp overflows past 3.4e38)."""
    with pytest.raises(ValueError, match=message):
        ConfigMeasurements("mine", ("a",), ("c1", "c2"), ("f",), np.zeros((2, 1)), np.array([[1.0, runtime]]),
                           np.array([[1.0, cost]]))


@pytest.mark.parametrize("field, value, error, message", [
    ("steps", 0, ValueError, "TrainConfig.steps must be a whole number >= 1, got 0"),
    ("steps", -3, ValueError, "TrainConfig.steps must be a whole number >= 1, got -3"),
    ("steps", 10.5, ValueError, "TrainConfig.steps must be a whole number >= 1, got 10.5"),
    ("batch", 0, ValueError, "TrainConfig.batch must be a whole number >= 1"),
    ("n_targets", 0, ValueError, "TrainConfig.n_targets must be a whole number >= 1"),
    ("hidden", True, TypeError, r"TrainConfig.hidden must be a whole number, got True \(bool\)"),
    ("embed_dim", 0, ValueError, "TrainConfig.embed_dim must be a whole number >= 1"),
    ("finetune_steps", 0, ValueError, "TrainConfig.finetune_steps must be a whole number >= 1"),
    ("eval_every", 0, ValueError, "TrainConfig.eval_every must be a whole number >= 1"),
    ("lr", 0.0, ValueError, "TrainConfig.lr must be a finite number > 0, got 0.0"),
    ("lr", float("nan"), ValueError, "TrainConfig.lr must be a finite number > 0, got nan"),
    ("lr", "1e-3", TypeError, "TrainConfig.lr must be a number, got '1e-3'"),
    ("finetune_lr", -1e-3, ValueError, "TrainConfig.finetune_lr must be a finite number > 0"),
    ("weight_decay", -1.0, ValueError, "TrainConfig.weight_decay must be a finite number >= 0"),
    ("weight_decay", float("inf"), ValueError, "TrainConfig.weight_decay must be a finite number >= 0, got inf"),
    ("val_fraction", 1.0, ValueError, r"TrainConfig.val_fraction must lie in \[0, 1\), got 1.0"),
])
def test_train_config_refuses_settings_that_would_not_train(field, value, error, message):
    with pytest.raises(error, match=message):
        TrainConfig(**{field: value})


def test_fit_refuses_an_untrained_model_or_a_fractional_k(data):
    with pytest.raises(ValueError, match="TrainConfig.steps must be a whole number >= 1, got 0"):
        FewShotPredictor.fit(data, k=2, cfg=TrainConfig(steps=0))
    with pytest.raises(ValueError, match="k must be a whole number >= 1, got 2.5"):
        FewShotPredictor.fit(data, k=2.5, cfg=CFG)
    with pytest.raises(ValueError, match="k must be a whole number >= 1, got 0"):
        FewShotPredictor.fit(data, k=0, cfg=CFG)


@pytest.mark.parametrize("deadline, error", [(float("nan"), ValueError), (float("inf"), ValueError),
                                             (0.0, ValueError), (-1.0, ValueError), ("1.0", TypeError)])
def test_choose_refuses_a_deadline_that_is_not_a_positive_number(data, predictor, deadline, error):
    with pytest.raises(error, match="deadline_s must be"):
        predictor.choose(shots_of(data, 35, [3, 9]), deadline_s=deadline)


def test_shots_of_the_wrong_shape_or_type_are_named(data, predictor):
    config = data.configs[3]
    with pytest.raises(TypeError, match=r"shots must be a mapping configuration name -> \(runtime_s, cost_usd\), "
                                        r"e\.g\. .*; got a list"):
        predictor.predict([config, data.configs[9]])
    for value in (("1.0", "1e-5"), (True, 1e-5), 1.0, (1.0, 1e-5, 2.0)):
        with pytest.raises(TypeError, match=rf"shot '{config}': expected a pair \(runtime_s, cost_usd\) of numbers"):
            predictor.predict({config: value})
    runtime, cost = data.runtime_s[35, 3], data.cost_usd[35, 3]         # NumPy numbers, lists and arrays are pairs
    for value in ((runtime, cost), [float(runtime), float(cost)], np.array([runtime, cost])):
        assert np.array_equal(predictor.predict({config: value})[0], predictor.predict({config: (runtime, cost)})[0])


def test_fit_keeps_the_validation_share_for_early_stopping(data, monkeypatch):
    """``cfg.val_fraction`` is used as ``flash config-eval --val-fraction`` uses it, not silently ignored."""
    from flash_rl.fewshot import predictor as predictor_module

    seen = {}

    def spy(sampler, method, cfg, rng, progress=False, validation=None):
        seen.update(apps=sampler.data.apps, validation=validation)
        return real_train_model(sampler, method, cfg, rng, progress, validation)

    real_train_model = predictor_module.train_model
    monkeypatch.setattr(predictor_module, "train_model", spy)
    apps = data.apps[:10]
    FewShotPredictor.fit(data.select_apps(apps), k=2, cfg=TrainConfig(steps=2, val_fraction=0.2), progress=False)
    assert seen["validation"] is not None and len(seen["apps"]) == 8 and set(seen["apps"]) < set(apps)
    FewShotPredictor.fit(data.select_apps(apps), k=2, cfg=TrainConfig(steps=2), progress=False)
    assert seen["validation"] is None and seen["apps"] == apps


def test_fit_names_a_bad_method_or_seed(data):
    with pytest.raises(ValueError, match=r"method must be one of \('base', 'flash', 'k-shot'\), got 'FLASH'"):
        FewShotPredictor.fit(data, k=2, method="FLASH", cfg=CFG)
    with pytest.raises(ValueError, match="seed must be a whole number >= 0, got -1"):
        FewShotPredictor.fit(data, k=2, seed=-1, cfg=CFG)


def test_loading_a_missing_file_says_so(tmp_path):
    """It said the path 'is not a few-shot predictor that flash wrote (torch cannot read it: FileNotFoundError ...)'."""
    with pytest.raises(FileNotFoundError, match=r"nope.pt: no such file: expected a few-shot predictor"):
        FewShotPredictor.load(tmp_path / "nope.pt")
    with pytest.raises(FileNotFoundError, match=r": a directory, not a few-shot predictor"):
        FewShotPredictor.load(tmp_path)


def test_a_file_with_settings_this_version_lacks_is_named(predictor, tmp_path):
    """A file from a version with another TrainConfig field failed in load with a raw TypeError from the dataclass."""
    predictor.save(tmp_path / "p.pt")
    saved = torch.load(tmp_path / "p.pt", weights_only=True)
    saved["cfg"]["dropout"] = 0.1
    torch.save(saved, tmp_path / "newer.pt")
    with pytest.raises(ValueError, match=r"newer.pt: its training settings hold \['dropout'\], which this version"):
        FewShotPredictor.load(tmp_path / "newer.pt")


def test_fit_leaves_the_callers_torch_generator_alone(data):
    """Fitting seeds the model's initial weights from its own seed, not by reseeding the caller's global torch
    stream: the stream goes on as if nothing were fitted, and a refit gives the same predictor."""
    small, cfg = data.select_apps(data.apps[:10]), TrainConfig(steps=2)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    first = FewShotPredictor.fit(small, k=2, cfg=cfg, progress=False)
    assert torch.equal(torch.rand(3), expected)
    second = FewShotPredictor.fit(small, k=2, cfg=cfg, progress=False)
    for a, b in zip(first.model.parameters(), second.model.parameters()):
        assert torch.equal(a, b)


def test_choose_with_fine_tune_picks_by_the_fine_tuned_predictions(data, predictor):
    """choose(fine_tune=True) picks the cheapest configuration that the *fine-tuned* predictions say meets the
    deadline: at a deadline where fine-tuning changes the pick, it gives the fine-tuned one."""
    shots = shots_of(data, 35, [3, 9])
    tuned, plain = predictor.predict(shots, fine_tune=True), predictor.predict(shots)

    def cheapest_meeting(runtime, cost, deadline):
        return data.configs[int(np.argmin(np.where(runtime <= deadline, cost, np.inf)))]

    deadlines = [d for d in np.sort(tuned[0]) if cheapest_meeting(*tuned, d) != cheapest_meeting(*plain, d)]
    assert deadlines, "fine-tuning changes some pick"
    assert predictor.choose(shots, float(deadlines[0]), fine_tune=True) == cheapest_meeting(*tuned, deadlines[0])


def test_a_k_shot_predictor_refuses_more_shots_than_its_k(data):
    """The k-shot MLP reads exactly k shots: more are refused, as fewer are (it cannot take a third one)."""
    k_shot = FewShotPredictor.fit(data.select_apps(data.apps[:10]), k=2, method="k-shot", cfg=TrainConfig(steps=5),
                                  progress=False)
    with pytest.raises(ValueError, match=r"the k-shot predictor needs exactly 2 shot\(s\), got 3"):
        k_shot.predict(shots_of(data, 35, [3, 9, 12]))
