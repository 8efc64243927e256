"""Checkpoints: save/load and save/resume equivalence, and a meta-training run killed and resumed."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback

import flash_envs  # noqa: F401
from flash_rl.atomic_files import atomic_write
from flash_rl.flash import Flash, TransferLearning
from flash_rl.maml import MAML

ROOT = Path(__file__).resolve().parent.parent
TINY_ENV = {"episode_steps": 10}
TINY_PPO = {"n_steps": 20, "batch_size": 40, "n_epochs": 1}
#: ``flash meta-train --set`` values of a meta-training that takes a second or two.
TINY_META_TRAIN = ["env.kwargs={episode_steps: 10}", "flash.n_envs=2", "flash.context_len=6", "flash.embedding_dim=4",
                   "flash.encoder_hidden=8", "flash.net_arch=[16]",
                   "flash.agent_kwargs={n_steps: 20, batch_size: 40, n_epochs: 1}",
                   "flash.adapt_kwargs={n_steps: 10, batch_size: 10}",
                   "transfer.adapt_kwargs={n_steps: 10, batch_size: 10}", "maml.iterations=2", "maml.meta_batch=2",
                   "maml.outer_episodes=1", "maml.hidden=[8]", "run.checkpoint_interval=40", "run.progress_bar=false"]


def family():
    return gym.make("flash/Autoscaling-v0").unwrapped.family


def same_params(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa, "no parameters to compare"   # an empty state dict would make any two models "the same"
    return list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_flash_save_load_roundtrip(tmp_path):
    flash = Flash("PPO", "flash/Autoscaling-v0", TINY_ENV, context_len=6, embedding_dim=4, encoder_hidden=8,
                  net_arch=[16], agent_kwargs=TINY_PPO, n_envs=2, episodes_per_task=2, seed=1)
    flash.meta_train(family().train[:4], 80)
    flash.save(tmp_path / "m")
    loaded = Flash.load(tmp_path / "m")
    assert type(loaded) is Flash and loaded.config() == flash.config()
    assert same_params(flash.policy, loaded.policy)
    task = family().test[0]
    assert flash.evaluate(None, task, seed=3) == loaded.evaluate(None, task, seed=3)


def test_flash_checkpoint_resume_equivalence(tmp_path):
    tasks = family().train[:4]
    kwargs = dict(context_len=6, embedding_dim=4, encoder_hidden=8, net_arch=[16], agent_kwargs=TINY_PPO, n_envs=2,
                  episodes_per_task=2, seed=2)
    a = Flash("PPO", "flash/Autoscaling-v0", TINY_ENV, **kwargs)
    a.meta_train(tasks, 120, checkpoint_dir=tmp_path / "ckpt", checkpoint_interval=40)
    state = json.loads((tmp_path / "ckpt" / "state.json").read_text())
    assert state["num_timesteps"] == 120 and len(state["samplers"]) == 2
    # resuming a finished run trains nothing and restores weights, optimiser and task samplers exactly
    b = Flash("PPO", "flash/Autoscaling-v0", TINY_ENV, **kwargs)
    b.meta_train(tasks, 120, checkpoint_dir=tmp_path / "ckpt", resume=True)
    assert b.resumed_from == 120 and b.model.num_timesteps == 120
    assert same_params(a.policy, b.policy)
    opt_a, opt_b = a.policy.optimizer.state_dict(), b.policy.optimizer.state_dict()
    assert all(torch.equal(opt_a["state"][k]["exp_avg"], opt_b["state"][k]["exp_avg"]) for k in opt_a["state"])
    assert [w.get_state() for w in b._sampling_wrappers] == state["samplers"]
    # and a longer budget continues from there
    b.meta_train(tasks, 200, checkpoint_dir=tmp_path / "ckpt", resume=True)
    assert b.resumed_from == 120 and b.model.num_timesteps == 200
    assert not same_params(a.policy, b.policy)
    assert sorted(p.name for p in (tmp_path / "ckpt").glob("agent-*.zip")) == ["agent-200.zip"]


def test_kill_between_agent_and_state_writes_resumes_the_committed_checkpoint(tmp_path, monkeypatch):
    tasks = family().train[:4]
    kwargs = dict(context_len=6, embedding_dim=4, encoder_hidden=8, net_arch=[16], agent_kwargs=TINY_PPO, n_envs=2,
                  episodes_per_task=2, seed=2)
    Flash("PPO", "flash/Autoscaling-v0", TINY_ENV, **kwargs).meta_train(tasks, 80, checkpoint_dir=tmp_path / "ckpt",
                                                                       checkpoint_interval=40)

    def killed(*args, **kw):   # the process dies after writing the new agent, before committing state.json
        raise KeyboardInterrupt

    monkeypatch.setattr("flash_rl.flash.atomic_write_text", killed)
    with pytest.raises(KeyboardInterrupt):
        Flash("PPO", "flash/Autoscaling-v0", TINY_ENV, **kwargs).meta_train(
            tasks, 160, checkpoint_dir=tmp_path / "ckpt", checkpoint_interval=40, resume=True)
    assert (tmp_path / "ckpt" / "agent-120.zip").exists()     # written but never committed
    monkeypatch.undo()
    b = Flash("PPO", "flash/Autoscaling-v0", TINY_ENV, **kwargs)
    b.meta_train(tasks, 80, checkpoint_dir=tmp_path / "ckpt", resume=True)
    assert b.resumed_from == 80 and b.model.num_timesteps == 80


def test_files_of_writes_a_kill_cut_short_go_with_the_next_checkpoint(tmp_path):
    """atomic_write removes its temporary file only when Python sees the error; after a SIGKILL it stayed, and the
    clean-up of old checkpoints never matched its hidden name (a DQN replay buffer's can be gigabytes)."""
    tasks = family().train[:4]
    kwargs = dict(context_len=6, embedding_dim=4, encoder_hidden=8, net_arch=[16], agent_kwargs=TINY_PPO, n_envs=2,
                  episodes_per_task=2, seed=2)
    ckpt = tmp_path / "ckpt"
    Flash("PPO", "flash/Autoscaling-v0", TINY_ENV, **kwargs).meta_train(tasks, 80, checkpoint_dir=ckpt)
    stale = [".agent-120.k3j_x.tmp.zip", ".episodes-120.a8b.tmp.pkl", ".replay-120.zz1.tmp.pkl", ".state.q9w.tmp.json"]
    for name in stale:
        (ckpt / name).write_bytes(b"cut short")
    Flash("PPO", "flash/Autoscaling-v0", TINY_ENV, **kwargs).meta_train(tasks, 120, checkpoint_dir=ckpt, resume=True)
    assert sorted(p.name for p in ckpt.iterdir()) == ["agent-120.zip", "episodes-120.pkl", "state.json",
                                                      "trained_on.json"]


def test_maml_resume_is_exactly_equivalent(tmp_path):
    tasks = family().train[:4]
    kw = dict(hidden=[8], meta_batch=2, outer_episodes=1, seed=3)
    straight = MAML("flash/Autoscaling-v0", TINY_ENV, **kw).meta_train(tasks, 4)
    first = MAML("flash/Autoscaling-v0", TINY_ENV, **kw).meta_train(tasks, 2, checkpoint_dir=tmp_path)
    resumed = MAML("flash/Autoscaling-v0", TINY_ENV, **kw)
    steps = []
    step = resumed.meta_step
    resumed.meta_step = lambda batch: steps.append(1) or step(batch)
    resumed.meta_train(tasks, 4, checkpoint_dir=tmp_path, resume=True)
    # retraining all 4 iterations from the same seed would also end equal: only 2 steps show the checkpoint was used
    assert resumed.iteration == 4 and len(steps) == 2
    assert same_params(straight.policy, resumed.policy)
    assert not same_params(first.policy, resumed.policy)   # and those 2 steps did train


def test_kill_and_resume_meta_train(tmp_path):
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "flash_rl.cli", "meta-train", "--method", "flash", "--run-dir", str(run_dir),
           "--set", *TINY_META_TRAIN]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    state_file = run_dir / "models" / "flash" / "ckpt" / "state.json"
    log = tmp_path / "meta-train.log"  # a file, not a pipe: a child filling an unread pipe would block
    with log.open("w") as out:
        proc = subprocess.Popen(cmd + ["flash.timesteps=1000000"], cwd=tmp_path, env=env, stdout=out,
                                stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.time() + 300
            while time.time() < deadline:
                if state_file.exists() and json.loads(state_file.read_text())["num_timesteps"] >= 120:
                    break
                assert proc.poll() is None, log.read_text()
                time.sleep(0.2)
            else:
                raise AssertionError(f"no checkpoint written in 300 s; the run printed:\n{log.read_text()}")
        finally:   # killed mid-run; or, should the test fail first, not left to run its 10^6 steps
            proc.kill()
            proc.wait()
    killed_at = json.loads(state_file.read_text())["num_timesteps"]
    assert not (run_dir / "models" / "flash" / "DONE").exists()
    target = killed_at + 80
    out = subprocess.run(cmd + [f"flash.timesteps={target}", "--resume"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    resumed_at = int(out.stdout.split("resumed from the checkpoint at ")[1].split()[0])
    assert (f"meta-train --resume: continuing flash to flash.timesteps={target}, not the 1000000 that "
            f"{run_dir / 'config.yaml'} was started with (--set flash.timesteps=1000000 keeps the run's)") in out.stdout
    assert resumed_at == killed_at  # nothing lost beyond the last checkpoint interval
    assert (run_dir / "models" / "flash" / "DONE").exists()
    final = Flash.load(run_dir / "models" / "flash" / "final")
    assert final.model.num_timesteps == target
    # and it is the model of a run never stopped (SIGKILL, then --resume: step for step)
    unbroken = [*cmd[:cmd.index("--run-dir") + 1], str(tmp_path / "unbroken"), *cmd[cmd.index("--run-dir") + 2:]]
    subprocess.run(unbroken + [f"flash.timesteps={target}"], cwd=tmp_path, env=env, capture_output=True, check=True,
                   timeout=120)
    assert same_params(final.policy, Flash.load(tmp_path / "unbroken" / "models" / "flash" / "final").policy)
    assert (run_dir / "config.yaml").exists()
    # a finished run is not silently loaded in place of a longer one
    again = subprocess.run(cmd + [f"flash.timesteps={target + 40}", "--resume"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and f"trained to {target}, not {target + 40}" in again.stderr


def test_dqn_resume_keeps_the_replay_buffer(tmp_path):
    kwargs = dict(context_len=6, embedding_dim=4, encoder_hidden=8, net_arch=[16], n_envs=2, seed=4,
                  agent_kwargs={"learning_starts": 20, "buffer_size": 1000, "train_freq": 4, "batch_size": 16})
    tasks = family().train[:4]
    a = Flash("DQN", "flash/Autoscaling-v0", TINY_ENV, **kwargs)
    a.meta_train(tasks, 120, checkpoint_dir=tmp_path / "ckpt", checkpoint_interval=40)
    assert sorted(p.name for p in (tmp_path / "ckpt").glob("*-*.*")) == ["agent-120.zip", "episodes-120.pkl",
                                                                          "replay-120.pkl"]
    b = Flash("DQN", "flash/Autoscaling-v0", TINY_ENV, **kwargs)
    b.meta_train(tasks, 120, checkpoint_dir=tmp_path / "ckpt", resume=True)
    assert b.resumed_from == 120 and b.model.replay_buffer.size() == a.model.replay_buffer.size() == 60
    before, after = a.model.replay_buffer.observations, b.model.replay_buffer.observations   # dict observations
    assert before.keys() == after.keys() and all(np.array_equal(before[k], after[k]) for k in before)


class KillAt(BaseCallback):
    """Raises KeyboardInterrupt (a Ctrl-C) once the agent has taken ``step`` timesteps; ``tasks`` logs the task of
    every step of each env (read from the step's ``info``)."""

    def __init__(self, step: int | None = None) -> None:
        super().__init__()
        self.step, self.tasks = step, []

    def _on_step(self) -> bool:
        self.tasks.append([info["task"].name for info in self.locals["infos"]])
        if self.step is not None and self.num_timesteps >= self.step:
            raise KeyboardInterrupt
        return True


@pytest.mark.parametrize("algo, agent_kwargs", [
    ("PPO", {"n_steps": 15, "batch_size": 30, "n_epochs": 2}),
    ("DQN", {"learning_starts": 10, "buffer_size": 1000, "train_freq": 3, "batch_size": 8,
             "target_update_interval": 20, "exploration_fraction": 0.5})])
def test_a_killed_meta_training_resumes_step_for_step(tmp_path, algo, agent_kwargs):
    """A run killed after a checkpoint and resumed ends with the very weights, optimiser state and task sequence of
    one that was never stopped. Resuming used to reset every env, losing the episode in progress (and with it a
    step of the task block), and checkpoints were taken mid-rollout, so the resumed run's rollouts, draws and
    updates all differed. Episodes of 10 steps and rollouts of 15 per env put the checkpoint mid-episode."""
    tasks = family().train[:4]
    kwargs = dict(context_len=6, embedding_dim=4, encoder_hidden=8, net_arch=[16], agent_kwargs=agent_kwargs, n_envs=2,
                  episodes_per_task=3, seed=5)
    whole, log = Flash(algo, "flash/Autoscaling-v0", TINY_ENV, **kwargs), KillAt()
    whole.meta_train(tasks, 150, callback=log)   # no checkpoints: writing them changes nothing either
    with pytest.raises(KeyboardInterrupt):
        Flash(algo, "flash/Autoscaling-v0", TINY_ENV, **kwargs).meta_train(
            tasks, 150, checkpoint_dir=tmp_path / "killed", checkpoint_interval=30, callback=KillAt(100))
    resumed, resumed_log = Flash(algo, "flash/Autoscaling-v0", TINY_ENV, **kwargs), KillAt()
    resumed.meta_train(tasks, 150, checkpoint_dir=tmp_path / "killed", resume=True, callback=resumed_log)
    start = resumed.resumed_from
    assert 60 <= start < 100 and (start // 2) % 10 != 0, start   # 2 envs; a checkpoint in the middle of an episode
    assert resumed_log.tasks == log.tasks[start // 2:]     # (2 envs: one log row per 2 timesteps)
    assert resumed.model.num_timesteps == whole.model.num_timesteps
    assert same_params(whole.policy, resumed.policy)
    opt_a, opt_b = whole.policy.optimizer.state_dict(), resumed.policy.optimizer.state_dict()
    assert opt_a["state"] and all(torch.equal(opt_a["state"][k][key], opt_b["state"][k][key])
                                  for k in opt_a["state"] for key in ("exp_avg", "exp_avg_sq"))


def test_resume_refuses_a_checkpoint_of_other_settings(tmp_path):
    tasks = family().train[:4]
    kwargs = dict(context_len=6, embedding_dim=4, encoder_hidden=8, net_arch=[16], n_envs=2, episodes_per_task=2)
    Flash("PPO", "flash/Autoscaling-v0", TINY_ENV, agent_kwargs=TINY_PPO, **kwargs).meta_train(
        tasks, 40, checkpoint_dir=tmp_path / "flash")
    other = Flash("PPO", "flash/Autoscaling-v0", TINY_ENV, agent_kwargs={**TINY_PPO, "learning_rate": 0.1}, **kwargs)
    with pytest.raises(ValueError, match=r"other settings \(agent_kwargs: .* there, .*'learning_rate': 0.1"):
        other.meta_train(tasks, 80, checkpoint_dir=tmp_path / "flash", resume=True)
    assert other.model is None  # nothing was loaded
    same = Flash("PPO", "flash/Autoscaling-v0", TINY_ENV, agent_kwargs=TINY_PPO, **kwargs)
    assert same.meta_train(tasks, 80, checkpoint_dir=tmp_path / "flash", resume=True).resumed_from == 40

    MAML("flash/Autoscaling-v0", TINY_ENV, hidden=[8], meta_batch=2).meta_train(tasks, 1, checkpoint_dir=tmp_path / "m")
    with pytest.raises(ValueError, match=r"inner_lr: 0.1 there, 0.5 here"):
        MAML("flash/Autoscaling-v0", TINY_ENV, hidden=[8], meta_batch=2, inner_lr=0.5).meta_train(
            tasks, 2, checkpoint_dir=tmp_path / "m", resume=True)
    resumed = MAML("flash/Autoscaling-v0", TINY_ENV, hidden=(8,), meta_batch=2)  # a tuple saves as the same list
    steps = []
    step = resumed.meta_step
    resumed.meta_step = lambda batch: steps.append(1) or step(batch)
    assert resumed.meta_train(tasks, 2, checkpoint_dir=tmp_path / "m", resume=True).iteration == 2
    assert len(steps) == 1  # continued from the checkpoint's iteration 1


def test_a_resume_to_a_total_the_checkpoint_has_passed_is_refused(tmp_path):
    """It trained nothing, and the pipeline marked the model as trained to the smaller total."""
    tasks = family().train[:4]
    kwargs = dict(context_len=6, embedding_dim=4, encoder_hidden=8, net_arch=[16], n_envs=2, agent_kwargs=TINY_PPO)
    Flash("PPO", "flash/Autoscaling-v0", TINY_ENV, **kwargs).meta_train(tasks, 120, checkpoint_dir=tmp_path / "f")
    shorter = Flash("PPO", "flash/Autoscaling-v0", TINY_ENV, **kwargs)
    with pytest.raises(ValueError, match=r"checkpoint at 120 timesteps of a meta-training to 120, past the total 80"):
        shorter.meta_train(tasks, 80, checkpoint_dir=tmp_path / "f", resume=True)
    assert shorter.model is None   # nothing was loaded
    for total in (120, 160):   # its own total (SB3's rollouts may pass it), or more
        again = Flash("PPO", "flash/Autoscaling-v0", TINY_ENV, **kwargs)
        assert again.meta_train(tasks, total, checkpoint_dir=tmp_path / "f", resume=True).resumed_from == 120

    MAML("flash/Autoscaling-v0", TINY_ENV, hidden=[8], meta_batch=2).meta_train(tasks, 2, checkpoint_dir=tmp_path / "m")
    with pytest.raises(ValueError, match=r"checkpoint at 2 iterations, past the total 1"):
        MAML("flash/Autoscaling-v0", TINY_ENV, hidden=[8], meta_batch=2).meta_train(
            tasks, 1, checkpoint_dir=tmp_path / "m", resume=True)


def test_an_atomically_written_file_has_the_mode_open_would_give_it(tmp_path):
    """mkstemp's temporary file is owner-only (0600), and so was every file written through it."""
    mask = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "p.pt") as tmp:
            tmp.write_text("x")
        (tmp_path / "plain.txt").write_text("x")
    finally:
        os.umask(mask)
    assert (tmp_path / "p.pt").stat().st_mode & 0o777 == (tmp_path / "plain.txt").stat().st_mode & 0o777 == 0o644


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "agent.zip"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as tmp:
            assert tmp.suffix == ".zip" and tmp != target   # SB3's save would add .zip to a path without it
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["agent.zip"]
    with atomic_write(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["agent.zip"]


def test_two_writers_of_one_file_write_apart(tmp_path):
    """Both wrote one fixed temporary file: a reader could see one writer's half-written file, or a writer fail."""
    target = tmp_path / "refs.json"
    with atomic_write(target) as first:
        first.write_text("first, whole")
        with atomic_write(target) as second:
            assert second != first
            second.write_text("second")
        assert target.read_text() == "second"
    assert target.read_text() == "first, whole" and [p.name for p in tmp_path.iterdir()] == ["refs.json"]


def test_an_agent_without_a_model_says_so(tmp_path):
    """checkpoint() and evaluate() hit None.num_timesteps / None.policy before any meta_train() or load()."""
    flash = Flash("PPO", "flash/Autoscaling-v0", TINY_ENV, agent_kwargs=TINY_PPO)
    for call in (lambda: flash.checkpoint(tmp_path), lambda: flash.evaluate(None, family().test[0], 0),
                 lambda: flash.save(tmp_path / "m")):
        with pytest.raises(RuntimeError, match=r"has no model yet: call meta_train\(\), fresh\(\) or load\(\)"):
            call()
    assert not (tmp_path / "m").exists()   # save() made nothing, not even the folder


def meta_train_args(run_dir: Path, *settings: str, method: str = "flash") -> list[str]:
    """``flash meta-train`` of :data:`TINY_META_TRAIN` (80 timesteps, checkpoints every 40) and ``settings``."""
    return ["meta-train", "--method", method, "--run-dir", str(run_dir), "--set", *TINY_META_TRAIN,
            "flash.timesteps=80", *settings]


@pytest.mark.parametrize("method, settings", [("flash", ["flash.timesteps=40"]), ("maml", ["maml.iterations=1"])])
def test_meta_train_resume_to_fewer_than_the_checkpoint_is_refused_before_any_work(tmp_path, capsys, method,
                                                                                    settings):
    """A run killed after its last checkpoint (no DONE yet), resumed to a smaller total: refused before config.yaml
    is rewritten (it trained nothing and wrote a DONE of the smaller total)."""
    from flash_rl.cli import main

    assert main(meta_train_args(tmp_path, method=method)) == 0
    (tmp_path / "models" / method / "DONE").unlink()
    config = (tmp_path / "config.yaml").read_text()
    assert main(meta_train_args(tmp_path, *settings, method=method) + ["--resume"]) == 2
    assert "past the total" in capsys.readouterr().err and (tmp_path / "config.yaml").read_text() == config
    assert not (tmp_path / "models" / method / "DONE").exists()


def test_a_new_training_leaves_no_finished_model_of_the_old_one_to_resume(tmp_path, monkeypatch, capsys):
    """A new run in a finished run's folder (here under another seed), killed after its last checkpoint, resumes from
    its own checkpoint: the old run's DONE marker and final model would otherwise be loaded as its result."""
    from flash_rl.cli import main

    run_dir = tmp_path / "run"
    assert main(meta_train_args(run_dir)) == 0

    def killed(*args, **kwargs):   # after the last checkpoint, before final/ and DONE are written
        raise KeyboardInterrupt

    monkeypatch.setattr(Flash, "save", killed)
    assert main(meta_train_args(run_dir, "run.seed=1")) == 130   # Ctrl-C: one line, no traceback
    assert capsys.readouterr().err == (f"flash meta-train: interrupted; {run_dir / 'models' / 'flash' / 'ckpt'} keeps "
                                       "the checkpoints so far: run the same command with --resume to continue\n")
    monkeypatch.undo()
    assert main(meta_train_args(run_dir, "run.seed=1", "--resume")) == 0
    assert "flash: resumed from the checkpoint at 80 timesteps" in capsys.readouterr().out
    assert Flash.load(run_dir / "models" / "flash" / "final").seed == 1


def test_a_finished_model_of_other_settings_is_not_resumed(tmp_path, capsys):
    """Methods meta-trained one by one into one --run-dir: the second run's config.yaml replaces the first's, but the
    first's finished model stays; a resume under the new settings must not take it for one of them."""
    from flash_rl.cli import main

    run_dir = tmp_path / "run"
    assert main(meta_train_args(run_dir)) == 0                                   # FLASH, seed 0
    assert main(meta_train_args(run_dir, "run.seed=1", method="maml")) == 0     # config.yaml: seed 1 now
    capsys.readouterr()
    assert main(meta_train_args(run_dir, "run.seed=1", "--resume")) == 2
    assert "seed: 0 there, 1 here" in capsys.readouterr().err


def test_a_refused_resume_leaves_the_run_files_alone(tmp_path, capsys):
    from flash_rl.cli import main

    run_dir = tmp_path / "run"
    assert main(meta_train_args(run_dir)) == 0
    written = {name: (run_dir / name).read_bytes() for name in ("config.yaml", "command.txt")}
    assert main(meta_train_args(run_dir, "flash.timesteps=160", "--resume")) == 2
    assert "holds flash trained to 80, not 160" in capsys.readouterr().err
    assert {name: (run_dir / name).read_bytes() for name in written} == written


@pytest.fixture(scope="module")
def finished_runs(tmp_path_factory):
    """A run folder holding a finished FLASH and a finished MAML meta-training."""
    from flash_rl.cli import main

    run_dir = tmp_path_factory.mktemp("finished") / "run"
    for method in ("flash", "maml", "transfer"):
        assert main(meta_train_args(run_dir, *METHOD_SETTINGS.get(method, []), method=method)) == 0
    return run_dir


#: Settings of the meta-trainings :func:`finished_runs` holds besides :data:`TINY_META_TRAIN`: transfer learning
#: with DQN, whose checkpoints hold a replay buffer.
METHOD_SETTINGS = {"transfer": ["transfer.algo=DQN", "transfer.timesteps=80", "transfer.n_envs=2",
                                "transfer.net_arch=[16]", "transfer.agent_kwargs={learning_starts: 20, "
                                "buffer_size: 1000, train_freq: 4, batch_size: 16}",
                                "transfer.adapt_kwargs={learning_starts: 0, batch_size: 8}"]}


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:300])


def cut_the_pickled_envs(path: Path) -> None:
    """Rewrite the episodes file ``path`` with its training envs' pickle cut short (the record around it whole)."""
    episodes = pickle.loads(path.read_bytes())
    episodes["envs"] = episodes["envs"][:200]
    path.write_bytes(pickle.dumps(episodes))


def edit_json(path: Path, **changes) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def edit_maml_checkpoint(path: Path, **changes) -> None:
    torch.save({**torch.load(path, weights_only=True), **changes}, path)


@pytest.mark.parametrize("method, damage, culprit, problem", [
    ("flash", lambda run: (run / "config.yaml").write_text("case: [autoscaling\n"), "config.yaml", "not valid YAML"),
    ("flash", lambda run: (run / "config.yaml").write_text("- case\n"), "config.yaml", "expected a mapping"),
    ("flash", lambda run: (run / "models/flash/ckpt/state.json").write_text("{"), "models/flash/ckpt/state.json",
     "cannot be read"),
    ("flash", lambda run: (run / "models/flash/ckpt/state.json").write_text("[]"), "models/flash/ckpt/state.json",
     "is damaged"),
    ("flash", lambda run: truncate(run / "models/flash/ckpt/agent-80.zip"), "models/flash/ckpt/agent-80.zip",
     "cannot be read as a saved agent"),
    ("flash", lambda run: truncate(run / "models/flash/final/agent.zip"), "models/flash/final/agent.zip", "zip"),
    ("flash", lambda run: truncate(run / "models/flash/ckpt/episodes-80.pkl"), "models/flash/ckpt/episodes-80.pkl",
     "cannot be read as the episodes in progress of a checkpoint"),
    ("maml", lambda run: truncate(run / "models/maml/ckpt/maml.pt"), "models/maml/ckpt/maml.pt",
     "is not a MAML checkpoint"),
    # found by an audit: these gave a traceback on resume, after config.yaml and command.txt were rewritten
    ("flash", lambda run: cut_the_pickled_envs(run / "models/flash/ckpt/episodes-80.pkl"),
     "models/flash/ckpt/episodes-80.pkl", "it is cut short or not a pickle"),
    ("flash", lambda run: edit_json(run / "models/flash/ckpt/state.json", samplers=[{}]),
     "models/flash/ckpt/state.json", "holds no task-sampler state for the 2 training env(s)"),
    ("transfer", lambda run: truncate(run / "models/transfer/ckpt/replay-80.pkl"), "models/transfer/ckpt/replay-80.pkl",
     "cannot be read as the replay buffer of a checkpoint"),
    ("transfer", lambda run: (run / "models/transfer/ckpt/replay-80.pkl").unlink(),
     "models/transfer/ckpt/replay-80.pkl: no such file", "expected the replay buffer of a checkpoint"),
    ("maml", lambda run: edit_maml_checkpoint(run / "models/maml/ckpt/maml.pt", rng={"bit_generator": "MT19937"}),
     "models/maml/ckpt/maml.pt", "its weights or state do not fit its settings"),
    ("maml", lambda run: edit_maml_checkpoint(run / "models/maml/ckpt/maml.pt", iteration="2"),
     "models/maml/ckpt/maml.pt", "its iteration '2' is not a count"),
])
def test_a_resume_names_the_damaged_file_before_writing_anything(finished_runs, tmp_path, capsys, method, damage,
                                                                  culprit, problem):
    from flash_rl.cli import main

    run_dir = tmp_path / "run"
    shutil.copytree(finished_runs, run_dir)
    if "ckpt/" in culprit and method != "maml":
        (run_dir / "models" / method / "DONE").unlink()   # an unfinished run: --resume continues its checkpoint
    damage(run_dir)
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    assert main(meta_train_args(run_dir, *METHOD_SETTINGS.get(method, []), "--resume", method=method)) == 2
    err = capsys.readouterr().err
    assert err.startswith("flash: error: ") and err.count("\n") == 1   # one line
    assert str(run_dir / culprit) in err and problem in err
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before   # nothing written


@pytest.mark.parametrize("cls", [Flash, TransferLearning])
def test_save_and_load_keep_every_setting_given(tmp_path, cls):
    """Flash.load rebuilds the agent with every constructor setting it was made with (none falls back to its
    default) and as the class it was saved as."""
    from stable_baselines3 import PPO

    given = {"env_kwargs": {"episode_steps": 10}, "context_len": 6, "embedding_dim": 4, "encoder": "mean",
             "encoder_hidden": 8, "net_arch": [16], "agent_kwargs": TINY_PPO,
             "adapt_kwargs": {"n_steps": 10, "batch_size": 10}, "n_envs": 2, "episodes_per_task": 3, "seed": 7}
    cls("PPO", "flash/Autoscaling-v0", **given).fresh().save(tmp_path / "m")
    loaded = Flash.load(tmp_path / "m")
    assert type(loaded) is cls and loaded.agent_cls is PPO and loaded.env_id == "flash/Autoscaling-v0"
    assert {name: getattr(loaded, name) for name in given} == {**given, "net_arch": loaded.net_arch}
    assert list(loaded.net_arch) == [16]


def test_a_finished_run_passing_its_total_by_a_rollout_resumes_to_that_total(tmp_path):
    """SB3's whole rollouts pass a meta-training's total by a little: resuming its last checkpoint to that same total
    is not refused (nothing is left to train), while resuming it to a smaller total is."""
    tasks = family().train[:2]
    flash = Flash("PPO", "flash/Autoscaling-v0", TINY_ENV, context_len=6, embedding_dim=4, encoder_hidden=8,
                  net_arch=[16], agent_kwargs=TINY_PPO, n_envs=2)
    flash.meta_train(tasks, 50, checkpoint_dir=tmp_path)   # rollouts of 2 envs x 20 steps: done at 80
    assert json.loads((tmp_path / "state.json").read_text())["num_timesteps"] == 80
    assert flash.meta_train(tasks, 50, checkpoint_dir=tmp_path, resume=True).resumed_from == 80
    with pytest.raises(ValueError, match="holds a checkpoint at 80 timesteps of a meta-training to 50, past the "
                                         "total 60"):
        flash.meta_train(tasks, 60, checkpoint_dir=tmp_path, resume=True)


def test_a_setting_the_checkpoint_lacks_counts_as_changed(tmp_path):
    """check_resumable compares every setting either side has: one the checkpoint's settings lack (written by another
    version) but this run has is a change, named with both values; equal settings pass."""
    from flash_rl.checkpoints import check_resumable

    check_resumable({"seed": 1, "n_envs": 2}, {"n_envs": 2, "seed": 1}, tmp_path)
    with pytest.raises(ValueError, match=r"other settings \(episodes_per_task: None there, 3 here\)"):
        check_resumable({"seed": 1}, {"seed": 1, "episodes_per_task": 3}, tmp_path)
    with pytest.raises(ValueError, match=r"other settings \(episodes_per_task: 3 there, None here\)"):
        check_resumable({"seed": 1, "episodes_per_task": 3}, {"seed": 1}, tmp_path)
