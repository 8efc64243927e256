"""Closed-form queueing results used by the fast (aggregated) simulator and by the validation tests.

* :func:`erlang_c`: probability that an arrival waits in an M/M/c queue.
* :func:`mmc_mean_wait`: the M/M/c mean waiting time (Erlang C).
* :func:`mm1_response_percentile`: a percentile of the M/M/1 FCFS response time (exact: it is exponential).
* :class:`ResponseTimeModel`: response-time percentiles of an M/G/c queue, from the Allen-Cunneen approximation of the
  waiting time (exact for M/M/c in the mean) plus a backlog delay when the queue is overloaded.
"""

from __future__ import annotations

import math

import numpy as np

from flash_envs.sim.service import MIN_SERVICE_CV


def erlang_c(servers: int, offered_load: float) -> float:
    """P(wait > 0) in an M/M/c queue with ``servers`` servers and offered load ``a = lambda / mu`` (Erlangs)."""
    if servers <= 0:
        return 1.0
    rho = offered_load / servers
    if rho >= 1:
        return 1.0
    blocking = 1.0  # Erlang B by its stable recursion
    for k in range(1, servers + 1):
        blocking = offered_load * blocking / (k + offered_load * blocking)
    return blocking / (1 - rho * (1 - blocking))


def mmc_mean_wait(servers: int, arrival_rate: float, service_rate: float) -> float:
    """Mean time in queue (before service) of an M/M/c queue, in the time unit of the rates."""
    if arrival_rate >= servers * service_rate:
        return float("inf")
    return erlang_c(servers, arrival_rate / service_rate) / (servers * service_rate - arrival_rate)


def mm1_response_percentile(arrival_rate: float, service_rate: float, q: float) -> float:
    """Percentile ``q`` (0..100) of the response time (wait plus service) of an M/M/1 FCFS queue, in the time unit
    of the rates: that response time is exponential with rate ``service_rate - arrival_rate``."""
    if arrival_rate >= service_rate:
        return float("inf")
    return -math.log1p(-q / 100) / (service_rate - arrival_rate)


class ResponseTimeModel:
    """Response-time distribution of an M/G/c queue, evaluated on a fixed quadrature of ``points`` samples.

    Service times are Gamma distributed with mean ``m`` and coefficient of variation ``cv`` (``cv = 1`` is
    exponential). The waiting time is 0 with probability ``1 - Pw`` and otherwise exponential with mean
    ``(1 + cv^2) / (2 (c mu - lambda))`` (Allen-Cunneen), where ``Pw`` is Erlang C. The ``points`` nodes are one
    random sample, drawn once from a generator with a fixed seed: the model is deterministic (the same operating point
    gives the same percentiles every time), but its percentiles carry that sample's fixed error. The service times are
    rescaled to mean 1, and the mean is within 1 %; the tail less so: ``flash validate-fidelity`` gives the p95 and
    p99 against M/M/1's exact response time at ``cv = 1`` and no backlog (``results/fidelity.md``).
    """

    #: Points of the sample unless told otherwise.
    POINTS = 256

    def __init__(self, service_cv: float, points: int = POINTS) -> None:
        quad = np.random.default_rng(12345)
        shape = 1.0 / max(service_cv, MIN_SERVICE_CV) ** 2
        self.service_cv = service_cv
        self.unit_service = quad.gamma(shape, 1.0 / shape, size=points)  # mean-1 service times
        self.unit_service /= self.unit_service.mean()
        self.wait_uniform = quad.random(points)
        self._wait_factor = (1 + service_cv**2) / 2

    def samples(self, servers: int, arrival_rate: float, service_rate: float, backlog_delay_s: float) -> np.ndarray:
        """Quadrature samples (seconds) of the response time for one operating point.

        ``service_rate`` is per server; ``backlog_delay_s`` is the extra wait of a fluid backlog in an overloaded
        period.
        """
        service = self.unit_service / service_rate
        capacity = servers * service_rate
        if servers <= 0 or capacity <= 0:
            return service + backlog_delay_s
        load = min(arrival_rate, 0.98 * capacity)  # the stationary part; overload shows up as backlog
        p_wait = erlang_c(servers, load / service_rate)
        mean_conditional_wait = self._wait_factor / (capacity - load)
        u = self.wait_uniform
        tail = np.maximum(u - (1 - p_wait), 0.0)
        waits = np.where(tail > 0, -mean_conditional_wait * np.log1p(-tail / max(p_wait, 1e-12)), 0.0)
        return service + waits + backlog_delay_s


def weighted_percentiles(samples: np.ndarray, weights: np.ndarray, qs: tuple[float, ...]) -> list[float]:
    """Percentiles ``qs`` (0..100) of ``samples`` where each sample carries ``weights`` (same shape).

    The same as numpy >= 2.0's ``np.percentile(samples, qs, weights=weights, method="inverted_cdf")``, kept because
    the package supports numpy 1.24 and up."""
    flat = samples.ravel()
    order = flat.argsort()
    cum = weights.ravel()[order].cumsum()
    total = float(cum[-1])
    if total <= 0:
        return [float("nan")] * len(qs)
    last = len(flat) - 1   # called once per control interval: a few qs, in plain floats rather than numpy calls
    return [float(flat[order[min(i, last)]]) for i in cum.searchsorted([q / 100.0 * total for q in qs])]
