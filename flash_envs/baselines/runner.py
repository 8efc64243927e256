"""Run a policy on a list of tasks and report per-task metrics (works for any FLASH env)."""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import gymnasium as gym
import numpy as np

from flash_envs.fields import check_seed, check_whole

#: The ``info`` entries averaged per episode unless ``metrics`` is given, by env class name; other envs: none.
DEFAULT_METRICS = {"AutoscalingEnv": ("slo_violation", "cpu_utilisation", "memory_utilisation", "replicas"),
                   "PowerManagementEnv": ("energy_j", "power_share", "slo_violation", "transitions"),
                   "ConfigSearchEnv": ("measurements",)}


def default_metrics(env: gym.Env) -> tuple[str, ...]:
    """The :data:`DEFAULT_METRICS` of ``env`` (through its wrappers)."""
    return DEFAULT_METRICS.get(type(env.unwrapped).__name__, ())


def run_episode(env: gym.Env, policy: Any, task: Any, seed: int, metrics: Sequence[str] | None = None,
                actions: list[Any] | None = None) -> dict[str, float]:
    """One episode of ``policy`` on ``task``; returns the return, the mean reward per step and per-step means of the
    ``info`` entries named in ``metrics`` (default: the env's :data:`DEFAULT_METRICS`). Each action taken is appended
    to ``actions`` when it is given.

    ``policy`` is anything with SB3's ``predict(obs, state=None, episode_start=None, deterministic=True)``, called
    as SB3's ``evaluate_policy`` calls it: deterministic, with the ``state`` it returned last (a recurrent policy keeps
    its memory) and ``episode_start`` true at the first step only. A metric the env's ``info`` lacks, or holds a
    non-number in, is a ValueError naming the numeric entries it has.
    """
    metrics = default_metrics(env) if metrics is None else metrics
    if isinstance(metrics, str):
        raise TypeError(f"metrics must be a sequence of info keys, got the string {metrics!r}; "
                        f"write metrics=[{metrics!r}]")
    if hasattr(policy, "reset"):
        policy.reset()
    obs, info = env.reset(seed=seed, options={"task": task})
    total, steps = 0.0, 0
    sums = dict.fromkeys(metrics, 0.0)
    state, episode_start = None, np.ones(1, dtype=bool)
    done = False
    while not done:
        action, state = policy.predict(obs, state=state, episode_start=episode_start, deterministic=True)
        episode_start = np.zeros(1, dtype=bool)
        if actions is not None:
            actions.append(action)
        obs, reward, terminated, truncated, info = env.step(action)
        if steps == 0:
            _check_metrics(metrics, info)
        total += float(reward)
        steps += 1
        for key in metrics:
            sums[key] += float(info[key])
        done = terminated or truncated
    return {"return": total, "mean_reward": total / steps, **{k: v / steps for k, v in sums.items()}}


def _check_metrics(metrics: Sequence[str], info: dict[str, Any]) -> None:
    """Raise a ValueError unless every one of ``metrics`` is a number in a step's ``info``."""
    numeric = sorted(k for k, v in info.items() if isinstance(v, (int, float, np.number, np.bool_)))
    bad = [m for m in metrics if m not in numeric]
    if bad:
        raise ValueError(f"metrics {bad} are not numbers in the env's step info; it has {numeric}")


def evaluate_on_tasks(env: gym.Env, policy: Any, tasks: Iterable[Any], episodes: int = 1, seed: int = 0,
                      metrics: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Per task: the mean over ``episodes`` episodes (seeds ``seed, seed+1, ...``) of :func:`run_episode`."""
    episodes, seed = check_whole("episodes", episodes, 1), check_seed("seed", seed)
    rows = []
    for task in tasks:
        runs = [run_episode(env, policy, task, seed + e, metrics) for e in range(episodes)]
        rows.append({"task": getattr(task, "name", str(task)),
                     **{k: float(np.mean([r[k] for r in runs])) for k in runs[0]}})
    return rows
