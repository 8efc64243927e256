"""Worker processes that stop when the run stops: on Ctrl-C, or when a task fails."""

from __future__ import annotations

import multiprocessing
import signal
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any, Iterator

from tqdm import tqdm

from flash_envs.progress import RelayedOutput, relay_into
from flash_rl.warning_lines import OneLineWarnings


def _start_worker(initializer: Callable[..., None] | None, initargs: tuple[Any, ...],
                  one_line_warnings: OneLineWarnings | None, output: Any) -> None:
    """Ignore SIGINT, send progress bars and printed lines to the parent's ``output`` queue (see
    :func:`~flash_envs.progress.relay_into`), write flash's warnings as the parent does, then run
    ``initializer(*initargs)``.

    Ctrl-C in a terminal reaches the whole process group, and a worker's executor would record the KeyboardInterrupt
    as its task's result and start its next task: stopping the workers is left to the parent (:func:`worker_pool`).

    Progress bars get a thread lock instead of tqdm's default process lock: a worker that is terminated would leave
    that one registered, and the resource tracker would warn of "leaked semaphore objects" at exit (a spawned
    worker shares no lock with the others anyway).

    ``one_line_warnings`` is the parent's ``warnings.formatwarning`` when the ``flash`` command installed it: a spawned
    worker starts with Python's two-line format.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    tqdm.set_lock(threading.RLock())
    relay_into(output)
    if one_line_warnings is not None:
        warnings.formatwarning = one_line_warnings
    if initializer is not None:
        initializer(*initargs)


@contextmanager
def worker_pool(jobs: int, initializer: Callable[..., None] | None = None,
                initargs: tuple[Any, ...] = ()) -> Iterator[ProcessPoolExecutor]:
    """A pool of ``jobs`` spawned worker processes, each set up by ``initializer(*initargs)``, for a ``with`` block.

    When the block ends normally, the pool waits for its tasks as usual. When it raises (Ctrl-C in this process, or a
    task's error re-raised by ``future.result()``), the queued tasks are cancelled and the workers terminated before
    the exception goes on: no queued task starts and no task keeps running after the run has stopped.
    """
    one_line = warnings.formatwarning if isinstance(warnings.formatwarning, OneLineWarnings) else None
    context = multiprocessing.get_context("spawn")
    output = context.Queue()
    pool = ProcessPoolExecutor(jobs, mp_context=context, initializer=_start_worker,
                               initargs=(initializer, initargs, one_line, output))
    with RelayedOutput(output):
        try:
            yield pool
        except BaseException:
            _terminate_workers(pool)
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        try:
            pool.shutdown()
        except BaseException:   # Ctrl-C while waiting for the workers
            _terminate_workers(pool)
            raise


def _terminate_workers(pool: ProcessPoolExecutor) -> None:
    for worker in list(pool._processes.values()):   # no public way to stop a running task before Python 3.14
        worker.terminate()
