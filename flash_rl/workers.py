"""Worker processes that stop when the run stops: on Ctrl-C, or when a task fails."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from typing import Any, Iterator

from tqdm import tqdm

from flash_envs.progress import RelayedOutput, RelaySender, end_task_output, relay_into
from flash_rl.warning_lines import OneLineWarnings


def _start_worker(initializer: Callable[..., None] | None, initargs: tuple[Any, ...],
                  one_line_warnings: OneLineWarnings | None, output: RelaySender) -> None:
    """Ignore SIGINT, send progress bars and printed lines to the parent's ``output`` (see
    :func:`~flash_envs.progress.relay_into`), write flash's warnings as the parent does, then run
    ``initializer(*initargs)``.

    Ctrl-C in a terminal reaches the whole process group, and a worker's executor would record the KeyboardInterrupt
    as its task's result and start its next task: stopping the workers is left to the parent (:func:`worker_pool`).
    (The worker started with SIGINT blocked, see :class:`_Pool`; once it is ignored, it is unblocked.)

    Progress bars get a thread lock instead of tqdm's default process lock: a worker that is terminated would leave
    that one registered, and the resource tracker would warn of "leaked semaphore objects" at exit (a spawned
    worker shares no lock with the others anyway).

    ``one_line_warnings`` is the parent's ``warnings.formatwarning`` when the ``flash`` command installed it (with its
    ``show`` as ``warnings.showwarning``): a spawned worker starts with Python's two-line format.
    """
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    tqdm.set_lock(threading.RLock())
    relay_into(output)
    if one_line_warnings is not None:
        warnings.formatwarning, warnings.showwarning = one_line_warnings, one_line_warnings.show
    if initializer is not None:
        initializer(*initargs)


#: Linux's ``prctl`` option that has the kernel signal a process when its parent ends.
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """On Linux, have the kernel kill this worker when the process that started it ends, however it ends.

    A parent killed (``kill -9``, or ``kill``, for which it sets no handler) cannot terminate its workers, and they
    went on training and writing into the run directory, which the next command, holding that folder
    (:mod:`flash_rl.run_lock`) now that the parent's lock was released, would write in too. A parent that ended before
    this call is caught by its process id. (The kernel signals when the *thread* that started the worker ends: the
    one that submits to the pool, inside :func:`worker_pool`'s block, which outlives its workers.) Elsewhere nothing
    is set."""
    if not sys.platform.startswith("linux"):
        return
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        return   # (a kernel without it: the worker lives on, as before)
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:
        os._exit(1)


def _run_task(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, then send all the worker printed (:func:`~flash_envs.progress.end_task_output`)."""
    try:
        return fn(*args, **kwargs)
    finally:
        end_task_output()


@contextmanager
def _sigint_deferred() -> Iterator[None]:
    """A ``with`` block during which SIGINT is blocked in this thread and, if it comes, handled when the block ends.

    For spawning workers (:class:`_Pool`), which inherit the block, and terminating them (:func:`_terminate_workers`):
    a KeyboardInterrupt raised half-way (between starting a worker and recording it, or between terminating two
    workers) left a worker running. Only the main thread, which alone raises KeyboardInterrupt, sets a handler."""
    if not hasattr(signal, "pthread_sigmask"):   # Windows
        yield
        return
    in_main_thread = threading.current_thread() is threading.main_thread()
    received: list[int] = []
    if in_main_thread:
        handler = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)   # one that came while blocked is handled now, as received
        if in_main_thread:
            signal.signal(signal.SIGINT, handler)
        if received:
            signal.raise_signal(signal.SIGINT)


class _Pool(ProcessPoolExecutor):
    """A pool whose tasks send all they printed before their result (:func:`_run_task`), and whose workers start
    with SIGINT blocked (:func:`_sigint_deferred`): a spawned worker imports for about a second before it ignores
    SIGINT (:func:`_start_worker`), and a Ctrl-C then printed its traceback and broke the pool."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.futures: list[Future] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        with _sigint_deferred():
            future = super().submit(_run_task, fn, *args, **kwargs)
        self.futures.append(future)
        return future


@contextmanager
def worker_pool(jobs: int, initializer: Callable[..., None] | None = None,
                initargs: tuple[Any, ...] = ()) -> Iterator[ProcessPoolExecutor]:
    """A pool of ``jobs`` spawned worker processes, each set up by ``initializer(*initargs)``, for a ``with`` block.

    The workers' progress bars and printed lines are drawn by this process
    (:class:`~flash_envs.progress.RelayedOutput`), but for a flash command's warning lines written already, by it or
    another worker (:meth:`~flash_rl.warning_lines.OneLineWarnings.written_before`). What a task printed is drawn by
    the time the block ends, even when the task failed or the block raised.

    When the block ends normally, the pool waits for its tasks as usual. When it raises (Ctrl-C in this process, or a
    task's error re-raised by ``future.result()``), the queued tasks are cancelled and the workers terminated before
    the exception goes on: no queued task starts and no task keeps running after the run has stopped.
    """
    one_line = warnings.formatwarning if isinstance(warnings.formatwarning, OneLineWarnings) else None
    context = multiprocessing.get_context("spawn")
    with RelayedOutput(context, skip_line=one_line.written_before if one_line else None) as output:
        pool = _Pool(jobs, mp_context=context, initializer=_start_worker,
                     initargs=(initializer, initargs, one_line, output.sender))
        try:
            yield pool
        except BaseException:
            _terminate_workers(pool)
            raise
        try:   # Ctrl-C while the tasks run: wait for them first, since one during shutdown's join of its thread
            wait(pool.futures)   # made Python 3.11 take that thread for ended, which then failed as the pool closed
            pool.shutdown()
        except BaseException:
            _terminate_workers(pool)
            raise


def _terminate_workers(pool: ProcessPoolExecutor) -> None:
    """Terminate the pool's workers and wait for them to end, with a second Ctrl-C held until they have (raised
    half-way, it left workers running)."""
    with _sigint_deferred():
        for worker in list(pool._processes.values()):   # no public way to stop a running task before Python 3.14
            worker.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
