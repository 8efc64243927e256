"""A pool's workers: what they print reaches this process whole and in time, and Ctrl-C stops them at any moment."""

from __future__ import annotations

import multiprocessing
import os
import signal
import struct
import threading
import time
from multiprocessing.context import SpawnProcess
from pathlib import Path

import pytest

from flash_envs import progress
from flash_rl.workers import worker_pool

pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")   # a broken pool

LINES = 2000


def print_then_fail() -> None:
    for i in range(LINES):
        print(f"line {i} before the error")
    raise ValueError("the task failed")


def print_without_a_newline() -> None:
    print("a partial line", end="")


def print_many_lines() -> int:
    for i in range(20 * LINES):
        print(f"line {i} of a long report, about forty bytes")
    return os.getpid()


def print_then_wait_until_logged(log: str) -> bool:
    print("flash: resumed from the checkpoint")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if "resumed" in Path(log).read_text():
            return True
        time.sleep(0.05)
    return False


def draw_a_bar_with_tqdm_itself() -> None:
    from tqdm import tqdm

    for _ in tqdm(range(50), desc="tqdm itself", mininterval=0):
        pass
    print("a line ended by CR LF\r")
    for _ in tqdm(range(5), desc="cleared", leave=False, mininterval=0):
        pass


class Timeout(Exception):
    pass


def print_while_a_timer_raises(lines: int) -> int:
    """A common timeout: a signal handler that raises, here every 2 ms, while long lines are printed (and sent)."""
    printing = [False]

    def expire(signum: int, frame: object) -> None:
        if printing[0]:
            printing[0] = False
            raise Timeout

    signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, 0.002, 0.002)
    raised = 0
    for _ in range(lines):
        try:
            printing[0] = True
            print("x" * 100_000)
            printing[0] = False
        except Timeout:
            raised += 1
    signal.setitimer(signal.ITIMER_REAL, 0)
    return raised


class PrintsWhenCollected:
    def __init__(self) -> None:
        self.itself = self   # a cycle: the garbage collector frees it, whenever it runs

    def __del__(self) -> None:
        print("collected")


def print_while_the_garbage_collector_prints(n: int) -> int:
    for i in range(n):
        PrintsWhenCollected()
        print(f"line {i}")
    return n


def fork_a_process_that_prints() -> None:
    child = multiprocessing.get_context("fork").Process(target=print, args=("a line from a forked process",))
    child.start()
    child.join()


def sleep_long() -> None:
    time.sleep(600)


def test_lines_printed_before_a_task_fails_are_all_drawn(capsys):
    """The error came back on the executor's own queue while the lines waited in the worker's queue feeder, and the
    worker was terminated before it wrote them: the last lines before an error, which explain it, were lost."""
    with pytest.raises(ValueError, match="the task failed"):
        with worker_pool(1) as pool:
            pool.submit(print_then_fail).result()
    out = capsys.readouterr().out.splitlines()
    assert out == [f"line {i} before the error" for i in range(LINES)]


def test_a_partial_line_is_drawn_when_its_task_ends(capsys):
    with worker_pool(1) as pool:
        pool.submit(print_without_a_newline).result()
        pool.submit(print_without_a_newline).result()
    assert capsys.readouterr().out == "a partial line\n" * 2   # not lost, nor glued to the next task's output


def test_a_signal_handler_that_raises_while_a_line_is_sent_loses_nothing_after_it(capsys):
    """The exception cut a message short in the pipe, and the rest of the pool's output was discarded as unreadable."""
    with worker_pool(1) as pool:
        assert pool.submit(print_while_a_timer_raises, 200).result(timeout=120) > 0
        pool.submit(print, "the next task's line").result(timeout=120)
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "the next task's line" and set("".join(out[:-1])) == {"x"}, out[-1][:50]   # (some glued)


def test_a_worker_that_prints_while_it_sends_does_not_deadlock(capsys):
    """A ``__del__`` that prints, run by the garbage collector while the worker held the relay's lock to send a line,
    waited for that lock for ever."""
    with worker_pool(1) as pool:
        assert pool.submit(print_while_the_garbage_collector_prints, 20_000).result(timeout=120) == 20_000
    # From Python 3.12 the collector runs between bytecodes, so also inside the relay's write, between print's two
    # writes (the line, then its end): "collected" can fall inside a line
    lines = [line for line in capsys.readouterr().out.replace("collected", "").splitlines() if line]
    assert lines == [f"line {i}" for i in range(20_000)]


def test_a_process_forked_by_a_task_is_relayed_too(capsys):
    """A forked process has none of its parent's threads: its lines waited for the worker's sending thread."""
    with worker_pool(1) as pool:
        pool.submit(fork_a_process_that_prints).result(timeout=120)
    assert capsys.readouterr().out == "a line from a forked process\n"


def test_a_bar_drawn_with_tqdm_itself_is_relayed_as_a_terminal_shows_it(capsys):
    """A worker's own tqdm bar (not flash's) redraws with carriage returns and no newline: it reached the parent as one
    line of fifty redraws."""
    with worker_pool(1) as pool:
        pool.submit(draw_a_bar_with_tqdm_itself).result()
    out, err = capsys.readouterr()
    assert out == "a line ended by CR LF\n"
    (line,) = err.splitlines()   # the cleared bar left none
    assert line.startswith("tqdm itself: 100%") and "50/50" in line and "\r" not in line


def test_workers_go_on_when_this_process_cannot_write(monkeypatch):
    """stdout piped to ``head``: a failing write stopped the thread that reads the workers' output, the pipe filled
    and the workers blocked for ever."""
    class ClosedPipe:
        def write(self, text: str) -> None:
            raise BrokenPipeError

        def flush(self) -> None:
            pass

    monkeypatch.setattr("sys.stdout", ClosedPipe())
    with worker_pool(1) as pool:
        assert pool.submit(print_many_lines).result(timeout=120) != os.getpid()   # ~1.7 MB: far more than a pipe holds


def test_a_workers_line_reaches_a_log_file_while_the_run_goes_on(monkeypatch, tmp_path):
    """``flash reproduce --resume > log``: the resume message sat in this process's file buffer, to appear later glued
    to a bar."""
    log = tmp_path / "log"
    with open(log, "w") as stdout:
        monkeypatch.setattr("sys.stdout", stdout)
        with worker_pool(1) as pool:
            assert pool.submit(print_then_wait_until_logged, str(log)).result()


@pytest.fixture
def ctrl_c_raises():
    """Ctrl-C raises KeyboardInterrupt in this process, as in a Python started from a terminal: one started in the
    background by a non-interactive shell (``pytest &``) has SIGINT ignored, and the pool then waited for ever."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_while_the_pool_waits_for_its_workers_terminates_them(ctrl_c_raises):
    with pytest.raises(KeyboardInterrupt):
        with worker_pool(1) as pool:
            pool.submit(sleep_long)
            workers = list(pool._processes.values())
            threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT)).start()
    for worker in workers:
        worker.join(timeout=30)
        assert not worker.is_alive()


def test_a_second_ctrl_c_while_the_workers_are_terminated_ends_them_all(monkeypatch, ctrl_c_raises):
    """Pressed twice, Ctrl-C raised again after the first worker was terminated: the others ran on."""
    terminate = SpawnProcess.terminate
    pressed: list[SpawnProcess] = []

    def pressed_again(worker: SpawnProcess) -> None:
        """Ctrl-C once more as the pool terminates its first worker; only from this thread: the executor's own thread
        terminates the workers again, and a SIGINT sent from there could land after the test (a flaky suite)."""
        if not pressed and threading.current_thread() is threading.main_thread():
            pressed.append(worker)
            os.kill(os.getpid(), signal.SIGINT)
        terminate(worker)

    monkeypatch.setattr(SpawnProcess, "terminate", pressed_again)
    with pytest.raises(KeyboardInterrupt):
        with worker_pool(2) as pool:
            for _ in range(2):
                pool.submit(sleep_long)
            workers = list(pool._processes.values())
            raise KeyboardInterrupt
    assert len(pressed) == 1
    for worker in workers:
        worker.join(timeout=30)
        assert not worker.is_alive()


def test_ctrl_c_while_a_worker_starts_does_not_break_the_pool(capfd):
    """A spawned worker imports for about a second before it ignores SIGINT: a Ctrl-C then (it reaches every process
    of the terminal) printed the worker's traceback and broke the pool. It now starts with SIGINT blocked."""
    with worker_pool(1) as pool:
        future = pool.submit(os.getpid)
        (worker,) = pool._processes.values()
        for _ in range(10):
            os.kill(worker.pid, signal.SIGINT)
            time.sleep(0.05)
        assert future.result(timeout=120) == worker.pid
    assert "KeyboardInterrupt" not in capfd.readouterr().err


def test_a_message_cut_short_by_a_terminated_worker_does_not_block_the_drawing():
    """A worker terminated half-way through a long message left the reading thread waiting for the rest."""
    output = progress.RelayedOutput(multiprocessing.get_context("spawn"))
    with output:
        output.sender._connection.send(("write", "stdout", "whole"))
        os.write(output.sender._connection.fileno(), struct.pack("!i", 1 << 20) + b"the first bytes of a long one")
    assert not output.thread.is_alive()


PARENT_SCRIPT = """
import sys, time
from pathlib import Path
from flash_rl.workers import worker_pool
from test_worker_pool import write_pid_then_sleep

if __name__ == "__main__":
    with worker_pool(1) as pool:
        pool.submit(write_pid_then_sleep, sys.argv[1]).result()
"""


def write_pid_then_sleep(path: str) -> None:
    Path(path).write_text(str(os.getpid()))
    time.sleep(120)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] != "Z"   # a zombie has ended


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="workers die with their parent on Linux only")
def test_a_killed_parent_takes_its_workers_with_it(tmp_path):
    """A parent killed with SIGKILL cannot stop its workers: they went on training and writing into the run
    directory, which the next command may then hold (flash_rl.run_lock)."""
    import subprocess
    import sys

    script, pid_file = tmp_path / "parent.py", tmp_path / "worker.pid"
    script.write_text(PARENT_SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    with open(tmp_path / "stderr.txt", "w") as stderr:   # (its resource tracker's word on the killed parent)
        parent = subprocess.Popen([sys.executable, str(script), str(pid_file)], env=env, stderr=stderr)
    try:
        deadline = time.monotonic() + 60
        while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.1)
        worker = int(pid_file.read_text())
        assert _alive(worker)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 10
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    alive = _alive(worker)
    if alive:
        os.kill(worker, signal.SIGKILL)
    assert not alive
