"""SimPy simulation core shared by every environment: workloads, the service/queue model, and its two fidelities."""

from __future__ import annotations

from typing import Any

import numpy as np

from flash_envs.sim.fluid import FluidSimulation
from flash_envs.sim.request_level import RequestLevelSimulation
from flash_envs.sim.service import AppProfile, IntervalMetrics, ServiceSimulation
from flash_envs.sim.workloads import RateCurve, Workload

FIDELITIES: dict[str, type[ServiceSimulation]] = {"fast": FluidSimulation, "request": RequestLevelSimulation}


def check_fidelity(fidelity: Any, name: str = "fidelity") -> str:
    """``fidelity`` if it names one of :data:`FIDELITIES`; otherwise a TypeError (not a string: a list was an
    "unhashable" TypeError from the lookup) or ValueError that names the argument ``name``."""
    if not isinstance(fidelity, str):
        raise TypeError(f"{name} must be a string, one of {sorted(FIDELITIES)}; got {fidelity!r} "
                        f"({type(fidelity).__name__})")
    if fidelity not in FIDELITIES:
        raise ValueError(f"unknown {name} {fidelity!r}; expected one of {sorted(FIDELITIES)}")
    return fidelity


def make_simulation(fidelity: str, app: AppProfile, curve: RateCurve, rng: np.random.Generator,
                    **kwargs: Any) -> ServiceSimulation:
    """Build a service simulation of the given fidelity (``"fast"`` or ``"request"``)."""
    return FIDELITIES[check_fidelity(fidelity)](app, curve, rng, **kwargs)


__all__ = ["AppProfile", "IntervalMetrics", "RateCurve", "ServiceSimulation", "Workload", "make_simulation",
           "FIDELITIES", "check_fidelity"]
