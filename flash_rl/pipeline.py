"""The reproduction pipeline behind ``flash reproduce``: meta-training, references, adaptation, probe, report.

Phases (each timed; the times go into ``summary.json`` and the markdown report):

1. ``meta-train flash`` / ``pretrain transfer`` / ``meta-train maml`` -- one model each on the train split, with
   atomic checkpoints under ``<run dir>/models/<method>/ckpt``; ``--resume`` continues from them;
2. ``references`` -- random and expert returns per held-out task and evaluation seed (cached across runs; the
   per-task expert starts from the transfer agent);
3. ``adapt`` -- every method x held-out task x seed; each finished curve is appended to ``curves.jsonl`` at once,
   so a resumed run redoes at most the adaptation runs that were interrupted (and those of a task whose content, a
   trace file say, changed since: each line holds the task's digest);
4. ``probe`` -- linear probe from FLASH's embedding to the hidden task parameters (fit on train, R^2 on test);
5. ``report`` -- CSVs, plots, ``summary.json`` and ``results.md`` in the output directory.

With ``jobs > 1`` the same work is shared out among worker processes of one torch thread each, which load the models
the run saved: the meta-trainings side by side, then each reference task, adaptation run and the probe as soon as the
model it needs is saved, while the longest meta-training may still run (:func:`_run_in_workers`). Every training,
expert and adaptation run is seeded by its own settings alone, so the results do not depend on ``jobs`` (a test checks
it); the phase times then overlap. Ctrl-C stops the workers at once
(:func:`~flash_rl.workers.worker_pool`); what was saved (checkpoints, finished models and curves) is what
``--resume`` continues from.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, cast

import gymnasium as gym
import numpy as np

from flash_envs.cli_args import output_file
from flash_rl.adaptation import (ReferenceCache, References, compute_references, episodes_to_adapt,
                                 evaluation_points, task_key, task_references)
from flash_rl.atomic_files import atomic_write_text
from flash_rl.cases import Case, get_case
from flash_rl.config import EXPERT_N_ENVS, METHOD_MODEL, ConfigError, ExperimentConfig, check_resume, save_config
from flash_rl.checkpoints import check_resumable, read_checkpoint
from flash_rl.flash import Flash, TransferLearning
from flash_rl.machine import describe_machine
from flash_rl.maml import MAML
from flash_envs.progress import tqdm_bar
from flash_rl.torch_threads import use_one_torch_thread
from flash_rl.trained_tasks import read_trained_on, same_tasks
from flash_rl.workers import worker_pool


# ------------------------------------------------------------------------------------------------ construction
def make_flash(cfg: ExperimentConfig, tensorboard_log: str | None = None) -> Flash:
    """An untrained FLASH agent built from the ``flash:`` section, on the config's env, seeded with ``run.seed``."""
    f = cfg.flash
    return Flash(f.algo, cfg.env.id, cfg.env.kwargs, context_len=f.context_len, embedding_dim=f.embedding_dim,
                 encoder=f.encoder, encoder_hidden=f.encoder_hidden, net_arch=f.net_arch,
                 agent_kwargs=f.agent_kwargs, adapt_kwargs=f.adapt_kwargs, n_envs=f.n_envs,
                 episodes_per_task=f.episodes_per_task, seed=cfg.run.seed, tensorboard_log=tensorboard_log)


def make_transfer(cfg: ExperimentConfig, tensorboard_log: str | None = None, seed: int | None = None
                  ) -> TransferLearning:
    """An untrained transfer-learning agent from the ``transfer:`` section, seeded with ``seed`` (default
    ``run.seed``)."""
    t = cfg.transfer
    return TransferLearning(t.algo, cfg.env.id, cfg.env.kwargs, net_arch=t.net_arch, agent_kwargs=t.agent_kwargs,
                            adapt_kwargs=t.adapt_kwargs, n_envs=t.n_envs, episodes_per_task=t.episodes_per_task,
                            seed=cfg.run.seed if seed is None else seed, tensorboard_log=tensorboard_log)


def make_maml(cfg: ExperimentConfig) -> MAML:
    """An untrained MAML agent built from the ``maml:`` section, seeded with ``run.seed``."""
    m = cfg.maml
    return MAML(cfg.env.id, cfg.env.kwargs, hidden=m.hidden, inner_lr=m.inner_lr, outer_lr=m.outer_lr,
                inner_steps=m.inner_steps, inner_episodes=m.inner_episodes, outer_episodes=m.outer_episodes,
                meta_batch=m.meta_batch, first_order=m.first_order, gamma=m.gamma, seed=cfg.run.seed)


def test_tasks(cfg: ExperimentConfig, case: Case, family: Any) -> list[Any]:
    """The held-out tasks to adapt to: the family's test split (its first ``adaptation.max_test_tasks`` when that is
    set), then the case's trace tasks when ``tasks.test_traces`` names any, made from those same test tasks. Results
    are kept by task name, so a ValueError refuses names that repeat (say, from traces ``a/day.csv`` and
    ``b/day.csv``)."""
    tasks = list(family.test)
    if cfg.adaptation.max_test_tasks:
        tasks = tasks[:cfg.adaptation.max_test_tasks]
    if cfg.tasks.test_traces:
        if case.trace_tasks is None:
            raise ValueError(f"case {case.name!r} cannot replay test traces")
        tasks += case.trace_tasks(cfg, dataclasses.replace(family, test=tuple(tasks)))
    names = [task.name for task in tasks]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"held-out tasks share the name(s) {repeated[:5]}{' ...' * (len(repeated) > 5)}, and results "
                         "are kept by task name; a trace task is named after its file's name without the folder, so "
                         "give the traces in tasks.test_traces different file names")
    return tasks


# ------------------------------------------------------------------------------------------------ bookkeeping
@dataclass
class PhaseTimer:
    """Wall-clock seconds per pipeline phase, in ``times`` (name -> seconds, summed over repeats of a phase)."""

    times: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time the ``with`` block and add its seconds to ``times[name]`` (even if it raises)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.times[name] = self.times.get(name, 0.0) + time.perf_counter() - start


def _done_marker(directory: Path) -> Path:
    """Written when a meta-training finishes; it holds the total (timesteps or MAML iterations) it was trained for."""
    return directory / "DONE"


def _finished(directory: Path, total: int, name: str) -> bool:
    """Whether ``directory`` holds a finished meta-training of ``total``; one of another total is an error, because
    ``--resume`` would load it instead of training to ``total``."""
    marker = _done_marker(directory)
    if not marker.exists():
        return False
    done = marker.read_text().strip()
    if done.isdigit() and int(done) != total:   # markers written before the total was recorded hold "done"
        raise ConfigError(f"--resume: {directory} holds {name} trained to {done}, not {total}; a finished run is not "
                          "extended: use another --run-dir, or drop --resume to train again")
    return True


def discard_training(directory: Path) -> None:
    """Delete the meta-training an earlier run left in ``directory``: its ``DONE`` marker, checkpoint and final model.

    A new run calls this before it writes its ``config.yaml``, so that a ``--resume`` of the new run never loads the
    old model or checkpoint as one of the new settings. What makes the other files count goes first (``DONE``, then
    the checkpoint's ``state.json``): a kill midway leaves no marker of a finished model and no checkpoint whose files
    are gone, and what it leaves belongs to the run that the unchanged ``config.yaml`` describes.
    """
    _done_marker(directory).unlink(missing_ok=True)
    (directory / "ckpt" / "state.json").unlink(missing_ok=True)
    for folder in (directory / "ckpt", directory / "final"):
        if folder.is_dir():
            shutil.rmtree(folder)


def check_saved_model(name: str, cfg: ExperimentConfig, run_dir: Path, train: Sequence[Any]) -> None:
    """Raise :class:`ConfigError` for what a ``--resume`` would find wrong with the model ``name`` of :data:`PHASES`
    that :func:`train_model` saved in ``run_dir``, before the resume writes anything: a finished model of another
    total, a finished model or checkpoint of other settings (:func:`~flash_rl.checkpoints.check_resumable`) or
    meta-trained on other tasks than ``train`` (its ``trained_on.json``: a ``meta-train`` of another ``tasks.seed``
    rewrote the run's ``config.yaml``, or the family file was edited), a checkpoint already past the total of a
    ``meta-train --resume`` to another one (:func:`~flash_rl.checkpoints.check_resume_total`), or a missing or
    damaged file that it would load (named)."""
    directory, ckpt, total = run_dir / "models" / name, run_dir / "models" / name / "ckpt", training_total(cfg, name)
    finished = _finished(directory, total, name)
    saved = directory / "final" if finished and name != "maml" else ckpt
    try:
        records = read_trained_on(saved)
        if records is not None and not same_tasks(records, train):
            raise ValueError(f"{saved} holds {name} meta-trained on other tasks than the config's train tasks (another "
                             "tasks.* setting, or an edited tasks.family_file)")
        if name == "maml":
            if finished or (ckpt / "maml.pt").exists():
                make_maml(cfg).resume_from(ckpt, total)   # the checks, weights and random states it would take
        elif finished:   # e.g. left by a meta-train of other settings into a --run-dir shared by the methods
            check_resumable(Flash.load(directory / "final").config(), make_model(name, cfg).config(),
                            directory / "final")
        else:
            read_checkpoint(ckpt, make_model(name, cfg).config(), total)
    except (OSError, ValueError) as err:   # ConfigError included
        raise ConfigError(f"--resume: {err}; drop --resume to train {name} anew") from None


def check_run_to_resume(cfg: ExperimentConfig, run_dir: Path, names: list[str], family: Any,
                        may_also_change: tuple[str, ...] = ()) -> None:
    """Raise :class:`ConfigError` unless a ``--resume`` under ``cfg`` (whose task family is ``family``) may continue
    the run in ``run_dir`` and its models ``names`` (keys of :data:`PHASES`): its ``config.yaml`` must be readable and
    of the same settings but ``may_also_change`` (:func:`~flash_rl.config.check_resume`), and the models pass
    :func:`check_saved_model`."""
    check_resume(cfg, run_dir, may_also_change)
    for name in names:
        check_saved_model(name, cfg, run_dir, family.train)


def check_reference_cache(path: str | Path) -> None:
    """Refuse (:class:`ConfigError`), before any work, a ``references.cache`` file that is not a reference cache
    flash wrote, or a path where no file can be written: it is read only after the meta-training, and rewritten with
    the references it lacks."""
    try:
        output_file(str(path))   # not a folder (nor empty), and its folder can be made and written in
    except argparse.ArgumentTypeError as err:
        raise ConfigError(f"references.cache {str(path)!r}: {err}") from None
    try:
        entries = ReferenceCache(path, {}).entries
        if not isinstance(entries, dict):
            raise ValueError(f"it holds a JSON {type(entries).__name__}, not an object")
        for entry in entries.values():
            References(**entry)
    except (TypeError, ValueError) as err:   # not UTF-8, not JSON, or entries that are not references
        raise ConfigError(f"references.cache {path} is not a reference cache that flash wrote ({err}); delete it to "
                          "compute the references anew, or set references.cache to another file") from None


def train_flash_like(agent: Flash, family: Any, timesteps: int, directory: Path, cfg: ExperimentConfig,
                     resume: bool, name: str) -> Flash:
    """Meta-train (or load, when a finished model is there and ``resume``) a :class:`Flash` / transfer agent."""
    final = directory / "final"
    if resume and _finished(directory, timesteps, name):
        return type(agent).load(final)
    agent.meta_train(family.train, timesteps, checkpoint_dir=directory / "ckpt",
                     checkpoint_interval=cfg.run.checkpoint_interval, resume=resume,
                     progress_bar=cfg.run.progress_bar, tb_log_name=name)
    if agent.resumed_from is not None:
        print(f"{name}: resumed from the checkpoint at {agent.resumed_from} timesteps", flush=True)
    agent.save(final)
    atomic_write_text(_done_marker(directory), f"{timesteps}\n")
    return agent


def train_maml(cfg: ExperimentConfig, family: Any, directory: Path, resume: bool, writer: Any = None) -> MAML:
    """Meta-train (or load, when a finished model is there and ``resume``) the MAML agent, checkpointing to
    ``directory/ckpt`` every tenth of its iterations (at the end only when ``run.checkpoint_interval`` is 0)."""
    if resume and _finished(directory, cfg.maml.iterations, "maml"):
        return MAML.load(directory / "ckpt")
    maml = make_maml(cfg)
    if resume and (directory / "ckpt" / "maml.pt").exists():
        print("maml: resuming from its checkpoint", flush=True)
    interval = max(1, cfg.maml.iterations // 10) if cfg.run.checkpoint_interval else 0
    maml.meta_train(family.train, cfg.maml.iterations, checkpoint_dir=directory / "ckpt",
                    checkpoint_interval=interval, resume=resume, progress_bar=cfg.run.progress_bar, writer=writer)
    atomic_write_text(_done_marker(directory), f"{cfg.maml.iterations}\n")
    return maml


PHASES = {"flash": "meta-train flash", "transfer": "pretrain transfer", "maml": "meta-train maml"}

#: The files at the top of a run directory (``reproduce``'s and ``meta-train``'s), beside ``models/`` and ``tb/``:
#: the effective config, the adaptation runs (``reproduce``'s; ``meta-train`` removes some) and ``meta-train``'s
#: command.
RUN_FILES = ("config.yaml", "curves.jsonl", "command.txt")


def models_needed(methods: list[str]) -> list[str]:
    """The trained models (keys of :data:`PHASES`) that adapting ``methods`` starts from, in training order."""
    return [name for name in PHASES if name in {METHOD_MODEL[m] for m in methods}]


def models_to_train(cfg: ExperimentConfig) -> list[str]:
    """:func:`models_needed` by the configured methods, and the transfer agent the per-task expert starts from."""
    needed = models_needed(list(cfg.adaptation.methods))
    return needed + (["transfer"] if cfg.references.expert_timesteps > 0 and "transfer" not in needed else [])


def make_model(name: str, cfg: ExperimentConfig, tensorboard_log: str | None = None) -> Flash | MAML:
    """The untrained model ``name`` of :data:`PHASES`."""
    if name == "maml":
        return make_maml(cfg)
    return make_flash(cfg, tensorboard_log) if name == "flash" else make_transfer(cfg, tensorboard_log)


def training_total(cfg: ExperimentConfig, name: str) -> int:
    """What the model ``name`` of :data:`PHASES` is trained to: timesteps, or MAML's iterations."""
    return {"flash": cfg.flash.timesteps, "transfer": cfg.transfer.timesteps, "maml": cfg.maml.iterations}[name]


def train_model(name: str, cfg: ExperimentConfig, family: Any, run_dir: Path, resume: bool) -> Any:
    """Meta-train (or, with ``resume``, load) the model ``name`` of :data:`PHASES`; it is saved under
    ``run_dir/models/<name>``, where :func:`load_model` finds it, and logs to TensorBoard under ``run_dir/tb``
    (MAML's in ``tb/maml``)."""
    directory = run_dir / "models" / name
    if name == "maml":
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run_dir / "tb" / "maml"))
        try:
            return train_maml(cfg, family, directory, resume, writer)
        finally:
            writer.close()
    return train_flash_like(cast(Flash, make_model(name, cfg, str(run_dir / "tb"))), family,
                            training_total(cfg, name), directory, cfg, resume, name)


def load_model(name: str, run_dir: Path) -> Any:
    """The model :func:`train_model` saved."""
    if name == "maml":
        return MAML.load(run_dir / "models" / "maml" / "ckpt")
    return Flash.load(run_dir / "models" / name / "final")


def adapt_once(models: dict[str, Any], method: str, task: Any, seed: int, cfg: ExperimentConfig
               ) -> list[tuple[int, float]]:
    """One adaptation run of ``method`` on ``task`` with adaptation seed ``seed`` (see :mod:`flash_rl.adaptation`)."""
    a = cfg.adaptation
    kw = {"eval_every": a.eval_every, "eval_seed": a.eval_seed + seed, "seed": seed}
    if method == "flash":
        return models["flash"].adapt(task, a.budget, **kw)
    if method == "flash_zero_embedding":
        return models["flash"].adapt(task, a.budget, zero_embedding=True, **kw)
    if method == "transfer":
        return models["transfer"].adapt(task, a.budget, **kw)
    if method == "scratch":
        return models["transfer"].fresh(seed=1000 + seed).adapt(task, a.budget, **kw)
    return models["maml"].adapt(task, a.budget, **kw)


def train_expert(cfg: ExperimentConfig, pretrained: TransferLearning, task: Any) -> Any:
    """The per-task expert: the pretrained transfer agent trained ``references.expert_timesteps`` on ``task`` alone."""
    expert = make_transfer(cfg, seed=cfg.run.seed)
    expert.n_envs = EXPERT_N_ENVS
    expert.meta_train([task], cfg.references.expert_timesteps, init_from=pretrained)
    return expert.model


def references_of(cfg: ExperimentConfig, pretrained: TransferLearning | None, task: Any, seeds: list[int]
                  ) -> list[References]:
    """:func:`~flash_rl.adaptation.task_references` of ``task`` under ``cfg`` (its expert from ``pretrained``)."""
    case = get_case(cfg.case)
    # the caller trains ``pretrained`` whenever there are expert timesteps
    expert = (partial(train_expert, cfg, cast(TransferLearning, pretrained))
              if cfg.references.expert_timesteps > 0 else None)
    return task_references(gym.make(cfg.env.id, **cfg.env.kwargs), task, seeds, case.heuristics, case.expert_sweep,
                           expert, cfg.references.random_episodes)


# ------------------------------------------------------------------------------------------------ worker processes
def _train_in_worker(name: str, cfg: ExperimentConfig, run_dir: Path, resume: bool) -> float:
    """:func:`train_model` in a worker process; returns its seconds."""
    use_one_torch_thread()
    start = time.perf_counter()
    train_model(name, cfg, get_case(cfg.case).build_family(cfg), run_dir, resume)
    return time.perf_counter() - start


_WORKER_MODELS: dict[str, Any] = {}


def _worker_model(name: str, run_dir: Path) -> Any:
    """The saved model ``name``, loaded once per worker process (a pool serves one run)."""
    if name not in _WORKER_MODELS:
        _WORKER_MODELS[name] = load_model(name, run_dir)
    return _WORKER_MODELS[name]


def _references_in_worker(cfg: ExperimentConfig, run_dir: Path, task: Any, seeds: list[int]) -> list[References]:
    pretrained = _worker_model("transfer", run_dir) if cfg.references.expert_timesteps > 0 else None
    return references_of(cfg, pretrained, task, seeds)


def _adapt_in_worker(method: str, task: Any, seed: int, cfg: ExperimentConfig, run_dir: Path) -> tuple[list, float]:
    start = time.perf_counter()
    model = METHOD_MODEL[method]
    curve = adapt_once({model: _worker_model(model, run_dir)}, method, task, seed, cfg)
    return curve, time.perf_counter() - start


def _probe_in_worker(cfg: ExperimentConfig, run_dir: Path) -> tuple[dict[str, Any], float]:
    start = time.perf_counter()
    case = get_case(cfg.case)
    family = case.build_family(cfg)
    probe = linear_probe(_worker_model("flash", run_dir), case, list(family.train), list(family.test), cfg)
    return probe, time.perf_counter() - start


# ------------------------------------------------------------------------------------------------ probe
def linear_probe(flash: Flash, case: Case, train_tasks: list[Any], test_tasks: list[Any], cfg: ExperimentConfig
                 ) -> dict[str, Any]:
    """Ridge regression from the embedding (after ``probe.episodes`` episodes on a task) to the task's hidden
    parameters, fit on train tasks, R^2 on held-out tasks (per parameter and averaged). A ``probe.ridge`` of 0 is
    least squares (a singular system, as with fewer samples than embedding dimensions, ended in a LinAlgError)."""
    p = cfg.probe

    def collect(tasks):
        xs, ys = [], []
        for task in tasks:
            feats = case.task_features(task)
            for s in range(p.samples_per_task):
                xs.append(flash.embed(task, p.episodes, seed=50_000 + 97 * s))
                ys.append(list(feats.values()))
        return np.array(xs), np.array(ys), list(feats)

    x_tr, y_tr, names = collect(train_tasks)
    x_te, y_te, _ = collect(test_tasks)
    mu_x, sd_x = x_tr.mean(0), x_tr.std(0) + 1e-8
    mu_y = y_tr.mean(0)
    a = np.c_[(x_tr - mu_x) / sd_x]
    if p.ridge > 0:
        w = np.linalg.solve(a.T @ a + p.ridge * np.eye(a.shape[1]), a.T @ (y_tr - mu_y))
    else:   # least squares; the minimum-norm fit where a.T @ a is singular (fewer samples than dimensions)
        w = np.linalg.lstsq(a, y_tr - mu_y, rcond=None)[0]
    r2 = _r2(y_te, ((x_te - mu_x) / sd_x) @ w + mu_y)
    r2_tr = _r2(y_tr, a @ w + mu_y)
    return {"r2_test": {n: float(v) for n, v in zip(names, r2)},
            "r2_train": {n: float(v) for n, v in zip(names, r2_tr)},
            "mean_r2_test": _mean_r2(r2), "mean_r2_train": _mean_r2(r2_tr),
            "samples": {"train": len(x_tr), "test": len(x_te)}}


def _mean_r2(r2: np.ndarray) -> float:
    """The mean of the R^2 values that are not NaN; NaN, without NumPy's "Mean of empty slice" warning, if all are
    (no task parameter varies across the tasks, as with one test task)."""
    return float(np.nanmean(r2)) if not np.isnan(r2).all() else math.nan


def _r2(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per column, the coefficient of determination of ``pred`` for ``y``; NaN where ``y`` does not vary."""
    ss_res = ((y - pred) ** 2).sum(0)
    ss_tot = ((y - y.mean(0)) ** 2).sum(0)
    return np.where(ss_tot > 1e-12, 1 - ss_res / np.maximum(ss_tot, 1e-12), np.nan)


def reference_settings(cfg: ExperimentConfig, case: Case, pretrained: Flash | None) -> dict[str, Any]:
    """Everything a task's references depend on besides the task (the key of the reference cache): the case and its
    reference policies by name, the env, and the expert, trained with ``run.seed`` from ``pretrained``'s weights."""
    probe_env = gym.make(cfg.env.id, **cfg.env.kwargs)
    policies = sorted({**case.heuristics(probe_env), **case.expert_sweep(probe_env)})
    probe_env.close()
    return {"case": case.name, "policies": policies, "env": cfg.env.id, "kwargs": cfg.env.kwargs,
            "expert_timesteps": cfg.references.expert_timesteps, "random_episodes": cfg.references.random_episodes,
            "transfer": cfg.transfer.agent_kwargs, "net_arch": cfg.transfer.net_arch, "seed": cfg.run.seed,
            "expert_init": (cast(Flash, pretrained).weights_digest()   # given whenever expert_timesteps > 0
                            if cfg.references.expert_timesteps > 0 else None),
            "tasks": [cfg.tasks.n_train, cfg.tasks.seed, cfg.tasks.family_file]}


# ------------------------------------------------------------------------------------------------ the pipeline
AdaptRun = tuple[str, Any, int]
"""(method, held-out task, adaptation seed)."""
Finished = Callable[[str, Any, int, list, float], None]
"""Called with an adaptation run, its curve and its seconds, as each run ends."""


def drop_curves_of(cfg: ExperimentConfig, run_dir: Path, name: str, resume: bool) -> int:
    """Before ``meta-train`` trains the model ``name`` of :data:`PHASES` in ``run_dir`` (which a ``reproduce`` may
    share), remove from its ``curves.jsonl`` the adaptation runs of the methods that start from that model
    (:data:`~flash_rl.config.METHOD_MODEL`), made with the model it replaces, so that a ``reproduce --resume`` redoes
    them; the other methods' runs are kept (a run whose test task has changed since is redone by its ``task_key``).
    Lines that are not a run's record (cut short by a kill, or damaged) go too. With ``resume`` and the model finished
    (it is only loaded), nothing is removed. Returns how many runs of those methods were removed."""
    path = run_dir / "curves.jsonl"
    if not path.exists() or (resume and _finished(run_dir / "models" / name, training_total(cfg, name), name)):
        return 0
    kept, removed = [], 0
    for line, rec in _json_lines(_curves_text(path)):
        method = rec.get("method") if isinstance(rec, dict) else None
        if isinstance(method, str) and method in METHOD_MODEL:
            if METHOD_MODEL[method] == name:
                removed += 1
            else:
                kept.append(line + "\n")
    atomic_write_text(path, "".join(kept))
    return removed


def _curves_text(path: Path) -> str:
    """The text of ``curves.jsonl``; a damaged byte spoils its line only."""
    return path.read_bytes().decode("utf-8", errors="replace")


def _json_lines(text: str) -> Iterator[tuple[str, Any]]:
    """Each line of ``text`` that is JSON, with its value; a line cut short by a kill, or not JSON, is left out."""
    for line in text.splitlines():
        try:
            yield line, json.loads(line)
        except json.JSONDecodeError:
            continue


def _saved_curves(path: Path, a: Any) -> dict[tuple[str, str, int], dict[str, Any]]:
    """The adaptation runs an interrupted run saved in ``curves.jsonl``, by (method, task name, seed), under the
    adaptation settings ``a``. A line cut short by a kill, or damaged (not UTF-8, not JSON, or not a record of a run:
    see :func:`_is_saved_run`), is left out (that run is done again), and a last line without its newline gets one, so
    that the next record starts a line of its own."""
    done: dict[tuple[str, str, int], dict[str, Any]] = {}
    if not path.exists():
        return done
    text = _curves_text(path)
    if text and not text.endswith("\n"):
        with open(path, "a") as sink:
            sink.write("\n")
    schedule = evaluation_points(a.budget, a.eval_every)
    for _, rec in _json_lines(text):
        if _is_saved_run(rec, schedule, a.eval_seed):
            done[(rec["method"], rec["task"], rec["seed"])] = rec
    return done


def _is_saved_run(rec: Any, schedule: list[int], eval_seed: int) -> bool:
    """Whether ``rec``, read from ``curves.jsonl``, is the record of an adaptation run as the pipeline writes it:
    method and task names, a seed evaluated at ``eval_seed`` + seed, and a curve of finite returns after the
    ``schedule``'s fine-tuning episodes."""
    if not (isinstance(rec, dict) and isinstance(rec.get("method"), str) and isinstance(rec.get("task"), str)):
        return False
    seed, curve = rec.get("seed"), rec.get("curve")
    if isinstance(seed, bool) or not isinstance(seed, int) or rec.get("eval_seed") != eval_seed + seed:
        return False
    return (isinstance(curve, list) and len(curve) == len(schedule)
            and all(isinstance(point, list) and len(point) == 2 and type(point[0]) is int and point[0] == episode
                    and isinstance(point[1], (int, float)) and not isinstance(point[1], bool)
                    and np.isfinite(point[1]) for point, episode in zip(curve, schedule)))


def _run_in_this_process(cfg: ExperimentConfig, case: Case, family: Any, run_dir: Path, resume: bool,
                         tasks: list[Any], eval_seeds: list[int], todo: list[AdaptRun], n_runs: int,
                         refs: dict[tuple[str, int], References], finished: Finished, timer: PhaseTimer
                         ) -> dict[str, Any] | None:
    """Phases 1 to 4 one after another in this process: fills ``refs``, gives each run of ``todo`` to ``finished``,
    and returns the probe (None without FLASH)."""
    models = {}
    for name in models_to_train(cfg):
        with timer.phase(PHASES[name]):
            models[name] = train_model(name, cfg, family, run_dir, resume)
    with timer.phase("references"):   # after meta-training: the per-task expert starts from the transfer agent
        cache = ReferenceCache(cfg.references.cache, reference_settings(cfg, case, models.get("transfer")))
        refs.update(compute_references(tasks, eval_seeds, cache, partial(references_of, cfg, models.get("transfer")),
                                       cfg.run.progress_bar))
    with timer.phase("adapt"), tqdm_bar(n_runs, "adaptation runs", cfg.run.progress_bar,
                                        initial=n_runs - len(todo)) as bar:
        for method, task, seed in todo:
            start = time.perf_counter()
            curve = adapt_once(models, method, task, seed, cfg)
            finished(method, task, seed, curve, time.perf_counter() - start)
            bar.update()
    if "flash" not in models:
        return None
    with timer.phase("probe"):
        return linear_probe(models["flash"], case, list(family.train), list(family.test), cfg)


def _run_in_workers(cfg: ExperimentConfig, case: Case, run_dir: Path, resume: bool, jobs: int, tasks: list[Any],
                    eval_seeds: list[int], todo: list[AdaptRun], n_runs: int, refs: dict[tuple[str, int], References],
                    finished: Finished, timer: PhaseTimer) -> dict[str, Any] | None:
    """Phases 1 to 4 in one pool of ``jobs`` worker processes, as :func:`_run_in_this_process` does them, each piece of
    work queued as soon as the model it needs is saved: the meta-trainings first, the references once the transfer
    agent (their expert's start) is, then each method's adaptation runs, and the probe, once its model is. So no core
    waits for the longest meta-training while other work is ready. Phase times: each meta-training's and the probe's
    own seconds; the references' and the adaptation's wall-clock spans, which overlap the meta-trainings."""
    to_train = models_to_train(cfg)
    with worker_pool(jobs, initializer=use_one_torch_thread) as pool:
        training = {pool.submit(_train_in_worker, name, cfg, run_dir, resume): name for name in to_train}
        trained: set[str] = set()

        def saved(future: Future) -> str:
            name = training.pop(future)
            timer.times[PHASES[name]] = future.result()
            trained.add(name)
            return name

        pretrained = None
        if cfg.references.expert_timesteps > 0:
            transfer = next(future for future, name in training.items() if name == "transfer")
            transfer.result()
            saved(transfer)
            pretrained = load_model("transfer", run_dir)
        with timer.phase("references"):
            cache = ReferenceCache(cfg.references.cache, reference_settings(cfg, case, pretrained))
            refs.update(compute_references(tasks, eval_seeds, cache, partial(_references_in_worker, cfg, run_dir),
                                           cfg.run.progress_bar, pool))
        with timer.phase("adapt"), tqdm_bar(n_runs, "adaptation runs", cfg.run.progress_bar,
                                            initial=n_runs - len(todo)) as bar:
            waiting, running = list(todo), {}
            probe, probing = None, None
            pending: set[Future] = set(training)
            while True:
                ready = [run for run in waiting if METHOD_MODEL[run[0]] in trained]
                waiting = [run for run in waiting if METHOD_MODEL[run[0]] not in trained]
                running.update({pool.submit(_adapt_in_worker, *run, cfg, run_dir): run for run in ready})
                pending.update(running)
                if not pending:
                    break
                ended, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in ended:
                    if future in training:
                        if saved(future) == "flash":
                            probing = pool.submit(_probe_in_worker, cfg, run_dir)
                            pending.add(probing)
                    elif future is probing:
                        probe, timer.times["probe"] = future.result()
                    else:
                        finished(*running.pop(future), *future.result())
                        bar.update()
    return probe


def reproduce(cfg: ExperimentConfig, out_dir: str | Path, run_dir: str | Path, resume: bool = False,
              quick: bool = False, command: str = "", jobs: int = 1) -> dict[str, Any]:
    """Run every phase of the module docstring and write the report; ``jobs`` worker processes (1: all in this one).
    Returns the summary written to ``out_dir/summary.json``.

    Before anything is written, a :class:`ConfigError` refuses a ``references.cache`` that is not one flash wrote and,
    with ``resume``, a ``run_dir`` that holds no run, one of other settings, or damaged files
    (:func:`check_run_to_resume`). Without ``resume``, the models and curves an earlier run left in ``run_dir`` are
    deleted before its ``config.yaml`` is replaced."""
    from torch.utils.tensorboard import SummaryWriter
    from flash_rl import report

    use_one_torch_thread()
    case = get_case(cfg.case)
    out_dir, run_dir = Path(out_dir), Path(run_dir)
    a = cfg.adaptation
    methods = list(a.methods)
    curves_path = run_dir / "curves.jsonl"
    family = case.build_family(cfg)
    if resume:
        if not (run_dir / "config.yaml").is_file():
            raise ConfigError(f"--resume: {run_dir} holds no run to continue (no config.yaml); check --run-dir, or "
                              "drop --resume to start a new run")
        check_run_to_resume(cfg, run_dir, models_to_train(cfg), family)
    check_reference_cache(cfg.references.cache)
    if not resume:   # before config.yaml changes: no --resume may take the earlier run's models or curves for ours
        for name in PHASES:
            discard_training(run_dir / "models" / name)
        curves_path.unlink(missing_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")   # out_dir gets its copy with the results, never before them
    timer = PhaseTimer()
    started = time.perf_counter()
    machine = describe_machine()   # now: the code a long run loaded, not the checkout's state when it ends
    tasks = test_tasks(cfg, case, family)
    eval_seeds = [a.eval_seed + s for s in range(a.seeds)]
    writer = SummaryWriter(str(run_dir / "tb" / "adaptation"))

    done = _saved_curves(curves_path, a) if resume else {}
    runs = [(m, t, s) for m in methods for t in tasks for s in range(a.seeds)]
    keys = {t.name: task_key(t) for t in tasks}   # a trace edited since a run was saved: that run is done again
    todo = [(m, t, s) for m, t, s in runs if done.get((m, t.name, s), {}).get("task_key") != keys[t.name]]
    refs: dict[tuple[str, int], References] = {}

    def finished(method: str, task: Any, seed: int, curve: list, seconds: float) -> None:
        """Append the run to ``curves.jsonl`` at once (what ``--resume`` finds), and its episodes to TensorBoard."""
        eval_seed = a.eval_seed + seed
        rec = {"method": method, "task": task.name, "task_key": keys[task.name], "seed": seed,
               "eval_seed": eval_seed, "curve": [[int(e), float(v)] for e, v in curve], "seconds": seconds}
        with open(curves_path, "a") as sink:
            sink.write(json.dumps(rec) + "\n")
            sink.flush()
            os.fsync(sink.fileno())
        done[(method, task.name, seed)] = rec
        e2a, _ = episodes_to_adapt(curve, refs[(task.name, eval_seed)].threshold(a.threshold), a.budget)
        writer.add_scalar(f"episodes_to_adapt/{method}", e2a, len(done))

    if jobs > 1:
        probe = _run_in_workers(cfg, case, run_dir, resume, jobs, tasks, eval_seeds, todo, len(runs), refs, finished,
                                timer)
    else:
        probe = _run_in_this_process(cfg, case, family, run_dir, resume, tasks, eval_seeds, todo, len(runs), refs,
                                     finished, timer)

    # the report
    with timer.phase("report"):
        records = [done[(m, t.name, s)] for m, t, s in runs]
        save_config(cfg, out_dir / "config.yaml")
        phase_order = (*PHASES.values(), "references", "adapt", "probe")   # as _run_in_this_process runs them
        times = {name: timer.times[name] for name in phase_order if name in timer.times}
        summary = report.write_report(out_dir, cfg, records, refs, probe, times, quick=quick,
                                      command=command, total_seconds=time.perf_counter() - started, jobs=jobs,
                                      machine=machine, resumed=resume)
    writer.close()
    return summary

