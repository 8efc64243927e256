"""A DVFS-managed server: the shared service simulation, run at a P-state, with an energy meter.

A server with ``cores`` cores is a :class:`~flash_envs.sim.service.ServiceSimulation` with one replica per core. At
P-state ``level`` each core runs at ``1000 * core_speed * f / f_max`` millicores, so the CPU part of a request
(``AppProfile.cpu_fraction``, the application's frequency sensitivity) slows down at lower frequency while the rest
(memory stalls, I/O) does not. Changing frequency is ``sim.configure(cores, millicores, memory)``.

* **Transitions.** A requested P-state takes effect ``transition_latency_s`` later (the actuation path: governor or
  BMC, driver, voltage ramp; the silicon itself switches in microseconds to milliseconds, so the environment's default
  of 1 s stands for a controller's loop, not the hardware), a whole number of sub-steps. Until then the server runs
  at its previous P-state; a newer request supersedes a pending one. The switch is counted in sub-steps and applied
  once the sub-step ending at that instant has been accounted, so service and power always agree on the P-state of
  each sub-step. With no latency it is applied at once, and counted among the ``transitions`` of the interval that
  follows.
* **Energy.** A sub-step observer adds ``P(f, u) * dt`` with ``u`` the cores' busy fraction in that sub-step, so
  energy is integrated exactly over simulated time. A core is busy for a request's whole service time and draws
  active power whether it computes or stalls: right for memory stalls, a simplification for I/O waits (a core waiting
  on I/O would rather idle), so for an I/O-heavy application (a small ``cpu_fraction``) power, and the saving of a
  lower P-state with it, is overstated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flash_envs.fields import check_number
from flash_envs.sim import make_simulation
from flash_envs.sim.power import EnergyMeter, ServerType
from flash_envs.sim.service import DEFAULT_TIMEOUT_S, AppProfile, IntervalMetrics
from flash_envs.sim.workloads import RateCurve


@dataclass(frozen=True)
class ServerInterval:
    """What one server did over a control interval."""

    metrics: IntervalMetrics
    energy_j: float
    mean_power_w: float
    utilisation: float
    level: int
    transitions: int


def check_transition_latency(transition_latency_s: float, substep_s: float) -> int:
    """A P-state switch takes effect on a sub-step boundary: the latency must be a whole number (>= 0) of sub-steps,
    which is returned. A TypeError or ValueError names the argument (a string latency is refused, not divided)."""
    substep_s = check_number("substep_s", substep_s, 0.0, strict=True)
    transition_latency_s = check_number("transition_latency_s", transition_latency_s, 0.0)
    steps = transition_latency_s / substep_s
    if not np.isfinite(steps) or abs(steps - round(steps)) > 1e-9:
        raise ValueError(f"transition_latency_s={transition_latency_s} must be a whole number (>= 0) of "
                         f"sub-steps of {substep_s} s")
    return round(steps)


class DVFSServer:
    """One server of type ``server`` serving ``app`` under the arrival-rate ``curve``; see the module docstring."""

    def __init__(self, server: ServerType, app: AppProfile, curve: RateCurve, rng: np.random.Generator,
                 fidelity: str = "fast", level: int | None = None, substep_s: float = 1.0,
                 transition_latency_s: float = 1.0, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self._latency_substeps = check_transition_latency(transition_latency_s, substep_s)
        self.server = server
        self.level = server.n_levels - 1 if level is None else int(level)
        server.level_fraction(self.level)  # validates the level
        self.target = self.level
        self.sim = make_simulation(fidelity, app, curve, rng, replicas=server.cores,
                                   cpu_millicores=server.millicores(self.level), memory_mb=app.working_set_mb,
                                   substep_s=substep_s, timeout_s=timeout_s)
        self.sim.substep_observers.append(self._meter_substep)
        self.meter = EnergyMeter()
        self._busy_time = 0.0
        self._transitions = 0
        self._pending: tuple[int, int] | None = None   # (the sub-step after which it takes effect, the level)

    @property
    def now(self) -> float:
        """Simulated time (s) since the server started."""
        return self.sim.env.now

    def capacity(self, level: int | None = None) -> float:
        """Requests per second the server completes when all cores are busy at P-state ``level`` (default: max)."""
        level = self.server.n_levels - 1 if level is None else level
        return self.server.cores / self.sim.app.mean_service_s(self.server.millicores(level))

    def request_level(self, level: int) -> None:
        """Ask for P-state ``level``; it takes effect after the transition latency."""
        self.server.level_fraction(level)
        level = int(level)
        if level == self.target:
            return
        self.target = level
        if self._latency_substeps == 0:
            self._apply(level)
            return
        # counted in sub-steps, not timed in seconds, so that it lands on a sub-step boundary whatever the float
        # arithmetic; a newer request replaces a pending one
        self._pending = (self.sim.substeps_done + self._latency_substeps, level)

    def _apply(self, level: int) -> None:
        self._pending = None
        if level != self.level:
            self.level = level
            self._transitions += 1
            self.sim.configure(self.server.cores, self.server.millicores(level), self.sim.memory_mb)

    def _meter_substep(self, dt: float, busy_fraction: float, servers: float) -> None:
        """Meter the sub-step that just ended at the P-state it ran at, then apply a switch due at its end."""
        self._busy_time += busy_fraction * dt
        self.meter.add(dt, self.server.power_at(self.server.level_fraction(self.level), busy_fraction))
        if self._pending is not None and self.sim.substeps_done >= self._pending[0]:
            self._apply(self._pending[1])

    def run(self, duration_s: float) -> ServerInterval:
        """Advance by ``duration_s`` (a multiple of the sub-step) and report the interval. Its ``transitions`` are
        the switches that took effect since the last report: within the interval, or at its start (an immediate
        switch, with no transition latency, requested before it)."""
        energy_before, self._busy_time = self.meter.energy_j, 0.0
        metrics = self.sim.run(duration_s)
        energy = self.meter.energy_j - energy_before
        transitions, self._transitions = self._transitions, 0
        return ServerInterval(metrics, energy, energy / duration_s, self._busy_time / duration_s, self.level,
                              transitions)
