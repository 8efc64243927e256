"""YAML that reads ``1e5`` and ``3e-4`` as numbers, as YAML 1.2 does, for config files and task-family files alike.

PyYAML follows YAML 1.1, where a float needs a point and a signed exponent: ``1e5`` and ``3e-4`` are strings. The
loaders here read such a plain (unquoted) scalar as a number (an int when whole and written without a point), and a
quoted ``'1e3'`` stays a string; the dumpers quote a string that would otherwise read back as a number.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

#: A number with an exponent, which PyYAML (YAML 1.1) reads as a string unless it has a point and a signed exponent.
#: Anchored at the end: PyYAML's implicit resolvers match from the start only (``1e3_run`` is a name, not a number).
EXPONENT_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+\Z")
EXPONENT_TAG = "tag:flash,2024:exponent-number"


def _exponent_number(loader: yaml.BaseLoader, node: yaml.ScalarNode) -> int | float:
    text = loader.construct_scalar(node)
    number = float(text)
    return int(number) if number.is_integer() and "." not in text else number


def _flatten_unique_keys(loader: Any, node: yaml.MappingNode) -> None:
    """PyYAML's ``flatten_mapping`` (which inlines ``<<:`` merges) of ``node``, refusing first (a
    ``ConstructorError``) a mapping that writes a key twice: PyYAML keeps the last value without a word, so a config
    naming ``case:`` twice ran the second case. Keys merged in by ``<<:`` may be overridden, as YAML means them to be.
    Each node is checked once, as written: flattening rewrites a merged node in place, its merged keys in front."""
    checked = loader.__dict__.setdefault("_checked_mappings", set())
    if id(node) not in checked:
        checked.add(id(node))
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = loader.construct_object(key_node)
            try:
                repeated = key in seen
            except TypeError:   # an unhashable key, which PyYAML refuses itself
                continue
            if repeated:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark,
                    f"found the key {key!r} again (first on line {seen[key]}): YAML would keep only the last value",
                    key_node.start_mark)
            seen[key] = key_node.start_mark.line + 1
    yaml.SafeLoader.flatten_mapping(loader, node)


def _reading_exponents(base: type) -> Any:
    """A subclass of the PyYAML loader or dumper ``base`` that resolves :data:`EXPONENT_NUMBER` plain scalars to
    :data:`EXPONENT_TAG` (a loader then constructs them as numbers, and refuses a mapping that repeats a key; a dumper
    quotes a string that matches)."""
    cls: Any = type(f"Exponent{base.__name__}", (base,), {})
    cls.add_implicit_resolver(EXPONENT_TAG, EXPONENT_NUMBER, list("-+.0123456789"))
    if hasattr(cls, "add_constructor"):
        cls.add_constructor(EXPONENT_TAG, _exponent_number)
        cls.flatten_mapping = _flatten_unique_keys
    return cls


#: Safe loaders and dumpers: pure Python, and libyaml's (faster, for large task families) where PyYAML has it.
Loader = _reading_exponents(yaml.SafeLoader)
Dumper = _reading_exponents(yaml.SafeDumper)
FastLoader = _reading_exponents(getattr(yaml, "CSafeLoader", yaml.SafeLoader))
FastDumper = _reading_exponents(getattr(yaml, "CSafeDumper", yaml.SafeDumper))


def parse_yaml(text: str, fast: bool = False) -> Any:
    """``text`` read as YAML by :data:`Loader` (:data:`FastLoader` if ``fast``)."""
    return yaml.load(text, Loader=FastLoader if fast else Loader)


def dump_yaml(data: Any, fast: bool = False) -> str:
    """``data`` written as YAML that :func:`parse_yaml` reads back equal (block style, keys in order)."""
    return yaml.dump(data, Dumper=FastDumper if fast else Dumper, sort_keys=False)
