"""``flash/PowerManagement-v0``: DVFS on heterogeneous servers under an SLO (FLASH case III).

Spaces, rewards, episodes and arguments are documented on :class:`PowerManagementEnv`.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from flash_envs.envs.task_env import (TaskEnv, check_episode_length, check_slo_below_timeout,
                                      check_substep_count, check_workload)
from flash_envs.fields import check_number, check_whole
from flash_envs.power_tasks import PowerTask, PowerTaskFamily
from flash_envs.tasks import default_family
from flash_envs.sim import check_fidelity
from flash_envs.sim.dvfs import DVFSServer, ServerInterval, check_transition_latency

N_FEATURES = 5
RATIO_CAP = 10.0
"""Where the arrival-rate and latency ratios of the observation saturate (the reward uses the unsaturated p95)."""
MAX_SERVERS = 1000
"""The most servers one env simulates (each is simulated on its own; 10^14 failed in a MemoryError making the action
space)."""


#: What a user whose task's SLO is not below ``timeout_s`` can do (e.g. a family drawn on a slow SPECpower server);
#: the message before it names the cap.
TIMEOUT_REMEDY = "give the env a larger timeout_s, or the task a lower SLO"


def load_family_file(family_file: str) -> PowerTaskFamily:
    """The :class:`PowerTaskFamily` in the YAML file ``family_file`` (the env's ``family_file`` argument, a path
    relative to the working directory unless absolute): a TypeError unless it is a str, a ValueError if it is empty, a
    ``FileNotFoundError`` if there is no such file, and the ``DataFormatError`` of
    :meth:`~flash_envs.tasks.TaskFamily.load_yaml` if the file holds no family. Each file is read once while it is
    unchanged (same size and modification time): an agent makes an env per evaluation, and a family with inline
    traces can take a second or more to read."""
    if not isinstance(family_file, str):
        raise TypeError(f"family_file must be the path (a str) of a task family's YAML file, or None, got "
                        f"{family_file!r} ({type(family_file).__name__})")
    if not family_file:
        raise ValueError("family_file is empty: give the path of a task family's YAML file, or None (the default "
                         "family)")
    path = Path(family_file).resolve()
    if not path.is_file():
        what = "a folder, not a file" if path.is_dir() else "no such file"
        where = "" if Path(family_file).is_absolute() else f" (relative to the working directory: {path})"
        raise FileNotFoundError(f"family_file {family_file!r}: {what}{where}")
    stat = path.stat()
    return _family_in(path, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _family_in(path: Path, size: int, mtime_ns: int) -> PowerTaskFamily:
    """The family in ``path`` as it is at ``size`` and ``mtime_ns`` (the keys that tell an edited file)."""
    return PowerTaskFamily.load_yaml(path)


class PowerManagementEnv(TaskEnv[PowerTask]):
    """``flash/PowerManagement-v0``: DVFS on heterogeneous servers serving a latency-critical workload (FLASH case III).

    ## Description
    ``n_servers`` servers of one type (a SPECpower_ssj2008-measured model, see :mod:`flash_envs.sim.server_catalogue`)
    each receive the task's arrival-rate workload (a load balancer splits ``n_servers`` times that rate evenly). Every
    ``interval_s`` the agent picks a P-state (frequency level) per server; the switch takes effect
    ``transition_latency_s`` later. Lower frequency saves power (``f V^2`` scaling fitted to a measured DVFS table) but
    slows the CPU-bound part of every request (``app.cpu_fraction``), raising utilisation and latency. The server
    type, the application's frequency sensitivity, its service time, the workload and the p95 SLO form the hidden task
    (:class:`~flash_envs.power_tasks.PowerTask`); test tasks use server types never seen in training. The service
    model is the shared queue simulation (:mod:`flash_envs.sim`) with one replica per core, in the ``"fast"`` (fluid)
    or ``"request"`` (per-request) fidelity; power and energy come from :mod:`flash_envs.sim.power`.

    ## Action Space
    ``Discrete(L)`` for one server, ``MultiDiscrete([L] * n_servers)`` for several: the P-state of each server,
    0 = lowest frequency, ``L - 1`` = f_max. ``L`` is the P-state count of the family's server types (the same for
    every task): 5 for the catalogue (59.9, 69.9, 79.9, 89.9, 100% of f_max), and as many as your DVFS table has for a
    family on your own servers (``family`` or ``family_file``).

    ## Observation Space
    ``Box(0, high, (5 * n_servers,), float32)``: five values per server, server after server (server ``k``'s value
    ``Num`` is at index ``5 * k + Num``), measured over the last interval:

    | Num | Observation                                                              | Min | Max |
    |-----|--------------------------------------------------------------------------|-----|-----|
    | 0   | utilisation: busy fraction of the cores                                  | 0   | 1   |
    | 1   | arrival rate / the server's capacity at f_max (saturates at 10)          | 0   | 10  |
    | 2   | P-state in effect at the end of the interval / (L - 1)                   | 0   | 1   |
    | 3   | p95 latency / SLO (0 when the interval had no requests; saturates at 10) | 0   | 10  |
    | 4   | mean power / the model's peak power (f_max, full load)                   | 0   | 1   |

    The arrival rate is the workload's mean rate over the interval (the offered load, the same for every server), not
    a count of the requests drawn.

    ## Rewards
    ``-power_share - slo_weight * slo_violation``: ``power_share`` = the sum of the servers' mean powers over the
    interval / the sum of their peak powers, ``slo_violation`` = the share of servers whose interval p95 latency
    exceeds the SLO.

    ## Starting State
    Time 0, every server at f_max with an empty queue; the workload is drawn from ``np_random``. The first observation
    has utilisation and p95 at 0, the P-state at 1 (f_max), the idle power at f_max / peak power, and the arrival
    ratio at the workload's rate at time 0.

    ## Episode End
    Never terminates; truncates after ``episode_s`` simulated seconds (``episode_s / interval_s`` steps, 180 by
    default). A ``step()`` after the truncation goes on simulating (and truncates again): ``reset()`` draws the workload
    for ``episode_s + interval_s`` seconds, and it repeats with that period (its rate at time ``t`` is that at ``t mod
    (episode_s + interval_s)``); call ``reset()`` for a new episode. An episode lasts at most a year (``episode_s`` <=
    31 536 000 s; a longer one is refused when the env is made): ``reset()`` realises the episode's workload at 1 s
    resolution, about 1 GB for a year.

    ## Arguments
    ``gym.make("flash/PowerManagement-v0", n_servers=1, family=None, task=None, fidelity="fast", interval_s=5.0,
    substep_s=1.0, transition_latency_s=1.0, episode_s=900.0, slo_weight=1.0, timeout_s=5.0, render_mode=None,
    family_file=None)``; ``n_servers`` is at most :data:`MAX_SERVERS` (1000), and an
    episode has at most a year's 1 s sub-steps (:data:`~flash_envs.envs.task_env.MAX_SUBSTEPS`).
    ``family`` is a :class:`~flash_envs.power_tasks.PowerTaskFamily` (default: :meth:`PowerTaskFamily.generate` with
    this ``episode_s``, which times its workloads' steps and diurnal periods to the episode); ``family_file``, instead
    of it, the path (a str; relative to the working directory) of a family's YAML file
    (:meth:`PowerTaskFamily.save_yaml`), which the env loads: unlike a family object it can be saved with a trained
    agent, and so set in a config's ``env.kwargs``, to give the env the P-states of a family on your own servers (a
    file is read again only when changed). ``task`` fixes the starting task (default: the family's first train task).
    ``timeout_s`` caps a request's latency: a server's queue holds at most ``timeout_s`` seconds of work for its
    current capacity, a request beyond that is rejected and counts with latency ``timeout_s`` (when a lower P-state
    cuts the capacity, so does the queued work beyond it: at the sub-step's end in the fast fidelity, each request once
    it has waited ``timeout_s`` in the per-request one), and no latency counts more (the service model's rule,
    :mod:`flash_envs.sim.service`, whose default is 30 s). So every task's SLO must be below ``timeout_s`` (else it
    could never be missed): a family or task with one at or above it is refused. ``render_mode="ansi"`` makes
    :meth:`render` return the last interval (or the starting state), a line per server: its P-state as a share of
    f_max, utilisation, mean power, p95 latency against the SLO, and arrival rate.

    ## Info
    ``reset`` and ``step`` return a fresh dict of ``task``, ``time_s``; the scalars
    ``energy_j`` (all servers, this interval), ``episode_energy_j``, ``power_share``, ``slo_violation`` (the two reward
    terms), ``transitions`` (P-state switches that took effect: within the interval, or at its start when
    ``transition_latency_s`` is 0), ``dropped`` (requests); and per-server lists
    ``level`` (in effect at the end of the interval), ``utilisation``, ``power_w``, ``p95_ms`` (0 without requests)
    and ``arrival_rate`` (requests/s). At ``reset`` they describe the starting state the observation shows: every
    server idle at its top P-state, no energy used, no requests served, the workload's rate at time 0.

    ## Notes
    The task is fixed at ``reset()`` (``episode_task``; see :mod:`flash_envs.envs.task_env`). The env can be pickled
    or deep-copied, during an episode too: the running SimPy processes are Python generators, which cannot be
    pickled, so the copy replays the episode's steps (a trace workload read from a file reads it again, so the file
    must still be there, unchanged, and a relative path must resolve where the copy is made; a replay that comes to
    another observation, as a rewritten file makes it, raises ``ReplayMismatch``).

    ## Version History
    * v0: initial version.
    """

    metadata: dict[str, Any] = {"render_modes": ["ansi"], "render_fps": 4}
    family_type = PowerTaskFamily
    live_attributes = {"_servers": []}   # its simulation, rebuilt by replay when unpickled

    def __init__(self, n_servers: int = 1, family: PowerTaskFamily | None = None, task: PowerTask | None = None,
                 fidelity: str = "fast", interval_s: float = 5.0, substep_s: float = 1.0,
                 transition_latency_s: float = 1.0, episode_s: float = 900.0, slo_weight: float = 1.0,
                 timeout_s: float = 5.0, render_mode: str | None = None, family_file: str | None = None) -> None:
        n_servers = check_whole("n_servers", n_servers, 1)
        if n_servers > MAX_SERVERS:
            raise ValueError(f"n_servers must be at most {MAX_SERVERS} (each server is simulated on its own), got "
                             f"{n_servers}")
        fidelity = check_fidelity(fidelity)
        for name, value in (("interval_s", interval_s), ("substep_s", substep_s), ("episode_s", episode_s),
                            ("timeout_s", timeout_s)):
            check_number(name, value, 0.0, strict=True)
        check_number("slo_weight", slo_weight, 0.0)
        for name, value, unit in (("interval_s", interval_s, substep_s), ("episode_s", episode_s, interval_s)):
            steps = value / unit
            if abs(steps - round(steps)) > 1e-9 or round(steps) < 1:
                raise ValueError(f"{name}={value} must be a positive multiple of {unit}")
        check_transition_latency(transition_latency_s, substep_s)
        check_episode_length(f"episode_s={episode_s}", episode_s)
        check_substep_count(episode_s, substep_s)
        if family_file is not None:
            if family is not None:
                raise ValueError("give the env a family or a family_file, not both")
            family = load_family_file(family_file)
        family = default_family(PowerTaskFamily, episode_s=episode_s) if family is None else family
        self.timeout_s = check_number("timeout_s", timeout_s, 0.0, strict=True)   # before the task is checked
        super().__init__(family, task, render_mode, episode_s)
        self.n_servers = n_servers
        self.fidelity = fidelity
        self.interval_s = check_number("interval_s", interval_s, 0.0, strict=True)   # (float() would take a string)
        self.substep_s = check_number("substep_s", substep_s, 0.0, strict=True)
        self.transition_latency_s = check_number("transition_latency_s", transition_latency_s, 0.0)
        self.episode_s = check_number("episode_s", episode_s, 0.0, strict=True)
        self.slo_weight = check_number("slo_weight", slo_weight, 0.0)
        counts = {task.name: task.server.n_levels for task in (*self.family.train, *self.family.test)}
        if len(set(counts.values())) > 1:   # one action space for every task: found only at a reset before
            raise ValueError(f"the family's tasks have {sorted(set(counts.values()))} P-states (e.g. "
                             f"{dict(list(counts.items())[:3])}); the env's one action space needs the same number for "
                             "every task")
        check_slo_below_timeout((*self.family.train, *self.family.test), self.timeout_s, TIMEOUT_REMEDY)
        if self.n_servers == 1:
            self.action_space: spaces.Space = spaces.Discrete(self.n_levels)
        else:
            self.action_space = spaces.MultiDiscrete([self.n_levels] * self.n_servers)
        high = np.tile(np.array([1, RATIO_CAP, 1, RATIO_CAP, 1], dtype=np.float32), self.n_servers)
        self.observation_space = spaces.Box(0.0, high, dtype=np.float32)
        self._servers: list[DVFSServer] = []
        self._obs = np.zeros(N_FEATURES * self.n_servers, dtype=np.float32)
        self._episode_energy_j = 0.0
        self._last_interval: tuple | None = None   # what render() shows: time, then per server (_info sets it)

    def _check_task(self, task: Any) -> None:
        super()._check_task(task)
        if task.server.n_levels != self.n_levels:
            raise ValueError(f"task {task.name!r} has {task.server.n_levels} P-states; this env's action space has "
                             f"{self.n_levels} (as its family's tasks have: make the env with a family of the task's "
                             "P-states, family= or family_file=)")
        check_slo_below_timeout((task,), self.timeout_s, TIMEOUT_REMEDY)
        check_workload(task)

    # --------------------------------------------------------------------------------------------------- gym API
    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        with self._building():
            rng_state = self._seed(seed)
            task = self._next_task(options)
            curve = task.workload.realise(self.np_random, self.episode_s + self.interval_s)
            servers = [DVFSServer(task.server, task.app, curve, self._own_stream(), fidelity=self.fidelity,
                                  substep_s=self.substep_s, transition_latency_s=self.transition_latency_s,
                                  timeout_s=self.timeout_s)
                       for _ in range(self.n_servers)]
        self.close()   # the new episode is built: only now does the old one end
        self._servers = servers
        self._start_episode(task, rng_state)
        self._episode_energy_j = 0.0
        idle = task.server.power(1.0, 0.0) / task.server.peak_w
        rate = curve.rate_at(0.0)
        self._obs = np.tile(np.array([0.0, 0.0, 1.0, 0.0, idle], dtype=np.float32), self.n_servers)
        self._obs[1::N_FEATURES] = min(RATIO_CAP, rate / self._servers[0].capacity())
        n = self.n_servers   # the starting state the observation shows: top P-state, idle, no requests served yet
        return self._get_obs(), self._info(0.0, 0.0, np.full(n, idle * task.server.peak_w), np.zeros(n), 0, 0,
                                           [s.level for s in servers], [0.0] * n, np.zeros(n), [rate] * n)

    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self._check_step(action, bool(self._servers))
        for server, level in zip(self._servers, np.atleast_1d(action)):
            server.request_level(int(level))
        intervals = [server.run(self.interval_s) for server in self._servers]
        self._log_action(action)   # once the step has run: an interrupted one is not replayed in a copy
        self._obs, violations, p95 = self._observe(intervals)
        energy = float(sum(iv.energy_j for iv in intervals))
        self._episode_energy_j += energy
        now = self._servers[0].now
        info = self._info(now, energy, np.array([iv.mean_power_w for iv in intervals]), violations,
                          sum(iv.transitions for iv in intervals), sum(iv.metrics.dropped for iv in intervals),
                          [iv.level for iv in intervals], [iv.utilisation for iv in intervals], p95,
                          [iv.metrics.arrival_rate for iv in intervals])
        reward = -info["power_share"] - self.slo_weight * info["slo_violation"]
        truncated = now >= self.episode_s - 1e-9
        return self._get_obs(), float(reward), False, truncated, info

    # --------------------------------------------------------------------------------------------------- helpers
    def _get_obs(self) -> np.ndarray:
        return self._obs.copy()

    def _observe(self, intervals: list[ServerInterval]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Observation, per-server SLO violations and p95 (ms, 0 when the interval had no requests)."""
        task = self.episode_task
        p95 = np.array([iv.metrics.p95_ms for iv in intervals])
        p95 = np.where(np.isnan(p95), 0.0, p95)
        violations = p95 > task.app.slo_ms
        capacity = self._servers[0].capacity()
        obs = np.empty((self.n_servers, N_FEATURES), dtype=np.float32)
        obs[:, 0] = [iv.utilisation for iv in intervals]
        obs[:, 1] = np.minimum(RATIO_CAP, [iv.metrics.arrival_rate / capacity for iv in intervals])
        obs[:, 2] = [iv.level / (self.n_levels - 1) for iv in intervals]
        obs[:, 3] = np.minimum(RATIO_CAP, p95 / task.app.slo_ms)
        obs[:, 4] = [iv.mean_power_w / task.server.peak_w for iv in intervals]
        return obs.ravel(), violations, p95

    def _info(self, time_s: float, energy_j: float, power_w: np.ndarray, violations: np.ndarray, transitions: int,
              dropped: int, level: list[int], utilisation: list[float], p95_ms: np.ndarray,
              arrival_rate: list[float]) -> dict[str, Any]:
        """The info dict of ``reset`` and ``step`` (see the class docstring), from the per-server figures, which are
        kept for :meth:`render`."""
        self._last_interval = (time_s, list(zip(level, utilisation, power_w.tolist(), p95_ms.tolist(), arrival_rate)))
        return {
            "task": self.episode_task,
            "time_s": time_s,
            "energy_j": energy_j,
            "episode_energy_j": self._episode_energy_j,
            "power_share": float(power_w.sum() / (self.episode_task.server.peak_w * self.n_servers)),
            "slo_violation": float(violations.mean()),
            "transitions": transitions,
            "dropped": dropped,
            "level": level,
            "utilisation": utilisation,
            "power_w": power_w.tolist(),
            "p95_ms": p95_ms.tolist(),
            "arrival_rate": arrival_rate,
        }

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return super().render()
        if self._last_interval is None:   # before reset() or after close(): nothing to show
            return None
        (time_s, servers), task = self._last_interval, self.episode_task
        return "\n".join(f"t={time_s:10.9g}s server {k}: f={task.server.level_fraction(level):4.0%} util={util:.2f} "
                         f"power={power_w:6.1f}W p95={p95_ms:8.1f}ms/{task.app.slo_ms:g}ms rate={rate:7.1f}/s"
                         for k, (level, util, power_w, p95_ms, rate) in enumerate(servers))

    def close(self) -> None:
        """Free the servers' simulations (see :meth:`~flash_envs.sim.service.ServiceSimulation.close`)."""
        for server in self._servers:
            server.sim.close()
        self._servers = []
        self._episode_log = None
        self._last_interval = None

    @property
    def n_levels(self) -> int:
        """P-states per server (``L``), as the family's first train task has; every task run must have as many."""
        return self.family.train[0].server.n_levels

    @property
    def episode_steps(self) -> int:
        """Control intervals per episode."""
        return round(self.episode_s / self.interval_s)

    @property
    def freq_levels(self) -> tuple[float, ...]:
        """P-states of the current episode's server type as fractions of f_max."""
        return self.episode_task.server.freq_levels

