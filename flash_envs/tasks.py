"""Tasks and task families: what an environment hides from the agent, and the fixed train/test split over it.

A *task* is a frozen dataclass that serialises to a plain dict (``to_dict`` / ``from_dict``). A *task family* holds a
fixed, seeded list of train tasks and of held-out test tasks, and saves to / loads from YAML. Environments expose
them through :class:`flash_envs.envs.task_env.TaskEnv` (``sample_tasks``, ``set_task``, ``get_task``,
``reset(options={"task": ...})``), as in Meta-World, garage and learn2learn.
"""

from __future__ import annotations

import dataclasses
import functools
import reprlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Iterable, Protocol, TypeVar, cast

import numpy as np

from flash_envs.fields import check_fields, check_number, check_whole
from flash_envs.sim.service import AppProfile
from flash_envs.sim.workloads import (ConstantWorkload, DiurnalWorkload, MMPPWorkload, SpikeWorkload, StepWorkload,
                                      Workload, workload_from_dict)

SPLITS = ("train", "test")


class Task(Protocol):
    """What every task provides: a ``name`` and a plain-dict form (``to_dict``; task types add ``from_dict``)."""

    @property
    def name(self) -> str: ...   # read-only, so that a frozen dataclass's field satisfies it

    def to_dict(self) -> dict[str, Any]: ...


T = TypeVar("T", bound=Task)
F = TypeVar("F", bound="TaskFamily[Any]")   # (typing.Self needs Python 3.11)


@dataclass(frozen=True)
class TaskFamily(Generic[T]):
    """A fixed split of tasks: ``train`` for (meta-)training, ``test`` held out for adaptation; neither may be empty
    (an env's first task is ``train[0]``, and adaptation runs on the ``test`` tasks). Every task has a name of its own
    (results are keyed by it), and no test task is a train task, under its name or another: what is held out is
    never trained on. Each split is a tuple (a list is taken as one) of tasks of the family's ``task_type``.
    ``episode_s`` is the episode length (s) a generator timed the tasks' workloads for (their steps and diurnal
    periods), None when not recorded; an env of another episode length warns of it, and the YAML keeps it."""

    train: tuple[T, ...]
    test: tuple[T, ...]
    episode_s: float | None = field(default=None, kw_only=True)
    task_type: ClassVar[type[Any]]   # a task class, with a ``from_dict`` classmethod

    def __post_init__(self) -> None:
        if self.episode_s is not None:
            object.__setattr__(self, "episode_s", check_number("episode_s", self.episode_s, 0.0, strict=True))
        self._check_task_types()
        empty = [s for s in SPLITS if not self.split(s)]
        if empty:
            raise ValueError(f"{type(self).__name__}: empty split(s) {empty}; a family needs >= 1 train and >= 1 "
                             f"test task")
        self._check_names_and_held_out()

    def _check_task_types(self) -> None:
        """Store each split as a tuple (a family is hashable); a TypeError naming a split that is not a tuple or list,
        or the split and index of a task that is not of the family's ``task_type`` (it failed deep in a later call)."""
        family = type(self).__name__
        task_type = getattr(type(self), "task_type", None)
        for s in SPLITS:
            tasks = getattr(self, s)
            if not isinstance(tasks, (tuple, list)):
                got = (f"one {type(tasks).__name__} (a split of one task is (task,))" if task_type is not None
                       and isinstance(tasks, task_type) else f"{reprlib.repr(tasks)} ({type(tasks).__name__})")
                raise TypeError(f"{family}.{s} must be a tuple of tasks, got {got}")
            if task_type is not None:
                for i, task in enumerate(tasks):
                    if not isinstance(task, task_type):
                        raise TypeError(f"{family}.{s}[{i}] must be {_a(task_type.__name__)}, got "
                                        f"{reprlib.repr(task)} ({type(task).__name__})")
            object.__setattr__(self, s, tuple(tasks))

    def _check_names_and_held_out(self) -> None:
        """A ValueError naming the task names a split repeats, those both splits have, or a test task that equals a
        train task but for its name."""
        problems = []
        for s in SPLITS:
            repeated = _repeated(t.name for t in self.split(s))
            if repeated:
                problems.append(f"the {s} split repeats the task name(s) {repeated}")
        shared = sorted({t.name for t in self.train} & {t.name for t in self.test})
        if shared:
            problems.append(f"the test split holds the train task name(s) {shared}")
        train = [(u.name, _unnamed(u)) for u in self.train]
        renamed = [f"test {t.name!r} is train {name!r}" for t in self.test for name, fields in train
                   if t.name != name and _unnamed(t) == fields]
        if renamed:
            problems.append(f"the test split holds train task(s) under another name ({', '.join(renamed)})")
        if problems:
            raise ValueError(f"{type(self).__name__}: {'; '.join(problems)}. Task names key the results, and test "
                             f"tasks are held out from training")

    def split(self, name: str) -> tuple[T, ...]:
        """The tasks of split ``name`` (``"train"`` or ``"test"``)."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {SPLITS}")
        return self.train if name == "train" else self.test

    def sample(self, n: int, split: str, rng: np.random.Generator) -> list[T]:
        """``n`` tasks of ``split`` drawn with ``rng``: without replacement while ``n`` fits, else with."""
        tasks = self.split(split)
        n = check_whole("n", n, 0)
        idx = rng.choice(len(tasks), size=n, replace=n > len(tasks))
        return [tasks[i] for i in idx]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {} if self.episode_s is None else {"episode_s": self.episode_s}
        return {**d, **{s: [t.to_dict() for t in self.split(s)] for s in SPLITS}}

    @classmethod
    def from_dict(cls: type[F], d: dict[str, Any]) -> F:
        missing = [s for s in SPLITS if s not in d]
        if missing:
            raise ValueError(f"a task family needs the splits {SPLITS}; missing {missing}")
        unknown = sorted(set(d) - {*SPLITS, "episode_s"}, key=str)
        if unknown:
            raise ValueError(f"unknown task family field(s) {unknown}; a family holds {list(SPLITS)} and, optionally, "
                             "episode_s")
        for s in SPLITS:
            if not isinstance(d[s], list):
                raise TypeError(f"task family split {s!r} must be a list of tasks, got {type(d[s]).__name__}")
        train, test = (tuple(cls._task_from_dict(s, i, t) for i, t in enumerate(d[s])) for s in SPLITS)
        return cls(train, test, episode_s=d.get("episode_s"))

    @classmethod
    def _task_from_dict(cls, split: str, index: int, d: Any) -> T:
        """Task ``index`` of ``split``, its error (if any) prefixed with where it is, e.g. ``test[3]: ...``."""
        try:
            return cls.task_type.from_dict(d)
        except (TypeError, ValueError) as err:
            raise (TypeError if isinstance(err, TypeError) else ValueError)(f"{split}[{index}]: {err}") from err

    def save_yaml(self, path: str | Path) -> None:
        """Write the family as YAML. A replayed in-memory trace goes inline, so PyYAML's libyaml bindings are used
        when present: they write and read back 89 000 rates (two months of a per-minute trace) in 0.7 s, its
        pure-Python code in 3.7 s."""
        from flash_envs.yaml_numbers import dump_yaml

        Path(path).write_text(dump_yaml(self.to_dict(), fast=True))

    @classmethod
    def load_yaml(cls: type[F], path: str | Path) -> F:
        """A family written by :meth:`save_yaml` (or by hand, in its layout). A missing file raises
        ``FileNotFoundError``; anything else that is not such a family, a ``DataFormatError`` naming the file."""
        import yaml

        from flash_envs.data import DataFormatError
        from flash_envs.yaml_numbers import parse_yaml

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"task family {path}: "
                                    f"{'a folder, not a file' if path.is_dir() else 'no such file'}")
        try:
            d = parse_yaml(path.read_text(), fast=True)   # 1e3 is a number, as in config files
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            raise DataFormatError(f"task family {path}: not YAML text ({' '.join(str(err).split())})") from None
        if not isinstance(d, dict):
            raise DataFormatError(f"task family {path}: expected a mapping with the splits {SPLITS}, got "
                                  f"{type(d).__name__}")
        try:
            return cls.from_dict(d)
        except (ValueError, TypeError, KeyError, OverflowError) as err:   # (a number too large for a float)
            raise DataFormatError(f"task family {path}: {err}") from None


def _repeated(names: Iterable[str]) -> list[str]:
    """The names that occur more than once, sorted."""
    counts = Counter(names)
    return sorted(name for name, count in counts.items() if count > 1)


def _unnamed(task: Any) -> Any:
    """What a task is apart from names: its fields but ``name`` (a dataclass task), each named dataclass within it (an
    application, a server type) likewise, since one renamed is the same; else the task itself."""
    if dataclasses.is_dataclass(task) and not isinstance(task, type):
        return tuple(_unnamed(value) if _named_dataclass(value) else value
                     for f in dataclasses.fields(task) if f.name != "name" for value in [getattr(task, f.name)])
    return task


def _named_dataclass(value: Any) -> bool:
    return (dataclasses.is_dataclass(value) and not isinstance(value, type)
            and any(f.name == "name" for f in dataclasses.fields(value)))


def check_generate_arguments(n_train: Any, n_test: Any, seed: Any) -> tuple[int, int, int]:
    """The split sizes (each >= 1) and seed (>= 0) a family's ``generate`` takes, as ints; a TypeError or ValueError
    naming the argument otherwise (``n_train=2.5`` was a TypeError from ``range``, ``n_test=True`` one task)."""
    return check_whole("n_train", n_train, 1), check_whole("n_test", n_test, 1), check_whole("seed", seed, 0)


def default_family(family_type: type[F], **kwargs: Any) -> F:
    """``family_type.generate(**kwargs)`` (every family type has one), generated once per process: a family is
    frozen, so every env made without one of its own shares it (``gym.make`` regenerated it each time: 2 ms for
    autoscaling, 23 ms for config search, and fine-tuning makes an env per evaluation). The last
    :data:`DEFAULT_FAMILIES_KEPT` are kept (an episode length makes a family of its own)."""
    return _generated(cast(type, family_type), tuple(sorted(kwargs.items())))   # (mypy takes type[F] as unhashable)


DEFAULT_FAMILIES_KEPT = 32


@functools.lru_cache(maxsize=DEFAULT_FAMILIES_KEPT)
def _generated(family_type: type, kwargs: tuple[tuple[str, Any], ...]) -> Any:
    return getattr(family_type, "generate")(**dict(kwargs))


def check_field_types(obj: Any, types: dict[str, type | tuple[type, ...]]) -> None:
    """A TypeError naming the first field of ``obj`` (among ``types``, field name -> expected type) whose value is not
    of its type, e.g. ``AutoscalingTask.workload must be a Workload, got 'constant' (str)``: a task made with a wrong
    field is refused when it is made, not deep in a later ``reset()``."""
    for name, expected in types.items():
        value = getattr(obj, name)
        if not isinstance(value, expected):
            wanted = " or ".join(t.__name__ for t in (expected if isinstance(expected, tuple) else (expected,)))
            raise TypeError(f"{type(obj).__name__}.{name} must be {_a(wanted)}, got {reprlib.repr(value)} "
                            f"({type(value).__name__})")


def _a(noun: str) -> str:
    """``noun`` after its indefinite article: ``a Workload``, ``an AppProfile``."""
    return f"{'an' if noun[0] in 'AEIOU' else 'a'} {noun}"


class FrozenTask:
    """Base of the (frozen dataclass) task types: a task is its own copy. SB3's ``DummyVecEnv`` deep-copies every
    step's ``info``, which names the episode's task; copying the task took 3 to 6 % of meta-training."""

    def __copy__(self) -> FrozenTask:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenTask:
        return self


# --------------------------------------------------------------------------------------------- autoscaling tasks
@dataclass(frozen=True)
class AutoscalingTask(FrozenTask):
    """An application profile served under a workload (FLASH case study II)."""

    app: AppProfile
    workload: Workload
    name: str = ""

    def __post_init__(self) -> None:
        check_field_types(self, {"app": AppProfile, "workload": Workload, "name": str})

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "app": self.app.to_dict(), "workload": self.workload.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AutoscalingTask":
        required = ("app", "workload")
        check_fields(d, ("name", *required), "autoscaling task", required=required)
        return cls(AppProfile.from_dict(d["app"]), workload_from_dict(d["workload"]), d.get("name", ""))


@dataclass(frozen=True)
class AutoscalingTaskFamily(TaskFamily[AutoscalingTask]):
    """Autoscaling tasks; build the default split with :meth:`generate`."""

    task_type: ClassVar[type] = AutoscalingTask

    @classmethod
    def generate(cls, n_train: int = 24, n_test: int = 8, seed: int = 2024,
                 episode_s: float = 1800.0) -> "AutoscalingTaskFamily":
        """A diverse family drawn from a fixed seed (see :func:`random_autoscaling_task` for the ranges), for episodes
        of ``episode_s`` seconds (the default is the default env's 60 steps of 30 s): its step workloads rise and its
        diurnal ones cycle within an episode. The draws do not depend on ``episode_s``: families for other lengths
        have the same applications and workload kinds, with the steps' start times and the diurnal periods scaled
        (not a step's ramp, MMPP stays or spike durations, so in much shorter episodes some steps do not reach their
        peak)."""
        n_train, n_test, seed = check_generate_arguments(n_train, n_test, seed)
        episode_s = check_number("episode_s", episode_s, 0.0, strict=True)
        rng = np.random.default_rng(seed)
        tasks = [random_autoscaling_task(rng, f"task-{i:02d}", episode_s) for i in range(n_train + n_test)]
        return cls(tuple(tasks[:n_train]), tuple(tasks[n_train:]), episode_s=episode_s)


def random_app(rng: np.random.Generator, name: str) -> AppProfile:
    """An application profile from wide, log-uniform ranges (CPU-bound to I/O-bound, small to large memory)."""
    service_ms = float(np.exp(rng.uniform(np.log(20), np.log(200))))
    cv = round(float(rng.uniform(0.5, 2.0)), 2)
    return AppProfile(
        name=name,
        service_time_ms=round(service_ms, 1),
        cpu_fraction=round(float(rng.uniform(0.2, 1.0)), 2),
        service_cv=cv,
        working_set_mb=float(rng.choice(np.arange(256, 2049, 64))),
        idle_memory_fraction=round(float(rng.uniform(0.4, 0.8)), 2),
        startup_delay_s=float(rng.choice([5, 10, 20, 30, 60, 90])),
        # (1 + 2 cv) x mean is close to the p95 of a Gamma service time: the SLO leaves 30% to 200% for queueing
        slo_ms=round(service_ms * (1 + 2 * cv) * float(rng.uniform(1.3, 3.0)), 1),
    )


def random_workload(rng: np.random.Generator, mean_rate: float, episode_s: float) -> Workload:
    """One of the synthetic profiles around ``mean_rate`` req/s, with shapes that change within an episode of
    ``episode_s`` seconds (a diurnal period is at least 1 s)."""
    kind = rng.choice(["constant", "diurnal", "step", "mmpp", "spikes"])
    r = round(mean_rate, 2)
    if kind == "constant":
        return ConstantWorkload(rate=r)
    if kind == "diurnal":
        return DiurnalWorkload(mean_rate=r, amplitude=round(float(rng.uniform(0.3, 0.8)), 2),
                               period_s=max(1, round(episode_s * float(rng.uniform(0.5, 1.5)))))
    if kind == "step":
        return StepWorkload(base_rate=round(0.6 * r, 2), peak_rate=round(1.6 * r, 2),
                            start_s=round(episode_s * float(rng.uniform(0.2, 0.5))),
                            ramp_s=float(rng.choice([0, 120, 300])))
    if kind == "mmpp":
        return MMPPWorkload(rates=(round(0.7 * r, 2), round(2.0 * r, 2)),
                            mean_sojourn_s=(float(rng.choice([300, 600])), float(rng.choice([60, 120, 240]))))
    return SpikeWorkload(base_rate=r, spikes_per_hour=float(rng.choice([2, 4, 8])),
                         multiplier=round(float(rng.uniform(2, 4)), 2), duration_s=float(rng.choice([30, 60, 120])))


def random_autoscaling_task(rng: np.random.Generator, name: str, episode_s: float = 1800.0) -> AutoscalingTask:
    """An application with a workload whose mean load needs about 1.5 to 10 cores of its CPU work."""
    app = random_app(rng, name)
    load_erlangs = float(np.exp(rng.uniform(np.log(1.5), np.log(10))))
    mean_rate = load_erlangs / app.mean_service_s(1000)
    return AutoscalingTask(app, random_workload(rng, mean_rate, episode_s), name)
