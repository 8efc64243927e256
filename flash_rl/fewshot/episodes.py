"""Few-shot episodes over :class:`~flash_envs.data.config_measurements.ConfigMeasurements`.

An *episode* is one application, ``K`` measured configurations of it (the *shots*, in the random order they were
drawn; the first is the *base measurement*) and target configurations whose log runtime and log cost are to be
predicted. Training draws episodes from the training applications at random; evaluation draws a fixed set of shot
subsets per held-out application and predicts every other measured configuration.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from flash_envs.data.config_measurements import ConfigMeasurements


@dataclass(frozen=True)
class Episodes:
    """A batch of ``B`` episodes with ``K`` shots and ``T`` targets each (all tensors float32 unless noted).

    ``shot_x`` (B, K, d), ``shot_y`` (B, K, 2) log runtime and log cost, ``shot_index`` (B, K) int64 configuration
    indices of the shots, ``target_x`` (B, T, d), ``target_y`` (B, T, 2), ``target_index`` (B, T) int64.
    """

    shot_x: torch.Tensor
    shot_y: torch.Tensor
    shot_index: torch.Tensor
    target_x: torch.Tensor
    target_y: torch.Tensor
    target_index: torch.Tensor


class EpisodeSampler:
    """Draws episodes from the applications of one dataset that have at least ``k + 1`` measured configurations."""

    def __init__(self, data: ConfigMeasurements, k: int) -> None:
        if k < 1:
            raise ValueError(f"the number of shots must be >= 1, got {k}")
        counts = data.measured.sum(axis=1)
        self.apps = np.flatnonzero(counts >= k + 1)
        if len(self.apps) == 0:
            raise ValueError(f"{data.source}: no application has the {k + 1} measured configurations that {k} shots "
                             f"and one target need")
        self.data, self.k = data, k
        self.skipped_apps = [data.apps[i] for i in np.flatnonzero(counts < k + 1)]
        self.x = data.features.astype(np.float32)
        self.y = np.stack([np.log(data.runtime_s), np.log(data.cost_usd)], axis=-1).astype(np.float32)

    def _shot_order(self, apps: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Per episode, the measured configurations in random order (unmeasured ones last)."""
        scores = rng.random((len(apps), len(self.data.configs)))
        scores[~self.data.measured[apps]] = 2.0
        return np.argsort(scores, axis=1)

    def _episodes(self, apps: np.ndarray, shots: np.ndarray, targets: np.ndarray) -> Episodes:
        rows = apps[:, None]
        return Episodes(torch.from_numpy(self.x[shots]), torch.from_numpy(self.y[rows, shots]),
                        torch.from_numpy(shots.astype(np.int64)), torch.from_numpy(self.x[targets]),
                        torch.from_numpy(self.y[rows, targets]), torch.from_numpy(targets.astype(np.int64)))

    def sample(self, batch: int, n_targets: int, rng: np.random.Generator) -> Episodes:
        """``batch`` random training episodes, each with ``n_targets`` targets drawn among its unmeasured configs."""
        apps = rng.choice(self.apps, size=batch)
        order = self._shot_order(apps, rng)
        n_measured = self.data.measured[apps].sum(axis=1)
        pos = self.k + (rng.random((batch, n_targets)) * (n_measured[:, None] - self.k)).astype(int)
        return self._episodes(apps, order[:, :self.k], np.take_along_axis(order, pos, axis=1))

    def evaluation(self, app: int, draws: int, rng: np.random.Generator) -> tuple[Episodes, np.ndarray, np.ndarray]:
        """``draws`` shot subsets of application ``app`` with every measured configuration as a target.

        Returns the episodes, the shot configuration indices (draws, K) and the target indices (T,), i.e. all
        configurations measured for ``app``.
        """
        apps = np.full(draws, app)
        shots = self._shot_order(apps, rng)[:, :self.k]
        targets = np.flatnonzero(self.data.measured[app])
        return self._episodes(apps, shots, np.broadcast_to(targets, (draws, len(targets)))), shots, targets
