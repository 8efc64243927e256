"""The reproduction pipeline behind ``flash reproduce``: references, meta-training, adaptation, probe, report.

Phases (each timed; the times go into ``summary.json`` and the markdown report):

1. ``references`` -- random and expert returns per held-out task and evaluation seed (cached across runs);
2. ``meta-train flash`` / ``pretrain transfer`` / ``meta-train maml`` -- one model each on the train split, with
   atomic checkpoints under ``<run dir>/models/<method>/ckpt``; ``--resume`` continues from them;
3. ``adapt`` -- every method x held-out task x seed; each finished curve is appended to ``curves.jsonl`` at once,
   so a resumed run redoes at most the adaptation run that was interrupted;
4. ``probe`` -- linear probe from FLASH's embedding to the hidden task parameters (fit on train, R^2 on test);
5. ``report`` -- CSVs, plots, ``summary.json`` and ``results.md`` in the output directory.
"""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import gymnasium as gym
import numpy as np
import torch

from flash_rl.adaptation import ReferenceCache, compute_references, episodes_to_adapt
from flash_rl.cases import Case, get_case
from flash_rl.config import ConfigError, ExperimentConfig, check_resume, save_config
from flash_rl.flash import Flash, TransferLearning
from flash_rl.maml import MAML

METHOD_LABELS = {"flash": "FLASH", "transfer": "transfer learning", "scratch": "from scratch", "maml": "MAML",
                 "flash_zero_embedding": "FLASH, embedding zeroed"}


# ------------------------------------------------------------------------------------------------ construction
def make_flash(cfg: ExperimentConfig, tensorboard_log: str | None = None) -> Flash:
    f = cfg.flash
    return Flash(f.algo, cfg.env.id, cfg.env.kwargs, context_len=f.context_len, embedding_dim=f.embedding_dim,
                 encoder=f.encoder, encoder_hidden=f.encoder_hidden, net_arch=f.net_arch,
                 agent_kwargs=f.agent_kwargs, adapt_kwargs=f.adapt_kwargs, n_envs=f.n_envs,
                 episodes_per_task=f.episodes_per_task, seed=cfg.run.seed, tensorboard_log=tensorboard_log)


def make_transfer(cfg: ExperimentConfig, tensorboard_log: str | None = None, seed: int | None = None
                  ) -> TransferLearning:
    t = cfg.transfer
    return TransferLearning(t.algo, cfg.env.id, cfg.env.kwargs, net_arch=t.net_arch, agent_kwargs=t.agent_kwargs,
                            adapt_kwargs=t.adapt_kwargs, n_envs=t.n_envs, episodes_per_task=t.episodes_per_task,
                            seed=cfg.run.seed if seed is None else seed, tensorboard_log=tensorboard_log)


def make_maml(cfg: ExperimentConfig) -> MAML:
    m = cfg.maml
    return MAML(cfg.env.id, cfg.env.kwargs, hidden=m.hidden, inner_lr=m.inner_lr, outer_lr=m.outer_lr,
                inner_steps=m.inner_steps, inner_episodes=m.inner_episodes, outer_episodes=m.outer_episodes,
                meta_batch=m.meta_batch, first_order=m.first_order, gamma=m.gamma, seed=cfg.run.seed)


def test_tasks(cfg: ExperimentConfig, case: Case, family: Any) -> list[Any]:
    tasks = list(family.test)
    if cfg.adaptation.max_test_tasks:
        tasks = tasks[:cfg.adaptation.max_test_tasks]
    if cfg.tasks.test_traces:
        if case.trace_tasks is None:
            raise ValueError(f"case {case.name!r} cannot replay test traces")
        tasks += case.trace_tasks(cfg, family)
    return tasks


# ------------------------------------------------------------------------------------------------ bookkeeping
@dataclass
class PhaseTimer:
    times: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
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
    _done_marker(directory).write_text(f"{timesteps}\n")
    return agent


def train_maml(cfg: ExperimentConfig, family: Any, directory: Path, resume: bool, writer: Any = None) -> MAML:
    if resume and _finished(directory, cfg.maml.iterations, "maml"):
        return MAML.load(directory / "ckpt")
    maml = make_maml(cfg)
    if resume and (directory / "ckpt" / "maml.pt").exists():
        print("maml: resuming from its checkpoint", flush=True)
    interval = max(1, cfg.maml.iterations // 10) if cfg.run.checkpoint_interval else 0
    maml.meta_train(family.train, cfg.maml.iterations, checkpoint_dir=directory / "ckpt",
                    checkpoint_interval=interval, resume=resume, progress_bar=cfg.run.progress_bar, writer=writer)
    _done_marker(directory).write_text(f"{cfg.maml.iterations}\n")
    return maml


# ------------------------------------------------------------------------------------------------ probe
def linear_probe(flash: Flash, case: Case, train_tasks: list[Any], test_tasks: list[Any], cfg: ExperimentConfig
                 ) -> dict[str, Any]:
    """Ridge regression from the embedding (after ``probe.episodes`` episodes on a task) to the task's hidden
    parameters, fit on train tasks, R^2 on held-out tasks (per parameter and averaged)."""
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
    w = np.linalg.solve(a.T @ a + p.ridge * np.eye(a.shape[1]), a.T @ (y_tr - mu_y))
    pred = ((x_te - mu_x) / sd_x) @ w + mu_y
    ss_res = ((y_te - pred) ** 2).sum(0)
    ss_tot = ((y_te - y_te.mean(0)) ** 2).sum(0)
    r2 = np.where(ss_tot > 1e-12, 1 - ss_res / np.maximum(ss_tot, 1e-12), np.nan)
    pred_tr = a @ w + mu_y
    r2_tr = 1 - ((y_tr - pred_tr) ** 2).sum(0) / np.maximum(((y_tr - mu_y) ** 2).sum(0), 1e-12)
    return {"r2_test": {n: float(v) for n, v in zip(names, r2)},
            "r2_train": {n: float(v) for n, v in zip(names, r2_tr)},
            "mean_r2_test": float(np.nanmean(r2)), "mean_r2_train": float(np.mean(r2_tr)),
            "samples": {"train": len(x_tr), "test": len(x_te)}}


# ------------------------------------------------------------------------------------------------ the pipeline
def reproduce(cfg: ExperimentConfig, out_dir: str | Path, run_dir: str | Path, resume: bool = False,
              quick: bool = False, command: str = "") -> dict[str, Any]:
    from torch.utils.tensorboard import SummaryWriter
    from tqdm.auto import tqdm

    from flash_rl import report

    torch.set_num_threads(1)
    case = get_case(cfg.case)
    out_dir, run_dir = Path(out_dir), Path(run_dir)
    if resume:
        check_resume(cfg, run_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out_dir / "config.yaml")
    save_config(cfg, run_dir / "config.yaml")
    timer = PhaseTimer()
    started = time.perf_counter()
    family = case.build_family(cfg)
    tasks = test_tasks(cfg, case, family)
    a = cfg.adaptation
    eval_seeds = [a.eval_seed + s for s in range(a.seeds)]
    tb = str(run_dir / "tb")
    writer = SummaryWriter(str(run_dir / "tb" / "adaptation"))
    env = gym.make(cfg.env.id, **cfg.env.kwargs)

    # 1. meta-training
    methods = list(a.methods)
    models: dict[str, Any] = {}
    if {"flash", "flash_zero_embedding"} & set(methods):
        with timer.phase("meta-train flash"):
            models["flash"] = train_flash_like(make_flash(cfg, tb), family, cfg.flash.timesteps,
                                               run_dir / "models" / "flash", cfg, resume, "flash")
    if {"transfer", "scratch"} & set(methods):
        with timer.phase("pretrain transfer"):
            models["transfer"] = train_flash_like(make_transfer(cfg, tb), family, cfg.transfer.timesteps,
                                                  run_dir / "models" / "transfer", cfg, resume, "transfer")
    if "maml" in methods:
        with timer.phase("meta-train maml"):
            models["maml"] = train_maml(cfg, family, run_dir / "models" / "maml", resume, writer)

    # 2. references (after meta-training: the per-task expert starts from the pretrained transfer agent)
    with timer.phase("references"):
        def train_expert(task):
            expert = make_transfer(cfg, seed=cfg.run.seed)
            expert.n_envs = 4
            expert.meta_train([task], cfg.references.expert_timesteps, init_from=pretrained)
            return expert.model

        pretrained = models.get("transfer")
        if pretrained is None and cfg.references.expert_timesteps > 0:
            pretrained = train_flash_like(make_transfer(cfg, tb), family, cfg.transfer.timesteps,
                                          run_dir / "models" / "transfer", cfg, resume, "transfer")
        # everything an expert depends on: it is trained with run.seed from the pretrained transfer agent's weights
        settings = {"env": cfg.env.id, "kwargs": cfg.env.kwargs, "expert_timesteps": cfg.references.expert_timesteps,
                    "random_episodes": cfg.references.random_episodes, "transfer": cfg.transfer.agent_kwargs,
                    "net_arch": cfg.transfer.net_arch, "seed": cfg.run.seed,
                    "expert_init": pretrained.weights_digest() if cfg.references.expert_timesteps > 0 else None,
                    "tasks": [cfg.tasks.n_train, cfg.tasks.seed, cfg.tasks.family_file]}
        refs = compute_references(env, tasks, eval_seeds, ReferenceCache(cfg.references.cache, settings),
                                  case.heuristics, case.expert_sweep,
                                  train_expert if cfg.references.expert_timesteps > 0 else None,
                                  cfg.references.random_episodes, cfg.run.progress_bar)

    # 3. adaptation
    curves_path = run_dir / "curves.jsonl"
    done: dict[tuple[str, str, int], dict[str, Any]] = {}
    if resume and curves_path.exists():
        for line in curves_path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a kill
                continue
            done[(rec["method"], rec["task"], rec["seed"])] = rec
    elif curves_path.exists():
        curves_path.unlink()
    jobs = [(m, t, s) for m in methods for t in tasks for s in range(a.seeds)]
    with timer.phase("adapt"), open(curves_path, "a") as sink:
        bar = tqdm(jobs, desc="adaptation runs", disable=not cfg.run.progress_bar, mininterval=2.0)
        for method, task, seed in bar:
            if (method, task.name, seed) in done:
                continue
            eval_seed = a.eval_seed + seed
            kw = {"eval_every": a.eval_every, "eval_seed": eval_seed, "seed": seed}
            t0 = time.perf_counter()
            if method == "flash":
                curve = models["flash"].adapt(task, a.budget, **kw)
            elif method == "flash_zero_embedding":
                curve = models["flash"].adapt(task, a.budget, zero_embedding=True, **kw)
            elif method == "transfer":
                curve = models["transfer"].adapt(task, a.budget, **kw)
            elif method == "scratch":
                curve = models["transfer"].fresh(seed=1000 + seed).adapt(task, a.budget, **kw)
            else:
                curve = models["maml"].adapt(task, a.budget, **kw)
            ref = refs[(task.name, eval_seed)]
            rec = {"method": method, "task": task.name, "seed": seed, "eval_seed": eval_seed,
                   "curve": [[int(e), float(v)] for e, v in curve], "seconds": time.perf_counter() - t0}
            sink.write(json.dumps(rec) + "\n")
            sink.flush()
            os.fsync(sink.fileno())
            done[(method, task.name, seed)] = rec
            e2a, _ = episodes_to_adapt(curve, ref.threshold(a.threshold), a.budget)
            writer.add_scalar(f"episodes_to_adapt/{method}", e2a, len(done))
        bar.close()

    # 4. probe
    probe = None
    if "flash" in models:
        with timer.phase("probe"):
            probe = linear_probe(models["flash"], case, list(family.train), list(family.test), cfg)

    # 5. report
    with timer.phase("report"):
        records = [done[(m, t.name, s)] for m, t, s in jobs]
        summary = report.write_report(out_dir, cfg, records, refs, probe, timer.times, quick=quick,
                                      command=command, total_seconds=time.perf_counter() - started)
    writer.close()
    return summary

