"""FewShotPredictor warns of shots far outside the runtimes and costs it was trained on (its predictions there are
extrapolations); it said nothing. The range is fitted, saved and loaded; a file saved without it still loads."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from flash_envs.data.config_measurements import ConfigMeasurements, simulated_measurements
from flash_envs.flash_warnings import FlashWarning
from flash_rl.fewshot.predictor import RANGE_TOLERANCE, FewShotPredictor, ShotOutOfRangeWarning
from flash_rl.fewshot.train_config import TrainConfig

CFG = TrainConfig(steps=20)


@pytest.fixture(scope="module")
def data():
    return simulated_measurements(12)


@pytest.fixture(scope="module")
def predictor(data):
    return FewShotPredictor.fit(data.select_apps(data.apps[:10]), k=2, cfg=CFG, progress=False)


def shots_of(data, app, configs, slower=1.0):
    return {data.configs[j]: (data.runtime_s[app, j] * slower, data.cost_usd[app, j] * slower) for j in configs}


def quiet_predict(predictor, shots):
    """``predictor``'s predictions at ``shots``, its range warning silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShotOutOfRangeWarning)
        return predictor.predict(shots)


def test_shots_inside_the_training_range_do_not_warn(data, predictor):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for app in range(len(data.apps)):   # the 10 fitted on and 2 held out
            predictor.predict(shots_of(data, app, [2, 7]))
            predictor.choose(shots_of(data, app, [2, 7]), deadline_s=1.0)


def test_the_range_is_the_measured_min_and_max_at_each_configuration(data, predictor):
    fitted = data.select_apps(data.apps[:10])
    assert predictor.training_range.shape == (len(data.configs), 2, 2)
    for q, values in enumerate((fitted.runtime_s, fitted.cost_usd)):
        assert np.allclose(predictor.training_range[:, q, 0], np.log(values.min(axis=0)))
        assert np.allclose(predictor.training_range[:, q, 1], np.log(values.max(axis=0)))


def test_a_shot_1000x_slower_warns_naming_the_configuration_its_value_and_the_range(data, predictor):
    shots = shots_of(data, 11, [2, 7])
    slow = data.configs[7]
    shots[slow] = (shots[slow][0] * 1000, shots[slow][1])
    low, high = np.exp(predictor.training_range[7, 0])
    with pytest.warns(ShotOutOfRangeWarning) as caught:
        predictor.predict(shots)
    assert len(caught) == 1 and issubclass(caught[0].category, FlashWarning)
    message = str(caught[0].message)
    assert message.startswith(f"shot '{slow}': runtime {shots[slow][0]:.4g} s, training range at {slow} "
                              f"{low:.4g} to {high:.4g} s: more than {RANGE_TOLERANCE:g}x outside")
    assert "extrapolations" in message and data.configs[2] not in message   # the shot in range is not named
    assert caught[0].filename == __file__                                  # the caller's line, not flash's


@pytest.mark.parametrize("factor", [1e-3, 1e3])
def test_both_runtime_and_cost_out_of_range_are_named(data, predictor, factor):
    with pytest.warns(ShotOutOfRangeWarning, match=r"runtime .* s, training range .*; shot .*: cost .* USD"):
        predictor.predict(shots_of(data, 11, [2], slower=factor))


def test_a_configuration_not_measured_in_training_is_checked_against_the_overall_range(data):
    runtime, cost = data.runtime_s[:10].copy(), data.cost_usd[:10].copy()
    runtime[:, 0] = cost[:, 0] = np.nan                       # no application measured at the first configuration
    gap = ConfigMeasurements("gap", data.apps[:10], data.configs, data.feature_names, data.features, runtime, cost,
                             pricing=data.pricing)
    predictor = FewShotPredictor.fit(gap, k=2, cfg=CFG, progress=False)
    assert np.isnan(predictor.training_range[0]).all() and not np.isnan(predictor.training_range[1:]).any()
    runtimes = predictor.training_range[:, 0]
    low, high = np.exp(np.nanmin(runtimes[:, 0])), np.exp(np.nanmax(runtimes[:, 1]))
    with pytest.warns(ShotOutOfRangeWarning, match=rf"shot '{data.configs[0]}': runtime .* s, training range "
                                                   rf"overall \(none at this configuration\) {low:.4g} to {high:.4g}"):
        predictor.predict({data.configs[0]: (high * 100, data.cost_usd[11, 0])})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        predictor.predict({data.configs[0]: (high, data.cost_usd[11, 0])})   # within the overall range


def test_save_and_load_keep_the_range(data, predictor, tmp_path):
    predictor.save(tmp_path / "p.pt")
    loaded = FewShotPredictor.load(tmp_path / "p.pt")
    assert np.array_equal(loaded.training_range, predictor.training_range)
    with pytest.warns(ShotOutOfRangeWarning, match=f"training range at {data.configs[7]}"):
        loaded.predict(shots_of(data, 11, [7], slower=1000))


def test_a_file_saved_without_the_range_loads_and_checks_no_shot(data, predictor, tmp_path):
    """A predictor saved by the version before the range was recorded."""
    predictor.save(tmp_path / "p.pt")
    saved = torch.load(tmp_path / "p.pt", weights_only=True)
    del saved["training_range"]
    torch.save(saved, tmp_path / "old.pt")
    old = FewShotPredictor.load(tmp_path / "old.pt")
    assert old.training_range is None
    shots = shots_of(data, 11, [2, 7], slower=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert all(np.array_equal(a, b) for a, b in zip(old.predict(shots), quiet_predict(predictor, shots)))
    old.save(tmp_path / "again.pt")                              # and saves again without one
    assert FewShotPredictor.load(tmp_path / "again.pt").training_range is None


def test_a_range_of_the_wrong_shape_is_refused(predictor):
    with pytest.raises(ValueError, match=r"training_range must have shape \(configs, 2, 2\)"):
        FewShotPredictor(predictor.model, predictor.configs, predictor.features, predictor.k,
                         training_range=np.zeros((len(predictor.configs), 2)))
