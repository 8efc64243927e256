"""One writer per folder: ``flash meta-train`` and ``flash reproduce`` hold the folders they write (the run directory,
and ``reproduce``'s ``--out``) for as long as they run, so that a second command into one of them stops at once, before
it writes anything, instead of running to the end beside the first and mixing its models, curves and reports in.

The hold is an advisory ``flock`` on ``FOLDER/.lock`` (:data:`LOCK_NAME`), which the kernel releases when the process
ends, however it ends: a killed run never blocks the next one. The file holds the holder's PID, for the message of a
command that finds the folder held, and is deleted when the hold ends, so that no folder keeps it as if it were an
output (only one whose holder was killed keeps it, unlocked, until the next hold). Where :mod:`fcntl` is missing
(Windows) folders are made and given back as here but not locked.
"""

from __future__ import annotations

import os
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator

from flash_rl.config import ConfigError

try:
    import fcntl
except ImportError:   # not a POSIX system: no locking
    fcntl = None   # type: ignore[assignment]

#: The lock file in a held folder.
LOCK_NAME = ".lock"


class FolderInUse(ConfigError):
    """A folder that another process holds (the message names it, the option that gave it and the holder's PID)."""


@contextmanager
def hold_folders(folders: dict[Path, str]) -> Iterator[None]:
    """Hold each of ``folders`` (folder -> the option that names it, for messages) for a ``with`` block, made if it is
    missing: a :class:`FolderInUse` error when another process holds one (those taken before it are given back). A
    folder given twice (``--out`` the same as ``--run-dir``) is held once. On exit the folders this made that are
    still empty are removed again, as are the missing folders above them that it made: a command refused after the
    hold (a ``--resume`` of a run directory that holds no run, say) leaves nothing behind."""
    with ExitStack() as held:
        seen: set[Path] = set()
        for folder, option in folders.items():
            if folder.resolve() not in seen:
                seen.add(folder.resolve())
                held.enter_context(_hold(folder, option))
        yield


@contextmanager
def _hold(folder: Path, option: str) -> Iterator[None]:
    """Hold ``folder`` for a ``with`` block, as :func:`hold_folders` says."""
    made = [path for path in (folder, *folder.parents) if not path.exists()]   # the deepest first
    lock, fd = folder / LOCK_NAME, None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = _lock(lock, option) if fcntl else None
        yield
    finally:
        if fd is not None:
            lock.unlink(missing_ok=True)   # while still locked: no other process holds it at this path meanwhile
            os.close(fd)
        for path in made:
            try:
                path.rmdir()
            except OSError:   # not empty: written to, so kept with the folders above it
                break


def _lock(lock: Path, option: str) -> int:
    """Take the ``flock`` on the file ``lock`` (made if missing) and write this process's PID into it; returns its
    descriptor, which holds the lock until it is closed. A :class:`FolderInUse` error if another process holds it."""
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:   # a holder that made the folder removed it, empty, as it ended: make it again
            lock.parent.mkdir(parents=True, exist_ok=True)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            holder = f"another flash command (PID {pid})" if pid.isdigit() else "another flash command"
            raise FolderInUse(f"{option} {lock.parent} is in use: {holder} is writing there, and two commands writing "
                              f"into one folder mix up their results; wait for it to end, or give another {option}"
                              ) from None
        try:
            ours = os.path.samestat(os.fstat(fd), os.stat(lock))
        except FileNotFoundError:
            ours = False
        if ours:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)   # its holder ended and deleted the file between our open and our lock: lock the new file
