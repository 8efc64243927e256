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


def _reading_exponents(base: type) -> Any:
    """A subclass of the PyYAML loader or dumper ``base`` that resolves :data:`EXPONENT_NUMBER` plain scalars to
    :data:`EXPONENT_TAG` (a loader then constructs them as numbers; a dumper quotes a string that matches)."""
    cls: Any = type(f"Exponent{base.__name__}", (base,), {})
    cls.add_implicit_resolver(EXPONENT_TAG, EXPONENT_NUMBER, list("-+.0123456789"))
    if hasattr(cls, "add_constructor"):
        cls.add_constructor(EXPONENT_TAG, _exponent_number)
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
