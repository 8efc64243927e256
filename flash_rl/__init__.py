"""FLASH's meta-learning toolkit: meta-train an existing agent over a task family, adapt it fast to new tasks.

* :class:`~flash_rl.flash.Flash` -- a stable-baselines3 agent plus FLASH's context embedding network;
* :class:`~flash_rl.flash.TransferLearning` -- the same agent without it (pretrain + fine-tune, or from scratch);
* :class:`~flash_rl.maml.MAML` -- policy-gradient MAML through ``higher``;
* :mod:`flash_rl.adaptation` -- references, thresholds and episodes-to-adapt; :mod:`flash_rl.stats` -- bootstrap CIs;
* :mod:`flash_rl.pipeline` / ``flash reproduce`` -- the whole study of a case (:mod:`flash_rl.cases`);
* :mod:`flash_rl.fewshot` -- the few-shot configuration-prediction case study.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Flash", "TransferLearning", "MAML"]


def __getattr__(name: str) -> Any:  # lazy: importing flash_rl does not import torch
    if name in ("Flash", "TransferLearning"):
        from flash_rl import flash

        return getattr(flash, name)
    if name == "MAML":
        from flash_rl.maml import MAML

        return MAML
    raise AttributeError(f"module 'flash_rl' has no attribute {name!r}")
