"""Policy-gradient MAML through ``higher`` (the gradient-based meta-learning baseline).

The policy is an MLP over the observation (no context). Meta-training: for each task of a meta-batch, take
``inner_steps`` SGD steps (learning rate ``inner_lr``) on a REINFORCE loss from ``inner_episodes`` episodes with the
current policy, then evaluate the REINFORCE loss of the adapted policy on ``outer_episodes`` fresh episodes and
back-propagate through the inner steps (``higher.innerloop_ctx``) into the initial weights; ``first_order=True``
drops the second-order terms (FOMAML). Adaptation to a new task goes on taking such inner steps, one per
``inner_episodes`` episodes, for its whole budget.

:func:`meta_gradient` is the generic piece (a differentiable inner loop over arbitrary losses); a test checks it
against finite differences on a toy problem.
"""

from __future__ import annotations

import copy
import inspect
from pathlib import Path
from typing import Any, Callable, Sequence

import gymnasium as gym
import higher
import numpy as np
import torch
from torch import nn

import flash_envs  # noqa: F401
from flash_envs.fields import check_flag, check_number, check_seed, check_whole, is_real_number
from flash_rl.adaptation import adaptation_points, check_on_eval
from flash_rl.agent_settings import as_saved, check_env_kwargs, training_tasks, warn_of_a_family_of_another_length
from flash_rl.atomic_files import atomic_write
from flash_rl.checkpoints import CHANGED_ENV, check_resumable, check_resume_folder, check_resume_total, error_text
from flash_rl.config import MamlConfig, check_env_id, check_layer_sizes
from flash_rl.context import check_task_env, check_tasks_settable
from flash_envs.progress import tqdm_bar
from flash_rl.torch_random import torch_seeded
from flash_rl.torch_threads import one_torch_thread
from flash_rl.trained_tasks import read_trained_on, task_records, write_trained_on
from flash_rl.weights_file import load_weights_file


def meta_gradient(model: nn.Module, inner_loss: Callable[[nn.Module], torch.Tensor],
                  outer_loss: Callable[[nn.Module], torch.Tensor], inner_lr: float, inner_steps: int = 1,
                  first_order: bool = False) -> tuple[float, list[torch.Tensor]]:
    """The outer loss after ``inner_steps`` SGD steps on ``inner_loss`` and its gradient w.r.t. ``model``'s
    initial parameters (through the inner steps unless ``first_order``). Leaves ``model`` unchanged."""
    params = [p for p in model.parameters() if p.requires_grad]
    inner_opt = torch.optim.SGD(params, lr=inner_lr)
    with higher.innerloop_ctx(model, inner_opt, copy_initial_weights=False,
                              track_higher_grads=not first_order) as (fmodel, diffopt):
        for _ in range(inner_steps):
            diffopt.step(inner_loss(fmodel))
        loss = outer_loss(fmodel)
        # first order: the gradient at the adapted weights, applied to the initial ones (higher detached the steps)
        wrt = list(fmodel.parameters()) if first_order else params
        grads = torch.autograd.grad(loss, wrt, allow_unused=True)
    grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]
    return float(loss.detach()), grads


class PolicyNet(nn.Module):
    """Categorical policy: MLP(obs) -> logits."""

    def __init__(self, n_obs: int, n_actions: int, hidden: Sequence[int] = (64, 64)) -> None:
        super().__init__()
        layers, width = [], n_obs
        for h in hidden:
            layers += [nn.Linear(width, h), nn.Tanh()]
            width = h
        layers.append(nn.Linear(width, n_actions))
        self.net = nn.Sequential(*layers)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs)


def rollout(policy: Callable[[torch.Tensor], torch.Tensor], envs: Sequence[gym.Env], task: Any, seeds: Sequence[int],
            generator: torch.Generator, deterministic: bool = False) -> dict[str, torch.Tensor]:
    """One episode in each of ``envs`` (all on ``task``), batched through ``policy``; returns obs (n, T, d), actions
    (n, T), rewards (n, T) and, when the episodes end at different steps (``flash/ConfigSearch-v0`` ends when the agent
    commits), ``mask`` (n, T): 1 for the steps of each episode, 0 after its end, where obs repeat its last, actions are
    drawn but not taken and rewards are 0. T is the longest episode's length."""
    obs = np.stack([env.reset(seed=int(s), options={"task": task})[0] for env, s in zip(envs, seeds)])
    all_obs, all_act, all_rew, all_live = [], [], [], []
    live = [True] * len(envs)
    while any(live):
        obs_t = torch.as_tensor(obs, dtype=torch.float32)
        with torch.no_grad():
            logits = policy(obs_t)
        if deterministic:
            actions = logits.argmax(-1)
        else:
            actions = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator).squeeze(-1)
        steps = [env.step(int(a)) if running else (last, 0.0, True, False, {})
                 for env, a, running, last in zip(envs, actions, live, obs)]
        all_obs.append(obs_t)
        all_act.append(actions)
        all_rew.append(torch.tensor([s[1] for s in steps], dtype=torch.float32))
        all_live.append(torch.tensor(live, dtype=torch.float32))
        obs = np.stack([s[0] for s in steps])
        live = [not (s[2] or s[3]) for s in steps]
    batch = {"obs": torch.stack(all_obs, 1), "actions": torch.stack(all_act, 1), "rewards": torch.stack(all_rew, 1)}
    mask = torch.stack(all_live, 1)
    return batch if bool(mask.all()) else {**batch, "mask": mask}


def with_fast_weights(net: nn.Module, fmodel: nn.Module) -> nn.Module:
    """``net``, a plain copy of ``fmodel``'s network, given ``fmodel``'s current (fast) weights, to act through in a
    rollout: the same outputs, at a third of the cost of a forward pass through ``higher``'s patched module."""
    with torch.no_grad():
        for param, fast in zip(net.parameters(), fmodel.parameters()):
            param.copy_(fast)
    return net


def reinforce_loss(policy: Callable[[torch.Tensor], torch.Tensor], batch: dict[str, torch.Tensor],
                   gamma: float) -> torch.Tensor:
    """REINFORCE with a time-dependent baseline (the mean return-to-go over the batch's episodes at each step),
    advantages normalised; differentiable w.r.t. ``policy``'s (fast) weights. With a ``mask`` (episodes of different
    lengths, see :func:`rollout`), the baseline, normalisation and mean run over each step's unfinished episodes."""
    rewards = batch["rewards"]
    returns = torch.zeros_like(rewards)
    running = torch.zeros(rewards.shape[0])
    for t in range(rewards.shape[1] - 1, -1, -1):
        running = rewards[:, t] + gamma * running
        returns[:, t] = running
    logp = torch.log_softmax(policy(batch["obs"]), -1).gather(-1, batch["actions"].unsqueeze(-1)).squeeze(-1)
    if "mask" in batch:
        mask = batch["mask"]
        adv = returns - (returns * mask).sum(0, keepdim=True) / mask.sum(0, keepdim=True).clamp(min=1.0)
        adv = adv * mask
        valid = mask.sum()
        std = torch.sqrt((adv ** 2).sum() / (valid - 1)) if valid > 1 else torch.tensor(0.0)
        return -(logp * (adv / (std + 1e-8)).detach() * mask).sum() / valid
    if returns.numel() == 1:   # a single one-step episode: nothing to compare its return with
        return -(logp * 0.0).mean()
    adv = returns - returns.mean(0, keepdim=True) if rewards.shape[0] > 1 else returns - returns.mean()
    adv = adv / (adv.std() + 1e-8)
    return -(logp * adv.detach()).mean()


MAML_ACTION_SPACES = (gym.spaces.Discrete,)   # what the policy network acts in


def settings_of(state: dict[str, Any]) -> dict[str, Any]:
    """The settings (env and hyper-parameters, JSON-serialisable) of a MAML checkpoint's state."""
    return as_saved({"env_id": state["env_id"], "env_kwargs": state["env_kwargs"], **state["hparams"]})


def saved_iteration(state: dict[str, Any], path: Path) -> int:
    """The iteration a MAML checkpoint ``state`` (read from ``path``) was taken at: a ValueError naming ``path`` when
    it is not a whole number of iterations."""
    iteration = state["iteration"]
    if isinstance(iteration, bool) or not isinstance(iteration, int) or iteration < 0:
        raise ValueError(f"{path} is not a MAML checkpoint that flash wrote, or is damaged: its iteration "
                         f"{iteration!r} is not a count")
    return iteration


class MAML:
    """Policy-gradient MAML on a FLASH env (Discrete actions). The defaults are those of the config's ``maml:``
    section (:class:`~flash_rl.config.MamlConfig`), which ``flash reproduce`` runs. ``env_kwargs`` are saved in the
    checkpoint, so they are checked as :class:`~flash_rl.flash.Flash`'s are
    (:func:`~flash_rl.agent_settings.check_env_kwargs`). As there, numbers, counts, seeds and flags of another type or
    out of range (an infinite learning rate, a fractional count, a negative seed, a string for ``first_order``) are
    refused with an error naming them.
    """

    def __init__(self, env_id: str, env_kwargs: dict[str, Any] | None = None, *, hidden: Sequence[int] = (64, 64),
                 inner_lr: float = MamlConfig.inner_lr, outer_lr: float = MamlConfig.outer_lr,
                 inner_steps: int = MamlConfig.inner_steps, inner_episodes: int = MamlConfig.inner_episodes,
                 outer_episodes: int = MamlConfig.outer_episodes, meta_batch: int = MamlConfig.meta_batch,
                 first_order: bool = MamlConfig.first_order, gamma: float = MamlConfig.gamma, seed: int = 0) -> None:
        self.env_id, self.env_kwargs = check_env_id(env_id), dict(env_kwargs or {})
        check_env_kwargs(self.env_kwargs)
        for key, rate in (("inner_lr", inner_lr), ("outer_lr", outer_lr)):   # in the words of the config's checks
            if is_real_number(rate) and not rate > 0:
                raise ValueError(f"maml.{key} must be > 0, got {float(rate)}")
        if is_real_number(gamma) and not 0 < gamma <= 1:
            raise ValueError(f"maml.gamma must be in (0, 1], got {float(gamma)}")
        self.hparams: dict[str, Any] = {
            "hidden": check_layer_sizes(hidden, "maml.hidden"),
            "inner_lr": check_number("maml.inner_lr", inner_lr, 0, strict=True),
            "outer_lr": check_number("maml.outer_lr", outer_lr, 0, strict=True),
            "inner_steps": check_whole("maml.inner_steps", inner_steps, 1),
            "inner_episodes": check_whole("maml.inner_episodes", inner_episodes, 1),
            "outer_episodes": check_whole("maml.outer_episodes", outer_episodes, 1),
            "meta_batch": check_whole("maml.meta_batch", meta_batch, 1),
            "first_order": check_flag("maml.first_order", first_order),
            "gamma": check_number("maml.gamma", gamma, 0, 1, strict=True), "seed": check_seed("seed", seed)}
        seed = self.hparams["seed"]
        env = gym.make(env_id, **self.env_kwargs)
        check_task_env(env, env_id, use_context=False)
        if not isinstance(env.action_space, MAML_ACTION_SPACES):
            raise TypeError(f"env {env_id!r}: this MAML baseline needs a Discrete action space, got {env.action_space}")
        if not isinstance(env.observation_space, gym.spaces.Box) or len(env.observation_space.shape) != 1:
            raise TypeError(f"env {env_id!r}: this MAML baseline's policy takes a flat (1-D) Box observation, got "
                            f"{env.observation_space}; register the env wrapped in "
                            "gymnasium.wrappers.FlattenObservation")
        self.n_obs, self.n_actions = int(env.observation_space.shape[0]), int(env.action_space.n)
        env.close()
        with torch_seeded(seed):
            self.policy = PolicyNet(self.n_obs, self.n_actions, self.hparams["hidden"])
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=self.hparams["outer_lr"])
        self.iteration = 0
        #: The tasks meta-training trained on (:mod:`flash_rl.trained_tasks`; none before it), saved with it; None
        #: when it was loaded from a checkpoint without the record (written before flash kept one).
        self.trained_on: list[dict[str, str | None]] | None = []
        self.rng = np.random.default_rng(seed)
        self.generator = torch.Generator().manual_seed(seed)
        self._envs: list[gym.Env] = []

    def _get_envs(self, n: int) -> list[gym.Env]:
        while len(self._envs) < n:
            self._envs.append(gym.make(self.env_id, **self.env_kwargs))
        return self._envs[:n]

    def _seeds(self, n: int) -> list[int]:
        return [int(s) for s in self.rng.integers(0, 2**31 - 1, size=n)]

    @one_torch_thread()
    def meta_step(self, tasks: Sequence[Any]) -> float:
        """One outer update over ``tasks`` (a meta-batch); returns the mean post-adaptation loss."""
        h = self.hparams
        totals = [torch.zeros_like(p) for p in self.policy.parameters()]
        losses = []
        actor = copy.deepcopy(self.policy)
        for task in tasks:
            def inner(fmodel, task=task):
                batch = rollout(with_fast_weights(actor, fmodel), self._get_envs(h["inner_episodes"]), task,
                                self._seeds(h["inner_episodes"]), self.generator)
                return reinforce_loss(fmodel, batch, h["gamma"])

            outer_batch: dict[str, torch.Tensor] = {}

            def outer(fmodel, task=task):
                if not outer_batch:
                    outer_batch.update(rollout(with_fast_weights(actor, fmodel), self._get_envs(h["outer_episodes"]),
                                               task, self._seeds(h["outer_episodes"]), self.generator))
                return reinforce_loss(fmodel, outer_batch, h["gamma"])

            loss, grads = meta_gradient(self.policy, inner, outer, h["inner_lr"], h["inner_steps"], h["first_order"])
            losses.append(loss)
            for total, g in zip(totals, grads):
                total += g / len(tasks)
        self.optimizer.zero_grad()
        for p, g in zip(self.policy.parameters(), totals):
            p.grad = g
        self.optimizer.step()
        self.iteration += 1
        return float(np.mean(losses))

    def meta_train(self, tasks: Any, iterations: int, *, checkpoint_dir: str | Path | None = None,
                   checkpoint_interval: int = 0, resume: bool = False, progress_bar: bool = False,
                   writer: Any = None) -> "MAML":
        """Meta-train on ``tasks`` (a sequence, or a family whose ``train`` split is used) up to ``iterations`` outer
        updates in all; with ``resume`` and a checkpoint in ``checkpoint_dir`` (written every
        ``checkpoint_interval`` iterations and at the end), continue from it. A checkpoint written with other
        settings is refused (:func:`flash_rl.checkpoints.check_resumable`). ``writer``: a TensorBoard
        ``SummaryWriter``."""
        warn_of_a_family_of_another_length(tasks, self.env_id, self.env_kwargs)
        tasks = training_tasks(tasks)
        probe = gym.make(self.env_id, **self.env_kwargs)
        check_tasks_settable(probe, self.env_id, tasks)
        probe.close()
        iterations = check_whole("iterations", iterations, 1)
        checkpoint_interval = check_whole("checkpoint_interval", checkpoint_interval, 0)
        resume, progress_bar = check_flag("resume", resume), check_flag("progress_bar", progress_bar)
        check_resume_folder(resume, checkpoint_dir)
        if resume and checkpoint_dir and (Path(checkpoint_dir) / "maml.pt").exists():
            self.resume_from(checkpoint_dir, iterations)
        self.trained_on = task_records(tasks)   # once the call is taken (a refused resume keeps the record)
        bar = tqdm_bar(iterations, "MAML meta-train", progress_bar, initial=self.iteration, unit="it")
        while self.iteration < iterations:
            batch = [tasks[i] for i in self.rng.choice(len(tasks), self.hparams["meta_batch"],
                                                       replace=self.hparams["meta_batch"] > len(tasks))]
            loss = self.meta_step(batch)
            if writer is not None:
                writer.add_scalar("maml/outer_loss", loss, self.iteration)
            bar.update(1)
            if checkpoint_dir and checkpoint_interval > 0 and self.iteration % checkpoint_interval == 0:
                self.checkpoint(checkpoint_dir)
        bar.close()
        if checkpoint_dir:
            self.checkpoint(checkpoint_dir)
        return self

    # -------------------------------------------------------------------------------------------- adaptation
    @one_torch_thread()
    def evaluate(self, policy: nn.Module | None, task: Any, seed: int, actions: list[Any] | None = None) -> float:
        """Return of one deterministic episode of ``policy`` (default: the meta-learned one) on ``task``, the env
        seeded with ``seed``; each action taken is appended to ``actions`` when it is given."""
        seed = check_seed("seed", seed)
        batch = rollout(policy or self.policy, self._get_envs(1), task, [seed], self.generator, deterministic=True)
        if actions is not None:   # one env: the rollout stops when its episode ends, so every action was taken
            actions.extend(int(a) for a in batch["actions"][0])
        return float(batch["rewards"].sum())

    #: The settings (``hparams``) :meth:`adapt` uses; the others shape or meta-train the model.
    ADAPT_SETTINGS = ("inner_lr", "inner_episodes", "gamma")

    @one_torch_thread()
    def adapt(self, task: Any, episodes: int, *, eval_every: int = 1, eval_seed: int = 10_000, seed: int = 0,
              on_eval: Callable[[int, float], None] | None = None) -> list[tuple[int, float]]:
        """Inner SGD steps on ``task`` from a copy of the meta-learned weights, each as meta-training took its
        ``inner_steps`` ones: one step per ``inner_episodes`` episodes, for the whole budget (the last step on the
        episodes that remain), evaluating the
        deterministic policy before any step and after every ``eval_every`` episodes (within a step's episodes, the
        policy they were sampled with)."""
        episodes, points = adaptation_points(episodes, eval_every)
        check_on_eval(on_eval)
        eval_seed, seed = check_seed("eval_seed", eval_seed), check_seed("seed", seed)
        policy = copy.deepcopy(self.policy)
        opt = torch.optim.SGD(policy.parameters(), lr=self.hparams["inner_lr"])
        generator = torch.Generator().manual_seed(seed)
        rng = np.random.default_rng(seed)
        curve = []

        def record(e: int) -> None:
            value = self.evaluate(policy, task, eval_seed)
            curve.append((e, value))
            if on_eval is not None:
                on_eval(e, value)

        record(0)
        done = 0
        while done < episodes:
            n = min(self.hparams["inner_episodes"], episodes - done)
            batch = rollout(policy, self._get_envs(n), task, [int(rng.integers(2**31 - 1)) for _ in range(n)],
                            generator)
            for e in range(done + 1, done + n):   # spent on this step, which has not been taken yet
                if e in points:
                    record(e)
            opt.zero_grad()
            reinforce_loss(policy, batch, self.hparams["gamma"]).backward()
            opt.step()
            done += n
            if done in points:
                record(done)
        return curve

    # -------------------------------------------------------------------------------------------- persistence
    #: What :meth:`checkpoint` writes to ``maml.pt``.
    STATE_KEYS = ("env_id", "env_kwargs", "hparams", "policy", "optimizer", "iteration", "rng", "generator")

    def _state(self) -> dict[str, Any]:
        return {"env_id": self.env_id, "env_kwargs": self.env_kwargs, "hparams": self.hparams,
                "policy": self.policy.state_dict(), "optimizer": self.optimizer.state_dict(),
                "iteration": self.iteration, "rng": self.rng.bit_generator.state,
                "generator": self.generator.get_state()}

    def _env_changed(self, weights: Any) -> bool:
        """Whether the saved policy ``weights`` (a state dict) take other observations or give another number of
        actions than this agent's env: a sound checkpoint in an env that has changed since, not a damaged file."""
        try:
            layers = [w for name, w in weights.items() if name.endswith("weight")]
            return (layers[0].shape[1], layers[-1].shape[0]) != (self.n_obs, self.n_actions)
        except (AttributeError, IndexError, TypeError):   # no weights to tell by
            return False

    def _restore(self, state: dict[str, Any], path: Path) -> None:
        """Take the weights, optimiser, iteration and random states of ``state``, read from ``path``; a ValueError
        naming ``path`` when they do not fit this agent's settings (e.g. weights of other ``hidden`` layers)."""
        iteration = saved_iteration(state, path)
        try:
            self.policy.load_state_dict(state["policy"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.rng.bit_generator.state = state["rng"]
            self.generator.set_state(state["generator"])
        except (KeyError, RuntimeError, TypeError, ValueError) as err:
            changed = (f"; they are sized for another observation or action space than this env's, {CHANGED_ENV}"
                       if "size mismatch" in str(err) and self._env_changed(state["policy"]) else "")
            raise ValueError(f"{path} is not a MAML checkpoint that flash wrote, or is damaged: its weights or state "
                             f"do not fit its settings ({error_text(err)}){changed}") from err
        self.iteration = iteration

    def resume_from(self, checkpoint_dir: str | Path, iterations: int) -> None:
        """Take the weights, optimiser, iteration and random states of ``checkpoint_dir/maml.pt``, to go on to
        ``iterations`` in all: a checkpoint of other settings (:func:`~flash_rl.checkpoints.check_resumable`), already
        past ``iterations`` (:func:`~flash_rl.checkpoints.check_resume_total`), or missing or damaged, is a
        ValueError naming it."""
        path = Path(checkpoint_dir) / "maml.pt"
        state = load_weights_file(path, "a MAML checkpoint", self.STATE_KEYS)
        check_resumable(settings_of(state), self.config(), checkpoint_dir)
        check_resume_total(checkpoint_dir, saved_iteration(state, path), iterations, "iterations", None)   # exact
        self._restore(state, path)

    def checkpoint(self, directory: str | Path) -> None:
        """Write ``directory/maml.pt`` atomically: settings, policy and optimiser weights, iteration and RNG states."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_write(directory / "maml.pt") as tmp:
            torch.save(self._state(), tmp)
        write_trained_on(directory, self.trained_on)

    save = checkpoint

    @classmethod
    def load(cls, directory: str | Path) -> "MAML":
        """The agent :meth:`checkpoint` wrote to ``directory``, ready to adapt or to continue meta-training. A file that
        is not such a checkpoint, or whose settings or weights are refused, is a ValueError naming it
        (:func:`~flash_rl.weights_file.load_weights_file` reads it without unpickling code)."""
        path = Path(directory) / "maml.pt"
        state = load_weights_file(path, "a MAML checkpoint", cls.STATE_KEYS)
        hparams = state["hparams"]
        if not isinstance(hparams, dict):
            raise ValueError(f"{path} is not a MAML checkpoint that flash wrote (its hparams are a "
                             f"{type(hparams).__name__}, not a mapping)")
        known = [name for name, p in inspect.signature(cls.__init__).parameters.items() if p.kind is p.KEYWORD_ONLY]
        unknown, missing = sorted(set(hparams) - set(known), key=str), sorted(set(known) - set(hparams))
        if unknown or missing:   # a missing one would take today's default, which the model may not have had
            problem = (f"hold {unknown}, which this version of flash does not know" if unknown
                       else f"lack {missing}, which this version of flash records")
            raise ValueError(f"{path}: its settings {problem}; it was written by another version (retrain, or load it "
                             "with that version)")
        try:
            obj = cls(state["env_id"], state["env_kwargs"], **hparams)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path}: the saved settings are refused: {err}") from err
        obj._restore(state, path)
        obj.trained_on = read_trained_on(Path(directory))
        return obj

    def config(self) -> dict[str, Any]:
        """This agent's settings (env id, env kwargs and hyper-parameters), as a checkpoint records them."""
        return settings_of(self._state())
