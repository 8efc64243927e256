"""Writing files so that a crash or a kill mid-write never leaves a half-written one where a reader looks."""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write to; when the block ends, it replaces ``path`` in one step.

    The temporary path keeps ``path``'s suffix (``agent.zip`` -> ``agent.tmp.zip``), because some writers add theirs
    when it is missing (SB3's ``save`` adds ``.zip``). If the block raises, ``path`` is left as it was and the
    temporary file is removed.
    """
    path = Path(path)
    tmp = path.with_name(f"{path.stem}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through :func:`atomic_write`."""
    with atomic_write(path) as tmp:
        tmp.write_text(text)
