"""A microservice with N replicas behind a load balancer, simulated with SimPy.

Model
-----
* **Service time.** A request needs ``service_time_ms`` at 1000 millicores. A share ``cpu_fraction`` of it is CPU work
  that scales with ``1000 / cpu_millicores`` (the CFS quota); the rest is I/O that CPU does not speed up. Service times
  are Gamma distributed with coefficient of variation ``service_cv`` (1 = exponential), at most
  :data:`MAX_SERVICE_CV`.
* **Queue.** One FIFO queue feeds every ready replica (an M/G/c queue). An arrival is rejected when the queue already
  holds ``timeout_s`` seconds of work for the current capacity; a rejected request counts with latency ``timeout_s``.
  When capacity falls, what the queue holds beyond that limit is dropped the same way (a request still waiting
  ``timeout_s`` after it arrived gives up; the fast fidelity drops the backlog beyond the limit at each sub-step).
* **Memory.** A replica uses ``working_set_mb * (idle_memory_fraction + (1 - idle_memory_fraction) * load)``, where
  ``load = min(1, arrival rate / (ready replicas * service rate))`` is the offered load per replica over a sub-step
  (the ready replicas averaged over the part of it in which some were), checked at its end. When that exceeds the
  memory limit a replica is OOM-killed with probability ``min(1, excess / 10%)`` per sub-step it was ready
  throughout, and that probability times the share of the sub-step it was ready in if it came up during it: so a
  restarted replica's expected life does not depend on where in a sub-step it came up (one that comes up at a
  sub-step's end is checked after the next). Its in-flight request fails, and it restarts after the startup delay (a
  Kubernetes crash loop below the idle footprint; it ends when the load falls). Memory is in use while some replica
  is ready: a sub-step's utilisation counts for the share of it in which one was.
* **Scaling.** A new replica serves from ``startup_delay_s`` after the request; scale-in cancels pending starts first,
  then retires ready replicas, which finish their in-flight request. CPU and memory limits change in place
  (Kubernetes in-place pod resize). A sub-step's capacity and utilisation count each replica for the time it was
  ready in it, so a change takes effect when it happens, in both fidelities.

Two fidelities share this class: :class:`~flash_envs.sim.request_level.RequestLevelSimulation` simulates every
request as a SimPy process (exact; for validation and small loads) and
:class:`~flash_envs.sim.fluid.FluidSimulation` advances a fluid queue per sub-step with Poisson arrival counts and
closed-form M/G/c waiting times (fast; the default for training).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np
import simpy

from flash_envs.fields import check_fields, check_number, check_whole
from flash_envs.sim.workloads import RateCurve

#: Seconds per sub-step (arrivals, service, memory checks) unless a simulation is given another.
DEFAULT_SUBSTEP_S = 5.0

#: The latency cap (s) unless a simulation is given another: the queue holds at most this much work, and no request
#: counts a longer latency (see the module docstring).
DEFAULT_TIMEOUT_S = 30.0


#: The largest ``service_cv`` simulated. Beyond it the Gamma's shape (``1 / cv^2``) is so small that most samples
#: underflow to 0: the fast mode's 256-point sample of service times degenerates (NaN latency under load) and the
#: per-request mode serves in zero time. ``results/fidelity.md`` validates cv 0.5 to 2 (p99 already +35 % at 2).
MAX_SERVICE_CV = 5.0
#: The least ``service_cv`` simulated, nearly deterministic service: the per-request mode draws Gamma service times of
#: shape ``1 / cv^2``, which a cv of 1e-200 made a division by zero (the fast mode's sample takes the same floor).
MIN_SERVICE_CV = 1e-3
#: The shortest mean service time (ms) simulated, a microsecond: a replica's service rate is its inverse, which
#: 5e-324 made a division by zero. The shortest SLO (ms) too.
MIN_SERVICE_TIME_MS = 1e-3


@dataclass(frozen=True)
class AppProfile:
    """Hidden characteristics of an application (one half of an autoscaling task). ``service_time_ms`` and
    ``slo_ms`` are at least :data:`MIN_SERVICE_TIME_MS`, ``service_cv`` in [:data:`MIN_SERVICE_CV`,
    :data:`MAX_SERVICE_CV`]."""

    name: str = "app"
    service_time_ms: float = 50.0
    cpu_fraction: float = 0.8
    service_cv: float = 1.0
    working_set_mb: float = 512.0
    idle_memory_fraction: float = 0.6
    startup_delay_s: float = 20.0
    slo_ms: float = 250.0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise TypeError(f"AppProfile.name must be a str, got {self.name!r} ({type(self.name).__name__})")
        check_number("AppProfile.working_set_mb", self.working_set_mb, 0.0, strict=True)
        for name in ("service_time_ms", "slo_ms"):   # (an SLO of 1e-300 ms overflowed latency / SLO)
            check_number(f"AppProfile.{name}", getattr(self, name), MIN_SERVICE_TIME_MS)
        check_number("AppProfile.service_cv", self.service_cv, MIN_SERVICE_CV, MAX_SERVICE_CV)
        for name in ("cpu_fraction", "idle_memory_fraction"):
            check_number(f"AppProfile.{name}", getattr(self, name), 0.0, 1.0)
        check_number("AppProfile.startup_delay_s", self.startup_delay_s, 0.0)

    def mean_service_s(self, cpu_millicores: float) -> float:
        """Mean service time (s) of one request on a replica with this CPU limit."""
        check_number("cpu_millicores", cpu_millicores, 0.0, strict=True)
        cpu_s = self.service_time_ms / 1000 * self.cpu_fraction * 1000 / cpu_millicores
        return cpu_s + self.service_time_ms / 1000 * (1 - self.cpu_fraction)

    def cpu_share(self, cpu_millicores: float) -> float:
        """Share of its CPU limit that a busy replica consumes (the rest of its time it waits on I/O)."""
        cpu_s = self.service_time_ms / 1000 * self.cpu_fraction * 1000 / cpu_millicores
        return cpu_s / self.mean_service_s(cpu_millicores)

    def memory_used_mb(self, load: float) -> float:
        """Memory a replica uses at offered load ``load`` (0..1) per replica."""
        return self.working_set_mb * (self.idle_memory_fraction + (1 - self.idle_memory_fraction) * load)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AppProfile":
        """Inverse of :meth:`to_dict`, naming any unknown field."""
        check_fields(d, cls.__dataclass_fields__, "application")
        return cls(**d)




@dataclass(frozen=True)
class IntervalMetrics:
    """What was measured over one control interval."""

    duration_s: float
    arrivals: int
    completed: int
    dropped: int
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    cpu_utilisation: float
    memory_utilisation: float
    ready_replicas: float
    processing_rate: float
    arrival_rate: float
    oom_kills: int

    @property
    def throughput(self) -> float:
        """Completed requests per second."""
        return self.completed / self.duration_s


class _PendingStart:
    """A replica that is starting up; scale-in cancels it."""

    cancelled = False


class ServiceSimulation:
    """Common part of both fidelities: the SimPy clock, replica lifecycle, limits, OOM kills and metrics.

    Subclasses implement the request path through :meth:`_on_replica_ready`, :meth:`_on_replica_removed`,
    :meth:`_serve_substep` and :meth:`_latency_stats`.
    """

    OOM_KILL_EXCESS = 0.10

    def __init__(self, app: AppProfile, curve: RateCurve, rng: np.random.Generator, replicas: int,
                 cpu_millicores: float, memory_mb: float, substep_s: float = DEFAULT_SUBSTEP_S,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        check_number("substep_s", substep_s, 0.0, strict=True)
        check_number("timeout_s", timeout_s, 0.0, strict=True)
        self.app = app
        self.curve = curve
        self.rng = rng
        self.substep_s = substep_s
        self.timeout_s = timeout_s
        self.env = simpy.Environment()
        self.ready = 0
        self._substep_start = self._ready_since = self.env.now   # replica-seconds of the current sub-step: see
        self._ready_area = self._up_area = 0.0                     # _change_ready and _servers_in_substep
        self._starting: list[_PendingStart] = []
        self._came_up: list[float] = []   # when the replicas that came up since the last memory check did
        self.substeps_done = 0   # sub-steps accounted since time 0; the last one ended at substep_end(substeps_done)
        self.substep_observers: list[Callable[[float, float, int], None]] = []
        replicas = check_whole("replicas", replicas, 0)
        self._set_limits(cpu_millicores, memory_mb)
        self.target_replicas = replicas
        for _ in range(replicas):  # the initial replicas are already up
            self._replica_up()
        self._reset_accumulators()
        self.env.process(self._substep_loop())

    # ----------------------------------------------------------------------------------------------- configuration
    def configure(self, replicas: int, cpu_millicores: float, memory_mb: float) -> None:
        """Apply a new deployment configuration (replica count and per-replica limits)."""
        replicas = check_whole("replicas", replicas, 0)
        self._set_limits(cpu_millicores, memory_mb)
        while self.target_replicas < replicas:
            self.target_replicas += 1
            self._begin_start()
        while self.target_replicas > replicas:
            self.target_replicas -= 1
            if self._starting:
                self._starting.pop().cancelled = True
            else:
                self._retire_replica(killed=False)

    def _set_limits(self, cpu_millicores: float, memory_mb: float) -> None:
        check_number("cpu_millicores", cpu_millicores, 0.0, strict=True)
        check_number("memory_mb", memory_mb, 0.0, strict=True)
        self.cpu_millicores = float(cpu_millicores)
        self.memory_mb = float(memory_mb)
        self.service_rate = 1.0 / self.app.mean_service_s(self.cpu_millicores)  # per busy replica, req/s
        self.cpu_share = self.app.cpu_share(self.cpu_millicores)

    def _begin_start(self) -> None:
        pending = _PendingStart()
        self._starting.append(pending)
        self.env.process(self._start_replica(pending))

    def _start_replica(self, pending: "_PendingStart"):
        yield self.env.timeout(self.app.startup_delay_s)
        if not pending.cancelled:
            self._starting.remove(pending)
            self._replica_up()

    def _replica_up(self) -> None:
        self._change_ready(+1)
        self._came_up.append(self.env.now)
        self._on_replica_ready()

    def _retire_replica(self, killed: bool) -> None:
        self._change_ready(-1)
        self._on_replica_removed(killed)

    def _change_ready(self, delta: int) -> None:
        """Change the ready count, first crediting the current sub-step with the replica-seconds of the old one (and
        with the seconds some replica was ready in)."""
        now = self.env.now
        self._ready_area += self.ready * (now - self._ready_since)
        self._up_area += (now - self._ready_since) * (self.ready > 0)
        self._ready_since = now
        self.ready += delta

    def _servers_in_substep(self) -> tuple[float, float]:
        """Over the sub-step that ends now: the time-averaged ready replicas (the count itself if it never changed),
        and the share of it in which some replica was ready."""
        now = self.env.now
        if self._ready_since == self._substep_start:
            servers, up_share = float(self.ready), float(self.ready > 0)
        else:
            span = now - self._substep_start
            servers = (self._ready_area + self.ready * (now - self._ready_since)) / span
            up_share = (self._up_area + (now - self._ready_since) * (self.ready > 0)) / span
        self._substep_start = self._ready_since = now
        self._ready_area = self._up_area = 0.0
        return servers, up_share

    # ----------------------------------------------------------------------------------------------- time stepping
    def run(self, duration_s: float) -> IntervalMetrics:
        """Advance the simulation by ``duration_s`` (a multiple of ``substep_s``) and return its metrics."""
        steps = duration_s / self.substep_s
        if abs(steps - round(steps)) > 1e-9 or round(steps) < 1:
            raise ValueError(f"duration_s={duration_s} must be a positive multiple of substep_s={self.substep_s}")
        self._reset_accumulators()
        start = self.env.now
        end = self.substep_end(self.substeps_done + round(steps))   # exactly round(steps) sub-steps, see substep_end
        self.env.run(until=end)
        while self.env.peek() <= end:  # events due exactly at the end belong to this interval
            self.env.step()
        mean, p50, p95, p99 = self._latency_stats()
        busy_time = max(self._ready_time, 1e-12)
        return IntervalMetrics(
            duration_s=duration_s,
            arrivals=self._arrivals,
            completed=int(round(self._completed)),   # the fast fidelity counts fractions of requests
            dropped=int(round(self._dropped)),
            mean_ms=1000 * mean,
            p50_ms=1000 * p50,
            p95_ms=1000 * p95,
            p99_ms=1000 * p99,
            cpu_utilisation=min(1.0, self._cpu_busy_time / busy_time) if self._ready_time > 0 else 0.0,
            memory_utilisation=self._memory_utilisation_sum / round(steps),
            ready_replicas=self._ready_time / duration_s,
            processing_rate=self._ready_time / duration_s * self.service_rate,
            arrival_rate=self.curve.mean_rate(start, end),
            oom_kills=self._oom_kills,
        )

    def _reset_accumulators(self) -> None:
        self._interval_start = self.env.now
        self._arrivals = 0
        self._completed: float = 0   # the fast fidelity counts fractions of requests
        self._dropped: float = 0
        self._cpu_busy_time = 0.0
        self._ready_time = 0.0
        self._memory_utilisation_sum = 0.0
        self._oom_kills = 0

    def substep_end(self, k: int) -> float:
        """When sub-step ``k`` (counted from 1 since time 0) ends: ``k * substep_s``, computed from the count rather
        than by adding ``substep_s`` up, so that a sub-step such as 0.1 or 0.2 s, which binary floats do not hold
        exactly, does not drift against the intervals: every interval of ``duration_s`` holds exactly
        ``duration_s / substep_s`` sub-steps, and ends where its last one does."""
        return k * self.substep_s

    def _substep_loop(self):
        integral_before = self.curve.integral(self.env.now)
        while True:
            # now is substep_end(k - 1) and the difference is exact (Sterbenz), so the timeout fires at substep_end(k)
            yield self.env.timeout(self.substep_end(self.substeps_done + 1) - self.env.now)
            self.substeps_done += 1
            servers, up_share = self._servers_in_substep()
            integral_now = self.curve.integral(self.env.now)
            expected_arrivals, integral_before = integral_now - integral_before, integral_now
            busy_fraction = self._serve_substep(self.substep_s, servers, expected_arrivals)
            self._ready_time += servers * self.substep_s
            self._cpu_busy_time += busy_fraction * servers * self.substep_s * self.cpu_share
            self._check_memory(expected_arrivals, servers, up_share)
            for observer in self.substep_observers:  # e.g. an energy meter: (dt, busy fraction, servers)
                observer(self.substep_s, busy_fraction, servers)

    def _check_memory(self, expected_arrivals: float, servers: float, up_share: float) -> None:
        """Memory follows the offered load per replica over the sub-step that ends now (``servers``: its time-averaged
        ready replicas), the same in both fidelities; it is in use for the ``up_share`` of the sub-step in which some
        replica was ready. See the module docstring for the kills."""
        came_up, self._came_up = self._came_up[-self.ready:] if self.ready else [], []
        if servers <= 0:
            return   # nothing ran, nothing used memory (the sum of utilisations gains 0)
        # the arrival rate over the mean ready count while some replica was up: a replica up for half the sub-step
        # carries the rate of one up for all of it, not the sub-step's arrivals in half the time
        offered_load = min(1.0, expected_arrivals * up_share / (servers * self.service_rate * self.substep_s))
        used = self.app.memory_used_mb(offered_load)
        self._memory_utilisation_sum += min(1.0, used / self.memory_mb) * up_share
        excess = used / self.memory_mb - 1
        if excess <= 0 or self.ready == 0:
            return
        p_kill = min(1.0, excess / self.OOM_KILL_EXCESS)
        shares = (self.env.now - np.asarray(came_up)) / self.substep_s   # of the sub-step each new one was ready
        kills = int(self.rng.binomial(self.ready - len(came_up), p_kill)) + int(
            (self.rng.random(len(came_up)) < p_kill * np.minimum(shares, 1.0)).sum())
        for _ in range(kills):
            self._oom_kills += 1
            self._retire_replica(killed=True)
            self._begin_start()  # the pod restarts

    def close(self) -> None:
        """Break the reference cycles of a SimPy environment so that it is freed at once, not at the next full
        garbage collection (which, in a long training run, can come late enough to look like a leak)."""
        queue = self.env._queue  # SimPy has no public call for this; its Environment keeps events in _queue
        for *_, event in queue:
            event.callbacks = []  # a pending event and the process waiting on it reference each other
        queue.clear()
        for name in ("process", "timeout", "event", "all_of", "any_of"):
            self.env.__dict__.pop(name, None)  # methods bound to the environment by SimPy's BoundClass
        self.substep_observers.clear()  # observers are usually methods of an object that holds this simulation

    def max_queue(self) -> float:
        """Queue length beyond which arrivals are rejected: ``timeout_s`` seconds of work at current capacity."""
        return self.ready * self.service_rate * self.timeout_s

    # ------------------------------------------------------------------------------------------ fidelity-specific
    def _on_replica_ready(self) -> None:
        raise NotImplementedError

    def _on_replica_removed(self, killed: bool) -> None:
        raise NotImplementedError

    def _serve_substep(self, dt: float, servers: float, expected_arrivals: float) -> float:
        """Account for the sub-step that just ended (``servers`` is its time-averaged count of ready replicas,
        ``expected_arrivals`` the rate curve's integral over it); return the replicas' busy fraction during it."""
        raise NotImplementedError

    def _latency_stats(self) -> tuple[float, float, float, float]:
        """Mean, p50, p95, p99 response time (s) over the interval, rejected requests counted at ``timeout_s``."""
        raise NotImplementedError
