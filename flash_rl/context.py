"""The *context* FLASH's meta-learner reads: recent transitions of the current task, and the wrappers that keep it.

* :class:`ContextBuffer` holds the last ``length`` transitions ``(observation, action, reward)`` seen in one task. It
  survives episode boundaries while the task stays the same and is cleared when the task changes.
* :class:`ContextWrapper` turns an env's observation into ``{"obs": obs, "context": buffer}`` so that a
  stable-baselines3 agent with :class:`flash_rl.encoder.FlashFeaturesExtractor` sees it. Several wrappers may share
  one buffer (the fine-tuning env and the evaluation env of one adaptation run).
* :class:`TaskSamplingWrapper` moves an env to a new task, drawn from a list with its own generator, every
  ``episodes_per_task`` episodes (meta-training: each vectorised env on its own task, resampled as training goes).

A context row is ``[obs (n_obs), action (one-hot for Discrete, raw for Box), reward, valid]``; rows are left-padded
with zeros (``valid = 0``) so the newest transition is always the last row.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from flash_envs.fields import check_whole


CONTEXT_ACTION_SPACES = (spaces.Discrete, spaces.Box)   # the action spaces a context row can encode


def action_dim(action_space: spaces.Space) -> int:
    """Width of an action's encoding in a context row: ``n`` (one-hot) for Discrete, the flattened size for Box."""
    if isinstance(action_space, spaces.Discrete):
        return int(action_space.n)
    if isinstance(action_space, spaces.Box):
        return int(np.prod(action_space.shape))
    raise TypeError(f"FLASH's context supports Discrete and Box actions, got {action_space}")


def same_task(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` are the same task by value (``==``; NumPy arrays compared whole)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return bool(np.array_equal(a, b))
    return bool(a == b)


def episode_task(info: dict[str, Any], env: gym.Env) -> Any:
    """The task of the episode a ``reset`` began: ``info["task"]``, else the env's ``episode_task`` (None if
    neither)."""
    return info["task"] if "task" in info else getattr(env.unwrapped, "episode_task", None)


TASK_API = ("set_task", "get_task")
"""What flash_rl calls on ``env.unwrapped`` to put an env on a task (besides ``reset(options={"task": task})``)."""


def check_task_env(env: gym.Env, env_id: str, use_context: bool, task: Any = None) -> None:
    """Refuse (TypeError, ValueError) an env ``flash_rl`` cannot put on its tasks: without :data:`TASK_API`, or, for
    an agent with context (``use_context``), one whose ``reset`` does not tell the episode's task
    (:func:`episode_task`) or tells it unequal for the same task twice, which would clear the context every episode.
    Resets ``env`` twice on ``task`` (default: its own, ``get_task()``; nothing to reset on if that is None)."""
    unwrapped = env.unwrapped
    if missing := [name for name in TASK_API if not callable(getattr(unwrapped, name, None))]:
        raise TypeError(f"env {env_id!r} lacks the task API flash_rl puts its envs on tasks with: "
                        f"{', '.join(missing)}() (README, 'Your own environment')")
    task = unwrapped.get_task() if task is None else task
    if not use_context or task is None:
        return
    try:
        first, second = (episode_task(env.reset(options={"task": task})[1], env) for _ in range(2))
    except Exception as err:   # the env's own error, named as what it failed
        raise ValueError(f"env {env_id!r}: checking that its reset() tells the episode's task, "
                         f"reset(options={{'task': ...}}) raised {type(err).__name__}: {err}") from err
    if first is None:
        raise ValueError(f"env {env_id!r}: FLASH's context needs each episode's task, and its reset() returns none "
                         "in info['task'] (nor has the env an episode_task); without it the context would be cleared "
                         "every episode")
    if not same_task(first, second):
        raise ValueError(f"env {env_id!r}: two resets on one task gave tasks that compare unequal "
                         f"({type(first).__name__} compares by identity?), so FLASH's context would be cleared every "
                         "episode; give the task class value equality, e.g. make it a (frozen) dataclass")


def check_tasks_settable(env: gym.Env, env_id: str, tasks: Sequence[Any]) -> None:
    """Refuse, before any training, a task of ``tasks`` that ``env``'s ``set_task`` refuses (the env's TypeError or
    ValueError, naming the task's place in the list): meta-training draws tasks at random, so one it cannot run failed
    only when drawn, after hours, or never. Leaves ``env`` on another task; give it a probe."""
    for i, task in enumerate(tasks):
        try:
            env.unwrapped.set_task(task)
        except (TypeError, ValueError) as err:
            kind = TypeError if isinstance(err, TypeError) else ValueError   # not type(err): its __init__ may differ
            raise kind(f"meta_train: task {i} of {len(tasks)} ({str(getattr(task, 'name', task))[:60]!r}) cannot run "
                       f"on env {env_id!r}: {err}") from None


def check_checkpointable(tasks: Sequence[Any]) -> None:
    """Refuse (TypeError), before any training, tasks that a checkpoint cannot record: a checkpoint names the task
    list and each env's task by their ``to_dict()``, which must give plain JSON."""
    for task in tasks:
        to_dict = getattr(task, "to_dict", None)
        problem = ("has no to_dict()" if not callable(to_dict)
                   else "has a to_dict() that is not plain JSON" if _json_key(to_dict()) is None else "")
        if problem:
            raise TypeError(f"checkpoint_dir: a checkpoint records the tasks by their to_dict(), and task "
                            f"{str(task)[:60]!r} ({type(task).__name__}) {problem}; give the task class one (e.g. "
                            "returning dataclasses.asdict(self)), or meta-train without checkpoint_dir")


def row_dim(observation_space: spaces.Space, action_space: spaces.Space) -> int:
    """Width of one context row: observation, action encoding, reward, valid flag."""
    return int(np.prod(observation_space.shape)) + action_dim(action_space) + 2


class ContextBuffer:
    """The last ``length`` transitions of the current task (kept across episodes, cleared on task change)."""

    def __init__(self, length: int, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        length = check_whole("context length", length, 1)   # 2.5 was cut to 2; "4" a raw TypeError
        if not isinstance(observation_space, spaces.Box):
            raise TypeError(f"FLASH's context needs a Box observation space, got {observation_space}")
        self.length = int(length)
        self.observation_space = observation_space
        self.action_space = action_space
        self.n_obs = int(np.prod(observation_space.shape))
        self.n_act = action_dim(action_space)
        self.width = self.n_obs + self.n_act + 2
        self._window = np.zeros((self.length, self.width), dtype=np.float32)   # what array() returns a copy of
        self._filled = 0   # rows of the window that hold transitions (the last ones; those above are zeros)
        self.task: Any = None
        self.transitions_seen = 0  # in the current task, including those that fell out of the window

    def __len__(self) -> int:
        return self._filled

    def observe_task(self, task: Any) -> bool:
        """Note the task the next episode runs; clears the buffer (and returns True) when it differs from the last."""
        if self.task is None or not same_task(task, self.task):
            self.clear()
            self.task = task
            return True
        return False

    def clear(self) -> None:
        """Drop every transition and forget the task."""
        self._window[:] = 0.0
        self._filled = 0
        self.task = None
        self.transitions_seen = 0

    def add(self, obs: np.ndarray, action: Any, reward: float) -> None:
        """Append the transition ``(obs, action, reward)`` as the newest row (the oldest falls out when full)."""
        row = np.zeros(self.width, dtype=np.float32)
        row[:self.n_obs] = np.asarray(obs, dtype=np.float32).ravel()
        if isinstance(self.action_space, spaces.Discrete):
            row[self.n_obs + int(action) - int(self.action_space.start)] = 1.0
        else:
            row[self.n_obs:self.n_obs + self.n_act] = np.asarray(action, dtype=np.float32).ravel()
        row[-2] = float(reward)
        row[-1] = 1.0
        self._window[:-1] = self._window[1:]
        self._window[-1] = row
        self._filled = min(self._filled + 1, self.length)
        self.transitions_seen += 1

    def array(self) -> np.ndarray:
        """``(length, width)`` float32, oldest first, left-padded with zero rows."""
        return self._window.copy()


class ContextWrapper(gym.Wrapper):
    """Adds the task context to every observation: ``Dict(obs=<env obs>, context=Box(length, width))``.

    The task of each episode is read from ``info["task"]`` after ``reset`` (or ``env.unwrapped.episode_task``); a new
    task clears the buffer. Pass ``buffer`` to share one context between several envs on the same task.
    """

    def __init__(self, env: gym.Env, length: int = 32, buffer: ContextBuffer | None = None) -> None:
        super().__init__(env)
        self.buffer = buffer if buffer is not None else ContextBuffer(length, env.observation_space, env.action_space)
        if buffer is not None and buffer.width != row_dim(env.observation_space, env.action_space):
            raise ValueError("the shared context buffer does not match this env's spaces")
        self.observation_space = spaces.Dict({
            "obs": env.observation_space,
            "context": spaces.Box(-np.inf, np.inf, (self.buffer.length, self.buffer.width), np.float32),
        })
        self._last_obs: np.ndarray | None = None

    def _wrap(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        return {"obs": np.asarray(obs, dtype=self.env.observation_space.dtype), "context": self.buffer.array()}

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self.buffer.observe_task(episode_task(info, self.env))
        self._last_obs = obs
        return self._wrap(obs), info

    def step(self, action) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.buffer.add(self._last_obs, action, reward)
        self._last_obs = obs
        return self._wrap(obs), reward, terminated, truncated, info


class TaskSamplingWrapper(gym.Wrapper):
    """Puts the env on a task drawn from ``tasks`` (with its own seeded generator) every ``episodes_per_task`` episodes.

    A task given explicitly in ``reset(options={"task": ...})`` takes precedence and starts a new count.
    """

    def __init__(self, env: gym.Env, tasks: Sequence[Any], episodes_per_task: int = 4, seed: int = 0) -> None:
        super().__init__(env)
        if not tasks:
            raise ValueError("TaskSamplingWrapper needs at least one task")
        if episodes_per_task < 1:
            raise ValueError(f"episodes_per_task must be >= 1, got {episodes_per_task}")
        self.tasks = list(tasks)
        self.episodes_per_task = int(episodes_per_task)
        self.rng = np.random.default_rng(seed)
        self._episodes_on_task = self.episodes_per_task  # draw at the first reset

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        options = dict(options or {})
        if "task" in options:
            self._episodes_on_task = 0
        elif self._episodes_on_task >= self.episodes_per_task:
            options["task"] = self.tasks[int(self.rng.integers(len(self.tasks)))]
            self._episodes_on_task = 0
        self._episodes_on_task += 1
        return self.env.reset(seed=seed, options=options)

    def get_state(self) -> dict[str, Any]:
        """The task generator's state, the episodes run on the current task and that task (its ``to_dict()``, so that
        the state is plain JSON), for checkpoints."""
        task = self.env.unwrapped.get_task()   # the TaskEnv API (flash_envs.envs.task_env)
        return {"rng": self.rng.bit_generator.state, "episodes_on_task": self._episodes_on_task,
                "task": task.to_dict()}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore a state from :meth:`get_state`: the env goes back on the task it was running, for the rest of its
        ``episodes_per_task``. When that task is not one of :attr:`tasks` (the state was taken with other tasks), or
        the state has none (a checkpoint written before it was saved), the next reset draws a new task from
        :attr:`tasks` instead: the env never stays on a task outside them, such as its constructor's default."""
        self.rng.bit_generator.state = state["rng"]
        self._episodes_on_task = int(state["episodes_on_task"])
        task = self._listed_task(state.get("task"))
        if task is None:
            self._episodes_on_task = self.episodes_per_task   # draw at the next reset
        else:
            self.env.unwrapped.set_task(task)   # run from the next reset on

    def _listed_task(self, saved: Any) -> Any:
        """The task of :attr:`tasks` whose ``to_dict()`` is ``saved`` (compared as JSON, as checkpoints keep it),
        None if there is none."""
        key = _json_key(saved) if isinstance(saved, dict) else None
        if key is None:
            return None
        return next((task for task in self.tasks if _json_key(task.to_dict()) == key), None)


def task_list_key(tasks: Sequence[Any]) -> str | None:
    """``tasks`` (each with ``to_dict()``) as one canonical JSON text, to tell two task lists apart by content."""
    return _json_key([task.to_dict() for task in tasks])


def _json_key(value: Any) -> str | None:
    """``value`` as canonical JSON text (tuples as lists, keys sorted), None when it is not JSON."""
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        return None
