"""Writing files so that a crash or a kill mid-write never leaves a half-written one where a reader looks."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write to; when the block ends, its content is flushed to disk and it
    replaces ``path`` in one step.

    The temporary file is hidden and named uniquely (``.agent.<random>.tmp.zip`` for ``agent.zip``), so that two
    processes writing ``path`` at once (two runs sharing a reference cache) never write into one file: a reader sees
    one writer's whole file or the other's. It keeps ``path``'s suffix, because some writers add theirs when it is
    missing (SB3's ``save`` adds ``.zip``). If the block raises, ``path`` is left as it was and the temporary file is
    removed.
    """
    path = Path(path)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(handle)
    tmp = Path(name)
    tmp.chmod(0o666 & ~_umask())   # mkstemp makes it owner-only; the file gets the mode open() would give it
    try:
        yield tmp
        with open(tmp, "rb") as written:
            os.fsync(written.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through :func:`atomic_write`."""
    with atomic_write(path) as tmp:
        tmp.write_text(text)


def _umask() -> int:
    """The process's file-creation mask (read by setting it, then putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
