"""The task API every FLASH environment offers (as in Meta-World, garage and learn2learn).

* ``env.unwrapped.sample_tasks(n, split)``: ``n`` tasks of the ``"train"`` or ``"test"`` split, drawn with the env's
  ``np_random``;
* ``set_task(task)`` / ``get_task()``: the task the next episodes run (it persists across resets). A task the env
  cannot run (of the wrong type or size, or whose workload cannot be realised, e.g. an empty trace file) is refused
  there, as it is by the constructor's ``task`` and by ``reset(options={"task": ...})``;
* ``reset(options={"task": task})``: set the task and reset in one call (``"task"`` is the one key ``options`` takes);
* ``episode_task``: the task the current episode runs. It is fixed at ``reset()``: a ``set_task()`` during an
  episode (e.g. a meta-learner's ``vec_env.env_method("set_task", ...)``) takes effect at the next reset and never
  mixes two tasks in one episode.

The episode's task is also returned in ``info["task"]``. An env pickles and deep-copies mid-episode too: a SimPy
simulation (its processes are generators) cannot be pickled, so the copy rebuilds it by replaying the episode from the
``np_random`` state it started from, with the same actions (the envs are deterministic given that state), and
checks that it comes to the observation the env had (:class:`ReplayMismatch` otherwise). A
``reset()`` that raises changes nothing: the env keeps its task and its ``np_random`` (a failed ``reset(seed=...)``
does not reseed it, and draws made before the failure are undone), and goes on with the episode it was running (the
new task and simulation are committed only once built). The constructor arguments every env shares (``family``,
``task``, ``render_mode``) are checked here; :mod:`flash_envs.fields` checks the envs' own numbers.
"""

from __future__ import annotations

import copy
import math
import reprlib
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Iterable, Iterator, TypeVar

import gymnasium as gym
import numpy as np

from flash_envs.flash_warnings import warn
from flash_envs.tasks import TaskFamily

T = TypeVar("T")


class UnsupportedRenderMode(ValueError, TypeError):
    """A ``render_mode`` the env does not offer. It is also a TypeError because SB3's ``make_vec_env`` passes
    ``render_mode="rgb_array"`` and retries without it only on a TypeError (what an env without the argument raises).
    """


MAX_EPISODE_S = 365 * 86400.0
"""The longest episode an env takes, one year of simulated time: an episode's workload is realised up front at 1 s
resolution, which takes :data:`REALISED_BYTES_PER_S` per simulated second (about 1 GB for a year)."""
REALISED_BYTES_PER_S = 32
"""Peak memory of realising a workload, per simulated second: the rates and their running sum (8 bytes each) that
the curve keeps, and as much again while they are drawn."""


def check_episode_length(name: str, episode_s: float) -> None:
    """Refuse an episode longer than :data:`MAX_EPISODE_S` (``name``: the argument(s) that set ``episode_s``), with the
    memory its workload would need, rather than a bare ``MemoryError`` at ``reset()``."""
    if episode_s > MAX_EPISODE_S:
        raise ValueError(f"{name} makes an episode of {episode_s:g} s ({episode_s / 86400:.4g} days), whose workload "
                         f"(realised up front at 1 s resolution) would need about "
                         f"{episode_s * REALISED_BYTES_PER_S / 1e9:.3g} GB; an episode may last at most "
                         f"{MAX_EPISODE_S:.0f} s ({MAX_EPISODE_S / 86400:g} days, about "
                         f"{MAX_EPISODE_S * REALISED_BYTES_PER_S / 1e9:.2g} GB)")


MAX_SUBSTEPS = int(MAX_EPISODE_S)
"""The most sub-steps an episode may have, a year's of 1 s: the simulators advance one sub-step at a time (a few
microseconds each in the fast fidelity), so a ``substep_s`` of 1e-12 s left ``reset()`` running for years."""


def check_substep_count(episode_s: float, substep_s: float) -> None:
    """Refuse an episode of ``episode_s`` simulated in more than :data:`MAX_SUBSTEPS` sub-steps of ``substep_s``
    (both already checked to be positive numbers), naming ``substep_s`` and its smallest value here."""
    if episode_s / substep_s > MAX_SUBSTEPS:
        raise ValueError(f"substep_s={substep_s!r} divides an episode of {episode_s:g} s into "
                         f"{episode_s / substep_s:.3g} sub-steps, simulated one at a time; an episode may have at "
                         f"most {MAX_SUBSTEPS:,} (a year of 1 s sub-steps), so substep_s must be at least "
                         f"{episode_s / MAX_SUBSTEPS:.3g} s here")


def warn_of_another_episode_length(env_name: str, family: TaskFamily, episode_s: float | None) -> None:
    """Warn when ``family`` was generated for episodes of another length than ``episode_s`` (the env ``env_name``'s;
    nothing to compare when either is None): its workloads' steps and diurnal periods would fall elsewhere."""
    made_for = family.episode_s
    if episode_s is not None and made_for is not None and not math.isclose(episode_s, made_for, rel_tol=1e-9):
        warn(f"{env_name}: the task family was generated for {made_for:g} s episodes, but this env's last "
             f"{episode_s:g} s: its workloads' steps and diurnal periods are timed for the other length (generate the "
             "family for this env's length, or give the env the family's)")


def check_workload(task: Any) -> None:
    """Raise what realising ``task.workload`` raises (e.g. a trace CSV that is missing or has no rows), by realising
    one second of it with a throwaway generator: a task that cannot run is refused where it is given, not at a later
    ``reset()``."""
    task.workload.realise(np.random.default_rng(0), 1.0)


def check_slo_below_timeout(tasks: Iterable[Any], timeout_s: float, remedy: str) -> None:
    """Refuse a task whose SLO (``task.app.slo_ms``) is not below the latency cap ``timeout_s``: no request counts a
    latency above the cap, so such an SLO could never be missed and the reward's SLO term would silently vanish.
    ``remedy`` ends the message: what the user can change."""
    for task in tasks:
        if task.app.slo_ms >= 1000 * timeout_s:
            raise ValueError(f"task {task.name!r}: its SLO ({task.app.slo_ms:g} ms) must be below the latency cap "
                             f"({timeout_s:g} s): no latency counts more than the cap, so the SLO could never be "
                             f"missed; {remedy}")


class ReplayMismatch(ValueError):
    """A copy of an env, replaying its episode in progress, came to another observation than the env had: what the
    episode was built from changed in between (e.g. the trace file a task replays was rewritten)."""


@dataclass
class EpisodeLog:
    """What replays the current episode: ``np_random``'s state when it was built, its task and the actions taken."""

    rng_state: dict[str, Any]
    task: Any
    actions: list[Any] = field(default_factory=list)


class TaskEnv(gym.Env, Generic[T]):
    """A Gymnasium env over a :class:`~flash_envs.tasks.TaskFamily`.

    Subclasses set ``family_type`` (the family class they take) and ``metadata["render_modes"]``; their ``reset``
    calls :meth:`_seed` (``gym.Env.reset``), takes the task from :meth:`_next_task` and builds the episode, all within
    :meth:`_building`, and only then calls :meth:`_start_episode`; their ``step`` calls :meth:`_log_action` once the
    step has run. ``live_attributes`` maps the attributes holding an episode's simulation, which cannot be
    pickled, to their value between episodes: a pickled env holds that value instead, and its copy replays the
    episode, then checks that it came to the observation the env had (:meth:`_get_obs`, which such a subclass
    defines) or raises :class:`ReplayMismatch`.

    The envs end their episodes themselves (after ``episode_steps`` steps; ConfigSearch's after at most
    ``max_measurements``), so they register no ``max_episode_steps``. ``gym.make(id, max_episode_steps=N)`` adds
    Gymnasium's ``TimeLimit``, which ends episodes sooner when ``N`` is below that and has no effect above it; a wrapper
    that needs a limit, such as ``TimeAwareObservation``, runs with ``max_episode_steps`` set to it.
    """

    family_type: ClassVar[type[TaskFamily]]
    live_attributes: ClassVar[dict[str, Any]] = {}
    _np_random: np.random.Generator | None   # gym.Env's generator and its seed, which _building puts back
    _np_random_seed: int | None

    def __init__(self, family: TaskFamily, task: T | None = None, render_mode: str | None = None,
                 episode_s: float | None = None) -> None:
        """``episode_s``: this env's episode length (s), if it has one, checked against the family's."""
        if not isinstance(family, self.family_type):
            raise TypeError(f"{type(self).__name__}: family must be of type {self.family_type.__name__}, got "
                            f"{type(family).__name__}")
        modes = [None, *self.metadata["render_modes"]]
        if render_mode not in modes:
            raise UnsupportedRenderMode(f"{type(self).__name__}: render_mode must be one of {modes}, got "
                                        f"{render_mode!r}")
        self.family = family
        self.render_mode = render_mode
        self._task: T = family.train[0] if task is None else task
        self._check_task(self._task)
        warn_of_another_episode_length(type(self).__name__, family, episode_s)
        self._episode_task: T | None = None
        self._episode_log: EpisodeLog | None = None

    def sample_tasks(self, n: int, split: str = "train") -> list[T]:
        """Draw ``n`` tasks of ``split`` with the env's ``np_random`` (seed it with ``reset(seed=...)``)."""
        return self.family.sample(n, split, self.np_random)

    def set_task(self, task: T) -> None:
        """Run ``task`` from the next reset on (a task this env cannot run is refused here)."""
        self._check_task(task)
        self._task = task

    def get_task(self) -> T:
        """The task the next episodes run."""
        return self._task

    @property
    def episode_task(self) -> T:
        """The task the current episode runs, fixed at ``reset()`` (before the first reset: the next episode's)."""
        return self._task if self._episode_task is None else self._episode_task

    def render(self) -> Any:
        """These envs draw nothing unless a subclass offers render modes: warn and return ``None``, as Gymnasium's
        own envs do when called without a render mode."""
        gym.logger.warn(f"{type(self).__name__}.render() called without a render mode; it draws nothing")
        return None

    def _check_task(self, task: Any) -> None:
        """Refuse a task this env cannot run (subclasses check more than its type)."""
        if not isinstance(task, self.family.task_type):
            raise TypeError(f"{type(self).__name__} takes {self.family.task_type.__name__} tasks, got "
                            f"{type(task).__name__}")

    def _next_task(self, options: dict[str, Any] | None) -> T:
        """The task of the episode ``reset`` builds: ``options["task"]`` (checked) if given, else :meth:`get_task`.
        Changes nothing; ``reset`` commits the task with :meth:`_start_episode` once the episode is built. ``options``
        is ``None`` or a dict whose one key is ``"task"``: another key (a misspelt ``"task"`` say) is refused, not
        ignored."""
        if options is not None and not isinstance(options, Mapping):
            raise TypeError(f"reset(options=...) takes a dict such as {{'task': task}}, got {reprlib.repr(options)} "
                            f"({type(options).__name__})")
        if unknown := sorted(map(repr, set(options or ()) - {"task"})):
            raise ValueError(f"reset(options=...) takes the key 'task' only, got {', '.join(unknown)}")
        if options and "task" in options:
            self._check_task(options["task"])
            return options["task"]
        return self._task

    @contextmanager
    def _building(self) -> Iterator[None]:
        """Where ``reset`` reseeds ``np_random`` and builds an episode: if anything in it raises, ``np_random`` is put
        back as it was (the same generator, seed and state), so that a failed reset changes nothing."""
        rng, seed = self._np_random, self._np_random_seed
        state = None if rng is None else rng.bit_generator.state
        try:
            yield
        except BaseException:
            self._np_random, self._np_random_seed = rng, seed
            if rng is not None:
                rng.bit_generator.state = state
            raise

    def _seed(self, seed: int | None) -> dict[str, Any]:
        """``gym.Env.reset(seed=seed)``; returns the state of ``np_random`` the episode is then built from."""
        super().reset(seed=seed)
        return self.np_random.bit_generator.state

    def _start_episode(self, task: T, rng_state: dict[str, Any]) -> None:
        """Make ``task`` the task of the episode ``reset`` has built (from ``np_random`` in ``rng_state``) and of the
        episodes after it."""
        self._task = self._episode_task = task
        self._episode_log = EpisodeLog(rng_state, task)

    def _check_step(self, action: Any, running: bool, ended: str = "") -> None:
        """Refuse a ``step(action)`` the env cannot take, the same way in every env: first a RuntimeError when no
        episode is ``running`` (``ended`` says why, when it is not the lack of a ``reset()``), then a ValueError naming
        an ``action`` outside the action space, or a bool (which gymnasium's spaces take for 1 and 0)."""
        if not running:
            why = ended or "no reset() since the env was made or closed"
            raise RuntimeError(f"step() with no episode running ({why}): call reset() first")
        if isinstance(action, (bool, np.bool_)) or (isinstance(action, np.ndarray) and action.dtype == np.bool_):
            raise ValueError(f"action {action!r} is a bool, which the action space {self.action_space} takes for 1 "
                             "and 0 (Discrete.contains does); give the action's integer")   # (a bug upstream, say)
        if not self.action_space.contains(action):
            raise ValueError(f"action {action!r} is not in the action space {self.action_space}")

    def _log_action(self, action: Any) -> None:
        """Record the action of a step of the current episode that has run (see :meth:`__setstate__`); a copy, so
        that a caller reusing its list or array for the next action leaves the record be."""
        if self._episode_log is not None:
            self._episode_log.actions.append(copy.deepcopy(action))

    def __getstate__(self) -> dict[str, Any]:
        """The env's attributes, with :attr:`live_attributes` at their value between episodes (see
        :meth:`__setstate__`)."""
        state = self.__dict__.copy()
        if self.live_attributes:
            state.update(self.live_attributes)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore the attributes; for an env with :attr:`live_attributes` pickled mid-episode, rebuild its simulation
        by replaying the episode: reset from the ``np_random`` state and task it started with, take its actions
        again, then give ``np_random`` and the next episodes' task back their pickled values. A replay that comes to
        another observation than the pickled env had raises :class:`ReplayMismatch` (the task's trace file changed
        since, or the env was copied after a step that raised part-way): the copy would not be one."""
        self.__dict__.update(state)
        log = self._episode_log
        if not self.live_attributes or log is None:
            return
        expected = self._get_obs()   # from the attributes pickled by value
        rng_now, next_task = self.np_random.bit_generator.state, self._task
        self.np_random.bit_generator.state = log.rng_state
        self.reset(options={"task": log.task})   # no seed: np_random goes on from the state just set
        for action in log.actions:
            self.step(action)
        self.np_random.bit_generator.state = rng_now
        self._task = next_task
        if not np.array_equal(self._get_obs(), expected, equal_nan=True):
            steps = f"{len(log.actions)} step{'' if len(log.actions) == 1 else 's'}"
            raise ReplayMismatch(f"replaying the episode in progress ({steps} of task "
                                 f"{getattr(log.task, 'name', log.task)!r}) came to another observation than the env "
                                 "had: what the task is built from changed since (a trace file rewritten?), or a step "
                                 "was interrupted part-way")

    def _get_obs(self) -> np.ndarray:
        """The observation of the current step (envs with :attr:`live_attributes` define it)."""
        raise NotImplementedError

    def _own_stream(self) -> np.random.Generator:
        """A generator of its own, seeded from ``np_random``, for an episode's randomness (a simulation, measurement
        noise), so that ``sample_tasks()`` during an episode leaves the episode be."""
        return np.random.default_rng(self.np_random.integers(2**63))
