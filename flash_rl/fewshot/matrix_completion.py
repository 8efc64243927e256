"""Matrix-completion baseline: collaborative filtering over the application x configuration matrix.

Cluster managers such as Paragon and Quasar (Delimitrou and Kozyrakis, ASPLOS 2013 and 2014) solve this case's
problem without neural networks: they profile a new workload on a few configurations and fill in the rest of a
sparse workload x configuration matrix from the workloads seen before. This module is that classic approach, as a
strong non-neural baseline for FLASH. Per output (log runtime, log cost) it models

    y[a, c] = level[a] + effect[c] + u[a] . v[c] + noise,      u, v of dimension ``rank``

* **Fit** (training applications only): alternating least squares over the measured cells, solving in turn every
  application's ``level`` and ``u`` and every configuration's ``effect`` and ``v``, with a ridge penalty on the
  factors ``u`` and ``v``.
* **Few-shot prediction**: a new application's ``level`` (flat prior) and ``u`` (Gaussian prior with the training
  factors' mean and covariance) are the posterior mean given its ``K`` shots, with the training residuals' variance
  as noise (Bayesian ridge). With ``K = 1`` this is "the shot's level plus the configurations' effects"; more shots
  also place the application along the factors.

It learns no weights by gradient and uses no random numbers apart from a fixed initialisation, so it is the same for
every seed given its training applications. (With early stopping, ``config-eval`` fits it on the applications the
networks train on, which leave out the seed's validation applications, so that every method learns from the same
data: it then varies with the seed.) It predicts by configuration *identity*: a held-out file's configuration that no
training application measured borrows the parameters of the nearest measured training configuration in feature space.
Rank 2 and ridge 1 were chosen by cross-validation inside the IBM folds' training workloads (rank 1 to 4 and ridge
0.3 to 3 all within one point of MAPE; ``results/config/README.md``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from flash_envs.data.config_measurements import ConfigMeasurements
from flash_rl.fewshot.episodes import Episodes


def _ridge_rows(target: np.ndarray, measured: np.ndarray, other: np.ndarray, ridge: float) -> np.ndarray:
    """Per row ``i``: ``[bias, w]`` minimising ``|target[i] - bias - other @ w|^2`` over ``measured[i]`` +
    ``ridge |w|^2``."""
    design = np.column_stack([np.ones(len(other)), other])
    penalty = np.diag([0.0] + [ridge] * other.shape[1])
    gram = np.einsum("ic,cr,cs->irs", measured, design, design) + penalty
    return np.linalg.solve(gram, np.einsum("ic,cr->ir", measured * target, design)[..., None])[..., 0]


#: Floor of the residual variance (log units: a 0.1 % error), so that the prior keeps the posterior proper.
MIN_NOISE_VAR = 1e-6


@dataclass(frozen=True)
class LowRankCompletion:
    """The fitted model for one output; see the module docstring."""

    effect: np.ndarray        # (C,)
    factors: np.ndarray       # (C, rank): v per training configuration
    prior_mean: np.ndarray    # (rank,)
    prior_cov: np.ndarray     # (rank, rank)
    noise_var: float

    @classmethod
    def fit(cls, y: np.ndarray, measured: np.ndarray, rank: int = 2, ridge: float = 1.0,
            iterations: int = 100) -> LowRankCompletion:
        """Fit on ``y`` (apps, configs) where ``measured``; every app and configuration needs a measured cell."""
        if rank < 1 or len(y) < 2:
            raise ValueError(f"need rank >= 1 and >= 2 applications, got rank {rank} and {len(y)} application(s)")
        if not (measured.any(axis=0).all() and measured.any(axis=1).all()):
            raise ValueError("every application and every configuration must have at least one measured cell")
        mask, y = measured.astype(float), np.where(measured, y, 0.0)
        effect = (mask * y).sum(axis=0) / mask.sum(axis=0)
        v = np.random.default_rng(0).normal(0.0, 0.1, (y.shape[1], rank))
        for _ in range(iterations):
            row = _ridge_rows(y - effect, mask, v, ridge)
            level, u = row[:, 0], row[:, 1:]
            column = _ridge_rows((y - level[:, None]).T, mask.T, u, ridge)
            effect, v = column[:, 0], column[:, 1:]
        residual_var = float(np.mean((y - level[:, None] - effect - u @ v.T)[measured] ** 2))
        noise_var = max(residual_var, MIN_NOISE_VAR)   # an exact fit (toy data) would leave the posterior improper
        prior_cov = np.atleast_2d(np.cov(u, rowvar=False)) + 1e-6 * np.eye(rank)
        return cls(effect, v, u.mean(axis=0), prior_cov, noise_var)

    def predict(self, shots: np.ndarray, shot_y: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Posterior-mean prediction at configurations ``targets`` from values ``shot_y`` at ``shots`` (indices)."""
        rank = self.factors.shape[1]
        design = np.column_stack([np.ones(len(shots)), self.factors[shots]])
        precision = np.zeros((rank + 1, rank + 1))                     # flat prior on the level
        precision[1:, 1:] = self.noise_var * np.linalg.inv(self.prior_cov)
        prior = np.concatenate([[0.0], self.prior_mean])
        w = np.linalg.solve(design.T @ design + precision,
                            design.T @ (shot_y - self.effect[shots]) + precision @ prior)
        return w[0] + self.effect[targets] + self.factors[targets] @ w[1:]


def stand_in_configs(train: ConfigMeasurements, test: ConfigMeasurements) -> np.ndarray:
    """Per configuration of ``test``, the index in ``train.configs`` of the configuration whose parameters matrix
    completion uses for it: the same one (by name) if some training application measured it, else the nearest one
    in feature space that some training application measured."""
    seen = np.flatnonzero(train.measured.any(axis=0))
    by_name = {train.configs[j]: j for j in seen}
    nearest = seen[np.linalg.norm(test.features[:, None] - train.features[seen][None], axis=-1).argmin(axis=1)]
    return np.array([by_name.get(c, nearest[i]) for i, c in enumerate(test.configs)])


def matrix_completion_predictor(train: ConfigMeasurements, test: ConfigMeasurements,
                                rank: int = 2) -> Callable[[Episodes], torch.Tensor]:
    """Fit log runtime and log cost on ``train``'s applications that measured some configuration (an app with none
    says nothing about the others; the neural methods skip it too); return a predictor for episodes of ``test``."""
    apps, seen = np.flatnonzero(train.measured.any(axis=1)), np.flatnonzero(train.measured.any(axis=0))
    measured = train.measured[np.ix_(apps, seen)]
    y = np.stack([np.log(train.runtime_s), np.log(train.cost_usd)])[:, apps][:, :, seen]
    models = [LowRankCompletion.fit(y[o], measured, rank) for o in range(2)]
    to_train = np.searchsorted(seen, stand_in_configs(train, test))   # a column of the fitted models

    def predict(ep: Episodes) -> torch.Tensor:
        shots, targets = to_train[ep.shot_index.numpy()], to_train[ep.target_index.numpy()]
        shot_y = ep.shot_y.numpy().astype(float)
        out = np.array([[m.predict(shots[b], shot_y[b, :, o], targets[b]) for o, m in enumerate(models)]
                        for b in range(len(shots))])                            # (B, 2, T)
        return torch.from_numpy(out.transpose(0, 2, 1).astype(np.float32))

    return predict
