"""Checkpoints of a meta-training, and reading them back to resume: the callback that writes them, the checks that
refuse a damaged one or one of other settings, and the saved SB3 agent, its episodes in progress and random states.
:meth:`~flash_rl.flash.Flash.checkpoint` writes them; MAML's checkpoints share the resume checks, and
:func:`error_text` puts what a file (or other input) fails with on one line."""

from __future__ import annotations

import io
import json
import pickle
import pickletools
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv

from flash_envs.flash_warnings import warn
from flash_rl.agent_settings import keep_logs_out_of_tmp
from flash_rl.context import TaskSamplingWrapper

if TYPE_CHECKING:
    from flash_rl.flash import Flash


class CheckpointCallback(BaseCallback):
    """Once ``interval`` timesteps have passed since the last one, write a checkpoint of a meta-training to
    ``total_timesteps`` with :meth:`~flash_rl.flash.Flash.checkpoint`, at the start of the next rollout: the agent has
    then learnt from every step taken (SB3 trains between rollouts) and holds nothing half-collected, so that a
    resumed run goes on step for step as if it had never stopped."""

    def __init__(self, owner: "Flash", directory: str | Path, interval: int, total_timesteps: int | None = None
                 ) -> None:
        super().__init__()
        self.owner, self.directory, self.interval = owner, Path(directory), int(interval)
        self.total_timesteps = total_timesteps
        self._last = None

    def _on_training_start(self) -> None:
        self._last = self.model.num_timesteps

    def _on_rollout_start(self) -> None:
        if self.model.num_timesteps - self._last >= self.interval:
            self.owner.checkpoint(self.directory, self.total_timesteps)
            self._last = self.model.num_timesteps

    def _on_step(self) -> bool:
        return True


#: The files of a checkpoint (:meth:`~flash_rl.flash.Flash.checkpoint`) that a newer one replaces, and those that
#: :func:`~flash_rl.atomic_files.atomic_write` was writing when a kill cut it short (``.agent-120.<random>.tmp.zip``;
#: state.json's included).
CHECKPOINT_FILES = ("agent-*.zip", "replay-*.pkl", "episodes-*.pkl", ".agent-*.tmp.zip", ".replay-*.tmp.pkl",
                    ".episodes-*.tmp.pkl", ".state.*.tmp.json")


#: A replay buffer this large (GB of observations) or more is warned of: SB3 allocates it up front, and every
#: checkpoint writes it whole.
LARGE_REPLAY_BUFFER_GB = 1.0


def replay_buffer_gb(agent: BaseAlgorithm) -> float:
    """GB of observations (and next observations) ``agent``'s replay buffer holds when full; 0 without one."""
    buffer = getattr(agent, "replay_buffer", None)
    parts = [getattr(buffer, name, None) for name in ("observations", "next_observations")]
    arrays = [a for part in parts if part is not None for a in (part.values() if isinstance(part, dict) else [part])]
    return sum(a.nbytes for a in arrays) / 1e9


def warn_of_a_large_replay_buffer(agent: BaseAlgorithm, owner: str) -> None:
    """Warn (naming ``owner``, e.g. ``"Flash.meta_train"``) when every checkpoint would write ``agent``'s replay
    buffer of :data:`LARGE_REPLAY_BUFFER_GB` or more."""
    gigabytes = replay_buffer_gb(agent)
    if gigabytes >= LARGE_REPLAY_BUFFER_GB:
        warn(f"{owner}: every checkpoint writes {type(agent).__name__}'s replay buffer whole, about {gigabytes:.1f} GB "
             f"of observations ({agent.buffer_size:,} transitions); give a smaller agent_kwargs buffer_size, e.g. "
             "50_000")


def task_sampler(env: gym.Env) -> TaskSamplingWrapper | None:
    """The :class:`TaskSamplingWrapper` in ``env``'s chain of wrappers, None if there is none."""
    while isinstance(env, gym.Wrapper):
        if isinstance(env, TaskSamplingWrapper):
            return env
        env = env.env
    return None


def random_states(agent: BaseAlgorithm) -> dict[str, Any]:
    """The states of the generators an SB3 agent draws from as it trains: NumPy's global one (PPO's minibatches,
    DQN's exploration coin), torch's (the policy's action samples) and its action space's (DQN's random actions).
    SB3's ``load`` seeds them all anew."""
    return {"numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "action_space": agent.action_space.np_random.bit_generator.state}


def set_random_states(agent: BaseAlgorithm, states: dict[str, Any]) -> None:
    """Restore what :func:`random_states` returned."""
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    agent.action_space.np_random.bit_generator.state = states["action_space"]


def check_resumable(saved: dict[str, Any], current: dict[str, Any], directory: str | Path) -> None:
    """Refuse to resume from the checkpoint in ``directory``, written by an agent of the settings ``saved``, with
    other ``current`` settings: the loaded agent would keep some of the old ones (SB3 restores its saved
    hyper-parameters) and take the others, a mix that neither run's settings describe. Both are settings as saved
    (:meth:`~flash_rl.flash.Flash.config`, MAML's ``config``: tuples are lists)."""
    changed = sorted(key for key in set(saved) | set(current) if saved.get(key) != current.get(key))
    if changed:
        diff = "; ".join(f"{key}: {saved.get(key)!r} there, {current.get(key)!r} here" for key in changed)
        raise ValueError(f"cannot resume from the checkpoint in {directory}: it was written with other settings "
                         f"({diff}); resume with the same settings, or train into another checkpoint_dir")


def read_checkpoint(directory: str | Path, config: dict[str, Any], total_timesteps: int | None = None
                    ) -> dict[str, Any] | None:
    """The state (``state.json``) of the checkpoint in ``directory``, None if there is none. A ValueError names the file
    when ``state.json`` is unreadable or not a JSON object with ``config``, ``agent`` and the state of ``config``'s
    ``n_envs`` task samplers, when its agent zip is not whole (every member's CRC is checked), its replay buffer
    (:func:`check_whole_pickle`) or its episodes file (:func:`read_episodes`) cannot be read, when it was
    written with other settings than ``config`` (:func:`check_resumable`), or when it is past ``total_timesteps`` in
    a meta-training to another total (:func:`check_resume_total`; checkpoints written before the total was recorded
    are not checked)."""
    path = Path(directory) / "state.json"
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError) as err:   # unreadable, not UTF-8 or not JSON
        raise ValueError(f"{path} cannot be read ({err})") from None
    if not (isinstance(state, dict) and isinstance(state.get("config"), dict) and isinstance(state.get("agent"), str)):
        raise ValueError(f"{path} is damaged: not a JSON object with config (dict), agent (str)")
    check_resumable(state["config"], config, directory)
    done, run_total = state.get("num_timesteps"), state.get("total_timesteps")
    if total_timesteps is not None and isinstance(done, int) and isinstance(run_total, int):
        check_resume_total(directory, done, total_timesteps, "timesteps", run_total)
    samplers, n_envs = state.get("samplers"), config.get("n_envs")
    if not isinstance(samplers, list) or (isinstance(n_envs, int) and len(samplers) != n_envs):
        raise ValueError(f"{path} holds no task-sampler state for the {n_envs} training env(s), so a meta-training "
                         "cannot resume from it (checkpoint() of a loaded or fresh agent writes none); train anew, "
                         "or start from its weights with init_from")
    check_agent_zip(Path(directory) / state["agent"])
    if "replay_buffer" in state:
        check_whole_pickle(Path(directory) / str(state["replay_buffer"]), "the replay buffer of a checkpoint")
    if "episodes" in state:
        read_episodes(Path(directory) / str(state["episodes"]))
    return state


def check_whole_pickle(path: Path, what: str, data: bytes | None = None) -> None:
    """Refuse, with a ValueError naming ``path`` as ``what``, a pickle that is missing, cut short or not a pickle at
    all: the file ``path``, or ``data``, a pickle held inside it. Its opcodes are read, none executed: cheap against
    unpickling, which for a checkpoint's training envs replays their episodes."""
    try:
        with io.BytesIO(data) if data is not None else open(path, "rb") as file:
            for _ in pickletools.genops(file):
                pass
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file: expected {what}") from None
    except Exception as err:   # (genops raises ValueError for a cut file, and others for foreign bytes)
        raise ValueError(f"{path} cannot be read as {what}: it is cut short or not a pickle "
                         f"({error_text(err)})") from None


def read_episodes(path: Path) -> dict[str, Any]:
    """The episodes in progress that :meth:`~flash_rl.flash.Flash.checkpoint` wrote to ``path``, with the training envs
    still pickled (``envs``: unpickling them replays their episodes): a ValueError names a file that is missing, cut
    short or not such a record."""
    try:
        episodes = pickle.loads(path.read_bytes())
        if not (isinstance(episodes, dict) and isinstance(episodes.get("envs"), bytes)
                and {"tasks", "last_obs", "last_episode_starts", "random"} <= set(episodes)):
            raise ValueError("not a record of training envs, observations and random states")
    except Exception as err:   # (unpickling a cut or foreign file raises anything from EOFError to TypeError)
        raise ValueError(f"{path} cannot be read as the episodes in progress of a checkpoint "
                         f"({error_text(err)})") from None
    check_whole_pickle(path, "the episodes in progress of a checkpoint (its training envs)", episodes["envs"])
    return episodes


def check_resume_folder(resume: bool, checkpoint_dir: str | Path | None) -> None:
    """A ValueError unless ``resume`` has a ``checkpoint_dir`` to continue from: ``meta_train(..., resume=True)``
    without one trained from scratch, as if ``resume`` were False."""
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True continues from a checkpoint in checkpoint_dir: give checkpoint_dir")


def check_resume_total(directory: str | Path, done: int, total: int, unit: str, run_total: int | None) -> None:
    """Refuse (ValueError) to resume, as a meta-training to ``total``, a checkpoint ``done`` ``unit`` into a
    meta-training to ``run_total`` (None: unknown) that is already past ``total``: nothing would be trained, and the
    model would be reported as trained to ``total``. A checkpoint of a run to ``total`` itself is never refused: SB3's
    whole rollouts pass their total by a little."""
    if done > total and run_total != total:
        of = f" of a meta-training to {run_total}" if run_total is not None else ""
        raise ValueError(f"{directory} holds a checkpoint at {done} {unit}{of}, past the total {total} asked for "
                         f"(resume to a total of at least {done})")


def error_text(err: BaseException, limit: int = 300) -> str:
    """``err`` on one line for a message that wraps it: its type, then its text (whitespace runs made one space, cut
    to ``limit`` characters)."""
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:limit]}{'...' if len(text) > limit else ''}" if text else type(err).__name__


def check_agent_zip(path: Path) -> None:
    """Refuse, with a ValueError naming ``path``, a file that is not a whole saved SB3 agent: not a zip file, a member
    failing its CRC check, or no ``data`` member (the agent's settings; SB3 only asserts that it is there)."""
    try:
        with zipfile.ZipFile(path) as archive:
            broken, names = archive.testzip(), archive.namelist()
    except (OSError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path} cannot be read as a saved agent ({err})") from err
    if broken is not None:
        raise ValueError(f"{path} is damaged: its member {broken} fails its CRC check")
    if "data" not in names:
        raise ValueError(f"{path} is not a saved agent that flash wrote, or is damaged: it has no data member (the "
                         "agent's settings)")


#: The other reason a saved agent's weights may not fit the env its settings make (spaces of other sizes).
CHANGED_ENV = ("or, if it is sound, the env it is loaded into is not the one it was saved with: has a file that the "
               "env's settings name changed since (a power env's family_file, say, now of other P-states)?")


def load_agent(agent_cls: type[BaseAlgorithm], path: Path, env: DummyVecEnv, **kwargs: Any) -> BaseAlgorithm:
    """The ``agent_cls`` agent saved in ``path``, on CPU and acting in ``env`` (:func:`keep_logs_out_of_tmp`;
    ``kwargs`` go to SB3's ``load``). A file that is not a whole saved agent (:func:`check_agent_zip`), or one SB3
    fails to load (spaces other than ``env``'s, weights of another network, ...), is a ValueError naming ``path``."""
    check_agent_zip(path)
    try:
        agent = agent_cls.load(path, env=env, device="cpu", **kwargs)
    except Exception as err:   # SB3 raises AssertionError, ValueError, KeyError, RuntimeError... on a bad file
        changed = f"; {CHANGED_ENV}" if "spaces do not match" in str(err) else ""
        raise ValueError(f"{path} is not a saved agent that flash wrote, or is damaged (stable-baselines3 cannot load "
                         f"it: {error_text(err)}){changed}") from err
    return keep_logs_out_of_tmp(agent)
