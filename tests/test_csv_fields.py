"""flash_envs.data.csv_number: the one parser of numeric CSV fields behind every loader."""

from __future__ import annotations

import pytest

from flash_envs.data import DataFormatError, csv_number
from flash_envs.data.trace_csv import TraceFormatError


@pytest.mark.parametrize("text, kwargs, value", [
    ("2.5", {"positive": True}, 2.5),
    ("0", {"positive": False}, 0.0),
    (" 3 ", {"positive": True, "integer": True}, 3.0),
    ("1e3", {"positive": True, "integer": True}, 1000.0),
])
def test_accepts(text, kwargs, value):
    assert csv_number("f.csv", 4, "x", text, **kwargs) == value


@pytest.mark.parametrize("text, kwargs, message", [
    ("abc", {"positive": True}, "f.csv:4: column 'x' holds 'abc', not a number"),
    ("", {"positive": False}, "holds '', not a number"),
    (None, {"positive": False}, "holds None, not a number"),
    ("nan", {"positive": False}, "holds 'nan', not a finite number"),
    ("-inf", {"positive": False}, "not a finite number"),
    ("0", {"positive": True}, "holds '0'; it must be > 0"),
    ("-1", {"positive": False}, "holds '-1'; it must be >= 0"),
    ("2.5", {"positive": True, "integer": True}, "holds '2.5', not a whole number"),
])
def test_rejects_naming_file_line_column_and_text(text, kwargs, message):
    with pytest.raises(DataFormatError, match=message.replace("(", r"\(")):
        csv_number("f.csv", 4, "x", text, **kwargs)


def test_raises_the_loaders_own_error():
    with pytest.raises(TraceFormatError):
        csv_number("t.csv", 2, "rate", "-3", positive=False, error=TraceFormatError)
