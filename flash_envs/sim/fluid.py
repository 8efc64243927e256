"""Fast fidelity: a fluid queue advanced once per sub-step by a SimPy process (the default for training).

Per sub-step of ``dt`` seconds the number of arrivals is drawn as Poisson(integral of the rate), the ready replicas
serve up to ``replicas * mu * dt`` of the queue, and what they cannot serve is carried over as a backlog (capped at
:meth:`~flash_envs.sim.service.ServiceSimulation.max_queue`, the rest rejected). Latency percentiles come from the M/G/c
response-time model of :class:`~flash_envs.sim.queueing.ResponseTimeModel` at the interval's mean operating point
plus the mean backlog delay, so queueing delay is present even when no backlog forms.
"""

from __future__ import annotations

from typing import cast

import numpy as np

from flash_envs.sim.queueing import ResponseTimeModel, weighted_percentiles
from flash_envs.sim.service import ServiceSimulation


class FluidSimulation(ServiceSimulation):
    """Aggregated per-sub-step simulation; see the module docstring."""

    def __init__(self, *args, **kwargs) -> None:
        self.backlog = 0.0
        super().__init__(*args, **kwargs)
        self._latency_model = ResponseTimeModel(self.app.service_cv)

    def _on_replica_ready(self) -> None:
        pass

    def _on_replica_removed(self, killed: bool) -> None:
        if killed and self.backlog > 0:  # the killed replica's in-flight request fails
            lost = min(1.0, self.backlog)
            self.backlog -= lost
            self._dropped += lost

    def _reset_accumulators(self) -> None:
        super()._reset_accumulators()
        self._backlog_time = 0.0

    def _serve_substep(self, dt: float, servers: float, expected_arrivals: float) -> float:
        # served and rejected amounts are fractional: they are summed as such and rounded once per interval
        arrivals = int(self.rng.poisson(expected_arrivals))
        capacity = servers * self.service_rate * dt
        backlog_before = self.backlog
        total = self.backlog + arrivals
        served = min(total, capacity)
        self.backlog = total - served
        rejected = max(0.0, self.backlog - self.max_queue())
        self.backlog -= rejected
        self._arrivals += arrivals
        self._completed += served
        self._dropped += rejected
        self._backlog_time += (backlog_before + self.backlog) / 2 * dt
        return served / capacity if capacity > 0 else 0.0

    def _latency_stats(self) -> tuple[float, float, float, float]:
        if self._completed <= 0 and self._dropped <= 0:   # no request to measure, as in the request fidelity
            return (float("nan"),) * 4
        duration = self.env.now - self._interval_start
        servers = self._ready_time / duration
        arrival_rate = self.curve.mean_rate(self._interval_start, self.env.now)
        capacity = servers * self.service_rate
        backlog_delay = self._backlog_time / duration / capacity if capacity > 0 else self.timeout_s
        samples = self._latency_model.samples(int(round(servers)), arrival_rate, self.service_rate,
                                              min(backlog_delay, self.timeout_s))
        n = len(samples)   # the quadrature points share the completed requests; the dropped ones time out
        times, weights = np.empty(n + 1), np.empty(n + 1)
        np.minimum(samples, self.timeout_s, out=times[:n])
        times[n], weights[:n], weights[n] = self.timeout_s, self._completed / n, self._dropped
        return cast("tuple[float, float, float, float]",   # three percentiles
                    (float(times @ weights / weights.sum()), *weighted_percentiles(times, weights, (50, 95, 99))))
