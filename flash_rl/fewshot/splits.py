"""Held-out splits of measured applications: training apps and test apps, never an app in both."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from flash_envs.data.config_measurements import ConfigMeasurements
from flash_envs.fields import check_whole


@dataclass(frozen=True)
class Split:
    """Training and held-out test applications (possibly from different files of one schema: the same feature names,
    and the same features for a configuration both have); no app in both."""

    name: str
    train: ConfigMeasurements
    test: ConfigMeasurements

    def __post_init__(self) -> None:
        train, test = self.train, self.test
        if train.feature_names != test.feature_names:
            raise ValueError(f"{train.source} and {test.source} describe configurations by other features "
                             f"({len(train.feature_names)}: {', '.join(train.feature_names[:4])}... and "
                             f"{len(test.feature_names)}: {', '.join(test.feature_names[:4])}...): a model trained on "
                             "one cannot predict the other; give two files of one schema")
        index = {config: j for j, config in enumerate(test.configs)}
        if other := [c for i, c in enumerate(train.configs) if c in index
                     and not np.array_equal(train.features[i], test.features[index[c]])]:
            raise ValueError(f"{train.source} and {test.source} give other features to {len(other)} configuration(s) "
                             f"of the same name, e.g. {other[0]}: they are not files of one schema")
        shared = sorted(set(train.apps) & set(test.apps))
        if shared:
            raise ValueError(f"{len(shared)} app(s) both in training and held out: {shared[:5]}"
                             f"{' ...' if len(shared) > 5 else ''}; held-out apps must never be trained on")


def n_validation_apps(n_train: int, val_fraction: float) -> int:
    """How many of ``n_train`` training apps early stopping keeps aside: ``val_fraction`` of them, at least 2, and
    never so many that fewer than 2 are left to fit on."""
    if val_fraction == 0:
        return 0
    n_val = max(2, round(val_fraction * n_train))
    if n_train - n_val < 2:
        if n_val > n_train:   # (it 'kept 2 for validation and left -1 to train on')
            raise ValueError(f"validation fraction {val_fraction} of {n_train} training app(s): early stopping needs "
                             f"at least 2 apps to validate on and 2 to train on")
        raise ValueError(f"validation fraction {val_fraction} of {n_train} training apps keeps {n_val} for validation "
                         f"and leaves {n_train - n_val} to train on; at least 2 of each are needed")
    return n_val


def app_folds(data: ConfigMeasurements, n_folds: int, seed: int = 0) -> list[Split]:
    """Leave-workloads-out cross-validation: apps shuffled with ``seed`` and dealt into ``n_folds`` test groups."""
    n_folds, seed = check_whole("n_folds", n_folds, 2), check_whole("seed", seed, 0)   # (2.5 made 2 folds)
    if not 2 <= n_folds <= len(data.apps):
        raise ValueError(f"n_folds must lie in [2, {len(data.apps)}] for {len(data.apps)} apps, got {n_folds}")
    order = np.random.default_rng(seed).permutation(len(data.apps))
    folds = np.array_split(order, n_folds)
    return [Split(f"fold {i + 1}/{n_folds}", data.select_apps([data.apps[j] for j in order if j not in set(f)]),
                  data.select_apps([data.apps[j] for j in f])) for i, f in enumerate(folds)]


def group_folds(data: ConfigMeasurements, group_of: Callable[[str], str]) -> list[Split]:
    """Leave-one-group-out: one split per group of apps (e.g. a function run with several inputs), held out whole."""
    groups = sorted({group_of(a) for a in data.apps})
    if len(groups) < 2:
        raise ValueError(f"group-wise folds need >= 2 groups, got {groups}")
    return [Split(f"held-out {g}", data.select_apps([a for a in data.apps if group_of(a) != g]),
                  data.select_apps([a for a in data.apps if group_of(a) == g])) for g in groups]
