"""One writer per run directory: a second ``meta-train`` or ``reproduce`` into a folder that one of them writes is
refused at once (it ran to the end beside the first, both writing the same models, curves and config), and the
outputs may not overwrite a trace that a ``tasks.family_file`` task replays."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flash_envs.sim.workloads import TraceWorkload
from flash_envs.tasks import AutoscalingTaskFamily
from flash_rl.cli import main
from flash_rl.run_lock import LOCK_NAME
from test_flash_reproduce import TINY

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="folders are locked with fcntl.flock")


def _in_use(option: str, folder: Path, pid: int) -> str:
    """The start of the error of a command refused because process ``pid`` holds ``folder``, given as ``option``."""
    return f"flash: error: {option} {folder} is in use: another flash command (PID {pid}) is writing there"


def test_meta_train_and_reproduce_into_one_run_dir_exclude_each_other(tmp_path, capsys, monkeypatch):
    """Each command, while it runs (here: in the middle of its work, stubbed), refuses the other into its run
    directory, and a render of the report folder a reproduce writes; each leaves no lock file behind."""
    run, out = tmp_path / "run", tmp_path / "out"
    meta_train = ["meta-train", "--run-dir", str(run), "--set", *TINY]
    reproduce = ["reproduce", "--run-dir", str(run), "--out", str(out), "--set", *TINY,
                 f"references.cache={tmp_path / 'refs.json'}"]
    codes: list[int] = []
    running: list[str] = []

    def nested(argv: list[str]) -> None:
        """Run ``argv`` from within a command (only from the outer one: unrefused, it would come here again)."""
        if not running:
            running.append(argv[0])
            codes.append(main(argv))
            running.pop()

    def training(name, cfg, family, run_dir, resume):
        nested(reproduce)

    def reproducing(cfg, out_dir, run_dir, **kwargs):
        nested(meta_train)
        nested(["reproduce", "--render", str(out)])
        nested([*reproduce[:3], "--out", str(tmp_path / "other"), *reproduce[5:]])
        nested([*reproduce[:2], str(tmp_path / "other"), *reproduce[3:]])
        raise KeyboardInterrupt   # (no report to print)

    monkeypatch.setattr("flash_rl.pipeline.train_model", training)
    monkeypatch.setattr("flash_rl.pipeline.reproduce", reproducing)
    assert main(meta_train) == 0 and codes == [2]
    assert _in_use("--run-dir", run, os.getpid()) in capsys.readouterr().err
    assert (run / "config.yaml").exists() and not (run / LOCK_NAME).exists()

    assert main(reproduce) == 130 and codes == [2] * 5
    err = capsys.readouterr().err
    assert err.count(_in_use("--run-dir", run, os.getpid())) == 2   # meta-train, reproduce into another --out
    assert _in_use("--render", out, os.getpid()) in err and _in_use("--out", out, os.getpid()) in err
    assert "wait for it to end, or give another --run-dir" in err
    assert not (run / LOCK_NAME).exists() and not out.exists()   # made for the hold, and left empty
    assert not (tmp_path / "other").exists()


def test_a_reproduce_whose_out_is_its_run_dir_holds_it_once(tmp_path, monkeypatch):
    """Held twice, the folder would be refused to the command itself."""
    def reproducing(cfg, out_dir, run_dir, **kwargs):
        assert (run_dir / LOCK_NAME).read_text() == f"{os.getpid()}\n"
        raise KeyboardInterrupt

    monkeypatch.setattr("flash_rl.pipeline.reproduce", reproducing)
    monkeypatch.chdir(tmp_path)
    assert main(["reproduce", "--run-dir", "run", "--out", str(tmp_path / "run"), "--set", *TINY,
                 f"references.cache={tmp_path / 'refs.json'}"]) == 130


def test_a_killed_holder_does_not_block_the_next_run(tmp_path, capsys, monkeypatch):
    """A meta-train in another process (its training stubbed by a sleep) holds its run directory: another is refused
    with its PID. Killed, it leaves its lock file, which the next run takes over and deletes."""
    run = tmp_path / "run"
    script = ("import sys, time\nimport flash_rl.pipeline\nfrom flash_rl.cli import main\n"
              "def training(*args):\n    print('training', flush=True)\n    time.sleep(60)\n"
              "flash_rl.pipeline.train_model = training\nmain(sys.argv[1:])\n")
    argv = ["meta-train", "--run-dir", str(run), "--set", *TINY]
    holder = subprocess.Popen([sys.executable, "-c", script, *argv], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "training\n"
        started = time.perf_counter()
        assert main(argv) == 2
        assert time.perf_counter() - started < 30   # refused at once, not after a run
        assert _in_use("--run-dir", run, holder.pid) in capsys.readouterr().err
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        holder.stdout.close()
    assert (run / LOCK_NAME).read_text() == f"{holder.pid}\n"   # a stale lock file, no longer locked
    trained: list[Path] = []
    monkeypatch.setattr("flash_rl.pipeline.train_model", lambda name, cfg, family, run_dir, resume:
                        trained.append(run_dir))
    assert main(argv) == 0 and trained == [run] and not (run / LOCK_NAME).exists()


def test_an_output_may_not_overwrite_a_trace_of_a_family_file_task(tmp_path, capsys, monkeypatch):
    """Only --config, tasks.family_file and the test traces were inputs: a trace that a family file's task replays,
    saved as --out's curves.csv, was replaced by the report's. A relative path is the working directory's."""
    monkeypatch.chdir(tmp_path)
    trace = tmp_path / "out" / "curves.csv"
    trace.parent.mkdir()
    trace.write_text("timestamp,requests\n" + "".join(f"{60 * i},{100 + i}\n" for i in range(30)))
    before = trace.read_text()
    family = AutoscalingTaskFamily.generate(n_train=2, n_test=1, episode_s=240.0)
    replay = dataclasses.replace(family.test[0], workload=TraceWorkload(path="out/curves.csv", mean_rate=20.0),
                                 name="replay")
    dataclasses.replace(family, test=(replay,)).save_yaml(tmp_path / "family.yaml")
    assert main(["reproduce", "--out", "out", "--run-dir", "run", "--set", *TINY,
                 "tasks.family_file=family.yaml"]) == 2
    assert ("flash: error: --out would overwrite out/curves.csv, the tasks.family_file trace file this command "
            "reads") in capsys.readouterr().err
    assert trace.read_text() == before and not (tmp_path / "run").exists()


def test_a_folder_removed_by_a_holder_ending_meanwhile_is_made_again(tmp_path, monkeypatch):
    """A holder that made the folder removes it, empty, when it ends (refused by a --resume check, say); a command
    between making the folder and opening its lock file failed with a bare FileNotFoundError."""
    import threading

    from flash_rl import run_lock

    folder = tmp_path / "run"
    held, release, ended = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with run_lock.hold_folders({folder: "--run-dir"}):
            held.set()
            release.wait()
        ended.set()

    thread = threading.Thread(target=first)
    thread.start()
    held.wait()
    lock = run_lock._lock

    def lock_once_the_first_has_ended(path, option):
        release.set()
        ended.wait()
        assert not folder.exists()   # the first holder made it, and removed it
        return lock(path, option)

    monkeypatch.setattr(run_lock, "_lock", lock_once_the_first_has_ended)
    with run_lock.hold_folders({folder: "--run-dir"}):
        assert (folder / LOCK_NAME).read_text() == f"{os.getpid()}\n"
    thread.join()
