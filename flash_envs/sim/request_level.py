"""Exact fidelity: every request is a SimPy process (for validation and small loads).

Arrivals form a non-homogeneous Poisson process drawn by time rescaling of the workload's rate curve. Each ready
replica is a token in a FIFO :class:`simpy.Store`; a request takes a token, holds it for a Gamma-distributed service
time and returns it. A request that has not got a replica ``timeout_s`` after it arrived gives up (capacity fell after
the queue admitted it), and an OOM kill fails the request in service on the killed replica at that moment; both count
as dropped. Response times are recorded one by one, so percentiles are exact.
"""

from __future__ import annotations

from collections import deque
from typing import cast

import numpy as np
import simpy

from flash_envs.sim.service import ServiceSimulation


class _Replica:
    """A ready replica; ``state`` becomes ``"retired"`` on scale-in and ``"killed"`` on an OOM kill. ``serving`` is
    the request process it serves, if any."""

    __slots__ = ("state", "serving")

    def __init__(self) -> None:
        self.state = "ready"
        self.serving: simpy.Process | None = None


class RequestLevelSimulation(ServiceSimulation):
    """Per-request discrete-event simulation; see the module docstring."""

    def __init__(self, *args, **kwargs) -> None:
        self._replicas: list[_Replica] = []
        self._latencies: list[float] = []
        self._busy_servers = 0    # replicas serving a request now
        self._busy_area = 0.0     # replica-seconds of service since the last sub-step was accounted
        self._busy_since = 0.0    # when _busy_servers last changed (or the area was last taken)
        self._idle: simpy.Store | None = None
        self._waiting: deque[tuple[float, simpy.Event]] = deque()   # (arrival, request for a replica), FIFO
        self._give_up_armed = False   # a timer waits for the longest-waiting request's timeout
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
        elif killed and replica.serving is not None:   # its request fails now; a retired one finishes its request
            replica.serving.interrupt()
        replica.serving = None   # only a replica that can still be killed refers to its request's process

    def close(self) -> None:
        if self._idle is not None:  # requests waiting for a replica and the store reference each other
            for request in self._idle.get_queue:
                request.callbacks, request.proc = [], None
            self._idle.get_queue.clear()
            for name in ("put", "get"):
                self._idle.__dict__.pop(name, None)
        self._waiting.clear()   # its requests reference their processes, whose frames reference this simulation
        for replica in self._replicas:   # so does a replica serving a request, and the request's frame the replica
            replica.serving = None
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
        replica = yield self._replica_request(arrived)
        if replica is None or replica.state == "killed":   # gave up, or the replica died as the request took it
            self._reject()
            return
        replica.serving = self.env.active_process
        self._change_busy(+1)
        try:
            yield self.env.timeout(service_s)
        except simpy.Interrupt as interrupt:   # the OOM killer took the replica (its state is now "killed")
            # Its traceback holds this frame, which from Python 3.12 keeps its caller, SimPy's Process._resume,
            # which holds the Interrupt: a cycle per kill, left for the garbage collector
            interrupt.__traceback__ = None
        self._change_busy(-1)
        if replica.state == "killed":
            self._reject()
            return
        replica.serving = None
        self._completed += 1
        self._latencies.append(min(self.env.now - arrived, self.timeout_s))
        if replica.state == "ready":
            self._store().put(replica)

    def _replica_request(self, arrived: float) -> simpy.Event:
        """A request for a replica; if every replica is busy it waits, but no longer than the client does. (A helper,
        so that the request's generator keeps no reference to it: the request refers to its process, and the cycle
        would keep a closed simulation alive until the garbage collector ran.)"""
        get = self._store().get()
        if not get.triggered:
            self._waiting.append((arrived, get))
            self._arm_give_up()
        return get

    def _arm_give_up(self) -> None:
        """Wake when the longest-waiting request has waited ``timeout_s``: one timer for the whole FIFO queue, not
        one per waiting request (which made every per-request run a quarter to a half slower)."""
        if not self._give_up_armed and self._waiting:
            self._give_up_armed = True
            self.env.timeout(self._waiting[0][0] + self.timeout_s - self.env.now).callbacks.append(self._give_up)

    def _give_up(self, _timer: simpy.Event) -> None:
        """The client's timeout: the requests that have waited ``timeout_s`` leave the queue with no replica (those
        served since they started waiting are only forgotten); then wait for the next one."""
        self._give_up_armed = False
        waiting = self._waiting
        while waiting and (waiting[0][1].triggered or waiting[0][0] + self.timeout_s <= self.env.now):
            _, get = waiting.popleft()
            if not get.triggered:
                get.cancel()
                get.succeed(None)
        self._arm_give_up()

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
