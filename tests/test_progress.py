"""Progress bars redraw in place on a terminal and write few lines into a log file."""

from __future__ import annotations

import io
import os
import warnings

import gymnasium as gym

import flash_envs  # noqa: F401
from flash_envs import progress
from flash_rl.flash import Flash
from flash_rl.workers import worker_pool


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class WriteOnly:
    def write(self, text: str) -> None:
        pass

    def flush(self) -> None:
        pass


def test_bars_redraw_often_on_a_terminal_and_seldom_in_a_log(monkeypatch):
    monkeypatch.setattr("sys.stderr", Terminal())
    assert progress.tqdm_bar(10, "t").mininterval == progress.TERMINAL_INTERVAL_S
    monkeypatch.setattr("sys.stderr", io.StringIO())
    bar = progress.tqdm_bar(10, "log")
    assert bar.mininterval == progress.LOG_INTERVAL_S > progress.TERMINAL_INTERVAL_S
    assert progress.tqdm_bar(10, "off", enabled=False).disable


def test_meta_training_bar_leaves_two_lines_in_a_log(capsys):
    """Its first and last state: the bar does not force a redraw every few hundred steps (it wrote one per 512)."""
    tasks = gym.make("flash/Autoscaling-v0").unwrapped.family.train[:2]
    flash = Flash("PPO", "flash/Autoscaling-v0", {"episode_steps": 8}, context_len=4, embedding_dim=4,
                  encoder_hidden=8, net_arch=[8], agent_kwargs={"n_steps": 64, "batch_size": 64, "n_epochs": 1},
                  n_envs=1)
    flash.meta_train(tasks, 2048, progress_bar=True)
    states = [s for s in capsys.readouterr().err.replace("\r", "\n").splitlines() if "meta-train" in s]
    assert len(states) == 2 and "2048/2048" in states[-1], states


def work_in_a_worker() -> int:
    """What a pool's worker does that reaches the terminal: a bar, a printed line, a warning."""
    bar = progress.tqdm_bar(5, "relayed work")
    for _ in range(5):
        bar.update()
    bar.close()
    print("a line from the worker")
    warnings.warn("a warning from the worker")
    return os.getpid()


def test_a_workers_bars_and_lines_are_drawn_by_the_parent(capsys):
    """flash reproduce --jobs N meta-trains in worker processes. Each drew its own bar, counting lines from a cursor
    that all the processes share: the bars overwrote one another on one line, and any line a process printed moved
    the others' bars. The parent now draws every bar and prints the workers' lines between them. (capsys sees only
    what this process writes: a worker writing to the terminal itself would be missed.)"""
    with worker_pool(1) as pool:
        assert pool.submit(work_in_a_worker).result() != os.getpid()
    out, err = capsys.readouterr()
    assert out == "a line from the worker\n"
    assert "relayed work: 100%" in err and "5/5" in err and "UserWarning: a warning from the worker" in err


def test_a_bar_beside_workers_bars_leaves_the_cursor_where_it_was(monkeypatch):
    """While workers' bars are drawn (by this process), a bar left in place as it closed drew its last state on the
    first line and wrote a newline, which moved the other bars' lines; and tqdm left the cursor after the blanks that
    clear a bar, where the report printed next began. In a log file, bars side by side wrote cursor moves as escape
    codes; there every bar keeps its last state."""
    monkeypatch.setattr(progress, "_beside_workers", 1)
    for line in (0, 3):
        bar = progress.tqdm_bar(4, "beside", file=Terminal(), position=line)
        bar.update(4)
        bar.close()
        drawn = bar.fp.getvalue()
        assert drawn.startswith("\n" * line + "\rbeside:") and "100%" not in drawn   # cleared, not left
        assert drawn.count("\n") == drawn.count("\x1b[A") == 2 * line and drawn.endswith("\r")   # back where it was
    log = io.StringIO()
    bars = [progress.tqdm_bar(4, f"in a log {i}", file=log) for i in range(2)]   # open side by side
    for bar in bars:
        bar.update(4)
        bar.close()
    progress.tqdm_bar(1, "a stream that is no file", file=WriteOnly()).close()   # no isatty: not a terminal
    logged = log.getvalue()
    assert "\x1b[" not in logged and logged.count("\n") == 2   # no cursor moves: every redraw where the log ends
    assert "in a log 0: 100%" in logged and "in a log 1: 100%" in logged


def test_counting_advances_one_bar_over_several_loops():
    bar = progress.tqdm_bar(6, "two loops", file=io.StringIO())
    for items in ("abc", "xyz"):
        assert list(progress.counting(items, bar)) == list(items)
    assert bar.n == 6


def test_the_governor_report_shows_its_progress(capsys):
    """The environments' commands that take a minute (power-governors, task-diversity, demo) had no bar."""
    from flash_envs.baselines.governors import GOVERNORS
    from flash_envs.baselines.power_report import governor_rows

    rows = governor_rows(("test",), seeds=1, progress=True, episode_s=50.0)
    assert f"power-governors: 100%|██████████| {len(rows)}/{len(rows)}" in capsys.readouterr().err
    assert len(rows) == len(gym.make("flash/PowerManagement-v0").unwrapped.family.test) * len(GOVERNORS)
