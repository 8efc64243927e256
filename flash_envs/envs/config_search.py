"""``flash/ConfigSearch-v0``: find the cheapest resource configuration that meets a deadline with few measurements.

The env is documented on :class:`ConfigSearchEnv`; its tasks come from :class:`ConfigSearchTaskFamily`.
"""

from __future__ import annotations

import math
import reprlib
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Sequence

import numpy as np
from gymnasium import spaces

from flash_envs.data.config_measurements import ConfigMeasurements
from flash_envs.envs.task_env import TaskEnv
from flash_envs.fields import check_fields, check_number, check_whole, is_real_number
from flash_envs.sim.serverless import (MAX_NOISE_CV, MEMORY_SIZES_MIB, check_memory_sizes, generate_functions,
                                       invocation_cost, memory_config_name)
from flash_envs.tasks import (SPLITS, FrozenTask, TaskFamily, check_field_types, check_generate_arguments,
                             default_family)

OBS_LIMIT = 10.0
#: The range of a task's runtimes (s), costs ($) and deadline: with noise of at most :data:`MAX_NOISE_CV`, no
#: measurement or ratio of two of them then over- or underflows (a cost of 1e308 made an observation NaN).
MIN_VALUE, MAX_VALUE = 1e-100, 1e100


@dataclass(frozen=True)
class ConfigSearchTask(FrozenTask):
    """One hidden application: true runtime and cost per configuration and the deadline to meet. Each field is checked
    as the task is made, naming it; the per-configuration fields are stored as tuples (of str, and of Python floats)."""

    name: str
    configs: tuple[str, ...]
    runtime_s: tuple[float, ...]
    cost_usd: tuple[float, ...]
    deadline_s: float

    def __post_init__(self) -> None:
        check_field_types(self, {"name": str})
        object.__setattr__(self, "configs", _sequence(self, "configs", _config_name))
        for field in ("runtime_s", "cost_usd"):   # plain floats: a NumPy scalar is no YAML
            object.__setattr__(self, field, _sequence(self, field, _number))
        object.__setattr__(self, "deadline_s", _number("deadline_s", self.deadline_s))
        n = len(self.configs)
        if n < 2 or len(self.runtime_s) != n or len(self.cost_usd) != n:
            raise ValueError(f"task {self.name!r}: needs >= 2 configs and one runtime and cost each; got "
                             f"{n} configs, {len(self.runtime_s)} runtimes, {len(self.cost_usd)} costs")
        if repeated := sorted({c for c in self.configs if self.configs.count(c) > 1}):   # (render, info name them)
            raise ValueError(f"task {self.name!r}: each configuration must be named once; repeated: {repeated[:5]}")
        values = np.asarray([*self.runtime_s, *self.cost_usd, self.deadline_s], dtype=float)
        if not np.all((values >= MIN_VALUE) & (values <= MAX_VALUE)):   # NaN fails too
            raise ValueError(f"task {self.name!r}: runtimes, costs and deadline must be numbers in [{MIN_VALUE:g}, "
                             f"{MAX_VALUE:g}] (seconds and dollars; beyond, a noisy measurement could over- or "
                             "underflow)")
        if min(self.runtime_s) > self.deadline_s:
            raise ValueError(f"task {self.name!r}: no configuration meets the deadline {self.deadline_s} s")

    @property
    def best(self) -> int:
        """Index of the cheapest configuration that meets the deadline."""
        cost = np.where(np.asarray(self.runtime_s) <= self.deadline_s, self.cost_usd, np.inf)
        return int(np.argmin(cost))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "configs": list(self.configs), "runtime_s": list(self.runtime_s),
                "cost_usd": list(self.cost_usd), "deadline_s": self.deadline_s}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ConfigSearchTask":
        check_fields(d, cls.__dataclass_fields__, "config-search task", required=cls.__dataclass_fields__)
        return cls(d["name"], d["configs"], d["runtime_s"], d["cost_usd"], d["deadline_s"])   # checked as made


def _sequence(task: ConfigSearchTask, field: str, element: Callable[[str, Any], Any]) -> tuple[Any, ...]:
    """Field ``field`` of ``task`` as a tuple of its elements, each checked (and converted) by ``element``; a TypeError
    naming the field if it is not a list, tuple or 1-D array (a string is not a list of its characters)."""
    value = getattr(task, field)
    if not (isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.ndim == 1)):
        what = "configuration names" if field == "configs" else "numbers"
        raise TypeError(f"ConfigSearchTask.{field} must be a list of {what}, one per configuration, got "
                        f"{reprlib.repr(value)} ({type(value).__name__})")
    return tuple(element(f"{field}[{i}]", v) for i, v in enumerate(value))


def _number(field: str, value: Any) -> float:
    """``value`` as a Python float if it is a real number (not a bool, not a string), else a TypeError naming
    ``field`` of a task; its range is checked with the task's other numbers."""
    if not is_real_number(value):
        raise TypeError(f"ConfigSearchTask.{field} must be a number, got {reprlib.repr(value)} "
                        f"({type(value).__name__})")
    try:
        return float(value)
    except OverflowError:   # an int too large for a float (401 digits in a YAML file)
        raise ValueError(f"ConfigSearchTask.{field} must be a finite number, got {reprlib.repr(value)}") from None


def _config_name(field: str, value: Any) -> str:
    """``value`` as a plain str if it is one (a NumPy ``str_`` is), else a TypeError naming ``field`` of a task."""
    if not isinstance(value, str):
        raise TypeError(f"ConfigSearchTask.{field} must be a configuration name (a str), got {reprlib.repr(value)} "
                        f"({type(value).__name__})")
    return str(value)


def _deadline(runtime: np.ndarray, rng: np.random.Generator) -> float:
    """A deadline between the 20% and 70% quantiles of the configurations' runtimes (some, not all, meet it)."""
    return float(np.quantile(runtime, rng.uniform(0.2, 0.7)))


@dataclass(frozen=True)
class ConfigSearchTaskFamily(TaskFamily[ConfigSearchTask]):
    """Config-search tasks over one shared list of configurations (a family whose tasks list others, or the same in
    another order, is refused: action ``i`` and observation block ``i`` are configuration ``i`` of every task)."""

    task_type: ClassVar[type] = ConfigSearchTask

    def __post_init__(self) -> None:
        super().__post_init__()
        configs = self.train[0].configs
        for split in SPLITS:
            for index, task in enumerate(self.split(split)):
                if task.configs != configs:
                    raise ValueError(f"{type(self).__name__}: {split}[{index}] ({task.name!r}) "
                                     f"{_config_difference(task.configs, configs)} the first train task's "
                                     f"({self.train[0].name!r}); a family's tasks must all have the same "
                                     "configurations, in the same order")

    @classmethod
    def generate(cls, n_train: int = 200, n_test: int = 50, seed: int = 2024,
                 memory_sizes: Sequence[int] = MEMORY_SIZES_MIB) -> "ConfigSearchTaskFamily":
        """Simulated serverless functions (:mod:`flash_envs.sim.serverless`) at ``memory_sizes`` (>= 2 distinct sizes
        in [128, 10240] MiB, one configuration each), noise-free truth."""
        n_train, n_test, seed = check_generate_arguments(n_train, n_test, seed)
        memory = np.asarray(check_memory_sizes(memory_sizes), dtype=float)
        rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])   # not the stream the functions use
        configs = tuple(memory_config_name(m) for m in memory)
        tasks = []
        for fn in generate_functions(n_train + n_test, seed):
            runtime = fn.expected_time_s(memory)
            tasks.append(ConfigSearchTask(fn.name, configs, tuple(runtime.tolist()),
                                          tuple(invocation_cost(memory, runtime).tolist()), _deadline(runtime, rng)))
        return cls(tuple(tasks[:n_train]), tuple(tasks[n_train:]))

    @classmethod
    def from_measurements(cls, data: ConfigMeasurements, test_fraction: float = 0.25,
                          seed: int = 2024) -> "ConfigSearchTaskFamily":
        """One task per application, over the configurations measured for every application; apps split at random,
        ``test_fraction`` (in (0, 1)) of them held out, the split fixed by ``seed`` (a whole number; not None)."""
        if seed is None:   # default_rng(None) would split the apps another way at each call
            raise TypeError("seed must be a whole number, not None: a family's split is fixed by its seed")
        seed = check_whole("seed", seed, 0)   # as generate() takes it
        if not is_real_number(test_fraction):
            raise TypeError(f"test_fraction must be a number, got {test_fraction!r} ({type(test_fraction).__name__})")
        if not 0 < test_fraction < 1:
            raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
        common = np.all(data.measured, axis=0)
        if common.sum() < 2 or len(data.apps) < 2:
            measured = data.measured.sum(axis=1)
            fewest = ", ".join(f"{data.apps[i]} ({measured[i]} of {len(data.configs)})"
                               for i in np.argsort(measured, kind="stable")[:3])
            raise ValueError(f"{data.source}: needs >= 2 applications and >= 2 configurations measured for all of "
                             f"them; got {len(data.apps)} apps, {int(common.sum())} common configs (fewest measured: "
                             f"{fewest})")
        rng = np.random.default_rng(seed)
        configs = tuple(c for c, keep in zip(data.configs, common) if keep)
        tasks = [ConfigSearchTask(app, configs, tuple(data.runtime_s[i, common].tolist()),
                                  tuple(data.cost_usd[i, common].tolist()), _deadline(data.runtime_s[i, common], rng))
                 for i, app in enumerate(data.apps)]
        order = rng.permutation(len(tasks))
        n_test = min(max(1, round(test_fraction * len(tasks))), len(tasks) - 1)
        return cls(tuple(tasks[i] for i in order[n_test:]), tuple(tasks[i] for i in order[:n_test]))


def _config_difference(configs: tuple[str, ...], expected: tuple[str, ...]) -> str:
    """Where the configuration list ``configs`` first differs from ``expected``: a phrase ending in "in", which the
    message follows with whose list ``expected`` is."""
    if len(configs) != len(expected):
        return f"has {len(configs)} configurations where there are {len(expected)} in"
    i = next(i for i, (a, b) in enumerate(zip(configs, expected)) if a != b)
    return f"has configuration {i} {configs[i]!r}, where it is {expected[i]!r} in"


class ConfigSearchEnv(TaskEnv[ConfigSearchTask]):
    """``flash/ConfigSearch-v0``: measure configurations of a hidden application, then commit to one (FLASH case I).

    ## Description
    A hidden application (the task, :class:`ConfigSearchTask`) has a true runtime and cost under each of ``n``
    resource configurations (memory sizes of a simulated serverless function by default, or the configurations of a
    dataset such as the IBM multi-cloud one). Each step either measures one configuration, which returns a noisy
    runtime and cost, or commits to one, which ends the episode. The goal is the cheapest configuration whose true
    runtime meets the task's deadline. A measurement is the true runtime and cost both times one factor
    ``exp(N(0, noise_cv))``, drawn from the episode's own generator (seeded from ``np_random`` at ``reset()``, so that
    ``sample_tasks()`` during an episode leaves its measurements be).

    ## Action Space
    ``Discrete(2 * n)``: action ``a < n`` measures configuration ``a`` (measuring it again replaces its latest
    measurement); ``a >= n`` commits to configuration ``a - n`` (committing to a configuration never measured is
    allowed).

    ## Observation Space
    ``Box(-10, 10, (3 * n + 1,), float32)``: three values per configuration, configuration after configuration
    (configuration ``i``'s value ``Num`` is at index ``3 * i + Num``), then the budget used at index ``3 * n``. Values
    are clipped to the space's bounds, +-10; Min and Max give the range each index takes.

    | Num   | Observation                                                                            | Min | Max |
    |-------|----------------------------------------------------------------------------------------|-----|-----|
    | 0     | 1 if the configuration was measured this episode, else 0                               | 0   | 1   |
    | 1     | log(runtime / deadline), latest measurement (0 while unmeasured)                       | -10 | 10  |
    | 2     | log(cost / the episode's first measured cost), latest measurement (0 while unmeasured) | -10 | 10  |
    | 3 * n | measurements made / ``max_measurements``                                               | 0   | 1   |

    ## Rewards
    ``-measure_penalty`` per measurement; on commit, ``best_cost / chosen_cost`` if the chosen configuration's true
    runtime meets the deadline, else 0 (so 1 is a perfect choice).

    ## Starting State
    Nothing measured: the observation is all zeros.

    ## Episode End
    Terminated on commit, or at the measurement that uses up ``max_measurements`` (nothing chosen, nothing earned:
    the budget used is in the observation, so this is the end of the task, not a time limit, and a value-based
    learner must not bootstrap past it). A ``step()`` after either (or before the first ``reset()``) raises
    ``RuntimeError``.

    ## Arguments
    ``gym.make("flash/ConfigSearch-v0", family=None, task=None, noise_cv=0.05, measure_penalty=0.02,
    max_measurements=None, render_mode=None)``. ``family`` is a :class:`ConfigSearchTaskFamily` whose tasks all have
    the same ``n`` configurations: :meth:`~ConfigSearchTaskFamily.generate` (simulated functions, the default) or
    :meth:`~ConfigSearchTaskFamily.from_measurements` (any :class:`ConfigMeasurements`), e.g.::

        fam = ConfigSearchTaskFamily.from_measurements(load_ibm_multicloud(dataset_path("ibm_multicloud", "...csv")))
        env = gym.make("flash/ConfigSearch-v0", family=fam)

    ``task`` fixes the starting task (default: the family's first train task); ``max_measurements`` defaults to ``n``
    (the default family has ``n = 15`` memory sizes, 128 MiB to 10 GiB: ``Box(46,)`` observations, ``Discrete(30)``
    actions). ``noise_cv`` is at most 3 (a factor of e^3 = 20 at one standard deviation; beyond that a measurement
    says nothing and ``exp`` overflows). ``render_mode="ansi"`` makes :meth:`render` return a line on the last step:
    the configuration measured and its measured runtime and cost against the deadline, or the one committed to, with
    its true runtime and cost and the best choice's.

    ## Version History
    * v0: initial version.

    ## Info
    ``reset`` and ``step`` return ``task`` and ``measurements`` (made this episode). After a commit, also ``chosen``
    (the configuration committed to), ``best`` (the cheapest configuration that meets the deadline),
    ``meets_deadline`` and ``regret`` (``chosen_cost / best_cost - 1``, or ``inf`` when the choice misses the
    deadline).
    """

    metadata: dict[str, Any] = {"render_modes": ["ansi"], "render_fps": 4}
    family_type = ConfigSearchTaskFamily

    def __init__(self, family: ConfigSearchTaskFamily | None = None, task: ConfigSearchTask | None = None,
                 noise_cv: float = 0.05, measure_penalty: float = 0.02, max_measurements: int | None = None,
                 render_mode: str | None = None) -> None:
        family = default_family(ConfigSearchTaskFamily) if family is None else family
        super().__init__(family, task, render_mode)   # checks the task against the family
        for t in (*family.train, *family.test):
            super()._check_task(t)
        self.noise_cv = check_number("noise_cv", noise_cv, 0.0, MAX_NOISE_CV)
        self.measure_penalty = check_number("measure_penalty", measure_penalty, 0.0)
        self.max_measurements = (self.n_configs if max_measurements is None
                                 else check_whole("max_measurements", max_measurements, 1))
        self.action_space = spaces.Discrete(2 * self.n_configs)
        self.observation_space = spaces.Box(-OBS_LIMIT, OBS_LIMIT, (3 * self.n_configs + 1,), np.float32)
        self._runtime = np.zeros(self.n_configs)
        self._cost = np.zeros(self.n_configs)
        self._measured = np.zeros(self.n_configs, dtype=bool)
        self._ref_cost = math.nan
        self._measurements = 0
        self._last_action: int | None = None   # of the episode, for render()
        self._noise: np.random.Generator   # the episode's measurement noise, set by reset()
        self._ended: str | None = ""   # why step() may not run ("": no reset() yet), None while an episode runs

    @property
    def episode_steps(self) -> int:
        """The longest an episode lasts, in steps: ``max_measurements`` (it ends sooner when the agent commits)."""
        return self.max_measurements

    @property
    def n_configs(self) -> int:
        """Configurations per task (``n``), as the family's first train task has; every task run must have as many."""
        return len(self.family.train[0].configs)

    def _check_task(self, task: Any) -> None:
        super()._check_task(task)
        k = len(task.configs)
        if k != self.n_configs:
            raise ValueError(f"task {task.name!r} has {k} configurations, but this env's family has {self.n_configs} "
                             f"(they set its spaces); to run tasks of {k} configurations, make the env with a family "
                             f"of such tasks (family=...)")
        if task.configs != self.family.train[0].configs:
            raise ValueError(f"task {task.name!r} {_config_difference(task.configs, self.family.train[0].configs)} "
                             f"this env's family's (action i measures configuration i); to run it, make the env with "
                             f"a family of such tasks (family=...)")

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        with self._building():
            rng_state = self._seed(seed)
            task = self._next_task(options)
        self._start_episode(task, rng_state)
        self._noise = self._own_stream()
        self._measured[:] = False
        self._runtime[:] = 0.0
        self._cost[:] = 0.0
        self._ref_cost = math.nan
        self._measurements = 0
        self._last_action = None
        self._ended = None
        return self._get_obs(), self._get_info()

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self._check_step(action, self._ended is None, self._ended or "")
        a = self._last_action = int(action)
        task = self.episode_task
        if a < self.n_configs:
            factor = math.exp(self._noise.normal(0.0, self.noise_cv))
            self._runtime[a], self._cost[a] = task.runtime_s[a] * factor, task.cost_usd[a] * factor
            self._measured[a] = True
            if math.isnan(self._ref_cost):
                self._ref_cost = self._cost[a]
            self._measurements += 1
            terminated = self._measurements >= self.max_measurements
            if terminated:
                self._ended = f"the episode ended: all {self.max_measurements} measurements used"
            return self._get_obs(), -self.measure_penalty, terminated, False, self._get_info()
        chosen, best = a - self.n_configs, task.best
        meets = task.runtime_s[chosen] <= task.deadline_s
        quality = task.cost_usd[best] / task.cost_usd[chosen] if meets else 0.0
        info = self._get_info() | {"chosen": chosen, "best": best, "meets_deadline": meets,
                                   "regret": task.cost_usd[chosen] / task.cost_usd[best] - 1.0 if meets else math.inf}
        self._ended = f"the episode ended: committed to configuration {chosen}"
        return self._get_obs(), float(quality), True, False, info

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return super().render()
        if self._ended == "":   # before reset() or after close(): nothing to show
            return None
        task, a = self.episode_task, self._last_action
        deadline = f"the {task.deadline_s:g}s deadline"
        if a is None:
            return f"{task.name}: nothing measured yet (0/{self.max_measurements}); {deadline}"
        if a < self.n_configs:
            meets = "meets" if self._runtime[a] <= task.deadline_s else "misses"
            return (f"measurement {self._measurements}/{self.max_measurements}: {task.configs[a]} "
                    f"runtime={self._runtime[a]:.4g}s cost=${self._cost[a]:.4g} ({meets} {deadline})")
        chosen, best = a - self.n_configs, task.best
        meets = "meets" if task.runtime_s[chosen] <= task.deadline_s else "misses"
        return (f"committed to {task.configs[chosen]} after {self._measurements} measurement(s): true "
                f"runtime={task.runtime_s[chosen]:.4g}s cost=${task.cost_usd[chosen]:.4g} ({meets} {deadline}); best "
                f"{task.configs[best]} cost=${task.cost_usd[best]:.4g}")

    def close(self) -> None:
        """End the episode: a ``step()`` needs a ``reset()`` first, and :meth:`render` shows nothing until then, as in
        the other envs."""
        self._ended = ""

    def _get_obs(self) -> np.ndarray:
        if not self._measurements:   # the starting state, what the formula below gives (a reset's cost halved)
            return np.zeros(self.observation_space.shape, np.float32)
        m = self._measured
        log_rt = np.where(m, np.log(np.where(m, self._runtime, 1.0) / self.episode_task.deadline_s), 0.0)
        log_cost = np.where(m, np.log(np.where(m, self._cost, 1.0) / (self._ref_cost if m.any() else 1.0)), 0.0)
        per_config = np.stack([m.astype(float), log_rt, log_cost], axis=1).ravel()
        obs = np.append(per_config, self._measurements / self.max_measurements)
        return np.clip(obs, -OBS_LIMIT, OBS_LIMIT).astype(np.float32)

    def _get_info(self) -> dict[str, Any]:
        return {"task": self.episode_task, "measurements": self._measurements}
