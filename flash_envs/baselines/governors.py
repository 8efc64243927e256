"""Linux cpufreq governors as policies for ``flash/PowerManagement-v0``.

Each governor reads, per server, the utilisation (busy fraction at the current frequency) and the current P-state
from the env's observation, as the kernel reads CPU idle time and the current frequency, and picks the next P-state:

===============  ========================================================================================
governor         rule (kernel defaults; ``L`` = P-states, fractions ``r_0 < ... < r_{L-1} = 1`` of f_max)
===============  ========================================================================================
``performance``  always the highest P-state
``powersave``    always the lowest P-state
``ondemand``     util > ``up_threshold`` (0.80): highest; else the lowest P-state >= ``r_0 + util * (1 - r_0)``
``conservative`` util > ``up_threshold`` (0.80): one P-state up; util < ``down_threshold`` (0.20): one down
``schedutil``    the lowest P-state >= ``1.25 * r_cur * util`` (= 1.25 * f_max * frequency-invariant util)
===============  ========================================================================================

"The lowest P-state >= target" is the kernel's ``CPUFREQ_RELATION_L``; targets above f_max select f_max. Two rules
are simpler than today's kernel: its ondemand resolves the target to the closest P-state (``CPUFREQ_RELATION_C``),
one lower at some loads, and its conservative moves by ``freq_step`` (5% of f_max) per sampling period, not a whole
P-state. Thresholds
are fractions (the kernel's sysfs ``up_threshold`` of 80 is 0.80 here). They have the stable-baselines3 policy
interface ``predict(obs, state=None, episode_start=None, deterministic=True) -> (action, state)`` and a ``reset()``,
so evaluation code can run them and trained agents alike. A governor made by :meth:`Governor.for_env` follows the
env's current server type, so its P-states are right on every task it runs.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Sequence

import numpy as np

from flash_envs.envs.power_management import N_FEATURES
from flash_envs.fields import check_finite_observations, check_number, check_whole
from flash_envs.sim.power import are_freq_levels


class Governor:
    """Base class: maps (utilisation, current P-state) per server to the next P-state."""

    name: ClassVar[str] = ""

    def __init__(self, freq_levels: Sequence[float], n_servers: int = 1) -> None:
        if hasattr(freq_levels, "unwrapped"):
            raise TypeError(f"{type(self).__name__} takes the frequency levels, not an env: use "
                            f"{type(self).__name__}.for_env(env)")
        self._set_levels(freq_levels)
        self.n_servers = check_whole("n_servers", n_servers, 1)
        self.env: Any = None   # set by for_env: the env whose current server type gives the P-states

    def _set_levels(self, freq_levels: Sequence[float]) -> None:
        """Use ``freq_levels`` (checked) as the P-states."""
        levels = np.asarray(freq_levels, dtype=float)
        if not are_freq_levels(levels):
            raise ValueError(f"freq_levels must be >= 2 increasing fractions of f_max, the last 1 (the rules take "
                             f"them as such: MHz made ondemand stay at the lowest), got {list(freq_levels)}")
        self.freq_levels = levels
        self._levels_of = freq_levels

    @classmethod
    def for_env(cls, env: Any, **options: Any) -> "Governor":
        """This governor for ``flash/PowerManagement-v0`` ``env`` (its ``n_servers``), with the governor's own
        ``options`` (e.g. ``up_threshold``). It reads the P-states of the env's current server type at every
        :meth:`predict`, so it stays right when the env moves to a task on another server type."""
        raw = env.unwrapped
        if not (hasattr(raw, "freq_levels") and hasattr(raw, "n_servers")):
            raise TypeError(f"{cls.__name__}.for_env drives flash/PowerManagement-v0, got {type(raw).__name__}")
        governor = cls(raw.freq_levels, raw.n_servers, **options)
        governor.env = raw
        return governor

    @property
    def top(self) -> int:
        """Index of the highest P-state."""
        return len(self.freq_levels) - 1

    def reset(self) -> None:
        """Forget any history (the kernel governors used here keep none beyond the current P-state)."""

    def predict(self, observation: np.ndarray, state: None = None, episode_start: np.ndarray | None = None,
                deterministic: bool = True) -> tuple[np.ndarray, None]:
        """The next P-state per server for one observation (or a batch), in the env's action format."""
        if self.env is not None and self.env.freq_levels is not self._levels_of:
            self._set_levels(self.env.freq_levels)
        obs = np.asarray(observation, dtype=float)
        if obs.shape[-1] != N_FEATURES * self.n_servers:
            raise ValueError(f"expected observations of length {N_FEATURES * self.n_servers} "
                             f"({self.n_servers} server(s)), got shape {obs.shape}")
        check_finite_observations(obs, observation, f"{type(self).__name__}.predict")
        per_server = obs.reshape(*obs.shape[:-1], self.n_servers, N_FEATURES)
        shares = per_server[..., [0, 2]]   # what the rules read: utilisation and P-state / (L - 1), both in [0, 1]
        outside = shares[(shares < 0) | (shares > 1)]
        if outside.size:
            raise ValueError(f"{type(self).__name__}.predict: each server's utilisation (value 0) and P-state share "
                             f"(value 2) must be in [0, 1], as the env's observation space has them; got "
                             f"{outside[0]:g}")
        util = per_server[..., 0]
        level = np.rint(per_server[..., 2] * self.top).astype(np.int64)
        action = np.clip(self._next_level(util, level), 0, self.top).astype(np.int64)
        return (action[..., 0] if self.n_servers == 1 else action), state

    def _next_level(self, util: np.ndarray, level: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _lowest_at_least(self, target: np.ndarray) -> np.ndarray:
        """Index of the lowest P-state whose frequency fraction is >= ``target`` (the highest if none is)."""
        return np.searchsorted(self.freq_levels, np.asarray(target) - 1e-12, side="left")


class Performance(Governor):
    """Always the highest P-state."""

    name = "performance"

    def _next_level(self, util: np.ndarray, level: np.ndarray) -> np.ndarray:
        return np.full_like(level, self.top)


class Powersave(Governor):
    """Always the lowest P-state."""

    name = "powersave"

    def _next_level(self, util: np.ndarray, level: np.ndarray) -> np.ndarray:
        return np.zeros_like(level)


class Ondemand(Governor):
    """Highest P-state when util > ``up_threshold``, else the lowest P-state >= ``r_0 + util * (1 - r_0)``."""

    name = "ondemand"

    def __init__(self, freq_levels: Sequence[float], n_servers: int = 1, up_threshold: float = 0.80) -> None:
        super().__init__(freq_levels, n_servers)
        self.up_threshold = check_number("up_threshold", up_threshold, 0.0, 1.0)

    def _next_level(self, util: np.ndarray, level: np.ndarray) -> np.ndarray:
        r_min = self.freq_levels[0]
        proportional = self._lowest_at_least(r_min + util * (1 - r_min))
        return np.where(util > self.up_threshold, self.top, proportional)


class Conservative(Governor):
    """One P-state up when util > ``up_threshold``, one down when util < ``down_threshold``, else hold."""

    name = "conservative"

    def __init__(self, freq_levels: Sequence[float], n_servers: int = 1, up_threshold: float = 0.80,
                 down_threshold: float = 0.20) -> None:
        super().__init__(freq_levels, n_servers)
        if not 0 <= check_number("down_threshold", down_threshold, -math.inf) < check_number(
                "up_threshold", up_threshold, -math.inf) <= 1:
            raise ValueError(f"need 0 <= down_threshold < up_threshold <= 1, got {down_threshold}, {up_threshold}")
        self.up_threshold = up_threshold
        self.down_threshold = down_threshold

    def _next_level(self, util: np.ndarray, level: np.ndarray) -> np.ndarray:
        return level + (util > self.up_threshold) - (util < self.down_threshold)


class Schedutil(Governor):
    """The lowest P-state >= ``1.25 * r_cur * util`` (25% headroom over the current demand)."""

    name = "schedutil"
    HEADROOM = 1.25

    def _next_level(self, util: np.ndarray, level: np.ndarray) -> np.ndarray:
        return self._lowest_at_least(self.HEADROOM * self.freq_levels[level] * util)


GOVERNORS: dict[str, type[Governor]] = {g.name: g for g in (Performance, Powersave, Ondemand, Conservative, Schedutil)}


def make_governor(name: str, freq_levels: Sequence[float], n_servers: int = 1) -> Governor:
    """A governor by its kernel name (see :data:`GOVERNORS`)."""
    if name not in GOVERNORS:
        raise ValueError(f"unknown governor {name!r}; expected one of {sorted(GOVERNORS)}")
    return GOVERNORS[name](freq_levels, n_servers)
