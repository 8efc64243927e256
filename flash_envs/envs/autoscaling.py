"""``flash/Autoscaling-v0``: horizontal and vertical autoscaling of a microservice (FLASH case study II)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence, cast

import numpy as np
from gymnasium import spaces

from flash_envs.envs.task_env import (TaskEnv, check_episode_length, check_slo_below_timeout,
                                      check_substep_count, check_workload)
from flash_envs.fields import check_number, check_whole
from flash_envs.sim import IntervalMetrics, ServiceSimulation, check_fidelity, make_simulation
from flash_envs.sim.service import DEFAULT_TIMEOUT_S
from flash_envs.tasks import AutoscalingTask, AutoscalingTaskFamily, default_family

NOOP, REPLICA_UP, REPLICA_DOWN, CPU_UP, CPU_DOWN, MEMORY_UP, MEMORY_DOWN = range(7)
# action -> (resource index, direction); resources: 0 replicas, 1 CPU, 2 memory
_ACTION_EFFECTS = {REPLICA_UP: (0, 1), REPLICA_DOWN: (0, -1), CPU_UP: (1, 1), CPU_DOWN: (1, -1),
                   MEMORY_UP: (2, 1), MEMORY_DOWN: (2, -1)}
MAX_RATIO = 10.0
#: The most replicas ``replica_bounds`` may allow: each is simulated on its own (an episode of 1000 takes about 0.2 s
#: in the fast fidelity, of 10 000 about 3 s, and a million did not end).
MAX_REPLICAS = 1000
#: What a user whose task's SLO is not below the service model's latency cap can do (the cap is not an env setting).
TIMEOUT_REMEDY = "give it a lower SLO"


@dataclass(frozen=True)
class ResourceBounds:
    """Lower bound, upper bound and step of one scaled resource."""

    low: int
    high: int
    step: int

    def __post_init__(self) -> None:
        if not 0 < self.low <= self.high or self.step <= 0 or (self.high - self.low) % self.step:
            raise ValueError(f"bounds need 0 < low <= high with high - low a multiple of step > 0, got {self}")

    def contains(self, value: int) -> bool:
        """Whether ``value`` is a valid setting: within ``[low, high]`` and a whole number of steps above ``low``."""
        return self.low <= value <= self.high and (value - self.low) % self.step == 0


def _resource_bounds(name: str, value: Sequence[float], step: int | None = None) -> ResourceBounds:
    """``value`` as bounds: ``(low, high, step)``, or ``(low, high)`` when ``step`` is given (else a ValueError).
    Each must be a whole number (``1e3``, as YAML gives it, is 1000; ``128.5`` is refused, naming ``name``)."""
    fields = ("low", "high") if step is not None else ("low", "high", "step")
    if np.shape(value) != (len(fields),):
        raise ValueError(f"{name} must be ({', '.join(fields)}), got {value!r}")
    low, high, *rest = [check_whole(f"{name} {field}", v, 1) for field, v in zip(fields, value)]
    return ResourceBounds(low, high, rest[0] if step is None else step)


class AutoscalingEnv(TaskEnv[AutoscalingTask]):
    """``flash/Autoscaling-v0``: horizontal and vertical autoscaling of a microservice (FLASH case II, AWARE's agent).

    ## Description
    A microservice runs ``replicas`` replicas, each with a CPU limit and a memory limit, behind one request queue (see
    :mod:`flash_envs.sim.service`). Every control interval the agent may add or remove a replica or move one limit by
    one step. The application's characteristics and its workload form the hidden *task* (:class:`AutoscalingTask`):
    the agent has to infer them from what it observes.

    ## Action Space
    ``Discrete(7)``:

    | Num   | Action                        |
    |-------|-------------------------------|
    | 0     | no-op                         |
    | 1 / 2 | +1 / -1 replica               |
    | 3 / 4 | +1 / -1 CPU step (millicores) |
    | 5 / 6 | +1 / -1 memory step (MiB)     |

    An action that would leave the bounds (default 1..20 replicas, 128..2048 m in steps of 128, 256..3072 MiB in
    steps of 128) is not applied and costs ``illegal_action_penalty``.

    ## Observation Space
    ``Box(0, high, (9,), float32)``, measured over the last control interval; values are clipped to the bounds:

    | Num | Observation                                                      | Min | Max |
    |-----|------------------------------------------------------------------|-----|-----|
    | 0   | CPU utilisation of the allocated CPU                             | 0   | 1   |
    | 1   | memory utilisation of the memory limit                           | 0   | 1   |
    | 2   | replicas / max replicas                                          | 0   | 1   |
    | 3   | CPU limit / max CPU limit                                        | 0   | 1   |
    | 4   | memory limit / max memory limit                                  | 0   | 1   |
    | 5   | arrival rate as log1p(rate) / log1p(``rate_norm``)               | 0   | 1   |
    | 6   | p95 latency / SLO (0 when the interval had no requests)          | 0   | 10  |
    | 7   | SLO preservation, min(1, SLO / p95 latency) (1 without requests) | 0   | 1   |
    | 8   | processing rate / arrival rate (10 when the arrival rate is 0)   | 0   | 10  |

    The arrival rate is the workload's mean rate over the interval; the processing rate is the requests per second
    the ready replicas (time-averaged over the interval) complete at the CPU limit. With
    ``slo_in_observation=False`` the SLO is hidden like the rest of the task: index 6 becomes the p95 latency in
    seconds (saturating at 10) and index 7 the requests rejected per request arrived (the queued requests dropped when
    capacity falls count too, so it could exceed 1; clipped to 1); the agent has to infer the SLO from rewards.

    ## Rewards
    ``alpha * utilisation + (1 - alpha) * SLO preservation - penalties``, where utilisation is the mean of CPU and
    memory utilisation and ``alpha = 0.3`` by default (AWARE). Penalties: ``illegal_action_penalty`` for an action
    outside the bounds, ``reversal_penalty`` for reversing the last scaling direction of the same resource.

    ## Starting State
    ``initial_replicas`` replicas (default 2) at ``initial_cpu`` (1024 m) and ``initial_memory`` (1024 MiB), all
    ready, empty queue; the first observation is measured over one interval under that configuration.

    ## Episode End
    Never terminates; truncates after ``episode_steps`` control intervals (default 60 of 30 s: half an hour). A
    ``step()`` after the truncation goes on simulating (and truncates again): ``reset()`` draws the workload for
    ``episode_steps + 1`` intervals, and it repeats with that period; call ``reset()`` for a new episode. An episode
    lasts at most a year (``control_interval_s * episode_steps`` <= 31 536 000 s; a longer one is refused when the env
    is made): ``reset()`` realises the episode's workload at 1 s resolution, about 1 GB for a year.

    ## Arguments
    ``gym.make("flash/Autoscaling-v0", fidelity="fast", control_interval_s=30.0, episode_steps=60, alpha=0.3,
    illegal_action_penalty=0.1, reversal_penalty=0.05, replica_bounds=(1, 20), cpu_bounds=(128, 2048, 128),
    memory_bounds=(256, 3072, 128), initial_replicas=2, initial_cpu=1024, initial_memory=1024, substep_s=5.0,
    rate_norm=1000.0, slo_in_observation=True, family=None, task=None, render_mode=None)``; ``rate_norm`` is at
    least 1e-6.
    ``fidelity="request"`` simulates every request (exact, slower). Bounds are ``(low, high)`` replicas and
    ``(low, high, step)`` millicores and MiB, whole numbers (a whole float such as YAML's ``1e3`` is taken); at most
    :data:`MAX_REPLICAS` (1000) replicas. An episode has at most a year's 1 s sub-steps
    (:data:`~flash_envs.envs.task_env.MAX_SUBSTEPS`; ``substep_s`` divides each interval). ``slo_in_observation``
    is a bool. ``family`` is an :class:`AutoscalingTaskFamily` (default:
    :meth:`AutoscalingTaskFamily.generate` with ``episode_s=control_interval_s * episode_steps``, which times its
    workloads' steps and diurnal periods to the episode); ``task`` fixes the starting task (default: the family's first
    train task). A request's latency counts at most the service model's cap (30 s,
    :data:`~flash_envs.sim.service.DEFAULT_TIMEOUT_S`), so a family or task whose SLO is not below it is refused.
    ``render_mode="ansi"`` makes :meth:`render` return a one-line summary of the last interval.

    ## Info
    ``reset`` and ``step`` return a fresh dict of ``task``; the configuration ``replicas``, ``cpu_millicores``,
    ``memory_mb``; over the last interval ``ready_replicas`` (time-averaged), ``arrival_rate`` and ``throughput``
    (requests/s), ``dropped`` (requests rejected), ``oom_kills``, ``latency_p50_ms``, ``latency_p95_ms``,
    ``latency_p99_ms`` (NaN without requests), ``cpu_utilisation``, ``memory_utilisation``, ``slo_preservation``,
    ``slo_violation`` (p95 latency above the SLO); and ``penalty`` (this step's penalties; 0 on reset).

    ## Notes
    The task is fixed at ``reset()`` (``episode_task``; see :mod:`flash_envs.envs.task_env`). The env can be pickled
    or deep-copied, during an episode too: the running SimPy processes are Python generators, which cannot be
    pickled, so the copy replays the episode's steps (a trace workload read from a file reads it again, so the file
    must still be there, unchanged, and a relative path must resolve where the copy is made; a replay that comes to
    another observation, as a rewritten file makes it, raises ``ReplayMismatch``).

    ## Version History
    * v0: initial version.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}
    family_type = AutoscalingTaskFamily
    live_attributes = {"_sim": None}   # its simulation, rebuilt by replay when unpickled

    def __init__(
        self,
        fidelity: str = "fast",
        control_interval_s: float = 30.0,
        episode_steps: int = 60,
        alpha: float = 0.3,
        illegal_action_penalty: float = 0.1,
        reversal_penalty: float = 0.05,
        replica_bounds: tuple[int, int] = (1, 20),
        cpu_bounds: tuple[int, int, int] = (128, 2048, 128),
        memory_bounds: tuple[int, int, int] = (256, 3072, 128),
        initial_replicas: int = 2,
        initial_cpu: int = 1024,
        initial_memory: int = 1024,
        substep_s: float = 5.0,
        rate_norm: float = 1000.0,
        slo_in_observation: bool = True,
        family: AutoscalingTaskFamily | None = None,
        task: AutoscalingTask | None = None,
        render_mode: str | None = None,
    ) -> None:
        self.episode_steps = check_whole("episode_steps", episode_steps, 1)
        self.control_interval_s = check_number("control_interval_s", control_interval_s, 0.0, strict=True)
        self.substep_s = check_number("substep_s", substep_s, 0.0, strict=True)
        steps = self.control_interval_s / self.substep_s
        if abs(steps - round(steps)) > 1e-9 or round(steps) < 1:   # at least one sub-step per interval
            raise ValueError(f"control_interval_s ({control_interval_s}) must be a positive multiple of substep_s "
                             f"({substep_s})")
        episode_s = self.episode_s
        check_episode_length(f"control_interval_s * episode_steps = {control_interval_s} * {episode_steps}", episode_s)
        check_substep_count(episode_s, substep_s)
        if family is None:
            family = default_family(AutoscalingTaskFamily, episode_s=episode_s)
        super().__init__(family, task, render_mode, episode_s)
        check_slo_below_timeout((*self.family.train, *self.family.test), DEFAULT_TIMEOUT_S, TIMEOUT_REMEDY)
        self.alpha = check_number("alpha", alpha, 0.0, 1.0)
        self.rate_norm = check_number("rate_norm", rate_norm, 1e-6)   # (5e-324 overflowed the observation)
        self.fidelity = check_fidelity(fidelity)
        self.illegal_action_penalty = check_number("illegal_action_penalty", illegal_action_penalty, 0.0)
        self.reversal_penalty = check_number("reversal_penalty", reversal_penalty, 0.0)
        self.bounds = (_resource_bounds("replica_bounds", replica_bounds, step=1),
                       _resource_bounds("cpu_bounds", cpu_bounds), _resource_bounds("memory_bounds", memory_bounds))
        if self.bounds[0].high > MAX_REPLICAS:
            raise ValueError(f"replica_bounds high must be at most {MAX_REPLICAS} (each replica is simulated on its "
                             f"own), got {self.bounds[0].high}")
        initial = {"initial_replicas": initial_replicas, "initial_cpu": initial_cpu, "initial_memory": initial_memory}
        self.initial_config = tuple(check_whole(name, value, 1) for name, value in initial.items())
        for name, value, bounds in zip(initial, self.initial_config, self.bounds):
            if not bounds.contains(value):
                raise ValueError(f"{name}={value} is outside its bounds {bounds}")
        if not isinstance(slo_in_observation, (bool, np.bool_)):   # bool("false") would be True
            raise TypeError(f"slo_in_observation must be True or False, got {slo_in_observation!r} "
                            f"({type(slo_in_observation).__name__})")
        self.slo_in_observation = bool(slo_in_observation)

        self.action_space = spaces.Discrete(7)
        high = np.array([1, 1, 1, 1, 1, 1, MAX_RATIO, 1, MAX_RATIO], dtype=np.float32)
        self.observation_space = spaces.Box(np.zeros(9, dtype=np.float32), high, dtype=np.float32)

        self._sim: ServiceSimulation | None = None
        self._config = list(self.initial_config)
        self._last_direction = [0, 0, 0]
        self._metrics: IntervalMetrics | None = None
        self._steps = 0

    @property
    def episode_s(self) -> float:
        """Simulated seconds of an episode: ``control_interval_s * episode_steps``."""
        return self.control_interval_s * self.episode_steps

    def _check_task(self, task: Any) -> None:
        super()._check_task(task)
        check_slo_below_timeout((task,), DEFAULT_TIMEOUT_S, TIMEOUT_REMEDY)
        check_workload(task)

    # ------------------------------------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        with self._building():
            rng_state = self._seed(seed)
            task = self._next_task(options)
            curve = task.workload.realise(self.np_random, self.control_interval_s * (self.episode_steps + 1))
            replicas, cpu, memory = self.initial_config
            sim = make_simulation(self.fidelity, task.app, curve, self._own_stream(), replicas=replicas,
                                  cpu_millicores=cpu, memory_mb=memory, substep_s=self.substep_s)
            metrics = sim.run(self.control_interval_s)
        self.close()   # the new episode is built: only now does the old one end
        self._sim = sim
        self._start_episode(task, rng_state)
        self._config = list(self.initial_config)
        self._last_direction = [0, 0, 0]
        self._steps = 0
        self._metrics = metrics
        return self._get_obs(), self._get_info(penalty=0.0)

    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        sim = self._sim
        self._check_step(action, sim is not None)
        assert sim is not None   # for mypy: _check_step raised otherwise
        penalty = self._apply(int(action))
        self._metrics = sim.run(self.control_interval_s)
        self._log_action(action)   # once the step has run: an interrupted one is not replayed in a copy
        self._steps += 1
        reward = self._reward(self._metrics) - penalty
        truncated = self._steps >= self.episode_steps
        return self._get_obs(), reward, False, truncated, self._get_info(penalty)

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return super().render()
        if self._metrics is None or self._sim is None:  # before reset() or after close(): nothing to show
            return None
        m = self._metrics
        return (f"t={self._sim.env.now:10.9g}s replicas={self._config[0]:2d} cpu={self._config[1]:4d}m "
                f"mem={self._config[2]:4d}MiB rate={m.arrival_rate:7.1f}/s p95={m.p95_ms:8.1f}ms "
                f"cpu={m.cpu_utilisation:.2f} mem={m.memory_utilisation:.2f}")

    def close(self) -> None:
        if self._sim is not None:
            self._sim.close()
            self._sim = None
        self._episode_log = None

    # ------------------------------------------------------------------------------------------------ helpers
    def _apply(self, action: int) -> float:
        if action == NOOP:
            return 0.0
        resource, direction = _ACTION_EFFECTS[action]
        bounds = self.bounds[resource]
        value = self._config[resource] + direction * bounds.step
        if not bounds.contains(value):
            return self.illegal_action_penalty
        penalty = self.reversal_penalty if self._last_direction[resource] == -direction else 0.0
        self._last_direction[resource] = direction
        self._config[resource] = value
        cast(ServiceSimulation, self._sim).configure(*self._config)   # step() checked that reset() ran
        return penalty

    def slo_preservation(self, metrics: IntervalMetrics) -> float:
        """min(1, SLO / p95 latency); 1 when nothing arrived."""
        if not np.isfinite(metrics.p95_ms) or metrics.p95_ms <= 0:
            return 1.0
        return min(1.0, self.episode_task.app.slo_ms / metrics.p95_ms)

    def _reward(self, metrics: IntervalMetrics) -> float:
        utilisation = (metrics.cpu_utilisation + metrics.memory_utilisation) / 2
        return self.alpha * utilisation + (1 - self.alpha) * self.slo_preservation(metrics)

    def _get_obs(self) -> np.ndarray:
        m = cast(IntervalMetrics, self._metrics)   # set by reset() and step()
        p95_ms = m.p95_ms if np.isfinite(m.p95_ms) else 0.0
        if self.slo_in_observation:
            latency, slo_signal = p95_ms / self.episode_task.app.slo_ms, self.slo_preservation(m)
        else:
            latency, slo_signal = p95_ms / 1000.0, m.dropped / m.arrivals if m.arrivals else 0.0
        # clipped before dividing: a rate under processing_rate / 3.4e38 made a ratio past float32, cast with a warning
        capacity_ratio = (m.processing_rate / m.arrival_rate if m.arrival_rate * MAX_RATIO > m.processing_rate
                          else MAX_RATIO)
        obs = np.array([
            m.cpu_utilisation,
            m.memory_utilisation,
            self._config[0] / self.bounds[0].high,
            self._config[1] / self.bounds[1].high,
            self._config[2] / self.bounds[2].high,
            np.log1p(m.arrival_rate) / np.log1p(self.rate_norm),
            latency,
            slo_signal,
            capacity_ratio,
        ], dtype=np.float32)
        return np.clip(obs, self.observation_space.low, self.observation_space.high)

    def _get_info(self, penalty: float) -> dict[str, Any]:
        m = cast(IntervalMetrics, self._metrics)   # set by reset() and step()
        return {
            "task": self.episode_task,
            "replicas": self._config[0],
            "cpu_millicores": self._config[1],
            "memory_mb": self._config[2],
            "ready_replicas": m.ready_replicas,
            "arrival_rate": m.arrival_rate,
            "throughput": m.throughput,
            "dropped": m.dropped,
            "oom_kills": m.oom_kills,
            "latency_p50_ms": m.p50_ms,
            "latency_p95_ms": m.p95_ms,
            "latency_p99_ms": m.p99_ms,
            "cpu_utilisation": m.cpu_utilisation,
            "memory_utilisation": m.memory_utilisation,
            "slo_preservation": self.slo_preservation(m),
            "slo_violation": bool(np.isfinite(m.p95_ms) and m.p95_ms > self.episode_task.app.slo_ms),
            "penalty": penalty,
        }
