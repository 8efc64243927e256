"""Heuristic autoscalers that operators use today, as policies on ``flash/Autoscaling-v0``.

Every policy reads only the observation (like a learned agent), acts in the env's ``Discrete(7)`` action space (so at
most one step of one resource per interval) and offers the stable-baselines3 call
``predict(obs, state=None, episode_start=None, deterministic=True) -> (action, state)``: one observation gives one
action, a batch (``n_envs`` x 9, from a vectorised env) one action per row, each row with its own history (HPA's
stabilisation window). Call ``reset()`` at the start of every episode (the runner does), or pass ``episode_start``
(a bool per row, as SB3 does) to forget the history of the rows whose episode has just begun.

* :class:`HPA`: the Kubernetes Horizontal Pod Autoscaler: ``desired = ceil(replicas * utilisation / target)``,
  no change within a 10% tolerance, scale-down only to the highest recommendation of the stabilisation window.
* :class:`ThresholdAutoscaler`: scale out above an upper utilisation or when p95 latency exceeds the SLO, in below a
  lower one.
* :class:`StaticPolicy`: move to a fixed configuration and hold it.
* :class:`ConstantPolicy`: the same action at every step (a floor for policies that read the observation).
* :class:`RandomPolicy`: uniform random actions from a given generator.

HPA and the threshold autoscaler only scale horizontally; with ``cpu_millicores`` / ``memory_mb`` set they first
move the limits to those values, as an operator's deployment spec would.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np

from flash_envs.envs.autoscaling import (CPU_DOWN, CPU_UP, MEMORY_DOWN, MEMORY_UP, NOOP, REPLICA_DOWN, REPLICA_UP,
                                         AutoscalingEnv)
from flash_envs.fields import check_finite_observations, check_number, check_whole


class AutoscalingPolicy:
    """Base class: decodes the observation into the current configuration and metrics."""

    def __init__(self, env: gym.Env, cpu_millicores: int | None = None, memory_mb: int | None = None) -> None:
        unwrapped = env.unwrapped
        if not isinstance(unwrapped, AutoscalingEnv):
            raise TypeError(f"{type(self).__name__} drives flash/Autoscaling-v0, got {type(unwrapped).__name__}")
        self.env = unwrapped
        self.limit_targets = (cpu_millicores, memory_mb)
        for value, bounds, name in zip(self.limit_targets, unwrapped.bounds[1:], ("cpu_millicores", "memory_mb")):
            if value is not None and not bounds.contains(check_whole(name, value, 0)):
                raise ValueError(f"{name}={value} is not a valid setting within {bounds}")

    def reset(self, env_index: int | None = None) -> None:
        """Forget the previous episode: of every env, or only of row ``env_index`` of a batch."""

    def predict(self, obs: np.ndarray, state: Any = None, episode_start: np.ndarray | None = None,
                deterministic: bool = True) -> tuple[np.int64 | np.ndarray, Any]:
        """SB3's call: the action for one observation (an ``np.int64``), or an array of one action per row of a batch
        of observations. ``episode_start`` (a bool, or one per row) marks rows whose episode has just begun: their
        history is forgotten first. ``state`` is returned as given."""
        batch = np.asarray(obs, dtype=float)
        shape = self.env.observation_space.shape
        single = batch.shape == shape
        if single:
            batch = batch[np.newaxis]
        elif batch.ndim != 2 or batch.shape[1:] != shape:
            raise ValueError(f"{type(self).__name__}.predict takes an observation of shape {shape} or a batch of "
                             f"shape (n_envs, {shape[0]}), got shape {batch.shape}")
        check_finite_observations(batch, obs, f"{type(self).__name__}.predict")
        starts = np.zeros(len(batch), dtype=bool) if episode_start is None else np.asarray(episode_start, dtype=bool)
        if starts.size not in (1, len(batch)):
            raise ValueError(f"episode_start has {starts.size} entries for {len(batch)} observation(s)")
        starts = np.broadcast_to(starts.reshape(-1), (len(batch),))
        actions = np.empty(len(batch), dtype=np.int64)
        for row, (row_obs, start) in enumerate(zip(batch, starts)):
            if start:
                self.reset(row)
            actions[row] = self.act(row_obs, row)
        return (actions[0] if single else actions), state

    def act(self, obs: np.ndarray, env_index: int = 0) -> int:
        """The action for one observation ``obs`` of the env at row ``env_index`` of a batch (0 for a single env)."""
        raise NotImplementedError

    def config(self, obs: np.ndarray) -> tuple[int, int, int]:
        """(replicas, CPU millicores, memory MiB) as shown in the observation."""
        b = self.env.bounds
        return (round(obs[2] * b[0].high), round(obs[3] * b[1].high), round(obs[4] * b[2].high))

    def _limit_action(self, obs: np.ndarray) -> int | None:
        """The step toward the configured CPU / memory limits, or None when they are reached (or not set)."""
        _, cpu, memory = self.config(obs)
        for current, target, up, down in ((cpu, self.limit_targets[0], CPU_UP, CPU_DOWN),
                                          (memory, self.limit_targets[1], MEMORY_UP, MEMORY_DOWN)):
            if target is not None and current != target:
                return up if target > current else down
        return None


class HPA(AutoscalingPolicy):
    """Kubernetes HPA on CPU utilisation (``target`` in (0, 1]), one replica step per control interval."""

    def __init__(self, env: gym.Env, target: float = 0.6, tolerance: float = 0.1,
                 stabilisation_window_s: float = 300.0, cpu_millicores: int | None = None,
                 memory_mb: int | None = None) -> None:
        super().__init__(env, cpu_millicores, memory_mb)
        if not 0 < check_number("target", target, -math.inf) <= 1:
            raise ValueError(f"HPA target utilisation must be in (0, 1], got {target}")
        self.target = target
        self.tolerance = check_number("tolerance", tolerance, 0.0)
        stabilisation_window_s = check_number("stabilisation_window_s", stabilisation_window_s, 0.0)
        self.window = max(1, math.ceil(stabilisation_window_s / self.env.control_interval_s))
        self._recommendations: dict[int, deque[int]] = {}   # per env of a batch (row 0: a single env)

    def reset(self, env_index: int | None = None) -> None:
        if env_index is None:
            self._recommendations.clear()
        else:
            self._recommendations.pop(env_index, None)

    def desired_replicas(self, obs: np.ndarray, env_index: int = 0) -> int:
        """HPA's replica count for this observation, clipped to the replica bounds; records it in the window (of row
        ``env_index`` of a batch).

        ``ceil(replicas * utilisation / target)``, unchanged within ``tolerance`` of the target ratio; a scale-down
        goes only to the highest recommendation of the stabilisation window (never above the current count).
        """
        replicas = self.config(obs)[0]
        ratio = obs[0] / self.target
        desired = replicas if abs(ratio - 1) <= self.tolerance else math.ceil(replicas * ratio)
        window = self._recommendations.setdefault(env_index, deque(maxlen=self.window))
        window.append(desired)
        if desired < replicas:  # scale-down stabilisation: the highest recommendation in the window
            desired = min(replicas, max(window))
        return int(np.clip(desired, self.env.bounds[0].low, self.env.bounds[0].high))

    def act(self, obs: np.ndarray, env_index: int = 0) -> int:
        limit = self._limit_action(obs)
        if limit is not None:
            return limit
        replicas = self.config(obs)[0]
        desired = self.desired_replicas(obs, env_index)
        return REPLICA_UP if desired > replicas else REPLICA_DOWN if desired < replicas else NOOP


class ThresholdAutoscaler(AutoscalingPolicy):
    """Scale out when utilisation > ``upper`` or p95 > SLO; scale in when utilisation < ``lower`` and p95 < SLO/2.

    An operator sets these thresholds knowing the SLO, so with the SLO hidden from the observation
    (``slo_in_observation=False``, index 6 then being p95 in seconds) the policy reads it from the env's task.
    """

    def __init__(self, env: gym.Env, lower: float = 0.3, upper: float = 0.8, cpu_millicores: int | None = None,
                 memory_mb: int | None = None) -> None:
        super().__init__(env, cpu_millicores, memory_mb)
        if not 0 <= check_number("lower", lower, -math.inf) < check_number("upper", upper, -math.inf) <= 1:
            raise ValueError(f"thresholds need 0 <= lower < upper <= 1, got {lower}, {upper}")
        self.lower, self.upper = lower, upper

    def predict(self, obs: np.ndarray, state: Any = None, episode_start: np.ndarray | None = None,
                deterministic: bool = True) -> tuple[np.int64 | np.ndarray, Any]:
        if not self.env.slo_in_observation and np.ndim(obs) > 1 and len(obs) > 1:
            raise ValueError("with slo_in_observation=False the threshold autoscaler reads the SLO from its own env's "
                             "task, so it takes one env's observations, not a batch of several envs'")
        return super().predict(obs, state, episode_start, deterministic)

    def act(self, obs: np.ndarray, env_index: int = 0) -> int:
        limit = self._limit_action(obs)
        if limit is not None:
            return limit
        replicas = self.config(obs)[0]
        utilisation, latency_ratio = obs[0], obs[6]
        if not self.env.slo_in_observation:
            latency_ratio = obs[6] * 1000.0 / self.env.episode_task.app.slo_ms
        if (utilisation > self.upper or latency_ratio > 1) and replicas < self.env.bounds[0].high:
            return REPLICA_UP
        if utilisation < self.lower and latency_ratio < 0.5 and replicas > self.env.bounds[0].low:
            return REPLICA_DOWN
        return NOOP


class StaticPolicy(AutoscalingPolicy):
    """Move to a fixed configuration, then hold it."""

    def __init__(self, env: gym.Env, replicas: int = 4, cpu_millicores: int = 1024, memory_mb: int = 2048) -> None:
        super().__init__(env, cpu_millicores, memory_mb)
        if not self.env.bounds[0].contains(replicas):
            raise ValueError(f"replicas={replicas} is outside {self.env.bounds[0]}")
        self.replicas = replicas

    def act(self, obs: np.ndarray, env_index: int = 0) -> int:
        limit = self._limit_action(obs)
        if limit is not None:
            return limit
        replicas = self.config(obs)[0]
        return REPLICA_UP if replicas < self.replicas else REPLICA_DOWN if replicas > self.replicas else NOOP


class ConstantPolicy(AutoscalingPolicy):
    """Always the same ``action``, whatever it observes: the floor a policy that reacts to observations must clear."""

    def __init__(self, env: gym.Env, action: int) -> None:
        super().__init__(env)
        if not self.env.action_space.contains(action):
            raise ValueError(f"action {action!r} is not in the action space {self.env.action_space}")
        self.action = int(action)

    def act(self, obs: np.ndarray, env_index: int = 0) -> int:
        return self.action


class RandomPolicy(AutoscalingPolicy):
    """Uniformly random actions drawn from ``rng``."""

    def __init__(self, env: gym.Env, rng: np.random.Generator | int = 0) -> None:
        super().__init__(env)
        self.rng = np.random.default_rng(rng)

    def act(self, obs: np.ndarray, env_index: int = 0) -> int:
        return int(self.rng.integers(self.env.action_space.n))
