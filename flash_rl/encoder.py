"""FLASH's embedding network, packaged as a stable-baselines3 features extractor.

:class:`ContextEncoder` maps a context window ``(batch, length, width)`` (see :mod:`flash_rl.context`) to an embedding
``(batch, embedding_dim)``; :class:`FlashFeaturesExtractor` concatenates that embedding to the raw observation, so the
base learner's own networks (and its own loss) sit on top, unchanged. ``encoder="gru"`` (default) runs a GRU over the
window and projects its last hidden state; ``encoder="mean"`` is a permutation-invariant set encoder (an MLP per row,
averaged over valid rows).
"""

from __future__ import annotations

import math

import gymnasium as gym
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

ENCODERS = ("gru", "mean")

#: Bytes an encoder's pass over a training batch keeps for its gradient, per window row and hidden unit, measured with
#: torch 2.13 on CPU (peak RSS of forward and backward over 240 windows of 500 and 2000 rows; 45-47 B for the GRU,
#: 16-32 B for the mean encoder).
GRADIENT_BYTES_PER_ROW_UNIT = {"gru": 48, "mean": 32}


def encoder_pass_gb(kind: str, batch: int, length: int, width: int, hidden: int) -> float:
    """GB one pass of a ``kind`` encoder over ``batch`` context windows of ``length`` rows of ``width`` floats keeps
    for its gradient: the windows (float32) and :data:`GRADIENT_BYTES_PER_ROW_UNIT` per row and hidden unit."""
    return batch * length * (4 * width + GRADIENT_BYTES_PER_ROW_UNIT[kind] * hidden) / 1e9


class ContextEncoder(nn.Module):
    """Context window ``(batch, length, width)`` -> embedding ``(batch, embedding_dim)`` in (-1, 1) (tanh head).

    ``kind="gru"``: a GRU of ``hidden`` units over the rows, its last hidden state projected; ``kind="mean"``: an MLP
    per row averaged over the valid rows (flag in the last column), then projected.
    """

    def __init__(self, width: int, embedding_dim: int = 32, hidden: int = 64, kind: str = "gru") -> None:
        super().__init__()
        if kind not in ENCODERS:
            raise ValueError(f"unknown encoder {kind!r}; expected one of {ENCODERS}")
        self.kind = kind
        self.embedding_dim = embedding_dim
        if kind == "gru":
            self.rnn = nn.GRU(width, hidden, batch_first=True)
        else:
            self.row = nn.Sequential(nn.Linear(width, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh())
        self.head = nn.Sequential(nn.Linear(hidden, embedding_dim), nn.Tanh())

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        if self.kind == "gru":
            _, h = self.rnn(context)
            summary = h[-1]
        else:
            valid = context[..., -1:]
            summary = (self.row(context) * valid).sum(1) / valid.sum(1).clamp_min(1.0)
        # an empty context (no valid rows yet) gives the embedding of "nothing seen", learned like any other
        return self.head(summary)


class FlashFeaturesExtractor(BaseFeaturesExtractor):
    """``features = [obs, embedding(context)]`` for ``Dict(obs=Box, context=Box(length, width))`` observations.

    ``zero_embedding=True`` replaces the embedding with zeros (the ablation that shows what the context contributes).
    """

    def __init__(self, observation_space: gym.spaces.Dict, embedding_dim: int = 32, hidden: int = 64,
                 encoder: str = "gru", zero_embedding: bool = False) -> None:
        n_obs = int(math.prod(observation_space["obs"].shape))   # flattened, as forward and the context do
        width = int(observation_space["context"].shape[-1])
        super().__init__(observation_space, features_dim=n_obs + embedding_dim)
        self.encoder = ContextEncoder(width, embedding_dim, hidden, encoder)
        self.zero_embedding = zero_embedding

    def embed(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        """The context's embedding ``(batch, embedding_dim)``, before any ``zero_embedding`` ablation."""
        return self.encoder(observations["context"].float())

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        emb = self.embed(observations)
        if self.zero_embedding:
            emb = torch.zeros_like(emb)
        return torch.cat([observations["obs"].float().flatten(1), emb], dim=1)
