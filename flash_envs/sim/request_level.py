"""Exact fidelity: every request is a SimPy process (for validation and small loads).

Arrivals form a non-homogeneous Poisson process drawn by time rescaling of the workload's rate curve. Each ready
replica is a token in a FIFO :class:`simpy.Store`; a request takes a token, holds it for a Gamma-distributed service
time and returns it. Response times are recorded one by one, so percentiles are exact.
"""

from __future__ import annotations

from typing import cast

import numpy as np
import simpy

from flash_envs.sim.service import ServiceSimulation


class _Replica:
    """A ready replica; ``state`` becomes ``"retired"`` on scale-in and ``"killed"`` on an OOM kill."""

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state = "ready"


class RequestLevelSimulation(ServiceSimulation):
    """Per-request discrete-event simulation; see the module docstring."""

    def __init__(self, *args, **kwargs) -> None:
        self._replicas: list[_Replica] = []
        self._latencies: list[float] = []
        self._busy_servers = 0    # replicas serving a request now
        self._busy_area = 0.0     # replica-seconds of service since the last sub-step was accounted
        self._busy_since = 0.0    # when _busy_servers last changed (or the area was last taken)
        self._idle: simpy.Store | None = None
        super().__init__(*args, **kwargs)
        self.env.process(self._arrival_process())

    def _store(self) -> simpy.Store:
        if self._idle is None:
            self._idle = simpy.Store(self.env)
        return self._idle

    def _on_replica_ready(self) -> None:
        replica = _Replica()
        self._replicas.append(replica)
        self._store().put(replica)

    def _on_replica_removed(self, killed: bool) -> None:
        idle = self._store().items
        if killed:  # the OOM killer does not care whether the replica is busy
            replica = self._replicas.pop(int(self.rng.integers(len(self._replicas))))
        else:  # scale-in retires an idle replica if there is one
            replica = next((r for r in reversed(self._replicas) if r in idle), self._replicas[-1])
            self._replicas.remove(replica)
        replica.state = "killed" if killed else "retired"
        if replica in idle:
            idle.remove(replica)

    def close(self) -> None:
        if self._idle is not None:  # requests waiting for a replica and the store reference each other
            for request in self._idle.get_queue:
                request.callbacks, request.proc = [], None
            self._idle.get_queue.clear()
            for name in ("put", "get"):
                self._idle.__dict__.pop(name, None)
        super().close()

    def _arrival_process(self):
        shape = 1.0 / self.app.service_cv**2
        level = self.curve.integral(self.env.now)
        while True:
            level += self.rng.exponential()
            yield self.env.timeout(self.curve.inverse_integral(level) - self.env.now)
            self._arrivals += 1
            if len(self._store().get_queue) >= self.max_queue():
                self._reject()
            else:
                service = self.rng.gamma(shape, 1.0 / (shape * self.service_rate))
                self.env.process(self._request(service))

    def _request(self, service_s: float):
        arrived = self.env.now
        replica = yield self._store().get()
        self._change_busy(+1)
        yield self.env.timeout(service_s)
        self._change_busy(-1)
        if replica.state == "killed":
            self._reject()
            return
        self._completed += 1
        self._latencies.append(min(self.env.now - arrived, self.timeout_s))
        if replica.state == "ready":
            self._store().put(replica)

    def _reject(self) -> None:
        self._dropped += 1
        self._latencies.append(self.timeout_s)

    def _reset_accumulators(self) -> None:
        super()._reset_accumulators()
        self._latencies = []

    def _change_busy(self, delta: int) -> None:
        """Add the replica-seconds of service up to now to the area, then ``delta`` replicas to those serving."""
        now = self.env.now
        self._busy_area += self._busy_servers * (now - self._busy_since)
        self._busy_servers += delta
        self._busy_since = now

    def _serve_substep(self, dt: float, servers: float, expected_arrivals: float) -> float:
        """The busy fraction of the replicas over the sub-step that just ended: service time is counted in the
        sub-steps it spans (counted where a request's service started, a long service overflowed its sub-step and was
        cut at 1, so utilisation and energy came out low with short sub-steps at high load)."""
        self._change_busy(0)
        busy, self._busy_area = self._busy_area, 0.0
        return min(1.0, busy / (servers * dt)) if servers > 0 else 0.0

    def _latency_stats(self) -> tuple[float, float, float, float]:
        if not self._latencies:
            return (float("nan"),) * 4
        return cast("tuple[float, float, float, float]",   # three percentiles
                    (float(np.mean(self._latencies)),
                     *(float(v) for v in np.percentile(self._latencies, (50, 95, 99)))))
