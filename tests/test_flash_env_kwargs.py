"""Env kwargs that cannot be saved with the agent are refused when the agent is made, not by save() after training."""

from __future__ import annotations

import numpy as np
import pytest

import flash_envs  # noqa: F401  (registers the envs)
from flash_envs.tasks import AutoscalingTaskFamily
from flash_rl.flash import Flash, TransferLearning
from flash_rl.maml import MAML

ENV = "flash/Autoscaling-v0"
PPO_KWARGS = {"n_steps": 60, "batch_size": 60}


def make(kind: str, env_kwargs: dict) -> Flash | MAML:
    if kind == "maml":
        return MAML(ENV, env_kwargs)
    cls = Flash if kind == "flash" else TransferLearning
    return cls("PPO", ENV, env_kwargs, agent_kwargs=PPO_KWARGS, adapt_kwargs=PPO_KWARGS, n_envs=1)


FAMILY = AutoscalingTaskFamily.generate(n_train=2, n_test=1, seed=1)


@pytest.mark.parametrize("kind", ["flash", "transfer", "maml"])
@pytest.mark.parametrize("key, value, shown", [
    ("family", FAMILY, "<AutoscalingTaskFamily object>"),
    ("task", FAMILY.train[0], "<AutoscalingTask object>"),
    ("replica_bounds", np.array([1, 20]), r"array\(\[ 1, 20\]\)"),
], ids=["family", "task", "array"])
def test_env_kwargs_that_cannot_be_saved_are_refused_when_the_agent_is_made(kind, key, value, shown):
    # The env takes them, so the agent trained; flash.json / maml.pt could not hold them (save() failed, or wrote a
    # MAML checkpoint that load() refused).
    with pytest.raises(ValueError, match=rf"^env_kwargs: {key}={shown} cannot be saved with the agent: .*give its "
                                         r"tasks to meta_train\(\) and adapt\(\) instead"):
        make(kind, {key: value})


@pytest.mark.parametrize("kind", ["flash", "maml"])
def test_a_tuple_env_kwarg_is_taken(kind):
    agent = make(kind, {"replica_bounds": (1, 10)})   # saved as a list, which the env takes for a tuple
    assert agent.env_kwargs == {"replica_bounds": (1, 10)}
