"""Power-management tasks: server type x application frequency sensitivity x workload x SLO (FLASH case study III).

The default family (:meth:`PowerTaskFamily.generate`) draws train tasks on the catalogue's 12 training server types
and test tasks on its 4 held-out types (:mod:`flash_envs.sim.server_catalogue`), so adaptation is measured on server
types never seen in training.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import numpy as np

from flash_envs.fields import check_fields, check_number
from flash_envs.sim.power import ServerType
from flash_envs.sim.server_catalogue import test_servers, train_servers
from flash_envs.sim.service import AppProfile
from flash_envs.sim.workloads import Workload, workload_from_dict
from flash_envs.tasks import FrozenTask, TaskFamily, check_field_types, check_generate_arguments, random_workload


@dataclass(frozen=True)
class PowerTask(FrozenTask):
    """A server type running an application (``app.cpu_fraction`` = frequency sensitivity, ``app.slo_ms`` = p95
    SLO) under a workload; ``workload`` is the arrival rate each server receives."""

    server: ServerType
    app: AppProfile
    workload: Workload
    name: str = ""

    def __post_init__(self) -> None:
        check_field_types(self, {"server": ServerType, "app": AppProfile, "workload": Workload, "name": str})
        fastest_ms = 1000 * self.app.mean_service_s(self.server.millicores(self.server.n_levels - 1))
        if self.app.slo_ms <= fastest_ms:
            raise ValueError(f"task {self.name!r}: SLO {self.app.slo_ms} ms is not above the mean service time "
                             f"{fastest_ms:.1f} ms at the highest P-state of {self.server.name}; no policy can meet it")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "server": self.server.to_dict(), "app": self.app.to_dict(),
                "workload": self.workload.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PowerTask":
        required = ("server", "app", "workload")
        check_fields(d, ("name", *required), "power task", required=required)
        return cls(ServerType.from_dict(d["server"]), AppProfile.from_dict(d["app"]),
                   workload_from_dict(d["workload"]), d.get("name", ""))


@dataclass(frozen=True)
class PowerTaskFamily(TaskFamily[PowerTask]):
    """Power-management tasks; build the default split with :meth:`generate`."""

    task_type: ClassVar[type] = PowerTask

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_server_names()

    def _check_server_names(self) -> None:
        """A ValueError naming two tasks whose servers share a name but differ (reports group results by server
        name, and the held-out check compares server names)."""
        first: dict[str, PowerTask] = {}
        for task in (*self.train, *self.test):
            seen = first.setdefault(task.server.name, task)
            if seen.server != task.server:
                differ = [f.name for f in dataclasses.fields(ServerType)
                          if getattr(seen.server, f.name) != getattr(task.server, f.name)]
                raise ValueError(f"tasks {seen.name!r} and {task.name!r} run on two different servers named "
                                 f"{task.server.name!r} (they differ in {', '.join(differ)}); give each server type "
                                 f"a name of its own")

    @classmethod
    def generate(cls, n_train: int = 24, n_test: int = 8, seed: int = 2024, episode_s: float = 900.0,
                 train_types: Sequence[ServerType] | None = None,
                 test_types: Sequence[ServerType] | None = None) -> "PowerTaskFamily":
        """A family drawn from a fixed seed; train and test tasks use disjoint server types (default: catalogue)."""
        n_train, n_test, seed = check_generate_arguments(n_train, n_test, seed)
        episode_s = check_number("episode_s", episode_s, 0.0, strict=True)
        train_types = tuple(train_servers() if train_types is None else train_types)
        test_types = tuple(test_servers() if test_types is None else test_types)
        shared = {s.name for s in train_types} & {s.name for s in test_types}
        if not train_types or not test_types or shared:
            raise ValueError(f"train and test server types must be non-empty and disjoint; shared: {sorted(shared)}")
        rng = np.random.default_rng(seed)
        train = _draw(rng, train_types, n_train, "train", episode_s)
        test = _draw(rng, test_types, n_test, "test", episode_s)
        return cls(tuple(train), tuple(test), episode_s=episode_s)


def _draw(rng: np.random.Generator, servers: tuple[ServerType, ...], n: int, prefix: str,
          episode_s: float) -> list[PowerTask]:
    order = rng.permutation(len(servers))  # every server type is used before any repeats
    return [random_power_task(rng, servers[order[i % len(servers)]], f"{prefix}-{i:02d}", episode_s) for i in range(n)]


def random_power_task(rng: np.random.Generator, server: ServerType, name: str, episode_s: float = 900.0) -> PowerTask:
    """An application on ``server``: service 5-100 ms on the reference core (log-uniform), CPU-bound share 0.1-1.0,
    p95 SLO 3-8x the mean service time at f_max, and a workload whose nominal mean is 15-50% of the server's capacity at
    f_max (an episode's realised mean varies around it: a bursty MMPP workload reaches about 60%)."""
    service_ms = float(np.exp(rng.uniform(np.log(5), np.log(100))))
    cpu_fraction = round(float(rng.uniform(0.1, 1.0)), 2)
    probe = AppProfile(service_time_ms=round(service_ms, 1), cpu_fraction=cpu_fraction)
    fastest_ms = 1000 * probe.mean_service_s(server.millicores(server.n_levels - 1))
    app = AppProfile(name=name, service_time_ms=round(service_ms, 1), cpu_fraction=cpu_fraction,
                     service_cv=round(float(rng.uniform(0.5, 1.2)), 2),
                     slo_ms=round(fastest_ms * float(rng.uniform(3.0, 8.0)), 1))
    capacity = server.cores * 1000 / fastest_ms
    load = float(rng.uniform(0.15, 0.5))
    return PowerTask(server, app, random_workload(rng, load * capacity, episode_s), f"{name}-{server.name}")
