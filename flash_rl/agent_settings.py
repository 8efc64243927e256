"""What an agent is made and trained with, checked before any work: the stable-baselines3 algorithm (by name, as
saved), its keyword arguments and the env's (saved with the agent, so values JSON keeps), the env's episode length
and the training tasks, shared by :class:`~flash_rl.flash.Flash` and :class:`~flash_rl.maml.MAML`; and the logger an
SB3 agent is given."""

from __future__ import annotations

import importlib
import inspect
import json
import math
import sys
import types
import typing
import warnings
from typing import Any, Iterable

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.logger import HumanOutputFormat, Logger
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.type_aliases import TrainFrequencyUnit
from stable_baselines3.common.vec_env import DummyVecEnv

import flash_envs  # noqa: F401  (registers the environments)
from flash_envs.envs.task_env import warn_of_another_episode_length
from flash_envs.fields import check_number
from flash_envs.flash_warnings import warn


ALGORITHMS = ("PPO", "A2C", "DQN")


def algorithm(name_or_cls: str | type[BaseAlgorithm]) -> type[BaseAlgorithm]:
    """The SB3 class named ``name_or_cls`` (PPO, A2C, DQN, ...), a class named ``"module:Class"`` (e.g. your own
    subclass, as :func:`algorithm_name` writes it), or the class itself."""
    if not isinstance(name_or_cls, str):
        if not (isinstance(name_or_cls, type) and issubclass(name_or_cls, BaseAlgorithm)):
            raise TypeError(f"agent_cls must be a stable-baselines3 algorithm class or its name, got {name_or_cls!r}")
        return name_or_cls
    module_name, _, class_name = name_or_cls.rpartition(":")
    try:
        module = importlib.import_module(module_name or "stable_baselines3")
    except ImportError as err:
        raise ValueError(f"cannot import the algorithm {name_or_cls!r}: {err}") from err
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, BaseAlgorithm)):
        raise ValueError(f"unknown stable-baselines3 algorithm {name_or_cls!r}; expected e.g. one of {ALGORITHMS}, "
                         "or module:Class for another subclass of BaseAlgorithm")
    return cls


def algorithm_name(cls: type[BaseAlgorithm]) -> str:
    """The name :func:`algorithm` takes back: ``"PPO"`` for an algorithm of stable_baselines3, else
    ``"module:Class"``."""
    import stable_baselines3

    if getattr(stable_baselines3, cls.__name__, None) is cls:
        return cls.__name__
    return f"{cls.__module__}:{cls.__qualname__}"


#: Ranges of the SB3 hyper-parameters FLASH's algorithms take, as ``(low, high, low is excluded)``; checked when given
#: as plain numbers (SB3 itself checks few of them, and some only deep inside training).
AGENT_KWARG_RANGES: dict[str, tuple[float, float, bool]] = {
    "learning_rate": (0, math.inf, True), "gamma": (0, 1, False), "gae_lambda": (0, 1, False),
    "ent_coef": (0, math.inf, False), "vf_coef": (0, math.inf, False), "max_grad_norm": (0, math.inf, True),
    "clip_range": (0, math.inf, True), "n_steps": (1, math.inf, False), "batch_size": (1, math.inf, False),
    "n_epochs": (1, math.inf, False), "buffer_size": (1, math.inf, False), "learning_starts": (0, math.inf, False),
    "tau": (0, 1, True), "target_update_interval": (1, math.inf, False), "exploration_fraction": (0, 1, False),
    "exploration_initial_eps": (0, 1, False), "exploration_final_eps": (0, 1, False),
}


def _savable(value: Any, tuples: bool = False) -> bool:
    """Whether ``value`` is written to JSON and read back unchanged (as :meth:`~flash_rl.flash.Flash.save` and
    checkpoints keep an agent's settings): a number, string, bool or None, or a list or string-keyed mapping of such
    values; with ``tuples``, also a tuple of them (read back as a list)."""
    if isinstance(value, dict):
        return all(isinstance(key, str) and _savable(v, tuples) for key, v in value.items())
    if isinstance(value, (list, tuple) if tuples else list):
        return all(_savable(v, tuples) for v in value)
    return value is None or isinstance(value, (bool, int, float, str))


def as_saved(value: Any) -> Any:
    """``value`` (one :func:`_savable` accepts) as it is read back from the JSON it is saved in: tuples are lists."""
    return json.loads(json.dumps(value))


def check_savable(where: str, name: str, value: Any, instead: str = "", tuples: bool = False) -> None:
    """Refuse, with a ValueError naming ``where`` and ``name``, a ``value`` that cannot be saved with the agent
    (:func:`_savable`), before anything is trained; ``instead`` ends the message with what to do instead."""
    if not _savable(value, tuples):
        shown = repr(value) if len(repr(value)) <= 80 else f"<{type(value).__qualname__} object>"
        kinds = "a list, tuple" if tuples else "a list"
        numpy = " (a NumPy number is not one: give value.item())" if _holds_numpy_scalar(value) else ""
        raise ValueError(f"{where}: {name}={shown} cannot be saved with the agent: give a number{numpy}, string, "
                         f"bool or None, or {kinds} or string-keyed mapping of them{instead}")


def _holds_numpy_scalar(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_holds_numpy_scalar(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds_numpy_scalar(v) for v in value)
    return isinstance(value, np.generic)


def check_env_kwargs(env_kwargs: dict[str, Any], where: str = "env_kwargs") -> None:
    """Refuse env keyword arguments that cannot be saved with the agent, in ``flash.json`` or a MAML checkpoint
    (:func:`check_savable`; a tuple is saved as a list, which FLASH's envs take for one). A family or task object
    is one: the agent learns the tasks given to its ``meta_train`` and ``adapt``, not the env's."""
    for name, value in env_kwargs.items():
        check_savable(where, name, value, "; for a family or task object, give its tasks to meta_train() and adapt() "
                      "instead (e.g. family.train, family.test[0]; a family file is read with load_yaml(); the power "
                      "env also takes the file's path, family_file=, to act with its servers' P-states), or make the "
                      "env yourself with gym.make, which takes such objects", tuples=True)


def _fits(value: Any, annotation: Any) -> bool:
    """Whether ``value`` (one :func:`_savable` accepts) has a type a constructor parameter's ``annotation`` allows. An
    annotation this does not read (none, ``Any``, a string :func:`init_parameters` could not resolve, ``Literal``,
    ...) takes any value."""
    if annotation in (inspect.Parameter.empty, Any):
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_fits(value, member) for member in typing.get_args(annotation))
    if annotation in (int, float):  # a bool is no number here; an int is a float
        return isinstance(value, int if annotation is int else (int, float)) and not isinstance(value, bool)
    kind = typing.get_origin(annotation) or annotation
    if kind is tuple and isinstance(value, (list, tuple)):   # saved as a list; see sb3_kwargs
        members = typing.get_args(annotation)
        if not members or members[-1] is Ellipsis:
            return all(_fits(item, members[0]) for item in value) if members else True
        return len(value) == len(members) and all(_fits(item, m) for item, m in zip(value, members))
    return isinstance(value, kind) if isinstance(kind, type) else True


def init_parameters(agent_cls: type[BaseAlgorithm]) -> dict[str, inspect.Parameter]:
    """The named parameters ``agent_cls(...)`` takes: its ``__init__``'s and, while an ``__init__`` passes ``**kwargs``
    on, its parent classes' too (the nearest class's annotation and default win), as a subclass of an SB3 algorithm
    that adds a setting and passes the rest on takes them. An annotation a module with ``from __future__ import
    annotations`` wrote as a string is evaluated as :func:`inspect.signature` (``eval_str=True``) would; one that names
    what its module cannot resolve at run time (a name imported only under ``TYPE_CHECKING``, say) stays a string."""
    def resolved(annotation: Any, namespace: dict[str, Any]) -> Any:
        if not isinstance(annotation, str):
            return annotation
        try:
            return eval(annotation, namespace)   # what inspect does with eval_str=True
        except (NameError, AttributeError, SyntaxError, TypeError):
            return annotation

    parameters: dict[str, inspect.Parameter] = {}
    for cls in agent_cls.__mro__:
        init = cls.__dict__.get("__init__")
        if init is None:
            continue
        own = inspect.signature(init).parameters.values()
        namespace = getattr(inspect.unwrap(init), "__globals__", {})
        for p in own:
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name not in parameters:
                parameters[p.name] = p.replace(annotation=resolved(p.annotation, namespace))
        if not any(p.kind is p.VAR_KEYWORD for p in own):
            break
    return parameters


def sb3_kwargs(agent_cls: type[BaseAlgorithm], kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` as ``agent_cls`` takes them: a list (how JSON and YAML give a tuple) becomes a tuple where the
    parameter is annotated as a tuple and not a list, e.g. DQN's ``train_freq=[1, "episode"]``, which SB3 reads only
    as a tuple."""
    params = init_parameters(agent_cls)
    return {name: tuple(value) if isinstance(value, list) and name in params
            and _takes_tuple_not_list(params[name].annotation) else value for name, value in kwargs.items()}


def _takes_tuple_not_list(annotation: Any) -> bool:
    members = (typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType)
               else (annotation,))
    kinds = {typing.get_origin(member) or member for member in members}
    return tuple in kinds and list not in kinds


def _annotation_text(annotation: Any) -> str:
    """``annotation`` as written in the code (``int``, ``float | Callable[[float], float]``)."""
    if isinstance(annotation, type):
        return "None" if annotation is type(None) else annotation.__name__
    if typing.get_origin(annotation) is typing.Union:   # SB3 < 2.8 writes Union[float, Schedule], newer ones the |
        return " | ".join(_annotation_text(member) for member in typing.get_args(annotation))
    return str(annotation).replace("collections.abc.", "").replace("typing.", "")


def check_agent_kwargs(agent_cls: type[BaseAlgorithm], kwargs: dict[str, Any], where: str = "agent_kwargs") -> None:
    """Fail early, with the offending names, on keyword arguments the algorithm does not take, values that cannot be
    saved with the agent (see :func:`_savable`), values of another type than the algorithm's signature annotates, and
    numbers out of :data:`AGENT_KWARG_RANGES`."""
    params = init_parameters(agent_cls)
    # what FLASH sets itself, and what breaks the agent (without _init_setup_model, SB3 builds no policy or buffer)
    reserved = {"self", "policy", "env", "seed", "policy_kwargs", "tensorboard_log", "verbose", "device",
                "_init_setup_model"}
    bad = sorted((k for k in kwargs if k not in params or k in reserved), key=str)
    if bad:
        hint = (" (YAML reads {a:1} as the key 'a:1': write {a: 1}, with a space after the colon)"
                if any(":" in str(k) for k in bad) else "")
        raise ValueError(f"{where}: {agent_cls.__name__} does not take {bad} here "
                         f"(valid: {sorted(set(params) - reserved)}){hint}")
    for name, value in kwargs.items():
        check_savable(where, name, value,
                      "; SB3 has no such form of a schedule: give a constant" if callable(value) else "", tuples=True)
        if not _fits(value, params[name].annotation):
            raise ValueError(f"{where}: {name} must be {_annotation_text(params[name].annotation)} (the annotation of "
                             f"{agent_cls.__name__}), got {value!r}")
        if name in AGENT_KWARG_RANGES and isinstance(value, (int, float)) and not isinstance(value, bool):
            low, high, open_low = AGENT_KWARG_RANGES[name]
            check_number(f"{where}: {name}", value, low, high, strict=open_low)


class _NoOptimizer:
    """The optimiser of an agent :func:`check_agent` builds only to see SB3 accept its arguments. The first torch
    optimiser a process builds imports torch's compiler (about a second, for nothing when a config is only checked)."""

    def __init__(self, params: Any, lr: float, **kwargs: Any) -> None:
        pass


def check_agent(agent_cls: type[BaseAlgorithm], agent_kwargs: dict[str, Any], adapt_kwargs: dict[str, Any],
                env_id: str, env_kwargs: dict[str, Any], n_envs: int, prefix: str = "") -> None:
    """Fail early, with a ValueError naming ``{prefix}agent_kwargs`` or ``{prefix}adapt_kwargs``, on keyword
    arguments the agent would fail on later: :func:`check_agent_kwargs` on each, then build the agent once as it
    meta-trains (``agent_kwargs`` on ``n_envs`` envs ``env_id``) and once as it fine-tunes (``adapt_kwargs`` over
    them, on one env), with a one-unit MLP policy and no optimiser (about a millisecond each). Building is the one
    complete check of what SB3 refuses only then (a non-positive ``clip_range_vf``, ``n_steps * n_envs`` below 2, an
    action space the algorithm cannot act in, ...), or only once it learns (an off-policy ``train_freq`` below 1, or
    counted in episodes on more than one env); the global torch random state is left as it was."""
    check_agent_kwargs(agent_cls, agent_kwargs, f"{prefix}agent_kwargs")
    check_agent_kwargs(agent_cls, adapt_kwargs, f"{prefix}adapt_kwargs")
    for where, kwargs, envs in (("agent_kwargs", agent_kwargs, n_envs),
                                ("adapt_kwargs", {**agent_kwargs, **adapt_kwargs}, 1)):
        vec_env = DummyVecEnv([lambda: gym.make(env_id, **env_kwargs)] * envs)
        try:
            with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
                warnings.simplefilter("ignore")   # e.g. a mini-batch size that does not divide this rollout
                agent = agent_cls("MlpPolicy", vec_env, device="cpu", **sb3_kwargs(agent_cls, kwargs),
                                  policy_kwargs={"net_arch": [1], "optimizer_class": _NoOptimizer})
        except (AssertionError, TypeError, ValueError, MemoryError) as err:
            raise ValueError(f"{prefix}{where}: {agent_cls.__name__} cannot be built with {kwargs} on {env_id}: "
                             f"{' '.join(str(err).split()) or type(err).__name__}") from err
        finally:
            vec_env.close()
        if isinstance(agent, OffPolicyAlgorithm) and agent.train_freq.frequency < 1:   # SB3 fails at learn()
            raise ValueError(f"{prefix}{where}: {agent_cls.__name__}'s train_freq must count at least 1 step or "
                             f"episode, got {kwargs['train_freq']!r}")
        if envs > 1 and trains_per_episode(agent_cls, kwargs):
            raise ValueError(f"{prefix}{where}: {agent_cls.__name__} counts train_freq in episodes "
                             f"({kwargs['train_freq']!r}), which stable-baselines3 allows on one env only, but "
                             f"meta-training runs n_envs={envs}: set n_envs to 1, or count train_freq in steps")


def trains_per_episode(agent_cls: type[BaseAlgorithm], kwargs: dict[str, Any]) -> bool:
    """Whether ``agent_cls`` built with ``kwargs`` (which it takes) counts its ``train_freq`` in episodes, as an
    off-policy algorithm's ``train_freq=(n, "episode")`` does; stable-baselines3 allows that on one env only."""
    freq = kwargs.get("train_freq")
    return (issubclass(agent_cls, OffPolicyAlgorithm) and isinstance(freq, (list, tuple)) and len(freq) == 2
            and freq[1] == TrainFrequencyUnit.EPISODE.value)


def check_adaptation_kwargs(agent_cls: type[BaseAlgorithm], kwargs: dict[str, Any], episode_steps: int,
                            where: str = "adapt_kwargs") -> None:
    """Fine-tuning learns one ``episode_steps``-step episode per point of the adaptation curve. Refuse an on-policy
    algorithm whose rollout (``n_steps``) does not divide the episode: each point would then collect a whole rollout
    (PPO's default 2048 steps are 34 autoscaling episodes). Warn when an off-policy algorithm's ``learning_starts``
    leaves the first episodes without an update. ``kwargs`` are the agent's keyword arguments at adaptation."""
    defaults = {name: p.default for name, p in init_parameters(agent_cls).items()}
    name = agent_cls.__name__
    if issubclass(agent_cls, OnPolicyAlgorithm):
        n_steps = int(kwargs.get("n_steps", defaults["n_steps"]))
        if episode_steps % n_steps:
            batch = f", batch_size={episode_steps}" if "batch_size" in defaults else ""   # PPO has one, A2C not
            raise ValueError(f"{where}: fine-tuning learns one {episode_steps}-step episode at a time, but {name}'s "
                             f"n_steps={n_steps} would collect {-(-episode_steps // n_steps) * n_steps} steps per "
                             f"episode; set n_steps={episode_steps}{batch} (or an n_steps that divides "
                             f"{episode_steps})")
    if issubclass(agent_cls, OffPolicyAlgorithm):
        starts = int(kwargs.get("learning_starts", defaults["learning_starts"]))
        if starts >= episode_steps:
            warn(f"{where}: {name}'s learning_starts={starts} is not below the {episode_steps}-step episode, so "
                 f"fine-tuning makes no update in the first {starts // episode_steps} episode(s); set "
                 "learning_starts=0 to update from the first step")


def episode_steps_of(env: gym.Env) -> int:
    """Steps per episode, at most: the smaller of the unwrapped env's ``episode_steps`` and the spec's
    ``max_episode_steps`` (``gym.make(..., max_episode_steps=10)`` ends the env's episodes sooner), whichever there is
    (else a ValueError)."""
    limits = [int(steps) for steps in (getattr(env.unwrapped, "episode_steps", None),
                                       env.spec.max_episode_steps if env.spec is not None else None)
              if steps is not None]
    if not limits:
        raise ValueError("cannot tell the episode length of this env; it needs an `episode_steps` attribute, or "
                         "max_episode_steps (e.g. in env_kwargs)")
    return min(limits)


def keep_logs_out_of_tmp(agent: BaseAlgorithm) -> BaseAlgorithm:
    """Without a TensorBoard folder, SB3 makes an empty ``$TMPDIR/SB3-<date>`` folder at every ``learn()`` call
    (thousands per reproduction); give such an agent a logger with no folder instead (stdout only when verbose)."""
    if agent.tensorboard_log is None:
        agent.set_logger(Logger(folder=None, output_formats=[HumanOutputFormat(sys.stdout)] if agent.verbose else []))
    return agent


def close_tensorboard_writer(agent: BaseAlgorithm) -> None:
    """Close the TensorBoard writer (a thread and an open events file) SB3 opened at the agent's last ``learn()``, if
    it has a ``tensorboard_log``: SB3 opens a new one at every call and closes none. Its records are already in the
    file (SB3 flushes at every write); a later ``learn()`` opens another."""
    logger = getattr(agent, "_logger", None)   # (SB3 sets it at the first learn() only)
    if agent.tensorboard_log is not None and logger is not None:
        logger.close()


def warn_of_a_family_of_another_length(tasks: Any, env_id: str, env_kwargs: dict[str, Any]) -> None:
    """``meta_train``'s envs take a family's tasks one at a time (``set_task``) and never see the family itself: warn
    here when ``tasks`` is a family generated for another episode length than the agent's env runs."""
    if getattr(tasks, "episode_s", None) is None:
        return
    env = gym.make(env_id, **env_kwargs).unwrapped
    warn_of_another_episode_length(type(env).__name__, tasks, getattr(env, "episode_s", None))
    env.close()


def training_tasks(tasks: Any) -> list[Any]:
    """The tasks ``meta_train`` trains on: ``tasks`` (a sequence of tasks), or a family's ``train`` split; a
    TypeError for anything else (one task included), a ValueError when there are none."""
    tasks = getattr(tasks, "train", tasks)
    if not isinstance(tasks, Iterable) or isinstance(tasks, (str, dict)):
        raise TypeError(f"meta_train trains on tasks: a sequence of tasks, or a family whose train split is used; got "
                        f"{type(tasks).__name__} (for one task, pass [task])")
    tasks = list(tasks)
    if not tasks:
        raise ValueError("meta_train needs at least one task: tasks (a sequence of tasks, or a family whose train "
                         "split is used) is empty")
    return tasks
