"""Defects found by an audit of the design's contracts (bad input gets a clear error naming the problem): each test
failed before its fix."""

from __future__ import annotations

import numpy as np
import pytest

from flash_envs.data.config_measurements import ConfigMeasurements
from flash_envs.envs.config_search import ConfigSearchTask, ConfigSearchTaskFamily


def test_a_config_search_number_too_large_for_a_float_is_named():
    """float(10**400) raised a bare OverflowError, naming neither the field nor the task."""
    with pytest.raises(ValueError, match=r"ConfigSearchTask.runtime_s\[0\] must be a finite number"):
        ConfigSearchTask("t", ["x", "y"], [10**400, 1], [1, 1], 1.5)
    family = ConfigSearchTaskFamily.generate(3, 2).to_dict()
    family["test"][1]["cost_usd"][4] = 10**400
    with pytest.raises(ValueError, match=r"test\[1\]: ConfigSearchTask.cost_usd\[4\] must be a finite number"):
        ConfigSearchTaskFamily.from_dict(family)


def test_measurements_built_from_lists_are_taken_and_bad_ones_named():
    """Lists ended in "AttributeError: 'list' object has no attribute 'shape'"."""
    runtime = [[1.0, 2.0], [2.0, 3.0]]
    data = ConfigMeasurements("mine", ("a", "b"), ("x", "y"), ("f",), [[0.0], [1.0]], runtime,
                              (np.array(runtime) * 0.1).tolist())
    assert data.runtime_s.dtype == np.float64 and data.features.shape == (2, 1)
    assert data.cost_usd[1, 1] == pytest.approx(0.3)
    for bad in ([["a", "b"], [1, 2]], [[1.0], [1.0, 2.0]], [[True, False], [True, True]]):
        with pytest.raises(TypeError, match=r"ConfigMeasurements.runtime_s must be an array of numbers"):
            ConfigMeasurements("mine", ("a", "b"), ("x", "y"), ("f",), [[0.0], [1.0]], bad, runtime)
