"""The matrix-completion baseline (flash_rl.fewshot.matrix_completion)."""

from __future__ import annotations

import numpy as np
import pytest

from flash_envs.data.config_measurements import ConfigMeasurements
from flash_rl.fewshot.episodes import EpisodeSampler
from flash_rl.fewshot.matrix_completion import LowRankCompletion, matrix_completion_predictor, stand_in_configs


def _low_rank_table(n_apps: int = 40, n_configs: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Log values that are exactly level + effect + u . v with rank 1, and a mask with 10 % of cells unmeasured."""
    rng = np.random.default_rng(seed)
    level, effect = rng.normal(0, 1, n_apps), rng.normal(0, 1, n_configs)
    u, v = rng.normal(0, 1, n_apps), rng.normal(0, 1, n_configs)
    y = level[:, None] + effect + np.outer(u, v)
    measured = rng.random(y.shape) > 0.1
    measured[:, :2] = True
    return y, measured


def test_two_shots_recover_a_new_application_of_a_rank_one_table():
    y, measured = _low_rank_table()
    model = LowRankCompletion.fit(y[:30], measured[:30], rank=1, ridge=1e-3)
    targets = np.arange(y.shape[1])
    errors = [np.abs(model.predict(np.array([0, 1]), y[a, [0, 1]], targets) - y[a]).max() for a in range(30, 40)]
    assert max(errors) < 0.05
    # one shot fixes the level only: the prediction goes through the shot, the factor stays at its prior mean
    one = model.predict(np.array([3]), y[35, [3]], targets)
    typical = model.effect + model.factors @ model.prior_mean
    np.testing.assert_allclose(one, y[35, 3] + typical - typical[3], atol=1e-4)
    assert np.abs(one - y[35]).max() > 10 * max(errors)


def test_fit_rejects_what_it_cannot_model():
    y, measured = _low_rank_table()
    measured[:, 5] = False
    with pytest.raises(ValueError, match="every application and every configuration"):
        LowRankCompletion.fit(y, measured)
    with pytest.raises(ValueError, match="rank >= 1"):
        LowRankCompletion.fit(y, np.ones_like(measured), rank=0)


def _measurements(y: np.ndarray, measured: np.ndarray, apps: list[int], configs: list[int]) -> ConfigMeasurements:
    runtime = np.where(measured, np.exp(y), np.nan)[np.ix_(apps, configs)]
    features = np.linspace(0, 1, y.shape[1])[configs, None]
    return ConfigMeasurements("synthetic", tuple(f"app-{a}" for a in apps), tuple(f"c{c}" for c in configs),
                              ("x",), features, runtime, 2 * runtime, {})


def test_predictor_maps_a_test_file_configurations_by_name_then_by_nearest_features():
    y, measured = _low_rank_table()
    measured[30:] = True
    train = _measurements(y, measured, list(range(30)), list(range(12)))
    # the test file lists its configurations in another order and has one (c12) the training file lacks
    extra = np.column_stack([y, y[:, 11]])                  # c12 sits next to c11 in feature space, same values
    test = _measurements(extra, np.column_stack([measured, measured[:, 11]]), list(range(30, 40)),
                         [12, *range(11, -1, -1)])
    ep, shots, targets = EpisodeSampler(test, 2).evaluation(0, 3, np.random.default_rng(0))
    pred = matrix_completion_predictor(train, test)(ep)
    assert pred.shape == ep.target_y.shape
    assert (pred - ep.target_y).abs().max() < 0.3
    assert np.log(2) == pytest.approx(float((pred[..., 1] - pred[..., 0]).mean()), abs=1e-4)


def test_a_configuration_no_training_app_measured_stands_in_as_the_nearest_measured_one():
    """By name where a training app measured it; else the nearest measured one in feature space, also for a
    configuration the training data lists but none of its apps measured (a fold of one file)."""
    y, measured = _low_rank_table()
    measured[:30, 3:5] = False                              # c3, c4: listed in the training data, never measured
    train = _measurements(y, measured, list(range(30)), list(range(12)))
    test = _measurements(y, np.ones_like(measured), list(range(30, 40)), [11, 4, 5, 3])
    assert [train.configs[j] for j in stand_in_configs(train, test)] == ["c11", "c5", "c5", "c2"]


def test_a_training_app_that_measured_nothing_is_left_out_of_the_fit():
    """An app with no measured cell (possible in a hand-built ConfigMeasurements) says nothing about the others: the
    predictor fits on the rest, as if it were absent, instead of refusing the whole training set."""
    y, measured = _low_rank_table()
    measured[30:] = True
    test = _measurements(y, measured, list(range(30, 40)), list(range(12)))
    ep, _, _ = EpisodeSampler(test, 2).evaluation(0, 3, np.random.default_rng(0))
    without = matrix_completion_predictor(_measurements(y, measured, list(range(30)), list(range(12))), test)(ep)
    measured[7] = False
    with_empty = matrix_completion_predictor(_measurements(y, measured, list(range(30)), list(range(12))), test)(ep)
    # the same fit as on the 29 apps that measured something
    kept = [a for a in range(30) if a != 7]
    on_29 = matrix_completion_predictor(_measurements(y, measured, kept, list(range(12))), test)(ep)
    np.testing.assert_array_equal(with_empty.numpy(), on_29.numpy())
    assert (with_empty - without).abs().max() < 0.3
