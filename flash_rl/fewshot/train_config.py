"""The hyper-parameters every learned few-shot predictor shares (kept free of torch, so that ``flash config-eval
--help`` and ``--render`` start without importing it)."""

from __future__ import annotations

from dataclasses import dataclass, fields

from flash_envs.fields import check_number, check_whole


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters shared by every learned predictor (the same budget for each method)."""

    steps: int = 6000
    batch: int = 64
    n_targets: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    hidden: int = 128
    embed_dim: int = 16
    finetune_steps: int = 30
    finetune_lr: float = 1e-3
    val_fraction: float = 0.0
    eval_every: int = 250

    def __post_init__(self) -> None:
        """Refuse settings that would train nothing or NaNs, instead of returning an untrained model."""
        for field in fields(self):   # the counts (steps, sizes, intervals) are whole numbers >= 1, the rest finite
            name, value = f"TrainConfig.{field.name}", getattr(self, field.name)
            if isinstance(field.default, int):
                object.__setattr__(self, field.name, check_whole(name, value, 1))
            else:
                check_number(name, value, 0.0, strict=field.name in ("lr", "finetune_lr"))
        if self.val_fraction >= 1:
            raise ValueError(f"TrainConfig.val_fraction must lie in [0, 1), got {self.val_fraction!r}")
