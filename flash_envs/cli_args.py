"""Argument types of the ``flash`` commands, so that a bad value ends in argparse's usage error.

``parser.add_argument("--episodes", type=int_at_least(1))`` rejects ``--episodes 0`` while parsing, with the usage
line, ``flash demo: error: argument --episodes: must be an integer >= 1, got '0'`` and exit status 2, before any
work starts. Checks that involve several arguments, or the data, raise :class:`UsageError` from the command's
``run``; ``flash`` reports it the same way.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

from flash_envs.fields import MAX_SEED


#: The most worker processes a ``--jobs`` option starts by default.
MAX_DEFAULT_JOBS = 8


def default_jobs() -> int:
    """The default of ``--jobs``: the CPUs this process may run on (its affinity mask where the OS has one), at most
    :data:`MAX_DEFAULT_JOBS`."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(cpus, MAX_DEFAULT_JOBS)


class UsageError(ValueError):
    """Arguments that are each valid but not together (or not for this data); reported as a usage error."""


def int_at_least(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number >= ``low``, and <= ``high`` if that is given."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low or (high is not None and value > high):
            bound = "" if high is None else f" and <= {high}"
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}{bound}, got {text!r}")
        return value
    return parse


#: An argparse type: a seed, a whole number in [0, :data:`~flash_envs.fields.MAX_SEED`].
seed_arg = int_at_least(0, MAX_SEED)


def _number(text: str) -> float:
    """``text`` as a float; NaN (which fails every range check) when it is not a number."""
    try:
        return float(text)
    except ValueError:
        return float("nan")


def float_at_least(low: float, *, strict: bool = False, high: float = math.inf) -> Callable[[str], float]:
    """An argparse type: a finite number >= ``low`` (> ``low`` if ``strict``), and <= ``high`` if that is given."""
    def parse(text: str) -> float:
        value = _number(text)
        if not (value > low if strict else value >= low) or value == float("inf") or value > high:
            bound = "" if high == math.inf else f" and <= {high:g}"
            raise argparse.ArgumentTypeError(f"must be a number {'>' if strict else '>='} {low:g}{bound}, "
                                             f"got {text!r}")
        return value
    return parse


def fraction(text: str) -> float:
    """An argparse type: a number in [0, 1)."""
    value = _number(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1), got {text!r}")
    return value


def _writable(path: Path) -> None:
    """Raise unless ``path`` can be written: its nearest existing ancestor is a folder this process may write in
    (to make the folders missing above ``path``, or ``path`` itself), and ``path``, if it exists, may be written; and
    a file can in fact be created in the folder that will hold it (a probe: a temporary file, gone at once)."""
    if path.is_symlink() and not path.exists():   # (exists() follows the link: the check went to its folder)
        raise argparse.ArgumentTypeError(f"{path} is a link to {os.readlink(path)}, which does not exist")
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise argparse.ArgumentTypeError(f"{path}: {ancestor} is a file, so no folder can be made under it")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{path}: no permission to write in {ancestor}")
    if path.exists() and not os.access(path, os.W_OK | os.X_OK if path.is_dir() else os.W_OK):
        raise argparse.ArgumentTypeError(f"{path}: no permission to write {'in it' if path.is_dir() else 'to it'}")
    folder = path if path.is_dir() else ancestor
    try:   # os.access answers yes for root, and on file systems such as /proc where no file can be made
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise argparse.ArgumentTypeError(f"{path}: no file can be created in {folder} ({err.strerror})") from None


def output_file(text: str) -> Path:
    """An argparse type: a file to write, checked before any work (not a folder; its folder exists or can be made,
    and may be written in)."""
    path = Path(text).expanduser()
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; give a file name")
    _writable(path)
    return path


def check_files_in(folder: Path, names: Iterable[str], option: str = "--out") -> None:
    """Raise a :class:`UsageError` unless each of ``names`` can be written in ``folder`` (given as ``option``), as
    :func:`output_file` checks a file: for a command that writes several files into a folder, before any work (a
    folder of one of their names failed the command at its end, after the others were written)."""
    for name in names:
        try:
            output_file(str(folder / name))
        except argparse.ArgumentTypeError as err:
            raise UsageError(f"{option} {folder}: {err}") from None


def output_dir(text: str) -> Path:
    """An argparse type: a folder to write into, checked before any work (not a file; it exists or can be made, and
    may be written in)."""
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file; give a folder")
    _writable(path)
    return path


def command_of(name: str, args: argparse.Namespace, add_arguments: Callable[[argparse.ArgumentParser], None],
               leave_out: tuple[str, ...] = ()) -> str:
    """The ``flash name`` command that ``args`` stand for (for a report's "Regenerate:" line): the options that
    ``add_arguments`` defines and ``args`` sets to other values than their defaults, but ``leave_out`` (names of
    options that do not change the report, such as ``no_progress``)."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    words = ["flash", name]
    for dest, default in vars(parser.parse_args([])).items():
        value = getattr(args, dest, default)
        if dest in leave_out or value == default:
            continue
        words.append("--" + dest.replace("_", "-"))
        if value is not True:   # (a whole float as it would be typed: 60, not 60.0)
            words += [shlex.quote(str(int(v) if isinstance(v, float) and v.is_integer() else v))
                      for v in (value if isinstance(value, list) else [value])]
    return " ".join(words)


def json_text(value: Any, indent: int = 1) -> str:
    """``value`` (a JSON-able value) as strict JSON text: a NaN or infinity (a CI that one run cannot give, an error
    relative to a zero) is written as ``null``, since JSON has neither and strict parsers refuse the ``NaN`` and
    ``Infinity`` that ``json.dumps`` writes by default."""
    def nan_to_null(item: Any) -> Any:
        if isinstance(item, dict):
            return {key: nan_to_null(v) for key, v in item.items()}
        if isinstance(item, (list, tuple)):
            return [nan_to_null(v) for v in item]
        return None if isinstance(item, float) and not math.isfinite(item) else item

    return json.dumps(nan_to_null(value), indent=indent, allow_nan=False)


def emit(text: str, out: Path | None = None) -> None:
    """Print a command's report and, given ``out``, write the same text there (making its folder): both end in one
    newline, so the file is byte for byte what was printed."""
    text = text if text.endswith("\n") else text + "\n"
    print(text, end="")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
