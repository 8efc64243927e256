"""Ctrl-C with worker processes (``--jobs 2``): the run stops at once, no queued task starts, no worker is left."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(os.name != "posix", reason="Ctrl-C reaches a process group: POSIX only")

#: A config-eval of four (K, seed) evaluations in two workers, whose scoring outlasts the test: once both workers
#: score, the other two evaluations wait in the queue.
EVALUATE_SCRIPT = '''
import os, sys, time
from pathlib import Path

from flash_envs.data.config_measurements import simulated_measurements
from flash_rl.fewshot import evaluate
from flash_rl.fewshot.splits import app_folds
from flash_rl.fewshot.train_config import TrainConfig


def slow_score(pred, shots, targets, data, app):
    Path(sys.argv[1], f"{os.getpid()}-{time.time_ns()}").touch()   # an evaluation has trained and is scoring
    time.sleep(600)


if __name__ == "__main__":
    split = app_folds(simulated_measurements(30, seed=3), 3)[0]
    evaluate.run([split], (1, 2), (0, 1), TrainConfig(steps=5, finetune_steps=1), draws=1, progress=False, jobs=2,
                 scorer=slow_score)
'''


def kill_group(pgid: int) -> None:
    """SIGKILL every process left in the group ``pgid``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def _default_sigint() -> None:
    """Ctrl-C's default action in the child, as a terminal's command has it: a suite started in the background by a
    non-interactive shell (``pytest &``) runs with SIGINT ignored, which its children would inherit."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_until(cmd: list[str], cwd: Path, ready: Callable[[], bool]) -> subprocess.Popen:
    """Start ``cmd`` in a process group of its own (as a terminal runs a command) and wait until ``ready()``."""
    with (cwd / "log.txt").open("w") as log:   # a file, not a pipe: a child filling an unread pipe would block
        proc = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_default_sigint)
    deadline = time.time() + 300
    while not ready():
        if proc.poll() is not None or time.time() > deadline:
            kill_group(proc.pid)
            raise AssertionError(f"the run did not get under way:\n{(cwd / 'log.txt').read_text()}")
        time.sleep(0.1)
    return proc


def ctrl_c(proc: subprocess.Popen, patience_s: float = 30.0) -> bool:
    """Send SIGINT to ``proc``'s process group, as Ctrl-C in a terminal does: whether ``proc`` exited within
    ``patience_s`` (if not, the group is killed)."""
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(patience_s)
    except subprocess.TimeoutExpired:
        kill_group(proc.pid)
        proc.wait()
        return False
    return True


def group_gone(pgid: int) -> bool:
    """Whether every process of the group ``pgid`` (the workers included) has ended, within 10 s."""
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    kill_group(pgid)
    return False


def test_ctrl_c_stops_the_config_eval_workers_and_starts_no_queued_evaluation(tmp_path):
    script, scoring = tmp_path / "evaluate.py", tmp_path / "scoring"
    script.write_text(EVALUATE_SCRIPT)
    scoring.mkdir()
    proc = run_until([sys.executable, str(script), str(scoring)], tmp_path, lambda: len(list(scoring.iterdir())) == 2)
    stopped = ctrl_c(proc)
    assert len(list(scoring.iterdir())) == 2, "a queued evaluation started after Ctrl-C"
    assert stopped and proc.returncode == -signal.SIGINT   # the KeyboardInterrupt ended it
    assert group_gone(proc.pid), "a worker outlived the run"


def test_ctrl_c_stops_reproduce_and_its_workers_with_one_line(tmp_path):
    """With --jobs 2, FLASH and transfer learning train in the two workers and MAML waits for one of them."""
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "flash_rl.cli", "reproduce", "--quick", "--jobs", "2", "--run-dir", str(run_dir),
           "--out", str(tmp_path / "out"), "--set", "run.checkpoint_interval=1000", "references.cache=refs.json"]
    proc = run_until(cmd, tmp_path, (run_dir / "models" / "flash" / "ckpt" / "state.json").exists)
    stopped = ctrl_c(proc)
    assert not (run_dir / "models" / "maml").exists(), "the queued MAML meta-training started after Ctrl-C"
    lines = (tmp_path / "log.txt").read_text().strip().splitlines()
    assert stopped and proc.returncode == 130 and "Traceback" not in "\n".join(lines)
    assert lines[-1].endswith(f"flash reproduce: interrupted; {run_dir} keeps the checkpoints, finished models and "
                              "adaptation runs so far: run the same command with --resume to continue")
    assert group_gone(proc.pid), "a worker outlived the run"
    assert not (tmp_path / "out").exists()


def test_ctrl_c_while_a_command_loads_is_one_line(monkeypatch, capsys):
    """Importing a command (torch: about a second) sat outside the handler: Ctrl-C then printed a traceback."""
    from flash_rl import cli

    def interrupted(name: str):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.importlib, "import_module", interrupted)
    assert cli.main(["config-eval", "--help"]) == 130
    assert capsys.readouterr().err == "flash config-eval: interrupted\n"


def test_a_reader_that_stops_early_ends_the_command_quietly():
    """`flash demo | true`: the write to the closed pipe was reported as "flash: error: [Errno 32] Broken pipe",
    exit status 2, as if the input were bad."""
    proc = subprocess.Popen([sys.executable, "-m", "flash_rl.cli", "demo", "--episodes", "1", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()   # before the demo has printed anything
    with proc.stderr:
        err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141
    assert "error" not in err and "Traceback" not in err


def test_ctrl_c_in_meta_train_says_how_to_continue(tmp_path, monkeypatch, capsys):
    """It printed "flash meta-train: interrupted" alone, where reproduce names the checkpoints and --resume."""
    from flash_rl import pipeline
    from flash_rl.cli import main

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "train_model", interrupted)
    assert main(["meta-train", "--case", "autoscaling", "--quick", "--method", "transfer", "--run-dir",
                 str(tmp_path / "run")]) == 130
    checkpoints = tmp_path / "run" / "models" / "transfer" / "ckpt"
    assert capsys.readouterr().err == (f"flash meta-train: interrupted; {checkpoints} keeps the checkpoints so far: "
                                       "run the same command with --resume to continue\n")
