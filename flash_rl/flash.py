"""The unified FLASH API: wrap a stable-baselines3 agent, meta-train it over a task family, adapt it to a new task.

Example::

    from stable_baselines3 import PPO
    from flash_envs.tasks import AutoscalingTaskFamily
    from flash_rl import Flash

    family = AutoscalingTaskFamily.generate()
    flash = Flash(PPO, "flash/Autoscaling-v0", agent_kwargs={"n_steps": 120, "batch_size": 240},
                  adapt_kwargs={"n_steps": 60, "batch_size": 60})  # fine-tuning: one 60-step episode per update
    flash.meta_train(family.train, total_timesteps=300_000)
    curve = flash.adapt(family.test[0], episodes=20)        # [(episodes fine-tuned, evaluation return), ...]
    flash.save("runs/flash");  flash = Flash.load("runs/flash")

FLASH does not change the agent's training algorithm: the env is wrapped with :class:`~flash_rl.context.ContextWrapper`
(the observation gains the task context) and the agent's policy gets :class:`~flash_rl.encoder.FlashFeaturesExtractor`
(the embedding network), trained end-to-end by the agent's own loss. Any SB3 algorithm whose policy takes a
``features_extractor_class`` works (PPO, A2C, DQN, ...). :class:`TransferLearning` is the same agent without the
context: pretrained on the train tasks and fine-tuned on the new one (or, never pretrained, trained from scratch).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import pickle
import typing
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import cloudpickle
import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, ConvertCallback
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.vec_env import DummyVecEnv

import flash_envs  # noqa: F401  (registers the environments)
from flash_envs.baselines.runner import run_episode
from flash_envs.envs.task_env import ReplayMismatch
from flash_envs.fields import check_flag, check_seed, check_whole
from flash_envs.flash_warnings import warn
from flash_rl.adaptation import adaptation_points, check_on_eval
from flash_rl.agent_settings import (algorithm, algorithm_name, as_saved, check_adaptation_kwargs, check_agent,
                                     check_env_kwargs, close_tensorboard_writer, episode_steps_of, keep_logs_out_of_tmp,
                                     sb3_kwargs, training_tasks, warn_of_a_family_of_another_length)
from flash_rl.atomic_files import atomic_write, atomic_write_text
from flash_rl.checkpoints import (CHECKPOINT_FILES, CheckpointCallback, check_resume_folder, error_text, load_agent,
                                  random_states, read_checkpoint, read_episodes, set_random_states, task_sampler,
                                  warn_of_a_large_replay_buffer)
from flash_rl.config import check_env_id, check_layer_sizes
from flash_rl.context import (ContextBuffer, ContextWrapper, TaskSamplingWrapper, action_dim, check_checkpointable,
                              check_task_env, check_tasks_settable, task_list_key)
from flash_rl.encoder import ENCODERS, FlashFeaturesExtractor, encoder_pass_gb
from flash_envs.progress import tqdm_bar
from flash_rl.torch_threads import one_torch_thread
from flash_rl.trained_tasks import read_trained_on, task_records, write_trained_on


def embedding_extractors(policy: torch.nn.Module) -> list[FlashFeaturesExtractor]:
    """Every FLASH embedding network in an SB3 policy: the shared features extractor of PPO / A2C, or (DQN) those of
    the Q-network and its target network; none for an agent without context."""
    return [module for module in policy.modules() if isinstance(module, FlashFeaturesExtractor)]


class ProgressBar(BaseCallback):
    """A tqdm bar over timesteps (SB3's own bar needs ``rich``)."""

    def __init__(self, total: int, desc: str) -> None:
        super().__init__()
        self.bar: Any   # None until _on_training_start makes the tqdm bar
        self.total, self.desc, self.bar = total, desc, None

    def _on_training_start(self) -> None:
        self.bar = tqdm_bar(self.total, self.desc, initial=min(self.total, self.model.num_timesteps), unit="step")

    def _on_step(self) -> bool:
        self.bar.update(min(self.total, self.model.num_timesteps) - self.bar.n)   # tqdm decides when to redraw
        return True

    def _on_training_end(self) -> None:
        self.bar.n = min(self.total, self.model.num_timesteps)
        self.bar.close()


def _schedule_over(agent: BaseAlgorithm, total_timesteps: int) -> None:
    """Make DQN's exploration rate anneal over all ``total_timesteps`` of a fine-tuning, as one ``learn(total)`` would.
    :meth:`Flash.adapt` calls ``learn`` once per episode, and SB3 measures a schedule's progress over each call's own
    steps: the rate went from ``exploration_initial_eps`` to its final value within the first episode's first
    ``exploration_fraction`` (6 of 60 steps by default), whatever the budget. Other schedules are constants here
    (:func:`~flash_rl.agent_settings.check_agent_kwargs` refuses a callable), so no other algorithm needs this."""
    if hasattr(agent, "exploration_schedule"):
        per_call = agent.exploration_schedule
        agent.exploration_schedule = lambda _: per_call(1.0 - agent.num_timesteps / total_timesteps)


#: An encoder that keeps this many GB or more for the gradient of one training batch is warned of: with the default
#: batch and encoder, a context_len of about 2,700 rows.
LARGE_ENCODER_GRADIENT_GB = 2.0


def training_batch(agent: BaseAlgorithm) -> int | None:
    """The context windows one gradient step of ``agent`` passes through the encoder: an on-policy algorithm's
    minibatch (``batch_size``, at most the rollout of ``n_steps * n_envs``; A2C's whole rollout), an off-policy one's
    ``batch_size``; None for an algorithm with neither."""
    batch = getattr(agent, "batch_size", None)
    if isinstance(agent, OnPolicyAlgorithm):
        rollout = agent.n_steps * agent.n_envs
        return min(batch or rollout, rollout)
    return batch if isinstance(batch, int) else None


def _separate_encoders(agent: BaseAlgorithm) -> bool:
    """Whether ``agent``'s actor and critic have a features extractor, so an encoder, each."""
    return getattr(agent.policy, "share_features_extractor", True) is False


def encoder_gradient_gb(flash: "Flash", agent: BaseAlgorithm) -> float | None:
    """GB that ``flash``'s encoder keeps for the gradient of one training batch of ``agent``
    (:func:`training_batch`, :func:`~flash_rl.encoder.encoder_pass_gb`), twice that where the actor and the critic
    have encoders of their own (SAC's and TD3's default); None for an agent without context, or when the batch is
    not known."""
    batch = training_batch(agent)
    if not flash.use_context or batch is None:
        return None
    passes = 2 if _separate_encoders(agent) else 1
    width = agent.observation_space["context"].shape[-1]
    return passes * encoder_pass_gb(flash.encoder, batch, flash.context_len, width, flash.encoder_hidden)


def warn_of_a_large_encoder_gradient(flash: "Flash", agent: BaseAlgorithm, owner: str) -> None:
    """Warn (naming ``owner``, e.g. ``"Flash.meta_train"``) when ``flash``'s encoder would keep
    :data:`LARGE_ENCODER_GRADIENT_GB` or more for the gradient of one training batch of ``agent``
    (:func:`encoder_gradient_gb`): a long ``context_len`` runs out of memory inside torch."""
    gigabytes = encoder_gradient_gb(flash, agent)
    if gigabytes is None or gigabytes < LARGE_ENCODER_GRADIENT_GB:
        return
    batch = training_batch(agent)
    own = ", an encoder each for the actor and the critic" if _separate_encoders(agent) else ""
    smaller = "a smaller batch_size" if getattr(agent, "batch_size", None) else "a smaller n_steps or n_envs"
    warn(f"{owner}: context_len {flash.context_len:,} makes the {flash.encoder} encoder keep about {gigabytes:.1f} GB "
         f"for the gradient of each training batch ({batch:,} windows of {flash.context_len:,} rows, "
         f"{flash.encoder_hidden} hidden units{own}), and the process may run out of memory; give a shorter "
         f"context_len, {smaller} or fewer encoder_hidden")


def _load_weights_of(model: BaseAlgorithm, init_from: Any) -> None:
    """Give ``model``'s policy the weights of ``init_from``'s (``meta_train``'s ``init_from``); a TypeError or
    ValueError naming ``init_from`` when it is no agent with a model, or one of another architecture."""
    if not isinstance(init_from, Flash) or init_from.model is None:
        raise TypeError(f"init_from must be a Flash or TransferLearning agent with a model (meta-trained, fresh or "
                        f"loaded), got {type(init_from).__name__}")
    kinds = {True: "a FLASH agent (with the context encoder)", False: "an agent without FLASH's context encoder"}
    with_context = isinstance(model.policy.observation_space, gym.spaces.Dict)   # FLASH's {"obs", "context"}
    if with_context != init_from.use_context:
        raise ValueError(f"init_from is {kinds[init_from.use_context]} ({type(init_from).__name__}), and this agent is "
                         f"{kinds[with_context]}: their policies differ; give an agent of the same kind and settings")
    try:
        model.policy.load_state_dict(init_from.policy.state_dict())
    except RuntimeError as err:   # missing or unexpected layers, other sizes
        raise ValueError(f"init_from: its policy does not fit this agent's ({error_text(err)})") from None


def _architecture(policy_kwargs: dict[str, Any]) -> dict[str, Any]:
    """What of an agent's ``policy_kwargs`` shapes its network: ``net_arch`` and the features extractor's class and
    arguments, in one flat dict."""
    extractor = policy_kwargs.get("features_extractor_class")
    return {"net_arch": policy_kwargs.get("net_arch"), **policy_kwargs.get("features_extractor_kwargs", {}),
            "features_extractor": None if extractor is None else extractor.__name__}


def _callbacks_of(callback: Any) -> list[BaseCallback]:
    """``meta_train``'s ``callback`` as a list of SB3 callbacks: what SB3's own ``learn`` takes (a callback, a list of
    them, a function of ``(locals, globals)``, or None). Anything else is a TypeError naming ``callback``, raised
    before any training (SB3's own error came from inside ``learn``, after the trained agent had been replaced)."""
    if callback is None:
        return []
    if isinstance(callback, BaseCallback):
        return [callback]
    if isinstance(callback, list) and all(isinstance(c, BaseCallback) for c in callback):
        return list(callback)
    if callable(callback):
        return [ConvertCallback(callback)]
    raise TypeError(f"callback must be an SB3 BaseCallback, a list of them, or a function of (locals, globals), got "
                    f"{callback!r}")


class Flash:
    """A stable-baselines3 agent plus FLASH's meta-learner (the context embedding network).

    ``agent_cls`` is an SB3 algorithm class (or its name); ``agent_kwargs`` go to it for meta-training and
    ``adapt_kwargs`` override them when fine-tuning on a new task; both are saved with the agent, so their values are
    numbers, strings, bools, None, lists (tuples are saved as lists, and given to SB3 as tuples where it takes only
    a tuple: :func:`sb3_kwargs`) and mappings (no schedules), checked when this is built
    (:func:`check_agent`). ``env_kwargs`` go to ``gym.make`` and are saved too, checked the same way
    (:func:`check_env_kwargs`: a tuple is saved as a list; a family or task object is refused, the tasks go to
    :meth:`meta_train` and :meth:`adapt`). ``n_envs`` vectorised envs each run a task drawn from the training tasks,
    redrawn every ``episodes_per_task`` episodes. Here and in the methods, counts and sizes are whole numbers (a NumPy
    int, or 2.0, is one), seeds whole numbers in [0, 2**32 - 1] (what NumPy's seeding, which SB3 uses, takes) and flags
    bools: anything else is refused with a TypeError or ValueError naming the argument, not converted.
    """

    use_context = True
    #: The constructor arguments :meth:`config` records, each kept in the attribute of its name (all but logging).
    CONFIG_KEYS = ("agent_cls", "env_id", "env_kwargs", "context_len", "embedding_dim", "encoder", "encoder_hidden",
                   "net_arch", "agent_kwargs", "adapt_kwargs", "n_envs", "episodes_per_task", "seed")

    def __init__(self, agent_cls: str | type[BaseAlgorithm], env_id: str, env_kwargs: dict[str, Any] | None = None,
                 *, context_len: int = 32, embedding_dim: int = 32, encoder: str = "gru", encoder_hidden: int = 64,
                 net_arch: Sequence[int] = (64, 64), agent_kwargs: dict[str, Any] | None = None,
                 adapt_kwargs: dict[str, Any] | None = None, n_envs: int = 8, episodes_per_task: int = 4,
                 seed: int = 0, tensorboard_log: str | None = None, verbose: int = 0) -> None:
        self.agent_cls = algorithm(agent_cls)
        self.env_id = check_env_id(env_id)
        for name, kwargs in {"env_kwargs": env_kwargs, "agent_kwargs": agent_kwargs,
                             "adapt_kwargs": adapt_kwargs}.items():
            if kwargs is not None and not isinstance(kwargs, dict):   # dict() made a raw error of it, or a mapping
                raise TypeError(f"{name} must be a dict of keyword arguments, got {kwargs!r} ({type(kwargs).__name__})")
        self.env_kwargs = dict(env_kwargs or {})
        check_env_kwargs(self.env_kwargs)
        self.context_len, self.embedding_dim, self.encoder_hidden = (
            check_whole(name, value, 1) for name, value in (("context_len", context_len),
                                                            ("embedding_dim", embedding_dim),
                                                            ("encoder_hidden", encoder_hidden)))
        self.encoder = encoder
        self.net_arch = check_layer_sizes(net_arch, "net_arch")
        self.agent_kwargs = dict(agent_kwargs or {})
        self.adapt_kwargs = dict(adapt_kwargs or {})
        self.n_envs = check_whole("n_envs", n_envs, 1)
        self.episodes_per_task = check_whole("episodes_per_task", episodes_per_task, 1)
        self.seed = check_seed("seed", seed)
        if tensorboard_log is not None and not isinstance(tensorboard_log, (str, os.PathLike)):
            raise TypeError(f"tensorboard_log must be a folder path or None, got {tensorboard_log!r}")
        self.tensorboard_log, self.verbose = tensorboard_log, check_whole("verbose", verbose, 0)
        self.model: BaseAlgorithm | None = None
        self.resumed_from: int | None = None
        #: The tasks meta-training trained on (:mod:`flash_rl.trained_tasks`; none before it), saved with the agent;
        #: None when it was loaded from a folder without the record (saved before flash kept one).
        self.trained_on: list[dict[str, str | None]] | None = []
        self._sampling_wrappers: list[TaskSamplingWrapper] = []
        if self.encoder not in ENCODERS:
            raise ValueError(f"unknown encoder {self.encoder!r}; expected one of {ENCODERS}")
        probe = gym.make(env_id, **self.env_kwargs)
        self.episode_steps = episode_steps_of(probe)
        if not isinstance(probe.observation_space, gym.spaces.Box):   # before check_agent's "use MultiInputPolicy"
            raise TypeError(f"env {env_id!r}: {type(self).__name__}'s policy takes a Box observation, got "
                            f"{probe.observation_space}; register the env wrapped in "
                            "gymnasium.wrappers.FlattenObservation")
        if self.use_context:
            action_dim(probe.action_space)   # raises for an action space the context cannot encode
        check_task_env(probe, env_id, self.use_context)
        #: An env with no task of its own yet could not be checked for the context here; meta_train checks it then.
        self._task_env_unchecked = self.use_context and probe.unwrapped.get_task() is None
        probe.close()
        check_agent(self.agent_cls, self.agent_kwargs, self.adapt_kwargs, env_id, self.env_kwargs, self.n_envs)

    # ------------------------------------------------------------------------------------------ construction
    def config(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this object, :data:`CONFIG_KEYS` and ``kind``, as they are saved
        (:func:`as_saved`: tuples are lists), so that a loaded agent's equal this one's."""
        return as_saved({**{key: getattr(self, key) for key in self.CONFIG_KEYS},
                         "agent_cls": algorithm_name(self.agent_cls), "kind": type(self).__name__})

    def make_env(self, task: Any = None, buffer: ContextBuffer | None = None) -> gym.Env:
        """One env (on ``task`` if given), with the context wrapper when this agent uses context."""
        env = gym.make(self.env_id, **self.env_kwargs)
        if task is not None:
            env.unwrapped.set_task(task)
        if self.use_context:
            env = ContextWrapper(env, self.context_len, buffer)
        return env

    def _policy(self) -> tuple[str, dict[str, Any]]:
        if self.use_context:
            return "MultiInputPolicy", {
                "features_extractor_class": FlashFeaturesExtractor,
                "features_extractor_kwargs": {"embedding_dim": self.embedding_dim, "hidden": self.encoder_hidden,
                                              "encoder": self.encoder},
                "net_arch": list(self.net_arch)}
        return "MlpPolicy", {"net_arch": list(self.net_arch)}

    def _new_agent(self, env, kwargs: dict[str, Any], seed: int, tensorboard_log: str | None = None) -> BaseAlgorithm:
        policy, policy_kwargs = self._policy()
        return keep_logs_out_of_tmp(self.agent_cls(policy, env, policy_kwargs=policy_kwargs, seed=seed, device="cpu",
                                                   tensorboard_log=tensorboard_log, verbose=self.verbose,
                                                   **sb3_kwargs(self.agent_cls, kwargs)))

    def _training_env(self, tasks: Sequence[Any], i: int) -> tuple[gym.Env, TaskSamplingWrapper]:
        """Training env ``i`` on ``tasks`` (wrapped as :meth:`meta_train` runs it) and its task sampler."""
        sampler = TaskSamplingWrapper(gym.make(self.env_id, **self.env_kwargs), tasks, self.episodes_per_task,
                                      seed=self.seed * 1000 + i)
        return (ContextWrapper(sampler, self.context_len) if self.use_context else sampler), sampler

    def _train_vec_env(self, tasks: Sequence[Any]) -> DummyVecEnv:
        self._sampling_wrappers = []

        def factory(i: int) -> Callable[[], gym.Env]:
            def make() -> gym.Env:
                env, sampler = self._training_env(tasks, i)
                self._sampling_wrappers.append(sampler)
                return env
            return make

        return DummyVecEnv([factory(i) for i in range(self.n_envs)])

    def _check_picklable(self, tasks: Sequence[Any]) -> None:
        """Refuse (TypeError), before any training, training envs that a checkpoint cannot pickle: one made apart,
        reset and stepped once, is pickled as checkpoints pickle them."""
        env, _ = self._training_env(tasks, 0)
        try:
            env.reset()
            env.step(env.action_space.sample())
            try:
                cloudpickle.dumps([env])
            except Exception as err:
                raise TypeError(f"checkpoint_dir: a checkpoint pickles the training envs (to resume mid-episode), "
                                f"and these cannot be pickled ({type(err).__name__}: {err}); make the env and its "
                                f"wrappers picklable, or meta-train without checkpoint_dir") from err
        finally:
            env.close()

    @property
    def agent(self) -> BaseAlgorithm:
        """The SB3 agent (a RuntimeError before :meth:`meta_train`, :meth:`fresh` or :meth:`load`)."""
        if self.model is None:
            raise RuntimeError("this agent has no model yet: call meta_train(), fresh() or load()")
        return self.model

    @property
    def policy(self) -> BasePolicy:
        """The SB3 agent's policy network (a RuntimeError before there is an :attr:`agent`)."""
        return self.agent.policy

    def weights_digest(self) -> str:
        """A short hash of the policy's weights, to key what depends on them (e.g. cached per-task experts)."""
        digest = hashlib.sha1()
        for name, tensor in sorted(self.policy.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().numpy().tobytes())
        return digest.hexdigest()[:12]

    # ------------------------------------------------------------------------------------------ meta-training
    @one_torch_thread()
    def meta_train(self, tasks: Any, total_timesteps: int, *, checkpoint_dir: str | Path | None = None,
                   checkpoint_interval: int = 0, resume: bool = False, progress_bar: bool = False,
                   tb_log_name: str | None = None,
                   callback: BaseCallback | list[BaseCallback] | Callable[..., bool] | None = None,
                   init_from: "Flash | None" = None) -> "Flash":
        """Train on ``tasks`` (a sequence of tasks or a family, whose ``train`` split is used) for
        ``total_timesteps``; with ``resume`` and a checkpoint in ``checkpoint_dir``, continue from it (to a total of
        ``total_timesteps``; a checkpoint written with other settings is refused, see :func:`check_resumable`).
        ``init_from`` starts from another agent's weights (same architecture) instead of a random initialisation.
        ``callback`` is what SB3's ``learn`` takes: a callback, a list of them, or a function of ``(locals, globals)``.
        Otherwise every call trains a new agent from scratch, replacing ``self.model`` (a loaded or
        earlier-trained one included): to train further, checkpoint to ``checkpoint_dir`` and call again with
        ``resume``."""
        warn_of_a_family_of_another_length(tasks, self.env_id, self.env_kwargs)
        tasks = training_tasks(tasks)
        probe = gym.make(self.env_id, **self.env_kwargs)
        check_tasks_settable(probe, self.env_id, tasks)
        if self._task_env_unchecked:
            check_task_env(probe, self.env_id, True, tasks[0])
            self._task_env_unchecked = False
        probe.close()
        total_timesteps = check_whole("total_timesteps", total_timesteps, 1)
        checkpoint_interval = check_whole("checkpoint_interval", checkpoint_interval, 0)
        resume, progress_bar = check_flag("resume", resume), check_flag("progress_bar", progress_bar)
        user_callbacks = _callbacks_of(callback)   # before self.model is replaced: a refused call keeps it
        check_resume_folder(resume, checkpoint_dir)
        if checkpoint_dir is not None and Path(checkpoint_dir).exists() and not Path(checkpoint_dir).is_dir():
            raise ValueError(f"checkpoint_dir {checkpoint_dir} is a file; give a folder")   # before any training
        if checkpoint_dir is not None:   # what a checkpoint records of the tasks and envs, tried before training
            check_checkpointable(tasks)
            self._check_picklable(tasks)
        vec_env = self._train_vec_env(tasks)
        state = self._load_checkpoint(checkpoint_dir, vec_env, total_timesteps) if resume and checkpoint_dir else None
        if state is None:
            model = self._new_agent(vec_env, self.agent_kwargs, self.seed, self.tensorboard_log)
            if init_from is not None:
                _load_weights_of(model, init_from)
            self.model = model   # only now: a refused init_from leaves the trained model be
        self.trained_on = [*(getattr(init_from, "trained_on", None) or []), *task_records(tasks)]
        warn_of_a_large_encoder_gradient(self, self.agent, f"{type(self).__name__}.meta_train")
        if checkpoint_dir:
            warn_of_a_large_replay_buffer(self.agent, f"{type(self).__name__}.meta_train")
        self.resumed_from = int(self.agent.num_timesteps) if state is not None else None
        remaining = total_timesteps - self.agent.num_timesteps
        callbacks: list[BaseCallback] = []
        if progress_bar:
            callbacks.append(ProgressBar(total_timesteps, f"{type(self).__name__} meta-train"))
        if checkpoint_dir and checkpoint_interval > 0:
            callbacks.append(CheckpointCallback(self, checkpoint_dir, checkpoint_interval, total_timesteps))
        callbacks.extend(user_callbacks)
        if remaining > 0:
            try:
                self.agent.learn(remaining, callback=CallbackList(callbacks), reset_num_timesteps=state is None,
                                 tb_log_name=tb_log_name or type(self).__name__)
            finally:
                close_tensorboard_writer(self.agent)
        if checkpoint_dir:
            self.checkpoint(checkpoint_dir, total_timesteps)
        return self

    def checkpoint(self, directory: str | Path, total_timesteps: int | None = None) -> None:
        """Atomically write the agent and the task samplers' state (what ``resume`` needs), and the
        ``total_timesteps`` of the meta-training it belongs to, if given: a resume to a smaller total than the
        checkpoint has already passed is refused (:func:`check_resume_total`).

        The agent goes to ``agent-<timesteps>.zip`` first, and an off-policy agent's (e.g. DQN's) replay buffer to
        ``replay-<timesteps>.pkl``, so that a resumed run samples from the same transitions. An agent that
        meta-trains goes on with ``episodes-<timesteps>.pkl``: its training envs, mid-episode (their simulations,
        context buffers and task samplers), its last observations and the random generators it draws from, so that
        a run resumed from a checkpoint taken at a rollout's start (as :meth:`meta_train`'s are) takes the steps
        and updates it would have taken (a pickle, trusted as SB3's own agent zip is). Replacing ``state.json``,
        which names those files, is the one commit point, so a run killed at any moment leaves agent, buffer,
        episodes and sampler state of the same step. (SB3 allocates the whole replay buffer up front, and its file
        is that size however little is in it: DQN's default ``buffer_size`` of 10^6 FLASH observations is several GB
        per checkpoint, so give an off-policy agent a ``buffer_size`` that fits your disk.)
        """
        model = self.agent
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        steps = int(model.num_timesteps)
        files = {"agent": f"agent-{steps}.zip"}
        with atomic_write(directory / files["agent"]) as tmp:
            model.save(tmp)
        if isinstance(model, OffPolicyAlgorithm):
            files["replay_buffer"] = f"replay-{steps}.pkl"
            with atomic_write(directory / files["replay_buffer"]) as tmp:
                model.save_replay_buffer(tmp)
        training_env = model.get_env()
        if isinstance(training_env, DummyVecEnv) and self._sampling_wrappers == [
                task_sampler(env) for env in training_env.envs]:   # (not an agent loaded, or fine-tuned elsewhere)
            files["episodes"] = f"episodes-{steps}.pkl"
            episodes = {"tasks": task_list_key(self._sampling_wrappers[0].tasks),
                        "envs": cloudpickle.dumps(training_env.envs),   # apart: unpickling replays the episodes;
                        # cloudpickle: a wrapper holding a lambda (gymnasium's FlattenObservation) pickles too
                        "last_obs": model._last_obs, "last_episode_starts": model._last_episode_starts,
                        "random": random_states(model)}
            with atomic_write(directory / files["episodes"]) as tmp:
                tmp.write_bytes(pickle.dumps(episodes))
        state = {"config": self.config(), "num_timesteps": steps, "total_timesteps": total_timesteps, **files,
                 "samplers": [w.get_state() for w in self._sampling_wrappers]}
        atomic_write_text(directory / "state.json", json.dumps(state))
        write_trained_on(directory, self.trained_on)   # what a --resume checks the config's train tasks against
        for pattern in CHECKPOINT_FILES:   # the last checkpoint's files, and those of writes a kill cut short
            for old in directory.glob(pattern):
                if old.name not in files.values():
                    old.unlink()

    def _load_checkpoint(self, directory: str | Path, vec_env: DummyVecEnv, total_timesteps: int
                         ) -> dict[str, Any] | None:
        directory = Path(directory)
        state = read_checkpoint(directory, self.config(), total_timesteps)
        if state is None:
            return None
        self.model = load_agent(self.agent_cls, directory / state["agent"], vec_env,
                                tensorboard_log=self.tensorboard_log)
        if "replay_buffer" in state:
            self.model.load_replay_buffer(directory / state["replay_buffer"])
        for wrapper, s in zip(self._sampling_wrappers, state["samplers"], strict=True):
            wrapper.set_state(s)
        if "episodes" not in state:
            warn(f"{directory} is a checkpoint written before its episodes in progress were saved: every env starts a "
                 "new episode, so the resumed run will not take the steps of one never stopped")
        else:
            self._restore_episodes(directory / state["episodes"], vec_env)
        return state

    def _restore_episodes(self, path: Path, vec_env: DummyVecEnv) -> None:
        """Put ``vec_env`` and the agent back in the episodes of the checkpoint file ``path`` (see
        :meth:`checkpoint`), so that training goes on without a reset. Skipped with a warning, leaving every env to
        start a new episode on its sampler's task, when the checkpoint's envs sampled from other tasks than this
        run's, or replaying their episodes comes to other observations (a trace file rewritten since)."""
        episodes = read_episodes(path)
        if episodes["tasks"] != task_list_key(self._sampling_wrappers[0].tasks):
            warn(f"the checkpoint's training envs ({path}) sampled from other tasks than this run's: every env "
                 "starts a new episode on a task of this run's")
            return
        try:
            envs = pickle.loads(episodes["envs"])   # each env replays its episode (a trace task reads its file)
        except ReplayMismatch as err:
            warn(f"the checkpoint's training envs ({path}) cannot be rebuilt as they were: {err}. Every env starts "
                 "a new episode, so the resumed run will not take the steps of one never stopped")
            return
        except Exception as err:
            raise ValueError(f"{path}: the training envs cannot be rebuilt ({error_text(err)})") from None
        samplers = [task_sampler(env) for env in envs]
        if len(envs) != len(vec_env.envs) or None in samplers:
            raise ValueError(f"{path} holds {len(envs)} training env(s), not the {len(vec_env.envs)} of this run, or "
                             "envs without a task sampler")
        vec_env.envs[:] = envs
        self._sampling_wrappers = typing.cast(list[TaskSamplingWrapper], samplers)
        self.agent._last_obs, self.agent._last_episode_starts = episodes["last_obs"], episodes["last_episode_starts"]
        set_random_states(self.agent, episodes["random"])

    # ------------------------------------------------------------------------------------------ adaptation
    def fresh(self, seed: int | None = None) -> "Flash":
        """A copy of this object with a newly initialised (untrained) agent: the from-scratch baseline."""
        seed = self.seed if seed is None else check_seed("seed", seed)
        other = copy.copy(self)
        env = DummyVecEnv([lambda: self.make_env()])
        kwargs = {**self.agent_kwargs, **self.adapt_kwargs}  # only ever used through adapt()
        other.model = self._new_agent(env, kwargs, seed)
        other.trained_on = []   # untrained: it has seen no task
        return other

    @one_torch_thread()
    def evaluate(self, policy_agent: BaseAlgorithm | None, task: Any, seed: int,
                 buffer: ContextBuffer | None = None, zero_embedding: bool = False,
                 actions: list[Any] | None = None) -> float:
        """Return of one deterministic episode on ``task`` (``seed`` seeds the env), starting from a *copy* of
        ``buffer``'s context so that evaluation never feeds the adaptation context. ``policy_agent`` (None: this
        object's agent) must observe and act in this object's env; a ValueError says when it does not. Each action
        taken is appended to ``actions`` when it is given."""
        seed, zero_embedding = check_seed("seed", seed), self._zero_embedding(zero_embedding)
        agent = policy_agent or self.agent
        env = self.make_env(task, copy.deepcopy(buffer) if buffer is not None else None)
        if policy_agent is not None and (policy_agent.observation_space, policy_agent.action_space) != (
                env.observation_space, env.action_space):
            env.close()
            raise ValueError(f"policy_agent observes {policy_agent.observation_space} and acts in "
                             f"{policy_agent.action_space}; this Flash's env (context_len {self.context_len}) gives "
                             f"{env.observation_space} and takes {env.action_space}. Evaluate an agent of another "
                             f"env with flash_rl.adaptation.run_policy")
        extractors = embedding_extractors(agent.policy)
        previous = [extractor.zero_embedding for extractor in extractors]
        for extractor in extractors:
            extractor.zero_embedding = zero_embedding
        try:
            return run_episode(env, agent, task, seed, metrics=(), actions=actions)["return"]
        finally:
            for extractor, value in zip(extractors, previous):
                extractor.zero_embedding = value
            env.close()

    @one_torch_thread()
    def adapt(self, task: Any, episodes: int, *, eval_every: int = 1, eval_seed: int = 10_000, seed: int = 0,
              zero_embedding: bool = False, on_eval: Callable[[int, float], None] | None = None
              ) -> list[tuple[int, float]]:
        """Fine-tune a copy of the agent online on ``task`` for ``episodes`` episodes with the agent's own algorithm
        (``adapt_kwargs``), evaluating the deterministic policy before any fine-tuning and after every
        ``eval_every`` episodes. Returns ``[(episodes fine-tuned, evaluation return), ...]``; ``self`` is unchanged.
        An episode of fine-tuning is :attr:`episode_steps` steps: for an env whose episodes can end sooner
        (``flash/ConfigSearch-v0`` ends when the agent commits), one point of the curve spans several of them.
        """
        if self.model is None:
            raise RuntimeError("nothing to adapt: call meta_train(), fresh() or load() first")
        episodes, points = adaptation_points(episodes, eval_every)
        check_on_eval(on_eval)
        eval_seed, seed = check_seed("eval_seed", eval_seed), check_seed("seed", seed)
        zero_embedding = self._zero_embedding(zero_embedding)
        buffer = (ContextBuffer(self.context_len, *self._spaces()) if self.use_context else None)
        train_env = DummyVecEnv([lambda: self.make_env(task, buffer)])
        kwargs = {**self.agent_kwargs, **self.adapt_kwargs}
        check_adaptation_kwargs(self.agent_cls, kwargs, self.episode_steps)   # here, so that load() takes any agent
        agent = self._new_agent(train_env, kwargs, seed)
        warn_of_a_large_encoder_gradient(self, agent, f"{type(self).__name__}.adapt")
        agent.policy.load_state_dict(self.model.policy.state_dict())
        _schedule_over(agent, episodes * self.episode_steps)
        for extractor in embedding_extractors(agent.policy):
            extractor.zero_embedding = zero_embedding
        curve: list[tuple[int, float]] = []

        def record(e: int) -> None:
            value = self.evaluate(agent, task, eval_seed, buffer, zero_embedding)
            curve.append((e, value))
            if on_eval is not None:
                on_eval(e, value)

        record(0)
        for e in range(1, episodes + 1):
            agent.learn(self.episode_steps, reset_num_timesteps=e == 1)
            if e in points:
                record(e)
        train_env.close()
        return curve

    def _zero_embedding(self, flag: Any) -> bool:
        """``zero_embedding`` checked: a bool, and True only for an agent with a context embedding (it ablated
        nothing, silently, on one without)."""
        flag = check_flag("zero_embedding", flag)
        if flag and not self.use_context:
            raise ValueError(f"zero_embedding=True zeroes the context embedding, and this {type(self).__name__} has "
                             "none")
        return flag

    def _spaces(self):
        env = gym.make(self.env_id, **self.env_kwargs)
        spaces = (env.observation_space, env.action_space)
        env.close()
        return spaces

    @one_torch_thread()
    def embed(self, task: Any, episodes: int = 1, seed: int = 0) -> np.ndarray:
        """The embedding after running the (deterministic) policy for ``episodes`` episodes on ``task``, seeded
        ``seed``, ``seed + 1``, ... (the context carries over from one to the next, as in adaptation)."""
        if not self.use_context:
            raise RuntimeError("this agent has no context embedding")
        if self.model is None:
            raise RuntimeError("nothing to embed with: call meta_train(), fresh() or load() first")
        episodes, seed = check_whole("episodes", episodes, 1), check_seed("seed", seed)
        env = self.make_env(task)
        obs = None
        for e in range(episodes):
            obs, _ = env.reset(seed=seed + e, options={"task": task})
            done = False
            while not done:
                action, _ = self.model.predict(obs, deterministic=True)
                obs, _, terminated, truncated, _ = env.step(action)
                done = terminated or truncated
        obs_t, _ = self.model.policy.obs_to_tensor(obs)
        acting = getattr(self.model.policy, "q_net", self.model.policy)   # DQN acts through its q_net
        with torch.no_grad():
            return acting.features_extractor.embed(obs_t).squeeze(0).numpy()

    # ------------------------------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Write ``path/agent.zip`` (the SB3 agent, embedding network included) and ``path/flash.json``."""
        path = Path(path)
        model, settings = self.agent, json.dumps(self.config(), indent=1)   # both before anything is written
        name = algorithm_name(self.agent_cls)
        if name.startswith("__main__:") or "<locals>" in name:
            warn(f"the agent's class is saved as {name!r}, which Flash.load can import only in this same program; "
                 "define the class in a module to load the agent elsewhere")
        path.mkdir(parents=True, exist_ok=True)
        with atomic_write(path / "agent.zip") as tmp:
            model.save(tmp)
        atomic_write_text(path / "flash.json", settings)
        write_trained_on(path, self.trained_on)

    @classmethod
    def load(cls, path: str | Path) -> "Flash":
        """The agent :meth:`save` wrote to ``path`` (on CPU), as the class recorded there (Flash or
        TransferLearning). A missing file is a FileNotFoundError; a ``flash.json`` or ``agent.zip`` that is damaged,
        or not one flash wrote, a ValueError naming it."""
        path = Path(path)
        missing = [name for name in ("flash.json", "agent.zip") if not (path / name).is_file()]
        if missing:
            raise FileNotFoundError(f"{path} holds no saved agent (no {' or '.join(missing)})")
        file = path / "flash.json"
        try:
            config = json.loads(file.read_text())
        except ValueError as err:   # not UTF-8 (UnicodeDecodeError) or not JSON (JSONDecodeError)
            raise ValueError(f"{file} is damaged (not JSON text: {err})") from None
        if not isinstance(config, dict):
            raise ValueError(f"{file} is damaged (not a JSON object of settings: {config!r})")
        kinds = {"Flash": Flash, "TransferLearning": TransferLearning}
        kind = config.pop("kind", cls.__name__)
        missing_keys, unknown_keys = set(cls.CONFIG_KEYS) - set(config), set(config) - set(cls.CONFIG_KEYS)
        problems = [f"missing {sorted(missing_keys)}"] if missing_keys else []
        problems += [f"unknown keys {sorted(unknown_keys)}"] if unknown_keys else []
        if not (isinstance(kind, str) and kind in kinds):
            problems.append(f"unknown kind {kind!r} (expected one of {sorted(kinds)})")
        if problems:
            raise ValueError(f"{file} is damaged ({'; '.join(problems)})")
        try:
            obj = kinds[kind](**config)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{file}: the saved settings are refused: {err}") from err
        with warnings.catch_warnings():  # the meta-training batch size does not fit one env: irrelevant here
            warnings.filterwarnings("ignore", message=".*mini-batch size.*")
            env = DummyVecEnv([lambda: obj.make_env()])
            obj.model = load_agent(obj.agent_cls, path / "agent.zip", env)
        built, saved = _architecture(obj._policy()[1]), _architecture(obj.model.policy_kwargs)
        if built != saved:   # SB3 rebuilds the network from the zip's own settings
            differences = {key: (saved.get(key), built.get(key)) for key in sorted(built.keys() | saved.keys())
                           if saved.get(key) != built.get(key)}
            raise ValueError(f"{file} does not describe {path / 'agent.zip'}: (agent.zip, flash.json) differ in "
                             f"{differences}")
        obj.trained_on = read_trained_on(path)
        return obj


class TransferLearning(Flash):
    """The same base agent without FLASH's context: pretrain on the train tasks (``meta_train``), fine-tune on the
    new task (``adapt``); ``fresh()`` gives the from-scratch baseline."""

    use_context = False
