"""Few-shot performance predictors: the base learner, FLASH's shot encoder, and their episodic training.

Every learned predictor is *relative to the shots*: with ``m`` the mean log runtime (and log cost) of the ``K``
shots, it predicts ``m + delta(target)``, so it learns the shape of an application's runtime over configurations
and the shots fix its level. The inputs are

* the target configuration's features;
* the ``K`` shot tokens ``[features, log y - m]`` flattened in a canonical (configuration-index) order;
* ``m`` standardised with the training data's statistics (big jobs may scale differently from small ones);
* for FLASH only, the embedding ``z`` of the shots.

Why a set encoder (Deep Sets: ``rho(mean_i phi(token_i))``) for FLASH rather than a sequence encoder: the shots are
measurements of one application taken in no meaningful order, so the embedding should not depend on their order;
mean pooling gives that by construction, works for any ``K`` (one encoder shape for K = 1, 2, 5), and is the
smallest model with that property, which matters with as few as 18 training applications. A sequence model (GRU,
transformer) would have to learn the invariance from data.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from flash_rl.fewshot.episodes import EpisodeSampler, Episodes


def mlp(n_in: int, hidden: int, n_out: int, layers: int = 2) -> nn.Sequential:
    """``layers`` hidden ReLU layers of width ``hidden``."""
    mods: list[nn.Module] = []
    for i in range(layers):
        mods += [nn.Linear(n_in if i == 0 else hidden, hidden), nn.ReLU()]
    return nn.Sequential(*mods, nn.Linear(hidden, n_out))


class ShotEncoder(nn.Module):
    """FLASH's embedding network: a Deep Sets encoder over the shot tokens (see the module docstring)."""

    def __init__(self, token_dim: int, hidden: int, embed_dim: int) -> None:
        super().__init__()
        self.phi = mlp(token_dim, hidden, hidden, layers=1)
        self.rho = mlp(hidden, hidden, embed_dim, layers=1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.rho(torch.relu(self.phi(tokens)).mean(dim=1))


class FewShotModel(nn.Module):
    """The base learner MLP, with FLASH's shot embedding concatenated to its input when ``flash`` is true."""

    def __init__(self, n_features: int, k: int, flash: bool, y_mean: np.ndarray, y_std: np.ndarray,
                 hidden: int = 128, embed_dim: int = 16) -> None:
        super().__init__()
        self.k, self.flash = k, flash
        token_dim = n_features + 2
        self.encoder = ShotEncoder(token_dim + 2, hidden, embed_dim) if flash else None
        self.base = mlp(n_features + k * token_dim + 2 + (embed_dim if flash else 0), hidden, 2)
        self.register_buffer("y_mean", torch.as_tensor(y_mean, dtype=torch.float32))
        self.register_buffer("y_std", torch.as_tensor(y_std, dtype=torch.float32))

    def forward(self, shot_x: torch.Tensor, shot_y: torch.Tensor, target_x: torch.Tensor) -> torch.Tensor:
        """Predicted log runtime and log cost, shape (B, T, 2)."""
        level = shot_y.mean(dim=1)                                     # (B, 2)
        tokens = torch.cat([shot_x, shot_y - level[:, None]], dim=-1)   # (B, K, d + 2)
        context = (level - self.y_mean) / self.y_std                    # (B, 2)
        parts = [tokens.flatten(1), context]
        if self.encoder is not None:
            ctx_tokens = context[:, None].expand(-1, tokens.shape[1], -1)
            parts.append(self.encoder(torch.cat([tokens, ctx_tokens], dim=-1)))
        per_episode = torch.cat(parts, dim=-1)                          # (B, F)
        n_targets = target_x.shape[1]
        x = torch.cat([target_x, per_episode[:, None].expand(-1, n_targets, -1)], dim=-1)
        return level[:, None] + self.base(x)

    def predict(self, ep: Episodes) -> torch.Tensor:
        with torch.no_grad():
            return self(ep.shot_x, ep.shot_y, ep.target_x)


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters shared by every learned predictor (the same budget for each method)."""

    steps: int = 1000
    batch: int = 64
    n_targets: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    hidden: int = 128
    embed_dim: int = 16
    finetune_steps: int = 30
    finetune_lr: float = 1e-3


def train_model(sampler: EpisodeSampler, flash: bool, cfg: TrainConfig, rng: np.random.Generator,
                progress: bool = False) -> FewShotModel:
    """Train the base learner (``flash=False``) or base learner + FLASH encoder episodically on ``sampler``'s apps."""
    torch.manual_seed(int(rng.integers(2**31)))
    measured = sampler.y[sampler.apps][sampler.data.measured[sampler.apps]]
    model = FewShotModel(sampler.x.shape[1], sampler.k, flash, measured.mean(0), measured.std(0) + 1e-6,
                         cfg.hidden, cfg.embed_dim)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    name = "FLASH" if flash else "base learner"
    for _ in tqdm(range(cfg.steps), desc=f"train {name} K={sampler.k}", disable=not progress, leave=False):
        ep = sampler.sample(cfg.batch, cfg.n_targets, rng)
        loss = nn.functional.mse_loss(model(ep.shot_x, ep.shot_y, ep.target_x), ep.target_y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def fine_tune_predict(model: FewShotModel, ep: Episodes, cfg: TrainConfig) -> torch.Tensor:
    """Transfer learning: per episode, fine-tune a copy of ``model`` on its own shots, then predict its targets.

    The fine-tuning examples are the shots themselves (context: all K shots; target: each shot).
    """
    preds = []
    for b in range(ep.shot_x.shape[0]):
        shots = ep.shot_x[b:b + 1], ep.shot_y[b:b + 1]
        tuned = copy.deepcopy(model).train()
        opt = torch.optim.Adam(tuned.parameters(), lr=cfg.finetune_lr)
        for _ in range(cfg.finetune_steps):
            loss = nn.functional.mse_loss(tuned(*shots, shots[0]), shots[1])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            preds.append(tuned(*shots, ep.target_x[b:b + 1]))
    return torch.cat(preds)


def nearest_config_predict(ep: Episodes) -> torch.Tensor:
    """Non-learned baseline: each target gets the measured runtime and cost of the nearest shot (feature space)."""
    nearest = torch.cdist(ep.target_x, ep.shot_x).argmin(dim=-1)       # (B, T)
    return torch.take_along_dim(ep.shot_y, nearest[..., None], dim=1)
