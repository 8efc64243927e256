"""Progress bars redraw in place on a terminal and write few lines into a log file."""

from __future__ import annotations

import io

import gymnasium as gym

import flash_envs  # noqa: F401
from flash_envs import progress
from flash_rl.flash import Flash


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


def test_a_meta_training_worker_draws_its_bar_on_its_own_line(monkeypatch):
    """flash reproduce --jobs N meta-trains in worker processes, each of whose bars is given a line. The worker set
    TQDM_POSITION, which tqdm reads only when imported, before the worker knew its line: every worker's bar took
    line 0 of its own process, and on a terminal the bars overwrote each other on one line."""
    from flash_rl import pipeline
    from flash_rl.cases import CONFIG_DIR
    from flash_rl.config import load_config

    drawn = []

    def train_model(*args):
        bar = progress.tqdm_bar(1, "meta-train", file=Terminal())
        bar.close()
        drawn.append(bar.fp.getvalue())

    monkeypatch.setattr(progress, "_bar_line", None)   # the worker's setting is put back after the test
    monkeypatch.setattr(pipeline.torch, "set_num_threads", lambda n: None)
    monkeypatch.setattr(pipeline, "train_model", train_model)
    pipeline._train_in_worker("flash", load_config(CONFIG_DIR / "autoscaling_quick.yaml"), None, False, 2)
    assert drawn[0].startswith("\n\n\rmeta-train:") and "\x1b[A\x1b[A" in drawn[0]   # 2 lines down, then back up
    assert progress._bar_line is None   # the worker's later tasks do not take the line


def test_a_bar_beside_other_processes_bars_leaves_the_cursor_where_it_was():
    """A bar with a line, left in place as it closed, drew its last state on the first line and wrote a newline:
    every other process's bars then drew one line off theirs, over one another. Cleared, it left the cursor after
    its blanks, where the report printed next began. In a file the line is ignored."""
    for line in (0, 3):
        bar = progress.tqdm_bar(4, "beside", file=Terminal(), position=line)
        bar.update(4)
        bar.close()
        drawn = bar.fp.getvalue()
        assert drawn.startswith("\n" * line + "\rbeside:")
        assert drawn.count("\n") == drawn.count("\x1b[A") == 2 * line and drawn.endswith("\r")   # back where it was
    bar = progress.tqdm_bar(4, "in a log", file=io.StringIO(), position=3)
    bar.update(4)
    bar.close()
    logged = bar.fp.getvalue()
    progress.tqdm_bar(1, "a stream that is no file", file=WriteOnly(), position=3).close()   # no isatty: not a terminal
    assert logged.startswith("\rin a log:") and "\x1b[A" not in logged
    assert logged.count("\n") == 1 and "| 4/4 [" in logged


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
