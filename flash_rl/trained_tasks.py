"""Which tasks a saved agent was meta-trained on, kept beside it in ``trained_on.json``.

``flash adapt`` and ``flash evaluate`` rebuild the task family from the config they are given; a config whose family
differs from the training run's (another ``tasks.n_train`` or ``tasks.family_file``, say) would otherwise score tasks
the agent trained on as held-out. With this record they refuse such a task. Tasks are compared by content
(:func:`flash_rl.adaptation.task_key`: the task's ``to_dict()``, trace files' contents included), not by name; a task
without ``to_dict()`` is recorded by name only and cannot be checked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from flash_rl.adaptation import task_key
from flash_rl.atomic_files import atomic_write_text

TRAINED_ON_FILE = "trained_on.json"


def task_records(tasks: Sequence[Any]) -> list[dict[str, str | None]]:
    """``{"name", "key"}`` of each of ``tasks`` (``key`` None for a task without ``to_dict()``)."""
    return [{"name": str(getattr(task, "name", "")), "key": task_key(task) if hasattr(task, "to_dict") else None}
            for task in tasks]


def write_trained_on(directory: Path, records: list[dict[str, str | None]] | None) -> None:
    """Write ``records`` to ``directory/trained_on.json``; for None (an agent loaded without the record), remove the
    file an agent saved there before may have left."""
    if records is None:
        (directory / TRAINED_ON_FILE).unlink(missing_ok=True)
    else:
        atomic_write_text(directory / TRAINED_ON_FILE, json.dumps(records, indent=1))


def read_trained_on(directory: Path) -> list[dict[str, str | None]] | None:
    """The records in ``directory/trained_on.json``; None without the file (an agent saved before flash kept it); a
    ValueError naming a damaged file."""
    file = directory / TRAINED_ON_FILE
    if not file.exists():
        return None
    try:
        records = json.loads(file.read_text())
    except ValueError as err:   # not UTF-8 or not JSON
        raise ValueError(f"{file} is damaged (not JSON text: {err})") from None
    if not (isinstance(records, list) and all(isinstance(r, dict) and set(r) == {"name", "key"} for r in records)):
        raise ValueError(f"{file} is damaged (not a list of {{name, key}} records)")
    return records


def same_tasks(records: list[dict[str, str | None]], tasks: Sequence[Any]) -> bool:
    """Whether ``records`` are those of ``tasks``, in any order (by content; by name for a task without
    ``to_dict()``)."""
    def pairs(rs: list[dict[str, str | None]]) -> list[tuple[str, str]]:
        return sorted((str(r["name"]), str(r["key"])) for r in rs)
    return pairs(records) == pairs(task_records(tasks))


def trained_among(records: list[dict[str, str | None]], tasks: Sequence[Any]) -> list[Any]:
    """The tasks of ``tasks`` whose content is that of a task in ``records``."""
    trained = {r["key"] for r in records if r["key"] is not None}
    return [task for task in tasks if hasattr(task, "to_dict") and task_key(task) in trained]
