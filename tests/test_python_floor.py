"""The package runs on the oldest Python that ``requires-python`` admits, though CI runs a newer one: no syntax and no
standard-library name that came later. (``flash_envs`` imported ``typing.Self``, new in 3.11, so under 3.10 nothing
imported at all.)"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Standard-library modules and names added in Python 3.11 and later (a checker such as ``vermin --target`` knows them
#: all; these are the ones code like ours reaches for).
NEWER = {"tomllib": None, "wsgiref.types": None,
         "typing": {"Self", "LiteralString", "Never", "assert_never", "assert_type", "reveal_type", "Required",
                    "NotRequired", "TypeVarTuple", "Unpack", "dataclass_transform", "override", "TypeAliasType",
                    "get_overloads", "clear_overloads", "ReadOnly", "TypeIs", "get_protocol_members",
                    "is_protocol"},
         "enum": {"StrEnum", "verify", "member", "nonmember", "property", "global_enum", "ReprEnum", "EnumCheck",
                  "FlagBoundary"},
         "datetime": {"UTC"}, "asyncio": {"TaskGroup", "Runner", "timeout", "timeout_at"},
         "itertools": {"batched"}, "contextlib": {"chdir"}}


def floor(project: dict) -> tuple[int, int]:
    major, minor = re.fullmatch(r">=\s*(\d+)\.(\d+)", project["requires-python"].strip()).groups()
    return int(major), int(minor)


def newer_names(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name in NEWER and NEWER[a.name] is None]
        elif isinstance(node, ast.ImportFrom) and node.module in NEWER:
            names = NEWER[node.module]
            found += [f"{node.module}" if names is None else f"{node.module}.{a.name}" for a in node.names
                      if names is None or a.name in names]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in NEWER:
            names = NEWER[node.value.id]
            if names is not None and node.attr in names:
                found.append(f"{node.value.id}.{node.attr}")
    return found


def test_the_packages_parse_and_import_nothing_newer_than_requires_python(project):
    version = floor(project)
    assert version >= (3, 10), "NEWER lists what came after 3.10; extend it for an older floor"
    files = sorted(p for package in ("flash_envs", "flash_rl") for p in (ROOT / package).rglob("*.py"))
    assert len(files) > 50
    problems = {}
    for path in files:
        tree = ast.parse(path.read_text(), filename=str(path), feature_version=version)   # a SyntaxError names it
        if names := newer_names(tree):
            problems[str(path.relative_to(ROOT))] = names
    assert not problems, f"not in Python {version[0]}.{version[1]}: {problems}"


def test_the_check_sees_what_it_looks_for():
    assert newer_names(ast.parse("from typing import Any, Self\nimport tomllib\nx = enum.StrEnum")) == [
        "typing.Self", "tomllib", "enum.StrEnum"]
    assert newer_names(ast.parse("from typing import Any, Protocol\nimport enum\nx = enum.Enum")) == []
