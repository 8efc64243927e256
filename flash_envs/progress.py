"""Progress bars: one home for how they look and how often they write.

On a terminal a bar redraws in place at most every :data:`TERMINAL_INTERVAL_S`; when stderr is a file or a pipe (a
``nohup`` log, CI) every redraw is a new line, so a bar writes one at most every :data:`LOG_INTERVAL_S`. The bars
and printed lines of a pool's worker processes are drawn by the parent (:func:`relay_into`, :class:`RelayedOutput`).
"""
from __future__ import annotations

import io
import itertools
import os
import sys
import threading
import time
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from queue import SimpleQueue
from typing import Any, Callable, Iterable, Iterator, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")

TERMINAL_INTERVAL_S = 2.0
LOG_INTERVAL_S = 60.0


def redraw_interval_s() -> float:
    """Seconds between two redraws of a bar: short on a terminal, long in a log file."""
    return TERMINAL_INTERVAL_S if sys.stderr.isatty() else LOG_INTERVAL_S


RELAY_INTERVAL_S = 0.5
"""Seconds between two updates that a worker's bar sends to the process drawing it."""

_relay: RelaySender | None = None      # in a worker process: where its bars and printed lines go (relay_into)
_beside_workers = 0       # in the parent: how many RelayedOutput are drawing workers' bars beside its own
_keys = itertools.count()


class _Bar(tqdm):
    """A bar among others, cleared when it closes (``leave=False``): left in place it would draw its last state on
    the first line and write a newline, moving the other bars' lines. Cleared, it puts the cursor back at the start
    of its line (tqdm leaves it after the blanks, where the next text, such as a report, would begin)."""

    def close(self) -> None:
        drawn = not self.disable
        super().close()
        if drawn:
            self.fp.write("\r")
            self.fp.flush()


def tqdm_bar(total: int, desc: str, enabled: bool = True, **kwargs: Any) -> Any:
    """A tqdm bar of ``total`` items on stderr; ``enabled=False`` gives a silent one. ``kwargs`` go to tqdm.

    In a worker process of a pool (:func:`relay_into`) the bar is drawn by the parent, which draws every bar of the
    run: processes that each drew on one terminal would move each other's lines. While the parent draws its
    workers' bars beside its own, every bar on a terminal is cleared when it closes (:class:`_Bar`); in a file,
    every bar writes where the last line ends, with no cursor moves, and ends with its last state."""
    if _relay is not None and enabled:
        return _RelayedBar(_relay, total, desc, kwargs.get("initial", 0), kwargs.get("unit", "it"),
                           kwargs.get("iterable"))
    cls = tqdm
    if not getattr(kwargs.get("file") or sys.stderr, "isatty", lambda: False)():
        kwargs.setdefault("position", 0)   # a file keeps every redraw: another line would only add escape codes
    elif _beside_workers:
        cls, kwargs["leave"] = _Bar, False
    return cls(total=total, desc=desc, disable=not enabled, mininterval=redraw_interval_s(), dynamic_ncols=True,
               **kwargs)


class _RelayedBar:
    """A worker's bar: what it counts goes to the relay (at most every :data:`RELAY_INTERVAL_S`, and when it
    closes), where the parent's :class:`RelayedOutput` draws it. ``n`` may be set, as on a tqdm bar."""

    def __init__(self, relay: RelaySender, total: int, desc: str, initial: int, unit: str,
                 iterable: Iterable | None) -> None:
        self.key, self.n, self.total, self._iterable = f"{os.getpid()}-{next(_keys)}", initial, total, iterable
        self._relay: RelaySender | None = relay
        self._sent = time.monotonic()
        relay.put(("open", self.key, {"total": total, "desc": desc, "initial": initial, "unit": unit}))

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._relay is not None and time.monotonic() - self._sent >= RELAY_INTERVAL_S:
            self._relay.put(("update", self.key, self.n))
            self._sent = time.monotonic()

    def close(self) -> None:
        if self._relay is not None:
            self._relay.put(("close", self.key, self.n))
            self._relay = None

    def __iter__(self) -> Iterator[Any]:
        for item in self._iterable or ():
            yield item
            self.update()
        self.close()

    def __enter__(self) -> "_RelayedBar":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _LineRelay(io.TextIOBase):
    """A worker's stdout or stderr: whole lines go to the relay, printed by the parent between its bars, as a terminal
    would show them (:func:`_as_shown`). A partial line (no newline yet) goes as a line of its own when the task ends
    (:func:`end_task_output`), not when the stream is flushed: a bar drawn with tqdm itself flushes every redraw."""

    def __init__(self, relay: RelaySender, stream: str) -> None:
        self._relay, self._stream, self._partial = relay, stream, ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            self._send(line)
        return len(text)

    def flush(self) -> None:
        """Wait until the whole lines written so far are in the pipe (a process forked by a task flushes as it ends)."""
        self._relay.drain()

    def send_partial(self) -> None:
        if self._partial:
            self._send(self._partial)
            self._partial = ""

    def _send(self, line: str) -> None:
        shown = _as_shown(line)
        if shown is not None:
            self._relay.put(("write", self._stream, shown))


def _as_shown(line: str) -> str | None:
    """``line`` as a terminal shows it: a carriage return goes back to the start of the line, where the text after it
    overwrites what was there. A bar drawn with tqdm itself (not :func:`tqdm_bar`) in a worker is one such line: its
    redraws until it closes. ``None`` for a line that carriage returns left blank (a bar cleared as it closed)."""
    if "\r" not in line:
        return line
    shown = ""
    for part in line.split("\r"):
        shown = part + shown[len(part):]
    return shown if shown.strip() else None


class RelaySender:
    """The end of the relay pipe that a pool's workers write to, sent to each worker (:func:`relay_into`).

    In a worker, a thread of its own sends what :meth:`put` queues (after :meth:`start`): a signal handler that raises
    (a timeout) or a ``__del__`` that prints, run by the task's thread, would otherwise cut a message short or
    deadlock on the lock. The lock keeps the workers' messages whole: a message longer than a few kB takes several
    writes. :meth:`drain` waits until what was put is in the pipe, where it survives the worker."""

    def __init__(self, connection: Connection, lock: Any) -> None:
        self._connection, self._lock = connection, lock
        self._pending: SimpleQueue[Any] = SimpleQueue()   # its put is reentrant: safe from signal handlers, __del__
        self._thread: threading.Thread | None = None

    def __getstate__(self) -> tuple[Connection, Any]:
        return self._connection, self._lock

    def __setstate__(self, state: tuple[Connection, Any]) -> None:
        self._connection, self._lock = state
        self._pending, self._thread = SimpleQueue(), None

    def start(self) -> None:
        """Start the sending thread, here and in any process forked from here: a thread does not survive a fork, and
        the forked process's lines would wait in its queue for ever."""
        os.register_at_fork(after_in_child=self._start_anew)
        self._start_anew()

    def _start_anew(self) -> None:
        self._pending = SimpleQueue()   # (in a forked process: what was queued before the fork is the parent's to send)
        self._thread = threading.Thread(target=self._send_queued, name="relay sender", daemon=True)
        self._thread.start()

    def put(self, message: tuple[str, str, Any]) -> None:
        self._pending.put(message)

    def drain(self) -> None:
        if threading.current_thread() is self._thread or sys.is_finalizing():   # a __del__ run by the sending thread;
            return   # Python flushing stdout as it exits, when the sending thread (a daemon) can no longer run
        sent = threading.Event()
        self._pending.put(sent)
        sent.wait()

    def _send_queued(self) -> None:
        while True:
            message = self._pending.get()
            if isinstance(message, threading.Event):
                message.set()
                continue
            try:
                with self._lock:
                    self._connection.send(message)
            except Exception:   # the parent has gone (a closed pipe): nothing left to show it to
                continue

    def close(self) -> None:
        self._connection.close()


def relay_into(relay: RelaySender) -> None:
    """Send this process's bars and the lines it prints (stdout, stderr, warnings) to ``relay``: for a worker of a
    pool whose parent draws and prints them (:class:`RelayedOutput`)."""
    global _relay
    _relay = relay
    relay.start()
    sys.stdout, sys.stderr = _LineRelay(relay, "stdout"), _LineRelay(relay, "stderr")


def end_task_output() -> None:
    """In a worker (:func:`relay_into`), at the end of a task of a pool (:func:`flash_rl.workers.worker_pool`): send
    what it printed since its last newline, as a line (the next task's output would be glued to it), and wait until
    all it sent is in the pipe, so that the parent has it before the task's result or error, even if the worker is
    terminated right after."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, _LineRelay):
            stream.send_partial()
            stream.flush()


class RelayedOutput:
    """Draws, from a thread of this process, the bars of the workers that relay to :attr:`sender` (give it to
    :func:`relay_into` in each worker of ``context``), and prints their lines between the bars (``tqdm.write``), so
    that one process writes to the terminal.

    For a ``with`` block around the pool's work, which ends once the workers have: the thread then draws what is left
    in the pipe and ends when the pipe is empty with no writer left. Messages cut short by a terminated worker are
    discarded; the thread never stops reading before that, since a worker writing to a full pipe would block.

    ``skip_line``, if given, is asked of every line a worker writes to stderr: a line it says yes to is not printed
    (e.g. a warning another process has printed already)."""

    JOIN_TIMEOUT_S = 5.0
    """Longest wait, once the workers have ended, for the thread to draw what is left (a process started by a worker
    may have kept the pipe open)."""

    def __init__(self, context: BaseContext, skip_line: Callable[[str], bool] | None = None) -> None:
        self.skip_line = skip_line
        self._reader, writer = context.Pipe(duplex=False)
        self.sender = RelaySender(writer, context.Lock())
        self.bars, self.ended = dict[str, Any](), False
        self.thread = threading.Thread(target=self._draw, name="relayed output", daemon=True)

    def __enter__(self) -> "RelayedOutput":
        global _beside_workers
        _beside_workers += 1
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        global _beside_workers
        self.sender.close()   # the last writer, once the workers have ended: the thread reads to the end of the pipe
        try:
            self.thread.join(timeout=self.JOIN_TIMEOUT_S)
        finally:   # (a second Ctrl-C) what comes later is read, not drawn: it would be glued to this process's lines
            self.ended = True
            for bar in list(self.bars.values()):
                bar.close()
            _beside_workers -= 1

    def _draw(self) -> None:
        while True:
            try:
                kind, key, value = self._reader.recv()
            except EOFError:   # every writer has closed the pipe, and what they sent is drawn
                break
            except Exception:   # a message cut short (a terminated worker) made the rest unreadable
                while os.read(self._reader.fileno(), 1 << 16):
                    pass
                break
            try:   # a failing write (a closed pipe, an encoding) must not stop the reading: workers would block
                if not self.ended:
                    self._show(kind, key, value)
            except Exception:
                continue
        self._reader.close()

    def _show(self, kind: str, key: str, value: Any) -> None:
        if kind == "open":
            self.bars[key] = tqdm_bar(value.pop("total"), value.pop("desc"), **value)
        elif kind == "write":
            if key == "stderr" and self.skip_line is not None and self.skip_line(value):
                return
            stream = sys.stdout if key == "stdout" else sys.stderr
            tqdm.write(value, file=stream)
            stream.flush()   # a worker's line reaches a log file or pipe now, not when the buffer is full
        elif key in self.bars:
            bar = self.bars[key] if kind == "update" else self.bars.pop(key)
            bar.update(value - bar.n)
            if kind == "close":
                bar.close()


def counting(items: Iterable[T], bar: tqdm) -> Iterator[T]:
    """``items``, advancing ``bar`` by one as each is done (when the next is asked for): one bar can count the work
    of several loops that each take an iterable, such as :func:`~flash_envs.baselines.runner.evaluate_on_tasks`."""
    for item in items:
        yield item
        bar.update()
