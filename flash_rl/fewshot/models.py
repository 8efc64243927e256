"""Few-shot performance predictors: the base learner, FLASH's shot encoder, and their episodic training.

The formulation follows FLASH's case study on Sizeless: the *base learner* is the existing supervised model, an MLP
that predicts an application's log runtime and log cost at a target configuration from **one base measurement** of
it (Sizeless monitors a function at one base memory size). Few-shot adaptation is about how the other ``K - 1``
shots of a new application are used:

================================  =======================================================================
predictor (``inputs``)            input of the MLP, besides the target configuration's features
================================  =======================================================================
``"base"`` base learner           the base shot's features and its standardised log runtime/cost
``"flash"`` FLASH                 the same, plus the Deep Sets embedding ``z`` of all ``K`` shots
``"k-shot"`` K-shot MLP           all ``K`` shot tokens flattened in configuration order (no embedding)
================================  =======================================================================

Every predictor has a cost output, but where the data has a price list the evaluation prices each method's predicted
runtime instead (:mod:`flash_rl.fewshot.evaluate`); the cost output is what ``flash config-eval --cost predicted``
and data without a price list use.

Transfer learning (:func:`fine_tune_predict`) fine-tunes the base learner on the ``K`` shots instead; *FLASH +
fine-tuning* gives the meta-trained FLASH model the same fine-tuning steps (the supervised analogue of the RL cases,
where the FLASH agent keeps learning on the new task). The K-shot MLP is the other way to read "a base learner that
sees the K shots": it has the same information as FLASH in a flat, order-dependent input, and is reported as a
reference.

Every learned predictor is *relative to the shots*: with ``m`` the log runtime and log cost of the base shot (the
mean over the shots for the K-shot MLP), it predicts ``m + delta(target)``, so it learns the shape of an
application's runtime over configurations and the shots fix its level; ``m`` standardised with the training data's
statistics is an input too (big jobs may scale differently from small ones). A shot token is
``[features, log y - m, standardised m]``.

Why a set encoder (Deep Sets: ``rho(mean_i phi(token_i))``) for FLASH rather than a sequence encoder: the shots are
measurements of one application taken in no meaningful order, so the embedding should not depend on their order;
mean pooling gives that by construction, works for any ``K`` (one encoder shape for K = 1, 2, 5), and is the
smallest model with that property, which matters with as few as 16 training applications. A sequence model (GRU,
transformer) would have to learn the invariance from data.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from flash_envs.data.config_measurements import ConfigMeasurements
from flash_rl.fewshot.episodes import EpisodeSampler, Episodes
from flash_rl.fewshot.splits import n_validation_apps
from flash_rl.fewshot.train_config import TrainConfig
from flash_rl.torch_random import torch_seeded
from flash_envs.progress import tqdm_bar

INPUTS = ("base", "flash", "k-shot")
#: Below this spread of the training apps' log runtimes (or log costs), a level is standardised by 1 (see
#: :func:`level_spread`): 0.001 in log space is a 0.1 % spread.
MIN_SPREAD = 1e-3


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
    """The base learner MLP with the inputs ``inputs`` selects (see the module docstring's table)."""

    def __init__(self, n_features: int, k: int, inputs: str, y_mean: np.ndarray, y_std: np.ndarray,
                 hidden: int = 128, embed_dim: int = 16) -> None:
        super().__init__()
        if inputs not in INPUTS:
            raise ValueError(f"inputs must be one of {INPUTS}, got {inputs!r}")
        self.inputs = inputs
        token_dim = n_features + 4
        self.encoder = ShotEncoder(token_dim, hidden, embed_dim) if inputs == "flash" else None
        per_episode = {"base": n_features + 2, "flash": n_features + 2 + embed_dim, "k-shot": k * token_dim}[inputs]
        self.base = mlp(n_features + per_episode, hidden, 2)
        self.register_buffer("y_mean", torch.as_tensor(y_mean, dtype=torch.float32))
        self.register_buffer("y_std", torch.as_tensor(y_std, dtype=torch.float32))

    def forward(self, shot_x: torch.Tensor, shot_y: torch.Tensor, shot_index: torch.Tensor,
                target_x: torch.Tensor) -> torch.Tensor:
        """Predicted log runtime and log cost, shape (B, T, 2); shot 0 is the base measurement."""
        if self.inputs == "k-shot":
            order = shot_index.argsort(dim=1)[..., None]
            shot_x, shot_y = torch.take_along_dim(shot_x, order, dim=1), torch.take_along_dim(shot_y, order, dim=1)
            level = shot_y.mean(dim=1)
        else:
            level = shot_y[:, 0]                                        # (B, 2)
        context = (level - self.y_mean) / self.y_std                    # (B, 2)
        k = shot_x.shape[1]
        tokens = torch.cat([shot_x, shot_y - level[:, None], context[:, None].expand(-1, k, -1)], dim=-1)
        if self.inputs == "k-shot":
            parts = [tokens.flatten(1)]
        else:
            parts = [shot_x[:, 0], context]
            if self.encoder is not None:
                parts.append(self.encoder(tokens))
        per_episode = torch.cat(parts, dim=-1)                          # (B, F)
        n_targets = target_x.shape[1]
        x = torch.cat([target_x, per_episode[:, None].expand(-1, n_targets, -1)], dim=-1)
        return level[:, None] + self.base(x)

    def predict(self, ep: Episodes) -> torch.Tensor:
        with torch.no_grad():
            return self(ep.shot_x, ep.shot_y, ep.shot_index, ep.target_x)


def early_stopping_apps(data: ConfigMeasurements, k: int, val_fraction: float) -> tuple[list[str], int]:
    """The applications of ``data`` that give ``k``-shot episodes (``k + 1`` measured configurations) and how many
    of them early stopping keeps for validation (:func:`~flash_rl.fewshot.splits.n_validation_apps`; 0 for
    ``val_fraction == 0``); a ValueError, naming ``data`` and ``k``, if they are too few to share."""
    usable = [data.apps[i] for i in EpisodeSampler(data, k).apps]
    try:
        return usable, n_validation_apps(len(usable), val_fraction)
    except ValueError as err:
        raise ValueError(f"{data.source}, K = {k}: {len(usable)} of the {len(data.apps)} training applications have "
                         f"the {k + 1} measured configurations an episode needs; {err}") from None


def early_stopping_split(data: ConfigMeasurements, k: int, cfg: TrainConfig,
                         rng: np.random.Generator) -> tuple[ConfigMeasurements, Episodes | None]:
    """The applications of ``data`` to fit on and, with ``cfg.val_fraction > 0``, validation episodes of the others
    for :func:`train_model`'s early stopping: a random :func:`early_stopping_apps` share of the applications that
    give episodes (the shuffled rest of them first among those to fit on)."""
    if cfg.val_fraction == 0:
        return data, None
    usable, n_val = early_stopping_apps(data, k, cfg.val_fraction)
    shuffled, unusable = list(rng.permutation(usable)), [a for a in data.apps if a not in usable]
    validation = EpisodeSampler(data.select_apps(shuffled[:n_val]), k).sample(256, cfg.n_targets, rng)
    return data.select_apps(shuffled[n_val:] + unusable), validation


def level_spread(measured: np.ndarray) -> np.ndarray:
    """The spread (per output: log runtime, log cost) that standardises an application's level in
    :class:`FewShotModel`: the standard deviation of the training apps' measurements (+ 1e-6), or 1 where it is below
    :data:`MIN_SPREAD`, such as a cost column of one price for all: standardised by ~1e-6, a held-out app at another
    level would feed the network values near 10^6, and its predictions overflow."""
    spread = measured.std(0)
    return np.where(spread < MIN_SPREAD, 1.0, spread + 1e-6)


def train_model(sampler: EpisodeSampler, inputs: str, cfg: TrainConfig, rng: np.random.Generator,
                progress: bool = False, validation: Episodes | None = None) -> FewShotModel:
    """Train the predictor with ``inputs`` (see :data:`INPUTS`) episodically on ``sampler``'s applications.

    With ``validation`` episodes (of other applications), the loss on them is checked every ``cfg.eval_every``
    steps and after the last step, and the weights with the lowest one are kept (early stopping; so a run of fewer
    than ``eval_every`` steps is validated too, and the steps after the last multiple of it are not discarded).
    """
    measured = sampler.y[sampler.apps][sampler.data.measured[sampler.apps]]
    with torch_seeded(int(rng.integers(2**31))):
        model = FewShotModel(sampler.x.shape[1], sampler.k, inputs, measured.mean(0), level_spread(measured),
                             cfg.hidden, cfg.embed_dim)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    best_loss, best_state = np.inf, None
    for step in tqdm_bar(cfg.steps, f"train {inputs} K={sampler.k}", progress, iterable=range(1, cfg.steps + 1),
                         leave=False):
        ep = sampler.sample(cfg.batch, cfg.n_targets, rng)
        loss = nn.functional.mse_loss(model(ep.shot_x, ep.shot_y, ep.shot_index, ep.target_x), ep.target_y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if validation is not None and (step % cfg.eval_every == 0 or step == cfg.steps):
            val_loss = nn.functional.mse_loss(model.predict(validation), validation.target_y).item()
            if val_loss < best_loss:
                best_loss, best_state = val_loss, copy.deepcopy(model.state_dict())
    if best_state is not None:
        model.load_state_dict(best_state)
    return model.eval()


def fine_tune_predict(model: FewShotModel, ep: Episodes, cfg: TrainConfig) -> torch.Tensor:
    """Per episode, fine-tune a copy of ``model`` on its own shots, then predict its targets.

    On the base learner this is transfer learning; on FLASH it is *FLASH + fine-tuning*: the meta-trained model
    also takes the same gradient steps on the new application. The fine-tuning examples are every ordered pair of
    shots (each shot in turn as the base measurement, every shot as a target: K x K examples), so the model learns
    from all the information in the K shots.
    """
    if model.inputs not in ("base", "flash"):
        raise ValueError(f"fine-tuning needs a predictor with a base shot ('base' or 'flash'), not {model.inputs!r}")
    k = ep.shot_x.shape[1]
    preds = []
    for b in range(ep.shot_x.shape[0]):
        shots = [torch.stack([torch.roll(t[b], -i, dims=0) for i in range(k)])   # row i: shot i is the base
                 for t in (ep.shot_x, ep.shot_y, ep.shot_index)]
        tuned = copy.deepcopy(model).train()
        opt = torch.optim.Adam(tuned.parameters(), lr=cfg.finetune_lr)
        for _ in range(cfg.finetune_steps):
            loss = nn.functional.mse_loss(tuned(*shots, shots[0]), shots[1])   # (K bases) x (K targets)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            preds.append(tuned(ep.shot_x[b:b + 1], ep.shot_y[b:b + 1], ep.shot_index[b:b + 1],
                               ep.target_x[b:b + 1]))
    return torch.cat(preds)


def nearest_config_predict(ep: Episodes) -> torch.Tensor:
    """Non-learned baseline: each target gets the measured runtime and cost of the nearest shot (feature space)."""
    nearest = torch.cdist(ep.target_x, ep.shot_x).argmin(dim=-1)       # (B, T)
    return torch.take_along_dim(ep.shot_y, nearest[..., None], dim=1)
