"""The task API every FLASH environment offers (as in Meta-World, garage and learn2learn).

* ``env.unwrapped.sample_tasks(n, split)``: ``n`` tasks of the ``"train"`` or ``"test"`` split, drawn with the env's
  ``np_random``;
* ``set_task(task)`` / ``get_task()``: the task the next episodes run (it persists across resets);
* ``reset(options={"task": task})``: set the task and reset in one call;
* ``episode_task``: the task the current episode runs. It is fixed at ``reset()``: a ``set_task()`` during an
  episode (e.g. a meta-learner's ``vec_env.env_method("set_task", ...)``) takes effect at the next reset and never
  mixes two tasks in one episode.

The episode's task is also returned in ``info["task"]``. The constructor arguments every env shares (``family``,
``task``, ``render_mode``) are checked here; :mod:`flash_envs.fields` checks the envs' own numbers.
"""

from __future__ import annotations

from typing import Any, ClassVar, Generic, TypeVar

import gymnasium as gym

from flash_envs.tasks import TaskFamily

T = TypeVar("T")


class TaskEnv(gym.Env, Generic[T]):
    """A Gymnasium env over a :class:`~flash_envs.tasks.TaskFamily`; subclasses call :meth:`_reset_task`.

    Subclasses set ``family_type`` (the family class they take) and ``metadata["render_modes"]``.
    """

    family_type: ClassVar[type[TaskFamily]]

    def __init__(self, family: TaskFamily, task: T | None = None, render_mode: str | None = None) -> None:
        if not isinstance(family, self.family_type):
            raise TypeError(f"{type(self).__name__}: family must be of type {self.family_type.__name__}, got "
                            f"{type(family).__name__}")
        modes = [None, *self.metadata["render_modes"]]
        if render_mode not in modes:
            raise ValueError(f"{type(self).__name__}: render_mode must be one of {modes}, got {render_mode!r}")
        self.family = family
        self.render_mode = render_mode
        self._task: T = family.train[0] if task is None else task
        self._check_task(self._task)
        self._episode_task: T | None = None

    def sample_tasks(self, n: int, split: str = "train") -> list[T]:
        """Draw ``n`` tasks of ``split`` with the env's ``np_random`` (seed it with ``reset(seed=...)``)."""
        return self.family.sample(n, split, self.np_random)

    def set_task(self, task: T) -> None:
        """Run ``task`` from the next reset on."""
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
        if not isinstance(task, self.family.task_type):
            raise TypeError(f"{type(self).__name__} takes {self.family.task_type.__name__} tasks, got "
                            f"{type(task).__name__}")

    def _reset_task(self, options: dict[str, Any] | None) -> None:
        """Apply ``options["task"]`` if given and fix the episode's task (call from ``reset`` after
        ``super().reset(seed=seed)``)."""
        if options and "task" in options:
            self.set_task(options["task"])
        self._episode_task = self._task
